//! Interop with an independent MLS implementation: a client built on `mls-rs` (AWS's RFC 9420
//! implementation, RustCrypto provider, in-memory storage) takes part in a Tidings room through
//! the real server on a loopback port, next to real Tidings client engines
//! (`tidings_core::Client`, openmls underneath) that sync and encrypt on their own.
//!
//! What it proves: the wire contract of docs/protocol.md ("End-to-end encryption") is MLS as
//! RFC 9420 has it, not openmls' dialect of it, and a leaf certified the Tidings way by code
//! that shares nothing with core (the certificate computed here with ed25519-dalek, and checked
//! here for every leaf mls-rs meets) is one the engine takes in. In both directions:
//!
//! - mls-rs KeyPackages (one-time and last-resort) pass the server's directory check and core's
//!   `check_key_package`, and the engine's group setup puts the mls-rs device in its Welcome;
//! - mls-rs joins from openmls' Welcome (ratchet tree inside), opens the engine's padded
//!   `PrivateMessage`, and the engine opens mls-rs' replies;
//! - an mls-rs commit (a `PublicMessage` with its GroupInfo) is ordered by the server and merged
//!   by the engine, which then joins a second device by external commit from mls-rs'
//!   GroupInfo, which mls-rs processes;
//! - an openmls commit adding an invited user's device is processed by mls-rs, and an mls-rs
//!   commit adding an invited user's device (an openmls KeyPackage claimed from the server)
//!   brings that user's engine in by mls-rs' Welcome;
//! - every member ends on the same epoch authenticator, and every text reads as written.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use mls_rs::client_builder::MlsConfig;
use mls_rs::error::IntoAnyError;
use mls_rs::extension::recommended::LastResortKeyPackageExt;
use mls_rs::extension::ExtensionType;
use mls_rs::group::{CommitOutput, ReceivedMessage};
use mls_rs::identity::basic::BasicCredential;
use mls_rs::identity::{CredentialType, SigningIdentity};
use mls_rs::mls_rs_codec::MlsEncode as _;
use mls_rs::mls_rules::{CommitOptions, DefaultMlsRules};
use mls_rs::time::MlsTime;
use mls_rs::{
    CipherSuite, CipherSuiteProvider as _, CryptoProvider as _, ExtensionList, IdentityProvider,
    MlsMessage, WireFormat,
};
use mls_rs_core::identity::MemberValidationContext;
use mls_rs_crypto_rustcrypto::RustCryptoProvider;
use tidings_core::apply::MessageBody;
use tidings_proto::{
    bounded::{Blob, List},
    EventContent, Reply, Request, RoomId, RoomKind, UserId,
};
use tidings_testkit::{request_id, TestServer};

/// `MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`, the one suite Tidings groups use.
const SUITE: CipherSuite = CipherSuite::CURVE25519_AES128;

/// What the identity key signs: docs/protocol.md "End-to-end encryption", "Leaves".
const CERTIFICATE_CONTEXT: &[u8] = b"tidings device certificate v1";

/// A leaf as Tidings names it: (user id, device id) on the server.
type Leaf = (i64, i64);

/// A Tidings leaf credential's identity for `leaf` with signature key `signature_key`,
/// certified by `identity`: user (8, BE) ‖ device (8, BE) ‖ identity public key (32) ‖
/// Ed25519 signature over context ‖ user ‖ device ‖ signature key (64).
fn certify(identity: &SigningKey, leaf: Leaf, signature_key: &[u8]) -> Vec<u8> {
    let ids = [leaf.0.to_be_bytes(), leaf.1.to_be_bytes()].concat();
    let signed = [CERTIFICATE_CONTEXT, &ids, signature_key].concat();
    let certificate = identity.sign(&signed);
    [&ids[..], identity.verifying_key().as_bytes(), &certificate.to_bytes()].concat()
}

/// mls-rs' identity provider for Tidings leaves: a member is valid when its basic credential
/// carries a device certificate that verifies for its signature key; a member's identity is
/// its (user, device). Counts the certificates it checked.
#[derive(Clone, Debug, Default)]
struct TidingsIdentity {
    checked: Arc<AtomicUsize>,
}

/// A leaf that is not a certified Tidings leaf: why.
#[derive(Debug)]
struct Uncertified(&'static str);

impl std::fmt::Display for Uncertified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for Uncertified {}

impl IntoAnyError for Uncertified {
    fn into_dyn_error(self) -> Result<Box<dyn std::error::Error + Send + Sync>, Self> {
        Ok(self.into())
    }
}

/// The 112 credential bytes of a Tidings leaf.
fn credential(identity: &SigningIdentity) -> Result<&[u8], Uncertified> {
    let basic = identity.credential.as_basic().ok_or(Uncertified("not a basic credential"))?;
    match basic.identifier.len() {
        112 => Ok(&basic.identifier),
        _ => Err(Uncertified("a credential of the wrong length")),
    }
}

/// The leaf a Tidings credential names.
fn leaf_of(identity: &SigningIdentity) -> Leaf {
    let bytes = credential(identity).unwrap();
    let word = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
    (word(0), word(8))
}

impl IdentityProvider for TidingsIdentity {
    type Error = Uncertified;

    fn validate_member(
        &self,
        signing_identity: &SigningIdentity,
        _timestamp: Option<MlsTime>,
        _context: MemberValidationContext<'_>,
    ) -> Result<(), Self::Error> {
        let bytes = credential(signing_identity)?;
        let key = VerifyingKey::from_bytes(bytes[16..48].try_into().unwrap())
            .map_err(|_| Uncertified("an identity key that is not a curve point"))?;
        let signature = Signature::from_bytes(bytes[48..].try_into().unwrap());
        let signed =
            [CERTIFICATE_CONTEXT, &bytes[..16], signing_identity.signature_key.as_bytes()].concat();
        key.verify_strict(&signed, &signature)
            .map_err(|_| Uncertified("a device certificate that does not verify"))?;
        self.checked.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn validate_external_sender(
        &self,
        _signing_identity: &SigningIdentity,
        _timestamp: Option<MlsTime>,
        _extensions: Option<&ExtensionList>,
    ) -> Result<(), Self::Error> {
        Err(Uncertified("Tidings groups have no external senders"))
    }

    fn identity(
        &self,
        signing_identity: &SigningIdentity,
        _extensions: &ExtensionList,
    ) -> Result<Vec<u8>, Self::Error> {
        Ok(credential(signing_identity)?[..16].to_vec())
    }

    fn valid_successor(
        &self,
        predecessor: &SigningIdentity,
        successor: &SigningIdentity,
        _extensions: &ExtensionList,
    ) -> Result<bool, Self::Error> {
        Ok(credential(predecessor)?[..16] == credential(successor)?[..16])
    }

    fn supported_types(&self) -> Vec<CredentialType> {
        vec![CredentialType::BASIC]
    }
}

/// An mls-rs client for the Tidings device `leaf`: a new signature key, certified by
/// `identity`; commits carry the ratchet tree in their Welcome and a GroupInfo that allows
/// external commits (what a member's new device joins from); handshakes go out as
/// `PublicMessage` (mls-rs' default); leaves advertise last-resort KeyPackages, made to live
/// `lifetime` (mls-rs' default is 365 days; `check_key_package` takes at most 12 weeks and
/// an hour, openmls' bound).
fn mls_client(
    leaf: Leaf,
    identity: &SigningKey,
    checked: Arc<AtomicUsize>,
    lifetime: std::time::Duration,
) -> mls_rs::Client<impl MlsConfig> {
    let crypto = RustCryptoProvider::default();
    let (secret, public) =
        crypto.cipher_suite_provider(SUITE).unwrap().signature_key_generate().unwrap();
    let credential = BasicCredential::new(certify(identity, leaf, public.as_bytes()));
    let rules = DefaultMlsRules::new().with_commit_options(
        CommitOptions::new().with_ratchet_tree_extension(true).with_allow_external_commit(true),
    );
    mls_rs::Client::builder()
        .crypto_provider(crypto)
        .identity_provider(TidingsIdentity { checked })
        .mls_rules(rules)
        .extension_type(ExtensionType::LAST_RESORT_KEY_PACKAGE)
        .key_package_lifetime(lifetime)
        .signing_identity(SigningIdentity::new(credential.into_credential(), public), secret, SUITE)
        .build()
}

/// What the mls-rs device met in the room's log.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// It joined from a Welcome, at this epoch.
    Joined { epoch: u64 },
    /// Someone's commit, merged: the group is at `epoch`.
    Commit { by: Leaf, external: bool, epoch: u64 },
    /// A text message (MLS sender checked against the device the log names).
    Text { from: Leaf, text: String },
}

/// The mls-rs device: a raw protocol connection and its MLS client and group.
struct MlsRsDevice<C: MlsConfig> {
    conn: tidings_testkit::Client,
    mls: mls_rs::Client<C>,
    group: Option<mls_rs::Group<C>>,
    /// The last seq of the room's log it read.
    read: u64,
}

impl<C: MlsConfig> MlsRsDevice<C> {
    fn leaf(&self) -> Leaf {
        let me = self.conn.me();
        (me.user.id.0, me.device.0)
    }

    fn group(&mut self) -> &mut mls_rs::Group<C> {
        self.group.as_mut().expect("in the room's group")
    }

    /// An encoded KeyPackage (the bare `KeyPackage`, as the directory stores them).
    fn key_package(&self, last_resort: bool) -> Vec<u8> {
        let mut extensions = ExtensionList::new();
        if last_resort {
            extensions.set_from(LastResortKeyPackageExt).unwrap();
        }
        let message =
            self.mls.generate_key_package_message(extensions, ExtensionList::new(), None).unwrap();
        message.into_key_package().unwrap().mls_encode_to_vec().unwrap()
    }

    /// Publishes `count` one-time KeyPackages and a last-resort one, each one first checked
    /// as the engine checks a claimed KeyPackage (a failing one would be left out silently).
    async fn publish(&mut self, count: usize) -> u32 {
        let package = |last_resort: bool| {
            let package = self.key_package(last_resort);
            tidings_core::e2ee::check_key_package(&package).unwrap();
            Blob::new(package).unwrap()
        };
        let one_time = (0..count).map(|_| package(false)).collect();
        let request = Request::PublishKeyPackages {
            packages: List::new(one_time).unwrap(),
            last_resort: Some(package(true)),
        };
        match self.conn.request(request).await.unwrap().unwrap() {
            Reply::KeyPackageCount { count } => count,
            other => panic!("{other:?}"),
        }
    }

    /// Reads the room's log past what it read: joins from a Welcome, merges others' commits,
    /// opens messages. Its own events were applied when the server logged them.
    async fn read(&mut self, room: RoomId) -> Vec<Seen> {
        let log = self.conn.room_log(room).await.unwrap();
        let mut seen = Vec::new();
        let after = self.read;
        for event in log.into_iter().filter(|e| e.seq > after) {
            self.read = event.seq;
            let from = (event.sender.0, event.device.0);
            if from == self.leaf() {
                continue;
            }
            match event.content {
                EventContent::Mls { welcome: Some(welcome), .. } if self.group.is_none() => {
                    let welcome = MlsMessage::from_bytes(welcome.as_bytes()).unwrap();
                    let (group, _) = self.mls.join_group(None, &welcome, None).unwrap();
                    seen.push(Seen::Joined { epoch: group.current_epoch() });
                    self.group = Some(group);
                }
                EventContent::Mls { commit: Some(commit), .. } if self.group.is_some() => {
                    let commit = MlsMessage::from_bytes(commit.as_bytes()).unwrap();
                    assert_eq!(commit.wire_format(), WireFormat::PublicMessage);
                    let group = self.group();
                    match group.process_incoming_message(commit).unwrap() {
                        ReceivedMessage::Commit(commit) => {
                            let by = group.member_at_index(commit.committer).unwrap();
                            let by = leaf_of(&by.signing_identity);
                            assert_eq!(by, from, "the commit's MLS sender is the logged device");
                            let epoch = group.current_epoch();
                            seen.push(Seen::Commit { by, external: commit.is_external, epoch });
                        }
                        other => panic!("not a commit: {other:?}"),
                    }
                }
                EventContent::Message { body, .. } if self.group.is_some() => {
                    let message = MlsMessage::from_bytes(body.as_bytes()).unwrap();
                    assert_eq!(message.wire_format(), WireFormat::PrivateMessage);
                    let group = self.group();
                    match group.process_incoming_message(message).unwrap() {
                        ReceivedMessage::ApplicationMessage(message) => {
                            let sender = group.member_at_index(message.sender_index).unwrap();
                            let sender = leaf_of(&sender.signing_identity);
                            assert_eq!(sender, from, "the MLS sender is the logged device");
                            let body: MessageBody =
                                tidings_proto::codec::decode(message.data()).unwrap();
                            seen.push(Seen::Text { from, text: body.text });
                        }
                        other => panic!("not an application message: {other:?}"),
                    }
                }
                _ => {}
            }
        }
        seen
    }

    /// Sends `text` as the Tidings client writes it, sealed at the group's current epoch.
    async fn say(&mut self, room: RoomId, text: &str) -> u64 {
        let body = tidings_proto::codec::encode(&MessageBody::text(text)).unwrap();
        let sealed = self.group().encrypt_application_message(&body, Vec::new()).unwrap();
        assert_eq!(sealed.wire_format(), WireFormat::PrivateMessage);
        let send = Request::Send {
            request: request_id(),
            room,
            body: Blob::new(sealed.to_bytes().unwrap()).unwrap(),
            attachments: List::empty(),
            redacts: None,
        };
        self.logged(send).await
    }

    /// Sends a commit this device built (with its Welcome and GroupInfo) and merges it once
    /// the server logged it.
    async fn commit(&mut self, room: RoomId, output: CommitOutput) -> u64 {
        assert_eq!(output.commit_message.wire_format(), WireFormat::PublicMessage);
        let blob = |m: &MlsMessage| Blob::new(m.to_bytes().unwrap()).unwrap();
        let group_info = output.external_commit_group_info.as_ref().expect("a GroupInfo");
        assert!(output.welcome_messages.len() <= 1, "one Welcome for every new device");
        let request = Request::Mls {
            request: request_id(),
            room,
            commit: Some(blob(&output.commit_message)),
            welcome: output.welcome_messages.first().map(blob),
            group_info: blob(group_info),
        };
        let seq = self.logged(request).await;
        self.group().apply_pending_commit().unwrap();
        seq
    }

    async fn logged(&mut self, request: Request) -> u64 {
        match self.conn.request(request).await.unwrap() {
            Ok(Reply::Logged { seq, .. }) => seq,
            other => panic!("{other:?}"),
        }
    }

    /// The leaves of its group, in leaf order.
    fn leaves(&mut self) -> Vec<Leaf> {
        self.group().roster().members().iter().map(|m| leaf_of(&m.signing_identity)).collect()
    }
}

/// A Tidings client engine signed up as `name` and synced once (its KeyPackages are on the
/// server).
async fn app_user(server: &TestServer, name: &str) -> (tidings_core::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let app = tidings_core::Client::open(dir.path()).unwrap();
    let endpoint = tidings_core::endpoint::Endpoint::parse(&server.http_url()).unwrap();
    app.sessions().sign_up(&endpoint, name, "correct horse battery").await.unwrap();
    sync(&app).await;
    (app, dir)
}

async fn sync(app: &tidings_core::Client) {
    tidings_core::sync::sync_until_idle(app).await.unwrap();
}

async fn leaf_of_app(app: &tidings_core::Client) -> Leaf {
    let account = app.account().await.unwrap().unwrap();
    (account.user_id, account.device_id)
}

/// The chat of a room on `app` (the room found by its server id): (sender, text) of each
/// message, oldest first, handshakes left out.
async fn chat(app: &tidings_core::Client, room: RoomId) -> Vec<(String, String)> {
    let rooms = app.rooms().list().await.unwrap();
    let summary = rooms.iter().find(|r| r.server_id == Some(room.0)).expect("the room");
    let page = app.room(summary.room).timeline().page(None, 100).await.unwrap();
    page.into_iter()
        .rev()
        .filter(|m| m.notice.is_none() && m.text != "changed the room's encryption keys")
        .map(|m| (m.sender, m.text))
        .collect()
}

/// The room's group on the profile in `dir`: its id and epoch authenticator.
fn app_group(dir: &std::path::Path, room: RoomId) -> (Vec<u8>, Vec<u8>) {
    let db = tidings_core::store::open_profile(dir).unwrap().0;
    let group: Vec<u8> = db
        .query_row("SELECT mls_group FROM rooms WHERE server_id = ?1", [room.0], |r| r.get(0))
        .unwrap();
    let authenticator = tidings_core::e2ee::authenticator(&db, &group).unwrap();
    (group, authenticator)
}

/// How the timeline shows a message sealed before the device joined.
const BEFORE: &str = "(message this version cannot show)";

fn pair(sender: &str, text: &str) -> (String, String) {
    (sender.to_owned(), text.to_owned())
}

const DAY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

#[tokio::test]
async fn an_mls_rs_client_talks_with_the_tidings_engine_through_the_server() {
    let server = TestServer::start().await.unwrap();
    let (tess, tess_dir) = app_user(&server, "tess").await;
    let tess_leaf = leaf_of_app(&tess).await;

    // 1. The mls-rs user signs up, certifies its leaf with an identity key of its own, and
    //    publishes mls-rs KeyPackages; the server's directory checks them.
    let conn = tidings_testkit::Client::sign_up(&server.ws_url(), "rusty").await.unwrap();
    let me = conn.me();
    let rusty_leaf = (me.user.id.0, me.device.0);
    let checked = Arc::new(AtomicUsize::new(0));
    let identity = SigningKey::from_bytes(&rand::random());
    // mls-rs' default KeyPackages live a year: refused by the claimer's check (RFC 9420 §7.2
    // wants a bound). Twelve weeks, as Tidings makes them, pass.
    let year = mls_client(rusty_leaf, &identity, checked.clone(), 365 * DAY);
    let mut long = MlsRsDevice { conn, mls: year, group: None, read: 0 };
    let refused = tidings_core::e2ee::check_key_package(&long.key_package(false));
    assert!(matches!(refused, Err(tidings_core::e2ee::E2eeError::Refused(_))), "{refused:?}");
    long.mls = mls_client(rusty_leaf, &identity, checked.clone(), 84 * DAY);
    let mut rusty = long;
    assert_eq!(rusty.publish(3).await, 3);

    // 2. Tess opens a room with Rusty and writes; her engine sets the room's group up, claiming
    //    Rusty's mls-rs KeyPackage, and seals the text for it.
    let rusty_id = tess.contacts().lookup("rusty").await.unwrap();
    let local = tess.rooms().create(RoomKind::Group, None, vec![rusty_id]).await.unwrap();
    tess.room(local).send_queue().send_text("hello from openmls").await.unwrap();
    sync(&tess).await;
    let room = RoomId(tess.room(local).server_id().await.unwrap().unwrap());

    // 3. Rusty accepts, joins from the engine's Welcome and reads the text.
    let accept = Request::Accept { request: request_id(), room };
    rusty.logged(accept).await;
    assert_eq!(
        rusty.read(room).await,
        vec![
            Seen::Joined { epoch: 1 },
            Seen::Text { from: tess_leaf, text: "hello from openmls".into() }
        ]
    );
    assert_eq!(rusty.leaves(), vec![tess_leaf, rusty_leaf]);
    assert_eq!(app_group(tess_dir.path(), room).0, rusty.group().group_id());

    // 4. Rusty replies at the current epoch; the engine opens it.
    rusty.say(room, "hello from mls-rs").await;
    sync(&tess).await;
    assert_eq!(
        chat(&tess, room).await,
        vec![pair("tess", "hello from openmls"), pair("rusty", "hello from mls-rs")]
    );

    // 5a. Rusty commits (an empty commit: a fresh path) with its GroupInfo; the server orders
    //     it, the engine merges it and opens what Rusty writes at the new epoch.
    let update = rusty.group().commit(Vec::new()).unwrap();
    assert!(update.contains_update_path);
    rusty.commit(room, update).await;
    assert_eq!(rusty.group().current_epoch(), 2);
    rusty.say(room, "a new epoch, same room").await;
    sync(&tess).await;
    assert_eq!(chat(&tess, room).await.last(), Some(&pair("rusty", "a new epoch, same room")));
    let (group, authenticator) = app_group(tess_dir.path(), room);
    assert_eq!(group, rusty.group().group_id(), "the engine kept its group: no rejoin");
    assert_eq!(authenticator, rusty.group().epoch_authenticator().unwrap().as_bytes());

    // 5b. Tess signs in on a second device: it joins by itself, by external commit from the
    //     GroupInfo Rusty's commit left on the server, and Rusty merges that.
    let tess2_dir = tempfile::tempdir().unwrap();
    let tess2 = tidings_core::Client::open(tess2_dir.path()).unwrap();
    let endpoint = tidings_core::endpoint::Endpoint::parse(&server.http_url()).unwrap();
    tess2.sessions().sign_in(&endpoint, "tess", "correct horse battery").await.unwrap();
    let tess2_leaf = leaf_of_app(&tess2).await;
    sync(&tess2).await;
    let local2 = tess2.rooms().list().await.unwrap();
    let local2 = local2.iter().find(|r| r.server_id == Some(room.0)).unwrap().room;
    tess2.room(local2).send_queue().send_text("tess on her phone").await.unwrap();
    sync(&tess2).await;
    assert_eq!(
        rusty.read(room).await,
        vec![
            Seen::Commit { by: tess2_leaf, external: true, epoch: 3 },
            Seen::Text { from: tess2_leaf, text: "tess on her phone".into() }
        ]
    );
    assert_eq!(rusty.leaves(), vec![tess_leaf, rusty_leaf, tess2_leaf]);

    // 5c. Tess invites Carol; her engine's next message first commits adding Carol's device
    //     (openmls' commit and Welcome), which Rusty processes before opening the message.
    let (carol, carol_dir) = app_user(&server, "carol").await;
    let carol_leaf = leaf_of_app(&carol).await;
    let carol_id = tess.contacts().lookup("carol").await.unwrap();
    tess.room(local).invite(carol_id).await.unwrap();
    sync(&tess).await;
    tess.room(local).send_queue().send_text("carol is in").await.unwrap();
    sync(&tess).await;
    assert_eq!(
        rusty.read(room).await,
        vec![
            Seen::Commit { by: tess_leaf, external: false, epoch: 4 },
            Seen::Text { from: tess_leaf, text: "carol is in".into() }
        ]
    );
    assert_eq!(rusty.leaves(), vec![tess_leaf, rusty_leaf, tess2_leaf, carol_leaf]);
    rusty.say(room, "hi carol, from mls-rs").await;
    sync(&carol).await;
    // What was sealed before Carol's device was in the group stays closed to it.
    assert_eq!(
        chat(&carol, room).await,
        vec![
            pair("tess", BEFORE),
            pair("rusty", BEFORE),
            pair("rusty", BEFORE),
            pair("tess", BEFORE),
            pair("tess", "carol is in"),
            pair("rusty", "hi carol, from mls-rs")
        ]
    );

    // 5d. Rusty invites Dave and adds his device itself: an openmls KeyPackage claimed from
    //     the directory, an mls-rs commit and Welcome. Dave's engine joins from that Welcome.
    let (dave, dave_dir) = app_user(&server, "dave").await;
    let dave_leaf = leaf_of_app(&dave).await;
    let invite = Request::Invite { request: request_id(), room, user: UserId(dave_leaf.0) };
    rusty.logged(invite).await;
    let claim = Request::ClaimKeyPackages { user: UserId(dave_leaf.0) };
    let packages = match rusty.conn.request(claim).await.unwrap().unwrap() {
        Reply::KeyPackages { packages } => packages.into_vec(),
        other => panic!("{other:?}"),
    };
    assert_eq!(packages.len(), 1, "one KeyPackage per device");
    let mut add = rusty.group().commit_builder();
    for package in packages {
        // The directory holds bare KeyPackages; mls-rs takes them as an MLSMessage
        // (version mls10 = 1, wire format mls_key_package = 5).
        let message = [&[0, 1, 0, 5][..], package.package.as_bytes()].concat();
        add = add.add_member(MlsMessage::from_bytes(&message).unwrap()).unwrap();
    }
    let add = add.build().unwrap();
    assert_eq!(add.welcome_messages.len(), 1);
    rusty.commit(room, add).await;
    rusty.say(room, "welcome dave, from mls-rs").await;
    sync(&dave).await;
    let mut dave_sees = vec![
        pair("tess", BEFORE),
        pair("rusty", BEFORE),
        pair("rusty", BEFORE),
        pair("tess", BEFORE),
        pair("tess", BEFORE),
        pair("rusty", BEFORE),
        pair("rusty", "welcome dave, from mls-rs"),
    ];
    assert_eq!(chat(&dave, room).await, dave_sees);

    // 6. Messages still flow both ways, and everyone is on the same epoch.
    tess.room(local).send_queue().send_text("last word from openmls").await.unwrap();
    sync(&tess).await;
    assert_eq!(
        rusty.read(room).await,
        vec![Seen::Text { from: tess_leaf, text: "last word from openmls".into() }]
    );
    for app in [&tess, &tess2, &carol] {
        sync(app).await;
    }
    sync(&dave).await;
    assert_eq!(
        chat(&tess, room).await,
        vec![
            pair("tess", "hello from openmls"),
            pair("rusty", "hello from mls-rs"),
            pair("rusty", "a new epoch, same room"),
            pair("tess", "tess on her phone"),
            pair("tess", "carol is in"),
            pair("rusty", "hi carol, from mls-rs"),
            pair("rusty", "welcome dave, from mls-rs"),
            pair("tess", "last word from openmls"),
        ]
    );
    dave_sees.push(pair("tess", "last word from openmls"));
    assert_eq!(chat(&dave, room).await, dave_sees);
    assert_eq!(rusty.group().current_epoch(), 5);
    let authenticator = rusty.group().epoch_authenticator().unwrap().as_bytes().to_vec();
    for dir in [&tess_dir, &tess2_dir, &carol_dir, &dave_dir] {
        assert_eq!(
            app_group(dir.path(), room),
            (rusty.group().group_id().to_vec(), authenticator.clone())
        );
    }
    // mls-rs checked the Tidings certificate of every leaf it met (its own too).
    assert!(checked.load(Ordering::Relaxed) >= 5, "{checked:?}");
}
