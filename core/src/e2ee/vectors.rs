//! The MLS working group's passive-client test vectors (RFC 9420 interoperability vectors,
//! github.com/mlswg/mls-implementations, `test-vectors/passive-client-*.json`; the copies and
//! where they come from: `core/tests/data/mls/README.md`) replayed through Tidings' own
//! storage: openmls state in a real SQLite profile file, opened by [`crate::store::open`]
//! (which runs [`super::migrate`]), through this module's [`Provider`]
//! (`SqliteStorageProvider` with the [`super::Json`] codec) on the caller's connection.
//!
//! A passive client is one that only receives: each vector gives it a KeyPackage with its
//! private keys, a Welcome (with the ratchet tree when the Welcome does not carry it), and
//! then epochs of proposals and a commit each, made by another implementation; after the
//! Welcome and after every commit the client's epoch authenticator must equal the vector's.
//!
//! What a pass proves:
//! - openmls' state survives Tidings' storage: every message is processed on a freshly
//!   opened connection with the group loaded from disk ([`MlsGroup::load`]) — so pending
//!   proposals, the secret tree, the resumption PSKs of earlier epochs and the tree all go
//!   through the JSON codec and SQLite between steps — and after every commit the epoch and
//!   authenticator are checked once more on another fresh load;
//! - every step runs in a transaction committed afterwards, as sync does;
//! - the keys are injected as rows of openmls' own shape, written only through the public
//!   `StorageProvider` trait, and read back as openmls' own `KeyPackageBundle`.
//!
//! What is not Tidings' production path: the join config accepts handshake messages as
//! `PrivateMessage` too (the vectors use both; Tidings sends and accepts only
//! `PublicMessage`), keeps 16 resumption PSKs, and nothing here checks device certificates
//! (the vectors' credentials are not Tidings credentials) — so the vectors go through
//! openmls directly, not through [`super::join`] / [`super::process`].
//!
//! Leaf-node lifetimes: openmls runs these vectors with its lifetime check turned off
//! through a crate-private switch. From outside there are two cases:
//! - a Welcome whose ratchet tree holds never-updated leaves (their KeyPackage's) with an
//!   ended lifetime is refused by the default join; the public
//!   `JoinBuilder::skip_lifetime_validation` joins it. The strict join is tried first in a
//!   transaction that is rolled back (the failed join has already consumed the KeyPackage);
//!   only a typed `Expired` refusal may send a vector down the second path, and such vectors
//!   are counted apart.
//! - a commit (or an Add proposal) adding a KeyPackage whose lifetime has ended cannot be
//!   processed: no public switch exists. The vector stops there, with every earlier epoch
//!   checked, and is counted as set aside — but only for that typed error, with a `not_after`
//!   in the past.
//!
//! The counts of each outcome per file are asserted exactly. With the vectors kept here,
//! every Welcome and handling-commit vector needs the second join (their trees hold leaves
//! whose KeyPackages expired in March 2024 or March 2025), the random one joins with the
//! default checks, and no commit adds an expired KeyPackage. Every lifetime openmls checked
//! and accepted never ends (asserted), so the counts do not change with the date.

use std::path::Path;

use openmls::ciphersuite::hash_ref::make_key_package_ref;
use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _, VLBytes};
use openmls::prelude::*;
use openmls::schedule::PreSharedKeyId;
use openmls::treesync::errors::{LeafNodeValidationError, LifetimeError};
use openmls::treesync::{LeafNodeSource, RatchetTreeIn};
use openmls_rust_crypto::RustCrypto;
use openmls_traits::storage::{traits, Entity, StorageProvider as _, CURRENT_VERSION};
use openmls_traits::types::{CryptoError, HpkePrivateKey};
use rusqlite::Connection;
use serde::{Deserialize, Deserializer, Serialize};

use super::Provider;

// ---------------------------------------------------------------------------------------
// The vectors' format (mls-implementations/test-vectors.md, "Passive Client").

#[derive(Deserialize)]
struct Vector {
    cipher_suite: u16,
    external_psks: Vec<ExternalPsk>,
    #[serde(deserialize_with = "hex_bytes")]
    key_package: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    signature_priv: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    init_priv: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    encryption_priv: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    welcome: Vec<u8>,
    #[serde(deserialize_with = "hex_opt")]
    ratchet_tree: Option<Vec<u8>>,
    #[serde(deserialize_with = "hex_bytes")]
    initial_epoch_authenticator: Vec<u8>,
    epochs: Vec<Epoch>,
}

#[derive(Deserialize)]
struct ExternalPsk {
    #[serde(deserialize_with = "hex_bytes")]
    psk_id: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    psk: Vec<u8>,
}

#[derive(Deserialize)]
struct Epoch {
    proposals: Vec<Hex>,
    #[serde(deserialize_with = "hex_bytes")]
    commit: Vec<u8>,
    #[serde(deserialize_with = "hex_bytes")]
    epoch_authenticator: Vec<u8>,
}

#[derive(Deserialize)]
struct Hex(#[serde(deserialize_with = "hex_bytes")] Vec<u8>);

fn hex_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn hex_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    Option::<String>::deserialize(d)?
        .filter(|s| !s.is_empty())
        .map(|s| hex::decode(s).map_err(serde::de::Error::custom))
        .transpose()
}

fn read_vectors(name: &str) -> Vec<Vector> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mls").join(name);
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_reader(std::io::BufReader::new(flate2::read::GzDecoder::new(file))).unwrap()
}

// ---------------------------------------------------------------------------------------
// Storage rows in openmls' own shape, for keys that did not come from openmls' builders.

/// openmls' `KeyPackageBundle` as it serializes (`key_packages/mod.rs`: the package, the
/// init private key, and the leaf's `EncryptionPrivateKey`, a struct with one field `key`
/// — not a newtype). The package is kept as received: `KeyPackageIn` serializes exactly as
/// `KeyPackage` does (same fields; `LeafNodeIn` as `LeafNode`), and its checked form is out
/// of reach since checking it also checks its (ended) lifetime.
#[derive(Serialize, Deserialize)]
struct KeyPackageBundleRow {
    key_package: KeyPackageIn,
    private_init_key: HpkePrivateKey,
    private_encryption_key: EncryptionPrivateKeyRow,
}

/// openmls' `EncryptionPrivateKey`: `{ "key": <HpkePrivateKey> }`.
#[derive(Serialize, Deserialize)]
struct EncryptionPrivateKeyRow {
    key: HpkePrivateKey,
}

impl Entity<CURRENT_VERSION> for KeyPackageBundleRow {}
impl traits::KeyPackage<CURRENT_VERSION> for KeyPackageBundleRow {}

/// Stores the vector's external PSKs and its KeyPackage with private keys, as a device that
/// made that KeyPackage would have them. (openmls 0.9 joins from the bundle alone: its
/// `KeyPackageBuilder::build` writes no other row, so neither does this.)
fn inject(conn: &Connection, v: &Vector, ciphersuite: Ciphersuite) {
    let provider = Provider::new(conn);
    for psk in &v.external_psks {
        PreSharedKeyId::external(psk.psk_id.clone(), Vec::new())
            .store(&provider, &psk.psk)
            .unwrap();
    }
    let MlsMessageBodyIn::KeyPackage(key_package) =
        MlsMessageIn::tls_deserialize_exact(&v.key_package).unwrap().extract()
    else {
        panic!("the vector's key_package is not a KeyPackage");
    };
    let hash_ref = make_key_package_ref(
        &key_package.tls_serialize_detached().unwrap(),
        ciphersuite,
        provider.crypto(),
    )
    .unwrap();
    let row = KeyPackageBundleRow {
        key_package,
        private_init_key: v.init_priv.clone().into(),
        private_encryption_key: EncryptionPrivateKeyRow { key: v.encryption_priv.clone().into() },
    };
    provider.storage().write_key_package(&hash_ref, &row).unwrap();

    // openmls reads the row back as its own type, to the same package and keys.
    let bundle: KeyPackageBundle = provider.storage().key_package(&hash_ref).unwrap().unwrap();
    assert_eq!(bundle.key_package().hash_ref(provider.crypto()).unwrap(), hash_ref);
    assert_eq!(&bundle.init_private_key()[..], &v.init_priv[..]);
    assert_eq!(bundle.key_package().ciphersuite(), ciphersuite);
    check_keys(&provider.crypto().rust, ciphersuite, bundle.key_package(), v);
}

/// The format's first check: the vector's private keys are those of its KeyPackage's public
/// keys — each opens what was sealed to, or signs what verifies under, its public key.
fn check_keys(crypto: &RustCrypto, ciphersuite: Ciphersuite, package: &KeyPackage, v: &Vector) {
    // `EncryptionKey` shows its bytes only in its encoding (a length-prefixed vector).
    let encryption_key = VLBytes::tls_deserialize_exact(
        package.leaf_node().encryption_key().tls_serialize_detached().unwrap(),
    )
    .unwrap();
    for (public, private) in [
        (package.hpke_init_key().key().as_slice(), &v.init_priv),
        (encryption_key.as_slice(), &v.encryption_priv),
    ] {
        let sealed = crypto
            .hpke_seal(ciphersuite.hpke_config(), public, b"info", b"aad", b"tidings")
            .unwrap();
        let opened =
            crypto.hpke_open(ciphersuite.hpke_config(), &sealed, private, b"info", b"aad").unwrap();
        assert_eq!(opened, b"tidings");
    }
    let scheme = ciphersuite.signature_algorithm();
    let signature = crypto.sign(scheme, b"tidings", &v.signature_priv).unwrap();
    let public = package.leaf_node().signature_key().as_slice();
    crypto.verify_signature(scheme, b"tidings", public, &signature).unwrap();
}

// ---------------------------------------------------------------------------------------
// The passive client.

/// How one vector ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Joined with openmls' default checks; every epoch authenticator matched.
    Passed,
    /// The default join refused the ratchet tree for a leaf whose lifetime has ended (typed
    /// `LifetimeError::Expired`); joined with `skip_lifetime_validation`, and then every
    /// epoch authenticator matched.
    PassedTreeLifetimeSkipped,
    /// Stopped at epoch `epoch` (0-based): a message adds a KeyPackage whose lifetime ended;
    /// every epoch before it matched.
    ExpiredAdd { epoch: usize },
    /// The ciphersuite is not one `openmls_rust_crypto` supports.
    Unsupported,
}

/// What a file's vectors came to.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    ran: usize,
    passed: usize,
    passed_tree_lifetime_skipped: usize,
    set_aside_expired_add: usize,
    set_aside_unsupported: usize,
    /// Authenticators compared with the vectors' (after each Welcome and each commit).
    authenticators: usize,
}

fn join_config() -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .use_ratchet_tree_extension(true)
        .wire_format_policy(MIXED_PLAINTEXT_WIRE_FORMAT_POLICY)
        .number_of_resumption_psks(16)
        .build()
}

fn open(path: &Path) -> Connection {
    crate::store::open(path, None).unwrap()
}

/// A lifetime that has ended (checked by openmls against the clock, now).
fn ended(e: &LifetimeError) -> bool {
    match *e {
        LifetimeError::Expired { not_after, now } => not_after < now,
        _ => false,
    }
}

/// The default join's refusal of a ratchet-tree leaf whose lifetime has ended.
fn join_refused_for_lifetime(e: &WelcomeError<rusqlite::Error>) -> bool {
    match e {
        WelcomeError::PublicGroupError(CreationFromExternalError::LeafNodeValidation(
            LeafNodeValidationError::Lifetime(e),
        ))
        | WelcomeError::LeafNodeValidation(LeafNodeValidationError::Lifetime(e)) => ended(e),
        _ => false,
    }
}

/// A message refused because it adds a KeyPackage whose lifetime has ended.
fn refused_for_lifetime(e: &ProcessMessageError<rusqlite::Error>) -> bool {
    match e {
        ProcessMessageError::InvalidCommit(StageCommitError::ProposalValidationError(
            ProposalValidationError::LeafNodeValidation(LeafNodeValidationError::Lifetime(e)),
        ))
        | ProcessMessageError::ValidationError(ValidationError::KeyPackageVerifyError(
            KeyPackageVerifyError::LifetimeError(e),
        )) => ended(e),
        _ => false,
    }
}

/// Checks that a lifetime openmls accepted never ends: the counts asserted below then do not
/// depend on the date the test runs (an ended lifetime stays ended).
fn open_ended(leaf: &LeafNode, what: &str) {
    if let LeafNodeSource::KeyPackage(lifetime) = leaf.leaf_node_source() {
        assert_eq!(lifetime.not_after(), u64::MAX, "{what}: a lifetime that will end");
    }
}

/// The group as stored, on a fresh connection: its epoch and authenticator.
fn stored(path: &Path, group: &GroupId) -> (u64, Vec<u8>) {
    let conn = open(path);
    let provider = Provider::new(&conn);
    let mls = MlsGroup::load(provider.storage(), group).unwrap().expect("the group is stored");
    (mls.epoch().as_u64(), mls.epoch_authenticator().as_slice().to_vec())
}

/// Joins by the vector's Welcome: openmls' default checks first, in a transaction rolled
/// back if they refuse the tree for an ended lifetime (the failed join has already used up
/// the KeyPackage), then with the tree's lifetimes skipped.
fn join(path: &Path, v: &Vector) -> (GroupId, Outcome) {
    let welcome = || match MlsMessageIn::tls_deserialize_exact(&v.welcome).unwrap().extract() {
        MlsMessageBodyIn::Welcome(welcome) => welcome,
        _ => panic!("the vector's welcome is not a Welcome"),
    };
    let tree = || {
        v.ratchet_tree.as_ref().map(|bytes| RatchetTreeIn::tls_deserialize_exact(bytes).unwrap())
    };
    let mut conn = open(path);

    let tx = conn.transaction().unwrap();
    let provider = Provider::new(&tx);
    match StagedWelcome::new_from_welcome(&provider, &join_config(), welcome(), tree())
        .and_then(|staged| staged.into_group(&provider))
    {
        Ok(mls) => {
            for member in mls.members() {
                open_ended(mls.public_group().leaf(member.index).unwrap(), "a member");
            }
            tx.commit().unwrap();
            return (mls.group_id().clone(), Outcome::Passed);
        }
        Err(e) => {
            assert!(join_refused_for_lifetime(&e), "the Welcome was refused: {e:?}");
            tx.rollback().unwrap();
        }
    }

    let tx = conn.transaction().unwrap();
    let provider = Provider::new(&tx);
    let mut builder = StagedWelcome::build_from_welcome(&provider, &join_config(), welcome())
        .unwrap()
        .skip_lifetime_validation();
    if let Some(tree) = tree() {
        builder = builder.with_ratchet_tree(tree);
    }
    let mls = builder.build().unwrap().into_group(&provider).unwrap();
    tx.commit().unwrap();
    (mls.group_id().clone(), Outcome::PassedTreeLifetimeSkipped)
}

/// Runs one vector in a profile under `dir`: its outcome, and how many authenticators
/// matched.
fn run(dir: &Path, v: &Vector) -> (Outcome, usize) {
    let ciphersuite = Ciphersuite::try_from(v.cipher_suite).unwrap();
    match RustCrypto::default().supports(ciphersuite) {
        Ok(()) => {}
        Err(CryptoError::UnsupportedCiphersuite) => return (Outcome::Unsupported, 0),
        Err(e) => panic!("{e:?}"),
    }
    let path = dir.join("profile.sqlite");
    inject(&open(&path), v, ciphersuite);

    let (group, outcome) = join(&path, v);
    let (mut epoch, authenticator) = stored(&path, &group);
    assert_eq!(authenticator, v.initial_epoch_authenticator, "after the Welcome");

    for (i, e) in v.epochs.iter().enumerate() {
        let messages = e.proposals.iter().map(|p| (&p.0, false)).chain([(&e.commit, true)]);
        for (bytes, is_commit) in messages {
            // Each message on a fresh connection, the group loaded from disk, in a
            // transaction, as sync applies an event.
            let mut conn = open(&path);
            let tx = conn.transaction().unwrap();
            let provider = Provider::new(&tx);
            let mut mls = MlsGroup::load(provider.storage(), &group).unwrap().unwrap();
            let message = MlsMessageIn::tls_deserialize_exact(bytes)
                .unwrap()
                .try_into_protocol_message()
                .unwrap();
            let processed = match mls.process_message(&provider, message) {
                Ok(processed) => processed,
                Err(e) if refused_for_lifetime(&e) => {
                    return (Outcome::ExpiredAdd { epoch: i }, 1 + i);
                }
                Err(e) => panic!("epoch {i}: {e:?}"),
            };
            match (processed.into_content(), is_commit) {
                (ProcessedMessageContent::ProposalMessage(proposal), false) => {
                    mls.store_pending_proposal(provider.storage(), *proposal).unwrap();
                }
                (ProcessedMessageContent::StagedCommitMessage(staged), true) => {
                    for add in staged.add_proposals() {
                        open_ended(add.add_proposal().key_package().leaf_node(), "an Add");
                    }
                    mls.merge_staged_commit(&provider, *staged).unwrap();
                }
                (other, _) => panic!("epoch {i}: unexpected {other:?}"),
            }
            tx.commit().unwrap();
        }
        let (next, authenticator) = stored(&path, &group);
        assert_eq!(next, epoch + 1, "epoch {i}");
        assert_eq!(authenticator, e.epoch_authenticator, "epoch {i}");
        epoch = next;
    }
    (outcome, 1 + v.epochs.len())
}

fn replay(name: &str) -> Tally {
    let mut tally = Tally::default();
    for (i, v) in read_vectors(name).iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let (outcome, authenticators) = run(dir.path(), v);
        if outcome != Outcome::Passed {
            eprintln!("{name} #{i} (suite {}): {outcome:?}", v.cipher_suite);
        }
        tally.ran += 1;
        tally.authenticators += authenticators;
        match outcome {
            Outcome::Passed => tally.passed += 1,
            Outcome::PassedTreeLifetimeSkipped => tally.passed_tree_lifetime_skipped += 1,
            Outcome::ExpiredAdd { .. } => tally.set_aside_expired_add += 1,
            Outcome::Unsupported => tally.set_aside_unsupported += 1,
        }
    }
    tally
}

/// Joins only: the Welcome, with the ratchet tree in it or beside it, and external PSKs.
/// Every one was made in March 2023 with KeyPackages valid for a year.
#[test]
fn passive_client_welcome() {
    assert_eq!(
        replay("passive-client-welcome.json.gz"),
        Tally { ran: 24, passed_tree_lifetime_skipped: 24, authenticators: 24, ..Tally::default() }
    );
}

/// Two epochs of proposals and a commit each (external PSKs, Adds, Updates, Removes, ...),
/// from groups whose other members' KeyPackage lifetimes ended in March 2025.
#[test]
fn passive_client_handling_commit() {
    assert_eq!(
        replay("passive-client-handling-commit.json.gz"),
        Tally {
            ran: 39,
            passed_tree_lifetime_skipped: 39,
            authenticators: 39 + 39 * 2,
            ..Tally::default()
        }
    );
}

/// 200 epochs of random proposals and commits, every lifetime open-ended.
#[test]
fn passive_client_random() {
    assert_eq!(
        replay("passive-client-random.json.gz"),
        Tally { ran: 1, passed: 1, authenticators: 1 + 200, ..Tally::default() }
    );
}
