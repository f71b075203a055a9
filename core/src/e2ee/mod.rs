//! End-to-end encryption: one MLS group (RFC 9420, through openmls) per room, one leaf per
//! device.
//!
//! This module is the only place that speaks openmls. It is sans-IO: every operation takes the
//! profile's SQLite connection — normally the caller's open transaction — and bytes, and gives
//! bytes back. openmls keeps its group state in its own tables of the same database
//! (`openmls_sqlite_storage`, JSON-encoded), so processing a log event, storing the plaintext it
//! revealed and moving the room's cursor commit together or not at all: a kill -9 between them
//! rolls all three back, and the message — whose key openmls deletes once used — is decrypted
//! again on the next run instead of being lost.
//!
//! What is fixed here, for every group:
//! - ciphersuite 1 (`MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`), pure-Rust crypto;
//! - handshake messages (commits, proposals) as `PublicMessage`, so the server can read their
//!   epoch and keep one order of commits; application messages as `PrivateMessage`;
//! - the ratchet tree travels inside Welcome and GroupInfo;
//! - application messages padded to multiples of [`PADDING`] bytes;
//! - no past-epoch secrets: the server accepts a message only at the room's current epoch,
//!   so every logged message decrypts with the state at its place in the log.
//!
//! Who a leaf belongs to is its credential: a [`LeafId`] (user and device ids). The caller
//! checks that against the room's membership in the log; this module only reports it.

mod beside;
mod codec;
pub mod file;
mod identity;
pub mod security_code;
pub mod signal;

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::RustCrypto;
use openmls_sqlite_storage::SqliteStorageProvider;
use openmls_traits::OpenMlsProvider;
use rusqlite::{Connection, OptionalExtension};

pub use codec::Json;
pub use identity::{proof, proof_holds, Identity, IdentityKey, CREDENTIAL_LEN};

/// The one ciphersuite Tidings groups use.
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;

/// Application messages are padded to a multiple of this many bytes, so the server learns
/// sizes only in steps.
pub const PADDING: usize = 256;

/// Length of a group id (random, chosen by the device that sets the group up).
pub const GROUP_ID_LEN: usize = 16;

/// One-time KeyPackages a device keeps on the server…
pub const KEY_PACKAGE_STOCK: usize = 20;
/// … topped up (with a new last-resort one) when fewer than this many are left.
pub const KEY_PACKAGE_LOW: usize = 5;

/// Who a leaf is: the server's user and device ids, as the leaf's credential carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeafId {
    /// The user's id on the server.
    pub user: i64,
    /// The device's id on the server.
    pub device: i64,
}

impl LeafId {
    /// The leaf a credential names (its certificate was checked when the leaf entered).
    fn from_credential(credential: &Credential) -> Result<Self, E2eeError> {
        Ok(identity::leaf(basic_identity(credential)?)?.0)
    }
}

fn basic_identity(credential: &Credential) -> Result<&[u8], E2eeError> {
    if credential.credential_type() != CredentialType::Basic {
        return Err(E2eeError::Malformed("a leaf without a basic credential"));
    }
    Ok(credential.serialized_content())
}

/// The leaf a leaf node names, once its device certificate verifies.
fn certified(leaf: &LeafNode) -> Result<(LeafId, IdentityKey), E2eeError> {
    identity::certified(basic_identity(leaf.credential())?, leaf.signature_key().as_slice())
}

/// Checks every leaf of a group about to be joined: certified, and of someone the room's
/// log has had as a member.
fn check_members(members: impl Iterator<Item = Member>, roster: &Roster) -> Result<(), E2eeError> {
    for member in members {
        let (leaf, _) =
            identity::certified(basic_identity(&member.credential)?, &member.signature_key)?;
        if !roster.ever.contains(&leaf.user) {
            return Err(E2eeError::NotAMember(leaf));
        }
    }
    Ok(())
}

/// Who the room's log says may hold a leaf of its group — openmls checks the cryptography,
/// this module the certificates, and this the membership, so the server (which orders the
/// log) cannot put in the group a device of someone who is not in the room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    /// The room's members now: a commit may add leaves of these only.
    pub now: std::collections::BTreeSet<i64>,
    /// Everyone who has been a member: a group joined (from a Welcome or a GroupInfo) may
    /// hold leaves of these only — someone who left keeps a leaf until the next member to
    /// send removes it.
    pub ever: std::collections::BTreeSet<i64>,
}

/// What went wrong. Malformed and refused input is the sender's (or the server's) fault and
/// never this device's state: the caller stores the event as undecryptable and moves on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum E2eeError {
    /// The profile's database failed.
    #[error("storage: {0}")]
    Storage(#[from] rusqlite::Error),
    /// Bytes that are not the MLS message they should be.
    #[error("malformed MLS input: {0}")]
    Malformed(&'static str),
    /// openmls refused the input (bad signature, wrong epoch, unknown group, …).
    #[error("MLS refused it: {0}")]
    Refused(String),
    /// This profile has no device keys yet (it has not signed in).
    #[error("this device has no encryption keys yet")]
    NoDevice,
    /// This device is not in the room's group.
    #[error("this device is not in the room's group")]
    NoGroup,
    /// A proposal is waiting to be committed: commit first, then send.
    #[error("a proposal must be committed first")]
    PendingProposals,
    /// A leaf whose device certificate does not verify: a device its user's identity did not
    /// certify (or a malformed one).
    #[error("a device that is not certified by its user's identity: {0}")]
    Uncertified(&'static str),
    /// A leaf of a user the room's log does not have as a member ([`Roster`]).
    #[error("a device of user {} who is not a member of the room", .0.user)]
    NotAMember(LeafId),
    /// A handshake where an application message belongs.
    #[error("a {0} where a message belongs")]
    Misplaced(&'static str),
    /// A message whose signature is not its sender's — or, in a page whose signatures were
    /// checked beside decryption ([`Loaded::checking_beside`]), some message's.
    #[error("a bad signature")]
    BadSignature,
}

/// An MLS failure met by the engine: the database's is a database error; anything else is
/// this device's own state at fault (what it sends is built from it), never the network's.
impl From<E2eeError> for crate::Error {
    fn from(e: E2eeError) -> Self {
        match e {
            E2eeError::Storage(e) => e.into(),
            other => crate::Error::Internal(other.to_string()),
        }
    }
}

fn refused(error: impl std::fmt::Display) -> E2eeError {
    E2eeError::Refused(error.to_string())
}

type Storage<'c> = SqliteStorageProvider<Json, &'c Connection>;

/// openmls' view of one database connection.
struct Provider<'c> {
    crypto: beside::Crypto<'c>,
    storage: Storage<'c>,
}

impl<'c> Provider<'c> {
    /// Signatures checked in line.
    fn new(conn: &'c Connection) -> Self {
        Self::checking(conn, None)
    }

    /// Signatures checked in line, or handed to `beside`.
    fn checking(conn: &'c Connection, beside: Option<&'c beside::Beside>) -> Self {
        Self {
            crypto: beside::Crypto { rust: RustCrypto::default(), beside },
            storage: SqliteStorageProvider::new(conn),
        }
    }
}

impl<'c> OpenMlsProvider for Provider<'c> {
    type CryptoProvider = beside::Crypto<'c>;
    type RandProvider = RustCrypto;
    type StorageProvider = Storage<'c>;

    fn storage(&self) -> &Self::StorageProvider {
        &self.storage
    }
    fn crypto(&self) -> &Self::CryptoProvider {
        &self.crypto
    }
    fn rand(&self) -> &Self::RandProvider {
        &self.crypto.rust
    }
}

/// Creates openmls' own tables (its migrations, recorded in their own table) in the profile.
pub fn migrate(conn: &mut Connection) -> Result<(), E2eeError> {
    SqliteStorageProvider::<Json, &mut Connection>::new(conn).run_migrations().map_err(refused)
}

/// The result of a commit this device built: what to send, and to whom. Nothing is merged
/// yet: the commit takes effect when the server has logged it ([`Device::confirm`]) and is
/// thrown away if the server refused it ([`Device::discard`]).
#[derive(Debug, Clone)]
pub struct Commit {
    /// The group's id.
    pub group: Vec<u8>,
    /// The epoch the commit was built on.
    pub epoch: u64,
    /// The commit, a `PublicMessage` (empty for a group's setup).
    pub commit: Vec<u8>,
    /// The Welcome for the devices the commit adds.
    pub welcome: Option<Vec<u8>>,
    /// The group's GroupInfo (with the ratchet tree) after the commit: what a member's new
    /// device joins from.
    pub group_info: Vec<u8>,
}

impl Commit {
    /// Encodes what openmls made for a commit built on `epoch` of `mls`.
    fn from_messages(
        mls: &MlsGroup,
        epoch: u64,
        commit: MlsMessageOut,
        welcome: Option<MlsMessageOut>,
        group_info: Option<MlsMessageOut>,
    ) -> Result<Self, E2eeError> {
        let group_info = group_info.ok_or(E2eeError::Refused("no group info".into()))?;
        Ok(Commit {
            group: mls.group_id().as_slice().to_vec(),
            epoch,
            commit: commit.to_bytes().map_err(refused)?,
            welcome: welcome.map(|w| w.to_bytes()).transpose().map_err(refused)?,
            group_info: group_info.to_bytes().map_err(refused)?,
        })
    }
}

/// What processing one message did.
#[derive(Debug, PartialEq, Eq)]
pub enum Processed {
    /// An application message from `sender`.
    Application {
        /// The leaf that sent it.
        sender: LeafId,
        /// The plaintext.
        plaintext: Vec<u8>,
    },
    /// Someone's commit, now merged: the group is at a new epoch.
    Commit {
        /// The committer.
        by: LeafId,
        /// Leaves the commit added.
        added: Vec<LeafId>,
        /// Leaves the commit removed.
        removed: Vec<LeafId>,
    },
    /// My own commit, met in the log (its reply was lost): now merged.
    OwnCommit,
    /// My own application message, met in the log: nothing to do (I kept the plaintext).
    OwnMessage,
    /// A proposal, queued for the next commit.
    Proposal,
}

/// This device's MLS keys: its signature key and its leaf credential, certified by its user's
/// identity.
#[derive(Debug)]
pub struct Device {
    id: LeafId,
    signer: SignatureKeyPair,
    /// The credential identity ([`identity`]'s layout).
    credential: Vec<u8>,
}

impl Device {
    /// This device's leaf id.
    pub fn id(&self) -> LeafId {
        self.id
    }

    /// The identity key that certified this device.
    pub fn identity(&self) -> IdentityKey {
        identity::leaf(&self.credential).map(|(_, key)| key).unwrap_or(IdentityKey([0; 32]))
    }

    /// This profile's device keys, if it has any.
    pub fn load(conn: &Connection) -> Result<Option<Self>, E2eeError> {
        // Keys from before device certificates have no credential: new ones are made.
        let row = conn
            .query_row(
                "SELECT user, device, signature_key, credential FROM e2ee_device
                 WHERE credential IS NOT NULL",
                [],
                |r| Ok((LeafId { user: r.get(0)?, device: r.get(1)? }, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let Some((id, public, credential)): Option<(LeafId, Vec<u8>, Vec<u8>)> = row else {
            return Ok(None);
        };
        let storage = Storage::new(conn);
        let signer = SignatureKeyPair::read(&storage, &public, CIPHERSUITE.signature_algorithm())
            .ok_or(E2eeError::NoDevice)?;
        Ok(Some(Self { id, signer, credential }))
    }

    /// This profile's keys for the signed-in device `id`: the stored ones, or new ones when
    /// the profile has none or they belong to an earlier session. New keys are certified by
    /// the profile's identity for the user, made now if it has none.
    pub fn for_session(conn: &Connection, id: LeafId) -> Result<Self, E2eeError> {
        match Self::load(conn)? {
            Some(device) if device.id == id => Ok(device),
            _ => {
                let identity = match Identity::load(conn, id.user)? {
                    Some(identity) => identity,
                    None => {
                        let identity = Identity::generate(id.user);
                        identity.store(conn)?;
                        identity
                    }
                };
                Self::create(conn, id, &identity)
            }
        }
    }

    /// Makes this device's keys (a new signature key pair) for `id`, certified by `identity`,
    /// replacing any earlier ones: a profile that signs in again is a new device with new keys.
    pub fn create(conn: &Connection, id: LeafId, identity: &Identity) -> Result<Self, E2eeError> {
        let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).map_err(refused)?;
        signer.store(&Storage::new(conn))?;
        let credential = identity.certify(id, signer.public());
        conn.execute("DELETE FROM e2ee_device", [])?;
        conn.execute(
            "INSERT INTO e2ee_device (id, user, device, signature_key, credential)
             VALUES (1, ?1, ?2, ?3, ?4)",
            rusqlite::params![id.user, id.device, signer.public(), credential],
        )?;
        Ok(Self { id, signer, credential })
    }

    fn credential(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(self.credential.clone()).into(),
            signature_key: self.signer.public().into(),
        }
    }

    /// `count` new one-time KeyPackages (and a last-resort one when `last_resort`), encoded,
    /// for the server's directory. Their private keys stay in the profile until used.
    pub fn key_packages(
        &self,
        conn: &Connection,
        count: usize,
        last_resort: bool,
    ) -> Result<Vec<Vec<u8>>, E2eeError> {
        let provider = Provider::new(conn);
        let mut packages = Vec::with_capacity(count + 1);
        for i in 0..count + usize::from(last_resort) {
            let mut builder = KeyPackage::builder().leaf_node_capabilities(capabilities());
            if i == count {
                builder = builder.mark_as_last_resort();
            }
            let bundle = builder
                .build(CIPHERSUITE, &provider, &self.signer, self.credential())
                .map_err(refused)?;
            packages.push(bundle.key_package().tls_serialize_detached().map_err(refused)?);
        }
        Ok(packages)
    }

    fn create_config() -> MlsGroupCreateConfig {
        MlsGroupCreateConfig::builder()
            .ciphersuite(CIPHERSUITE)
            .capabilities(capabilities())
            .use_ratchet_tree_extension(true)
            .padding_size(PADDING)
            .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
            .build()
    }

    fn join_config() -> MlsGroupJoinConfig {
        MlsGroupJoinConfig::builder()
            .use_ratchet_tree_extension(true)
            .padding_size(PADDING)
            .wire_format_policy(PURE_PLAINTEXT_WIRE_FORMAT_POLICY)
            .build()
    }

    /// Sets up a new group `group` with this device alone and adds the devices of
    /// `key_packages` (pending until confirmed, as for [`Device::add`], but the setup's
    /// commit is not sent: the Welcome is all the others need). With no key packages the
    /// group is ready at epoch 0.
    pub fn create_group(
        &self,
        conn: &Connection,
        group: &[u8],
        key_packages: &[Vec<u8>],
    ) -> Result<Commit, E2eeError> {
        let provider = Provider::new(conn);
        let mut mls = MlsGroup::new_with_group_id(
            &provider,
            &self.signer,
            &Self::create_config(),
            GroupId::from_slice(group),
            self.credential(),
        )
        .map_err(refused)?;
        if key_packages.is_empty() {
            let group_info =
                mls.export_group_info(provider.crypto(), &self.signer, true).map_err(refused)?;
            return Ok(Commit {
                group: group.to_vec(),
                epoch: 0,
                commit: Vec::new(),
                welcome: None,
                group_info: group_info.to_bytes().map_err(refused)?,
            });
        }
        // Nobody needs the setup's commit: the Welcome brings every device in at its epoch.
        Ok(Commit { commit: Vec::new(), ..self.add_to(&provider, &mut mls, key_packages)? })
    }

    /// Commits adding the devices of `key_packages` to `group` (pending until confirmed).
    pub fn add(
        &self,
        conn: &Connection,
        group: &[u8],
        key_packages: &[Vec<u8>],
    ) -> Result<Commit, E2eeError> {
        let provider = Provider::new(conn);
        let mut mls = load(&provider, group)?;
        self.add_to(&provider, &mut mls, key_packages)
    }

    fn add_to(
        &self,
        provider: &Provider<'_>,
        mls: &mut MlsGroup,
        key_packages: &[Vec<u8>],
    ) -> Result<Commit, E2eeError> {
        let packages = key_packages
            .iter()
            .map(|bytes| {
                KeyPackageIn::tls_deserialize_exact(bytes)
                    .map_err(|_| E2eeError::Malformed("a key package"))?
                    .validate(provider.crypto(), ProtocolVersion::Mls10)
                    .map_err(refused)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let epoch = mls.epoch().as_u64();
        let (commit, welcome, group_info) =
            mls.add_members(provider, &self.signer, &packages).map_err(refused)?;
        Commit::from_messages(mls, epoch, commit, Some(welcome), group_info.map(Into::into))
    }

    /// Commits removing every leaf `which` picks (pending until confirmed).
    pub fn remove(
        &self,
        conn: &Connection,
        group: &[u8],
        which: impl Fn(LeafId) -> bool,
    ) -> Result<Commit, E2eeError> {
        let provider = Provider::new(conn);
        let mut mls = load(&provider, group)?;
        let leaves: Vec<LeafNodeIndex> = mls
            .members()
            .filter(|m| LeafId::from_credential(&m.credential).is_ok_and(&which))
            .map(|m| m.index)
            .collect();
        let epoch = mls.epoch().as_u64();
        let bundle = mls
            .commit_builder()
            .propose_removals(leaves)
            .load_psks(provider.storage())
            .map_err(refused)?
            .create_group_info(true)
            .use_ratchet_tree_extension(true)
            .build(provider.rand(), provider.crypto(), &self.signer, |_| true)
            .map_err(refused)?
            .stage_commit(&provider)
            .map_err(refused)?;
        let (commit, welcome, group_info) = bundle.into_messages();
        Commit::from_messages(&mls, epoch, commit, welcome, group_info)
    }

    /// Merges my pending commit of `group`: the server logged it.
    pub fn confirm(&self, conn: &Connection, group: &[u8]) -> Result<(), E2eeError> {
        confirm(conn, group)
    }

    /// Throws away my pending commit of `group`: the server refused it (another commit won the
    /// epoch).
    pub fn discard(&self, conn: &Connection, group: &[u8]) -> Result<(), E2eeError> {
        let provider = Provider::new(conn);
        if let Some(mut mls) = MlsGroup::load(provider.storage(), &GroupId::from_slice(group))? {
            mls.clear_pending_commit(provider.storage())?;
        }
        Ok(())
    }

    /// Encrypts `plaintext` for `group` at its current epoch: a `PrivateMessage`.
    pub fn encrypt(
        &self,
        conn: &Connection,
        group: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, E2eeError> {
        let provider = Provider::new(conn);
        let mut mls = load(&provider, group)?;
        if mls.pending_proposals().next().is_some() {
            return Err(E2eeError::PendingProposals);
        }
        let message = mls.create_message(&provider, &self.signer, plaintext).map_err(refused)?;
        message.to_bytes().map_err(refused)
    }

    /// Joins a group by external commit from its GroupInfo (a member's new device, or one
    /// left out of a Welcome): returns the commit to send. It is pending like any commit —
    /// merged by [`Device::confirm`] once logged; if refused, [`forget`] the group and start
    /// again from the newer GroupInfo.
    pub fn join_external(
        &self,
        conn: &Connection,
        group_info: &[u8],
        roster: &Roster,
    ) -> Result<Commit, E2eeError> {
        let provider = Provider::new(conn);
        let message = MlsMessageIn::tls_deserialize_exact(group_info)
            .map_err(|_| E2eeError::Malformed("a group info"))?;
        let MlsMessageBodyIn::GroupInfo(info) = message.extract() else {
            return Err(E2eeError::Malformed("not a group info"));
        };
        let epoch = info.epoch().as_u64();
        let info_group = info.group_id().clone();
        // Whatever this device kept of the group (a setup whose reply was lost, a state that
        // fell behind the log) gives way to the group as it is now.
        forget(conn, info.group_id().as_slice())?;
        let (mls, bundle) = MlsGroup::external_commit_builder()
            .with_config(Self::join_config())
            .build_group(&provider, info, self.credential())
            .map_err(refused)?
            .load_psks(provider.storage())
            .map_err(refused)?
            .build(provider.rand(), provider.crypto(), &self.signer, |_| true)
            .map_err(refused)?
            .finalize(&provider)
            .map_err(refused)?;
        if let Err(e) = check_members(mls.members(), roster) {
            forget(conn, info_group.as_slice())?;
            return Err(e);
        }
        let (commit, _, group_info) = bundle.into_messages();
        Commit::from_messages(&mls, epoch, commit, None, group_info)
    }
}

/// Checks a claimed KeyPackage as adding it would (signature, ciphersuite, lifetime): a
/// device whose KeyPackage fails is left out rather than failing the commit for everyone.
/// Its lifetime must also span at most openmls' bound (12 weeks and an hour), as RFC 9420
/// §7.2 asks of applications: a long-lived KeyPackage keeps its init key at risk for longer.
pub fn check_key_package(bytes: &[u8]) -> Result<(), E2eeError> {
    let package = KeyPackageIn::tls_deserialize_exact(bytes)
        .map_err(|_| E2eeError::Malformed("a key package"))?
        .validate(&RustCrypto::default(), ProtocolVersion::Mls10)
        .map_err(refused)?;
    if package.ciphersuite() != CIPHERSUITE {
        return Err(E2eeError::Refused("a key package of another ciphersuite".into()));
    }
    if !package.life_time().has_acceptable_range() {
        return Err(E2eeError::Refused("a key package whose lifetime is too long".into()));
    }
    certified(package.leaf_node())?;
    Ok(())
}

/// Merges this device's pending commit of `group` (a setup, an external join, a commit):
/// the server logged it. (No signing: the commit was signed when it was built.)
pub fn confirm(conn: &Connection, group: &[u8]) -> Result<(), E2eeError> {
    let provider = Provider::new(conn);
    let mut mls = load(&provider, group)?;
    if mls.pending_commit().is_some() {
        mls.merge_pending_commit(&provider).map_err(refused)?;
    }
    Ok(())
}

/// Joins a group from a Welcome; returns the group's id. (No signing: any device whose
/// KeyPackage the Welcome names, by the private keys in this profile.) A Welcome that has no secrets for
/// this device is [`E2eeError::NoGroup`].
pub fn join(conn: &Connection, welcome: &[u8], roster: &Roster) -> Result<Vec<u8>, E2eeError> {
    let provider = Provider::new(conn);
    let message = MlsMessageIn::tls_deserialize_exact(welcome)
        .map_err(|_| E2eeError::Malformed("a welcome"))?;
    let MlsMessageBodyIn::Welcome(welcome) = message.extract() else {
        return Err(E2eeError::Malformed("not a welcome"));
    };
    let staged =
        match StagedWelcome::new_from_welcome(&provider, &Device::join_config(), welcome, None) {
            Ok(staged) => staged,
            Err(WelcomeError::NoMatchingKeyPackage | WelcomeError::NoMatchingEncryptionKey) => {
                return Err(E2eeError::NoGroup)
            }
            Err(e) => return Err(refused(e)),
        };
    check_members(staged.members(), roster)?;
    let mls = staged.into_group(&provider).map_err(refused)?;
    Ok(mls.group_id().as_slice().to_vec())
}

/// Processes one message of `group` from the log: decrypts an application message, merges
/// a commit — whose new leaves must be certified, of members now ([`Roster::now`]) — or
/// queues a proposal. (No signing, so no device keys to load.)
pub fn process(
    conn: &Connection,
    group: &[u8],
    message: &[u8],
    roster: &Roster,
) -> Result<Processed, E2eeError> {
    let provider = Provider::new(conn);
    process_loaded(&provider, &mut load(&provider, group)?, message, Some(roster))
}

/// Groups loaded once for a run of events in one transaction (a catch-up page), so that
/// opening each message skips openmls' load of the group (its tree, secret tree and context,
/// JSON-decoded): the most of what opening a message costs. openmls writes every change
/// through to storage as it makes it, so a loaded group stays what storage holds — as long
/// as nothing else touches that group's storage meanwhile: call [`Loaded::forget`] before
/// any other function of this module is used on it. Only a group that just opened a message
/// is kept; after anything else (a commit, an error) it is loaded again. Drop it with its
/// transaction: after a rollback its groups are ahead of storage.
///
/// Made by [`Loaded::checking_beside`], it checks the messages' signatures on a second
/// thread ([`beside`]): then [`Loaded::finish`] must say the page is good before its
/// transaction commits.
#[derive(Default)]
pub struct Loaded {
    groups: std::collections::HashMap<Vec<u8>, MlsGroup>,
    beside: Option<beside::Beside>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded").field("groups", &self.groups.len()).finish()
    }
}

impl Loaded {
    /// Groups loaded once, with the signatures of the messages opened checked on a second
    /// thread while the next are decrypted: what is opened must not be committed before
    /// [`Loaded::finish`] says every signature was good.
    pub fn checking_beside() -> Self {
        Self { groups: Default::default(), beside: Some(beside::Beside::default()) }
    }

    /// Waits for the signatures checked beside (nothing to wait for without): `Ok` if every
    /// one was good, else [`E2eeError::BadSignature`] — roll back what was opened and open
    /// it again with signatures checked in line, to find which message it was.
    pub fn finish(&mut self) -> Result<(), E2eeError> {
        self.groups.clear();
        match &self.beside {
            Some(beside) if !beside.finish() => Err(E2eeError::BadSignature),
            _ => Ok(()),
        }
    }

    /// Opens one application message of `group` from the log, with `group` loaded once for
    /// every call on this `Loaded`. A handshake here (where the log has a message) is
    /// [`E2eeError::Misplaced`], and changes nothing.
    pub fn open(
        &mut self,
        conn: &Connection,
        group: &[u8],
        message: &[u8],
    ) -> Result<Processed, E2eeError> {
        let provider = Provider::checking(conn, self.beside.as_ref());
        let mut mls = match self.groups.remove(group) {
            Some(mls) => mls,
            None => load(&provider, group)?,
        };
        let processed = process_loaded(&provider, &mut mls, message, None)?;
        if matches!(processed, Processed::Application { .. }) {
            self.groups.insert(group.to_vec(), mls);
        }
        Ok(processed)
    }

    /// Drops `group`'s loaded state, before other code reads or writes its storage.
    pub fn forget(&mut self, group: &[u8]) {
        self.groups.remove(group);
    }
}

/// Processes `message` in `mls`: an application message when `roster` is `None` (a message
/// event), else a handshake whose new leaves `roster` admits.
fn process_loaded(
    provider: &Provider<'_>,
    mls: &mut MlsGroup,
    message: &[u8],
    roster: Option<&Roster>,
) -> Result<Processed, E2eeError> {
    let message = MlsMessageIn::tls_deserialize_exact(message)
        .map_err(|_| E2eeError::Malformed("an MLS message"))?;
    let message = message
        .try_into_protocol_message()
        .map_err(|_| E2eeError::Malformed("not a group message"))?;
    if roster.is_none() && message.content_type() != ContentType::Application {
        return Err(E2eeError::Misplaced("handshake"));
    }
    let processed = mls.process_message(provider, message).map_err(|e| match e {
        ProcessMessageError::ValidationError(ValidationError::InvalidSignature) => {
            E2eeError::BadSignature
        }
        other => refused(other),
    })?;
    let sender = LeafId::from_credential(processed.credential())?;
    Ok(match processed.into_content() {
        ProcessedMessageContent::ApplicationMessage(message) => {
            Processed::Application { sender, plaintext: message.into_bytes() }
        }
        ProcessedMessageContent::StagedCommitMessage(staged) => {
            // Every leaf the commit brings in or changes must be certified, and of someone
            // who is a member now; a commit that fails is not merged (the caller shows it as
            // a security event).
            let new_leaves = staged
                .add_proposals()
                .map(|p| p.add_proposal().key_package().leaf_node().clone())
                .chain(staged.update_proposals().map(|p| p.update_proposal().leaf_node().clone()))
                .chain(staged.update_path_leaf_node().cloned());
            for leaf in new_leaves {
                let (leaf, _) = certified(&leaf)?;
                if !roster.is_some_and(|r| r.now.contains(&leaf.user)) {
                    return Err(E2eeError::NotAMember(leaf));
                }
            }
            let added = staged
                .add_proposals()
                .filter_map(|p| {
                    LeafId::from_credential(p.add_proposal().key_package().leaf_node().credential())
                        .ok()
                })
                .collect();
            let removed = staged
                .remove_proposals()
                .filter_map(|p| {
                    let leaf = p.remove_proposal().removed();
                    mls.member(leaf).and_then(|c| LeafId::from_credential(c).ok())
                })
                .collect();
            mls.merge_staged_commit(provider, *staged).map_err(refused)?;
            Processed::Commit { by: sender, added, removed }
        }
        ProcessedMessageContent::OwnPendingCommit => {
            mls.merge_pending_commit(provider).map_err(refused)?;
            Processed::OwnCommit
        }
        ProcessedMessageContent::OwnPrivateMessage => Processed::OwnMessage,
        ProcessedMessageContent::ProposalMessage(proposal)
        | ProcessedMessageContent::ExternalJoinProposalMessage(proposal) => {
            mls.store_pending_proposal(provider.storage(), *proposal)?;
            Processed::Proposal
        }
    })
}

/// What every Tidings leaf supports beyond the defaults: last-resort KeyPackages.
fn capabilities() -> Capabilities {
    Capabilities::new(None, None, Some(&[ExtensionType::LastResort]), None, None)
}

fn load(provider: &Provider<'_>, group: &[u8]) -> Result<MlsGroup, E2eeError> {
    MlsGroup::load(provider.storage(), &GroupId::from_slice(group))?.ok_or(E2eeError::NoGroup)
}

/// Deletes this device's state of `group`: a setup the server refused (another device set
/// the room's group up first), or a group this device was removed from.
pub fn forget(conn: &Connection, group: &[u8]) -> Result<(), E2eeError> {
    let provider = Provider::new(conn);
    if let Some(mut mls) = MlsGroup::load(provider.storage(), &GroupId::from_slice(group))? {
        mls.delete(provider.storage())?;
    }
    Ok(())
}

/// The group's current epoch, if this device is in it.
pub fn epoch(conn: &Connection, group: &[u8]) -> Result<Option<u64>, E2eeError> {
    let provider = Provider::new(conn);
    Ok(MlsGroup::load(provider.storage(), &GroupId::from_slice(group))?
        .filter(MlsGroup::is_active)
        .map(|g| g.epoch().as_u64()))
}

/// The group's leaves, as this device sees them.
pub fn members(conn: &Connection, group: &[u8]) -> Result<Vec<LeafId>, E2eeError> {
    let provider = Provider::new(conn);
    let mls = load(&provider, group)?;
    Ok(mls.members().filter_map(|m| LeafId::from_credential(&m.credential).ok()).collect())
}

/// The group's leaves with the identity key that certified each: what a member's security
/// code is computed from.
pub fn identities(
    conn: &Connection,
    group: &[u8],
) -> Result<Vec<(LeafId, IdentityKey)>, E2eeError> {
    let provider = Provider::new(conn);
    let mls = load(&provider, group)?;
    mls.members().map(|m| identity::leaf(basic_identity(&m.credential)?)).collect()
}

/// The group's epoch authenticator: equal on every member that agrees on the group's history.
pub fn authenticator(conn: &Connection, group: &[u8]) -> Result<Vec<u8>, E2eeError> {
    let provider = Provider::new(conn);
    Ok(load(&provider, group)?.epoch_authenticator().as_slice().to_vec())
}

/// What MLS leaves in clear about a group message: its group, its epoch, and whether it is a
/// commit (else an application message or a proposal). Apply reads a commit's epoch with it;
/// the simulation's model server reads it as the real server does (server/src/mls.rs).
pub fn header(message: &[u8]) -> Result<(Vec<u8>, u64, bool), E2eeError> {
    let message = MlsMessageIn::tls_deserialize_exact(message)
        .map_err(|_| E2eeError::Malformed("an MLS message"))?
        .try_into_protocol_message()
        .map_err(|_| E2eeError::Malformed("not a group message"))?;
    let commit = message.content_type() == ContentType::Commit;
    Ok((message.group_id().as_slice().to_vec(), message.epoch().as_u64(), commit))
}

/// A GroupInfo's group and epoch (for the simulation's model server).
#[cfg(test)]
pub(crate) fn group_info_header(group_info: &[u8]) -> Result<(Vec<u8>, u64), E2eeError> {
    let message = MlsMessageIn::tls_deserialize_exact(group_info)
        .map_err(|_| E2eeError::Malformed("a group info"))?;
    let MlsMessageBodyIn::GroupInfo(info) = message.extract() else {
        return Err(E2eeError::Malformed("not a group info"));
    };
    Ok((info.group_id().as_slice().to_vec(), info.epoch().as_u64()))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;
