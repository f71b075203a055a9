//! End-to-end encryption through the real server on a loopback port: core's MLS module
//! (`tidings_core::e2ee`, state in real SQLite profiles) on one side, the server's ordering
//! and KeyPackage directory (server/src/mls.rs) on the other.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use tidings_core::e2ee::{self, Device, LeafId, Processed};
use tidings_proto::{
    bounded::{Blob, List},
    ErrorCode, EventContent, Reply, Request, RequestId, RoomId, RoomKind,
};
use tidings_testkit::{request_id, Client, TestServer};

/// A signed-in device: its connection and its profile's MLS state.
struct Member {
    client: Client,
    dir: tempfile::TempDir,
}

impl Member {
    async fn sign_up(server: &TestServer, name: &str) -> Self {
        Self::with(Client::sign_up(&server.ws_url(), name).await.unwrap())
    }

    fn with(client: Client) -> Self {
        let member = Self { client, dir: tempfile::tempdir().unwrap() };
        let me = member.client.me();
        Device::for_session(&member.db(), LeafId { user: me.user.id.0, device: me.device.0 })
            .unwrap();
        member
    }

    fn db(&self) -> rusqlite::Connection {
        tidings_core::store::open(&self.dir.path().join("profile.sqlite"), None).unwrap()
    }

    fn with_db<T>(&self, f: impl FnOnce(&rusqlite::Connection) -> T) -> T {
        f(&self.db())
    }

    fn mls<T>(&self, f: impl FnOnce(&Device, &rusqlite::Connection) -> T) -> T {
        let db = self.db();
        let device = Device::load(&db).unwrap().unwrap();
        f(&device, &db)
    }

    async fn publish(&mut self, count: usize) -> u32 {
        let packages = self.mls(|d, db| d.key_packages(db, count, true).unwrap());
        let (last, one_time) = packages.split_last().unwrap();
        let request = Request::PublishKeyPackages {
            packages: List::new(one_time.iter().map(|p| Blob::new(p.clone()).unwrap()).collect())
                .unwrap(),
            last_resort: Some(Blob::new(last.clone()).unwrap()),
        };
        match self.client.request(request).await.unwrap().unwrap() {
            Reply::KeyPackageCount { count } => count,
            other => panic!("{other:?}"),
        }
    }

    async fn claim(&mut self, user: i64) -> Vec<Vec<u8>> {
        let request = Request::ClaimKeyPackages { user: tidings_proto::UserId(user) };
        match self.client.request(request).await.unwrap().unwrap() {
            Reply::KeyPackages { packages } => {
                packages.into_vec().into_iter().map(|p| p.package.into_vec()).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    /// Sends a handshake; the reply's seq, or the error code.
    async fn handshake(
        &mut self,
        request: RequestId,
        room: RoomId,
        commit: &e2ee::Commit,
    ) -> Result<u64, ErrorCode> {
        let blob = |b: &Vec<u8>| Blob::new(b.clone()).unwrap();
        let mls = Request::Mls {
            request,
            room,
            commit: (!commit.commit.is_empty()).then(|| blob(&commit.commit)),
            welcome: commit.welcome.as_ref().map(blob),
            group_info: blob(&commit.group_info),
        };
        match self.client.request(mls).await.unwrap() {
            Ok(Reply::Logged { seq, .. }) => Ok(seq),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.code),
        }
    }

    async fn send(
        &mut self,
        request: RequestId,
        room: RoomId,
        body: Vec<u8>,
    ) -> Result<u64, ErrorCode> {
        let send = Request::Send {
            request,
            room,
            body: Blob::new(body).unwrap(),
            attachments: List::empty(),
            redacts: None,
        };
        match self.client.request(send).await.unwrap() {
            Ok(Reply::Logged { seq, .. }) => Ok(seq),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e.code),
        }
    }

    async fn lookup(&mut self, username: &str) -> tidings_proto::UserRef {
        let lookup = Request::LookupUser { username: tidings_testkit::text(username) };
        match self.client.request(lookup).await.unwrap().unwrap() {
            Reply::User { user } => user,
            other => panic!("{other:?}"),
        }
    }

    /// A text message as the Tidings client writes it, sealed for [`GROUP`].
    fn seal_text(&self, text: &str) -> Vec<u8> {
        let body = tidings_core::apply::MessageBody::text(text);
        let plaintext = tidings_proto::codec::encode(&body).unwrap();
        self.mls(|d, db| d.encrypt(db, GROUP, &plaintext).unwrap())
    }

    /// Seals `text` with this device's place in the group — its ratchet, its leaf — but
    /// signed with a key that is not its leaf's: what someone who stole the room's keys but
    /// not the device's would send (openmls directly on the profile, as core stores it).
    fn forge_text(&self, text: &str) -> Vec<u8> {
        use openmls::prelude::{tls_codec::Serialize as _, GroupId, MlsGroup};
        use openmls_traits::OpenMlsProvider;
        struct Provider<'c> {
            crypto: openmls_rust_crypto::RustCrypto,
            storage:
                openmls_sqlite_storage::SqliteStorageProvider<e2ee::Json, &'c rusqlite::Connection>,
        }
        impl<'c> OpenMlsProvider for Provider<'c> {
            type CryptoProvider = openmls_rust_crypto::RustCrypto;
            type RandProvider = openmls_rust_crypto::RustCrypto;
            type StorageProvider =
                openmls_sqlite_storage::SqliteStorageProvider<e2ee::Json, &'c rusqlite::Connection>;
            fn storage(&self) -> &Self::StorageProvider {
                &self.storage
            }
            fn crypto(&self) -> &Self::CryptoProvider {
                &self.crypto
            }
            fn rand(&self) -> &Self::RandProvider {
                &self.crypto
            }
        }
        let body = tidings_core::apply::MessageBody::text(text);
        let plaintext = tidings_proto::codec::encode(&body).unwrap();
        let db = self.db();
        let provider = Provider {
            crypto: Default::default(),
            storage: openmls_sqlite_storage::SqliteStorageProvider::new(&db),
        };
        let mut group =
            MlsGroup::load(provider.storage(), &GroupId::from_slice(GROUP)).unwrap().unwrap();
        let stranger = openmls_basic_credential::SignatureKeyPair::new(
            e2ee::CIPHERSUITE.signature_algorithm(),
        )
        .unwrap();
        assert_eq!(stranger.signature_scheme(), e2ee::CIPHERSUITE.signature_algorithm());
        group
            .create_message(&provider, &stranger, &plaintext)
            .unwrap()
            .tls_serialize_detached()
            .unwrap()
    }

    /// Applies the room's log after `after` to this device's group, as a client's sync would;
    /// returns the plaintexts read.
    async fn read_log(&mut self, room: RoomId, group: &[u8], after: u64) -> Vec<Vec<u8>> {
        let log = self.client.room_log(room).await.unwrap();
        let mut read = Vec::new();
        for event in log.into_iter().filter(|e| e.seq > after) {
            let in_group = e2ee::epoch(&self.db(), group).unwrap().is_some();
            match event.content {
                EventContent::Mls { welcome: Some(welcome), .. } if !in_group => {
                    // A Welcome that has no secrets for this device is someone else's.
                    self.with_db(|db| e2ee::join(db, welcome.as_bytes(), &anyone())).ok();
                }
                EventContent::Mls { commit: Some(commit), .. } if in_group => {
                    self.with_db(|db| {
                        e2ee::process(db, group, commit.as_bytes(), &anyone()).unwrap()
                    });
                }
                EventContent::Message { body, .. } if in_group => {
                    if let Processed::Application { sender, plaintext } = self
                        .with_db(|db| e2ee::process(db, group, body.as_bytes(), &anyone()).unwrap())
                    {
                        assert_eq!((sender.user, sender.device), (event.sender.0, event.device.0));
                        read.push(plaintext);
                    }
                }
                _ => {}
            }
        }
        read
    }
}

const GROUP: &[u8; 16] = b"0123456789abcdef";

/// A roster admitting every user these tests' servers make (the raw devices here check only
/// what MLS and the certificates do; the engines check the log's membership).
fn anyone() -> e2ee::Roster {
    let users: std::collections::BTreeSet<i64> = (1..=1000).collect();
    e2ee::Roster { now: users.clone(), ever: users }
}

/// A Tidings client engine signed up as `name` and synced once (so its KeyPackages are on
/// the server).
async fn app_user(server: &TestServer, name: &str) -> (tidings_core::Client, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let app = tidings_core::Client::open(dir.path()).unwrap();
    let endpoint = tidings_core::endpoint::Endpoint::parse(&server.http_url()).unwrap();
    app.sessions().sign_up(&endpoint, name, "correct horse battery").await.unwrap();
    tidings_core::sync::sync_until_idle(&app).await.unwrap();
    (app, dir)
}

async fn group_room(from: &mut Member, to: &Member) -> RoomId {
    let create = Request::CreateRoom {
        request: request_id(),
        kind: RoomKind::Group,
        name: None,
        members: List::new(vec![to.client.me().user.id]).unwrap(),
    };
    match from.client.request(create).await.unwrap().unwrap() {
        Reply::Logged { room, .. } => room,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn key_packages_are_checked_claimed_once_and_fall_back_to_the_last_resort() {
    let server = TestServer::start().await.unwrap();
    let mut alice = Member::sign_up(&server, "alice").await;
    let mut bob = Member::sign_up(&server, "bob").await;
    assert_eq!(bob.publish(2).await, 2);

    // Nobody publishes in another device's name, and garbage is refused.
    let bobs = bob.mls(|d, db| d.key_packages(db, 1, false).unwrap());
    let as_alice = Request::PublishKeyPackages {
        packages: List::new(vec![Blob::new(bobs[0].clone()).unwrap()]).unwrap(),
        last_resort: None,
    };
    assert_eq!(
        alice.client.request(as_alice).await.unwrap().unwrap_err().code,
        ErrorCode::Forbidden
    );
    let junk = Request::PublishKeyPackages {
        packages: List::new(vec![Blob::new(vec![0; 300]).unwrap()]).unwrap(),
        last_resort: None,
    };
    assert_eq!(
        alice.client.request(junk).await.unwrap().unwrap_err().code,
        ErrorCode::InvalidInput
    );

    let bob_user = bob.client.me().user.id.0;
    let first = alice.claim(bob_user).await;
    let second = alice.claim(bob_user).await;
    let third = alice.claim(bob_user).await;
    let fourth = alice.claim(bob_user).await;
    assert_eq!((first.len(), second.len(), third.len()), (1, 1, 1));
    assert_ne!(first, second, "one-time key packages are handed out once");
    assert_eq!(third, fourth, "then the last-resort one, again and again");
    // A user whose devices published nothing has nothing to claim.
    assert!(bob.claim(alice.client.me().user.id.0).await.is_empty());
}

#[tokio::test]
async fn the_server_orders_one_commit_per_epoch_and_stores_only_ciphertext() {
    let server = TestServer::start().await.unwrap();
    let mut alice = Member::sign_up(&server, "alice").await;
    let mut bob = Member::sign_up(&server, "bob").await;
    let mut carol = Member::sign_up(&server, "carol").await;
    bob.publish(3).await;
    carol.publish(3).await;
    let room = group_room(&mut alice, &bob).await;
    let accept = Request::Accept { request: request_id(), room };
    bob.client.request(accept).await.unwrap().unwrap();

    // Alice sets the group up with Bob's device in it.
    let kp = alice.claim(bob.client.me().user.id.0).await;
    let setup = alice.mls(|d, db| d.create_group(db, GROUP, &kp).unwrap());
    let setup_id = request_id();
    let setup_seq = alice.handshake(setup_id, room, &setup).await.unwrap();
    alice.mls(|d, db| d.confirm(db, GROUP).unwrap());
    // A second setup loses: the room has its group.
    let other = bob.mls(|d, db| d.create_group(db, b"fedcba9876543210", &[]).unwrap());
    assert_eq!(bob.handshake(request_id(), room, &other).await, Err(ErrorCode::StaleEpoch));
    e2ee::forget(&bob.db(), b"fedcba9876543210").unwrap();
    bob.read_log(room, GROUP, 0).await;
    assert_eq!(e2ee::epoch(&bob.db(), GROUP).unwrap(), Some(1));

    // Now the room takes only its group's messages, at its epoch.
    assert_eq!(
        bob.send(request_id(), room, b"plain text".to_vec()).await,
        Err(ErrorCode::InvalidInput)
    );
    let secret = b"the eagle lands at midnight".to_vec();
    let sealed = bob.mls(|d, db| d.encrypt(db, GROUP, &secret).unwrap());
    let sent = bob.send(request_id(), room, sealed).await.unwrap();
    assert_eq!(alice.read_log(room, GROUP, setup_seq).await, vec![secret.clone()]);

    // Alice and Bob both commit on epoch 1: Alice adds Carol, Bob removes nobody but
    // updates (an add of Carol too). The server logs the first and refuses the second.
    let carol_kp = alice.claim(carol.client.me().user.id.0).await;
    let carol_kp2 = bob.claim(carol.client.me().user.id.0).await;
    let invite = alice.client.request(Request::Invite {
        request: request_id(),
        room,
        user: carol.client.me().user.id,
    });
    invite.await.unwrap().unwrap();
    let alices = alice.mls(|d, db| d.add(db, GROUP, &carol_kp).unwrap());
    let bobs = bob.mls(|d, db| d.add(db, GROUP, &carol_kp2).unwrap());
    let alice_id = request_id();
    alice.handshake(alice_id, room, &alices).await.unwrap();
    alice.mls(|d, db| d.confirm(db, GROUP).unwrap());
    let bob_id = request_id();
    assert_eq!(bob.handshake(bob_id, room, &bobs).await, Err(ErrorCode::StaleEpoch));
    // Bob's message written meanwhile, on the old epoch, is refused the same way …
    let late = b"written before I saw the commit".to_vec();
    let stale = bob.mls(|d, db| d.encrypt(db, GROUP, &late).unwrap());
    let late_id = request_id();
    assert_eq!(bob.send(late_id, room, stale).await, Err(ErrorCode::StaleEpoch));
    // … so he drops his commit, catches up, and sends it again under the same request id.
    bob.mls(|d, db| d.discard(db, GROUP).unwrap());
    bob.read_log(room, GROUP, sent).await;
    assert_eq!(e2ee::epoch(&bob.db(), GROUP).unwrap(), Some(2));
    let resealed = bob.mls(|d, db| d.encrypt(db, GROUP, &late).unwrap());
    let late_seq = bob.send(late_id, room, resealed.clone()).await.unwrap();
    // A resend of what was logged is answered as before, even though the epoch moved on.
    assert_eq!(alice.handshake(alice_id, room, &alices).await, Ok(late_seq - 1));
    assert_eq!(bob.send(late_id, room, resealed).await, Ok(late_seq));

    // Carol joins from the Welcome and reads what follows, not what came before.
    assert_eq!(carol.read_log(room, GROUP, 0).await, vec![late.clone()]);
    let auth = e2ee::authenticator(&alice.db(), GROUP).unwrap();
    assert_eq!(e2ee::authenticator(&bob.db(), GROUP).unwrap(), auth);
    assert_eq!(e2ee::authenticator(&carol.db(), GROUP).unwrap(), auth);

    // The GroupInfo is there for members' new devices, and only for members.
    let info = alice.client.request(Request::GroupInfo { room }).await.unwrap().unwrap();
    assert!(matches!(info, Reply::GroupInfo { group_info: Some(_) }));
    let mut eve = Member::sign_up(&server, "eve").await;
    let refused = eve.client.request(Request::GroupInfo { room }).await.unwrap().unwrap_err();
    assert_eq!(refused.code, ErrorCode::Forbidden);

    // Nothing of what was said is in the server's files.
    let mut server = server;
    server.stop().await.unwrap();
    for entry in walk(server.data_dir()) {
        let bytes = std::fs::read(&entry).unwrap();
        for needle in [&secret[..], &late[..], b"eagle"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{entry:?} holds a plaintext"
            );
        }
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn a_device_keeps_its_key_packages_stocked_on_the_server() {
    let server = TestServer::start().await.unwrap();
    let (app, _profile) = app_user(&server, "dora").await;

    // Another user claims them: one per device, signed by dora's device (the server checked).
    let mut bob = Member::sign_up(&server, "bob").await;
    let user = bob.lookup("dora").await;
    let claimed = bob.claim(user.id.0).await;
    assert_eq!(claimed.len(), 1);
    // They are usable: Bob sets up a group with dora's device in it.
    bob.mls(|d, db| d.create_group(db, GROUP, &claimed).unwrap());

    // Claims drain the stock; the next sync tops it up to 20 again.
    for _ in 0..e2ee::KEY_PACKAGE_STOCK - 1 {
        bob.claim(user.id.0).await;
    }
    tidings_core::sync::sync_until_idle(&app).await.unwrap();
    let mut fresh = Vec::new();
    for _ in 0..e2ee::KEY_PACKAGE_STOCK {
        fresh.push(bob.claim(user.id.0).await);
    }
    let distinct: std::collections::BTreeSet<_> = fresh.iter().collect();
    assert_eq!(distinct.len(), e2ee::KEY_PACKAGE_STOCK, "20 one-time KeyPackages again");
    assert_eq!(
        server.handled("publish_key_packages").await.unwrap(),
        4,
        "publish at sign-up, count, count, publish"
    );
}

/// The timeline's security notices: who sent what was refused, and why.
fn security_notices(page: &[tidings_core::Message]) -> Vec<(&str, tidings_core::SecurityIssue)> {
    page.iter()
        .filter_map(|m| match &m.notice {
            Some(tidings_core::Notice::Security { issue }) => Some((m.sender.as_str(), *issue)),
            _ => None,
        })
        .collect()
}

/// Bob (a device speaking MLS directly) opens a room with Olga, invites the engine user
/// dora, and sets the room's group ([`GROUP`]) up with dora's device in it.
async fn bobs_room_with_dora(server: &TestServer) -> (Member, RoomId) {
    let mut bob = Member::sign_up(server, "bob").await;
    let dora = bob.lookup("dora").await;
    let olga = Member::sign_up(server, "olga").await;
    let room = group_room(&mut bob, &olga).await;
    let invite = Request::Invite { request: request_id(), room, user: dora.id };
    bob.client.request(invite).await.unwrap().unwrap();
    let packages = bob.claim(dora.id.0).await;
    let setup = bob.mls(|d, db| d.create_group(db, GROUP, &packages).unwrap());
    bob.handshake(request_id(), room, &setup).await.unwrap();
    bob.mls(|d, db| d.confirm(db, GROUP).unwrap());
    (bob, room)
}

#[tokio::test]
async fn the_client_engine_opens_an_encrypted_room_and_shows_its_messages() {
    let server = TestServer::start().await.unwrap();
    let (app, _profile) = app_user(&server, "dora").await;

    // Bob (a device of his own, speaking MLS directly) opens a room with dora and sets its
    // group up with her device in it, then writes.
    let (mut bob, room) = bobs_room_with_dora(&server).await;
    let sealed = bob.seal_text("hello dora, only you can read this");
    bob.send(request_id(), room, sealed.clone()).await.unwrap();

    tidings_core::sync::sync_until_idle(&app).await.unwrap();
    let rooms = app.rooms().list().await.unwrap();
    let summary = rooms.iter().find(|r| r.server_id == Some(room.0)).expect("the room");
    let page = app.room(summary.room).timeline().page(None, 50).await.unwrap();
    let texts: Vec<&str> = page.iter().map(|m| m.text.as_str()).collect();
    assert!(texts.contains(&"hello dora, only you can read this"), "{texts:?}");
    assert_eq!(summary.last_message.as_deref(), Some("hello dora, only you can read this"));

    // The same ciphertext again (a replay by a malicious server would be a new event): it
    // cannot be opened twice, and the room goes on.
    bob.send(request_id(), room, sealed).await.unwrap();
    let sealed = bob.seal_text("and this one too");
    bob.send(request_id(), room, sealed).await.unwrap();
    tidings_core::sync::sync_until_idle(&app).await.unwrap();
    let page = app.room(summary.room).timeline().page(None, 50).await.unwrap();
    let texts: Vec<&str> = page.iter().map(|m| m.text.as_str()).collect();
    assert!(texts.contains(&"and this one too"), "{texts:?}");
    assert!(texts.contains(&"(message this version cannot show)"), "the replay: {texts:?}");
}

/// The texts of a room's timeline on `app`, the room found by its server id.
async fn texts(app: &tidings_core::Client, room: i64) -> Vec<String> {
    let rooms = app.rooms().list().await.unwrap();
    let summary = rooms.iter().find(|r| r.server_id == Some(room)).expect("the room");
    let page = app.room(summary.room).timeline().page(None, 100).await.unwrap();
    page.into_iter().map(|m| m.text).collect()
}

/// The local room of server room `room` on `app`.
async fn room_of(app: &tidings_core::Client, room: i64) -> tidings_core::model::RoomKey {
    let rooms = app.rooms().list().await.unwrap();
    rooms.iter().find(|r| r.server_id == Some(room)).expect("the room").room
}

/// The name `app` shows for server room `room`, if it has one.
async fn room_name(app: &tidings_core::Client, room: i64) -> Option<String> {
    let db = tidings_core::store::open_profile(app.dir()).unwrap().0;
    db.query_row("SELECT name FROM rooms WHERE server_id = ?1", [room], |r| r.get(0)).unwrap()
}

/// The user ids with a leaf in the room's group, as `app`'s profile has it.
fn leaves(profile: &std::path::Path, room: i64) -> std::collections::BTreeSet<i64> {
    leaf_ids(profile, room).into_iter().map(|l| l.user).collect()
}

/// The leaves of the room's group, as the profile in `profile` has it.
fn leaf_ids(profile: &std::path::Path, room: i64) -> Vec<LeafId> {
    let db = tidings_core::store::open_profile(profile).unwrap().0;
    let group: Vec<u8> = db
        .query_row("SELECT mls_group FROM rooms WHERE server_id = ?1", [room], |r| r.get(0))
        .unwrap();
    e2ee::members(&db, &group).unwrap()
}

#[tokio::test]
async fn people_write_in_encrypted_rooms_and_the_server_keeps_only_ciphertext() {
    let server = TestServer::start().await.unwrap();
    let (alice, alice_dir) = app_user(&server, "alice").await;
    let (bob, _bob_dir) = app_user(&server, "bob").await;
    let (carol, _carol_dir) = app_user(&server, "carol").await;
    let sync = |app: &tidings_core::Client| {
        let app = app.clone();
        async move { tidings_core::sync::sync_until_idle(&app).await.unwrap() }
    };

    // Alice makes a room with Bob and writes: saved at once, sealed when it goes out.
    let bob_id = alice.contacts().lookup("bob").await.unwrap();
    let room = alice.rooms().create(RoomKind::Group, Some("plans"), vec![bob_id]).await.unwrap();
    alice.room(room).send_queue().send_text("the eagle lands at noon").await.unwrap();
    sync(&alice).await;
    let server_room = alice.room(room).server_id().await.unwrap().unwrap();
    sync(&bob).await;
    assert!(texts(&bob, server_room).await.contains(&"the eagle lands at noon".to_owned()));

    // Bob answers; both read both, Alice's own message still as she wrote it.
    let bob_room = bob.rooms().list().await.unwrap();
    let bob_room = bob_room.iter().find(|r| r.server_id == Some(server_room)).unwrap().room;
    bob.room(bob_room).send_queue().send_text("copy that, noon").await.unwrap();
    sync(&bob).await;
    sync(&alice).await;
    let seen = texts(&alice, server_room).await;
    assert!(seen.contains(&"the eagle lands at noon".to_owned()), "{seen:?}");
    assert!(seen.contains(&"copy that, noon".to_owned()), "{seen:?}");

    // Carol is invited: Alice's next message adds her devices first, so she reads it.
    let carol_id = alice.contacts().lookup("carol").await.unwrap();
    alice.room(room).invite(carol_id).await.unwrap();
    sync(&alice).await;
    alice.room(room).send_queue().send_text("welcome aboard, carol").await.unwrap();
    sync(&alice).await;
    sync(&carol).await;
    let seen = texts(&carol, server_room).await;
    assert!(seen.contains(&"welcome aboard, carol".to_owned()), "{seen:?}");
    assert!(!seen.contains(&"the eagle lands at noon".to_owned()), "before she came: {seen:?}");
    assert_eq!(leaves(alice_dir.path(), server_room).len(), 3);

    // Bob leaves: the next message is sealed for a group without him.
    bob.room(bob_room).leave().await.unwrap();
    sync(&bob).await;
    sync(&alice).await;
    alice.room(room).send_queue().send_text("bob is gone, new plan").await.unwrap();
    sync(&alice).await;
    let members = leaves(alice_dir.path(), server_room);
    assert!(!members.contains(&bob_id), "{members:?}");
    sync(&carol).await;
    assert!(texts(&carol, server_room).await.contains(&"bob is gone, new plan".to_owned()));

    // A second device of Carol's, signed in later, joins the group by itself (external
    // commit, nobody else online, the room still a request to Carol) and reads what follows.
    let carol2_dir = tempfile::tempdir().unwrap();
    let carol2 = tidings_core::Client::open(carol2_dir.path()).unwrap();
    let endpoint = tidings_core::endpoint::Endpoint::parse(&server.http_url()).unwrap();
    carol2.sessions().sign_in(&endpoint, "carol", "correct horse battery").await.unwrap();
    sync(&carol2).await;
    sync(&alice).await;
    alice.room(room).send_queue().send_text("hello to both of carol's devices").await.unwrap();
    sync(&alice).await;
    sync(&carol2).await;
    sync(&carol).await;
    for app in [&carol, &carol2] {
        let seen = texts(app, server_room).await;
        assert!(seen.contains(&"hello to both of carol's devices".to_owned()), "{seen:?}");
    }

    // The room's name went sealed, like its messages: Bob read it from the first message,
    // Carol from Alice (the first device there before her), and Carol's second device —
    // which could not read anything from before it joined — from Alice again (Carol's first
    // holds the room as a request, from which nothing else is sent).
    sync(&carol2).await;
    for app in [&bob, &carol, &carol2] {
        assert_eq!(room_name(app, server_room).await.as_deref(), Some("plans"));
    }
    // A rename reaches everyone, and shows as one; telling a name again shows nothing.
    let carol_room = room_of(&carol, server_room).await;
    carol.room(carol_room).rename("plans, revised").await.unwrap();
    assert_eq!(room_name(&carol, server_room).await.as_deref(), Some("plans, revised"));
    sync(&carol).await;
    for app in [&alice, &carol2] {
        sync(app).await;
        assert_eq!(room_name(app, server_room).await.as_deref(), Some("plans, revised"));
        let renames = texts(app, server_room).await;
        let renames: Vec<_> = renames.iter().filter(|t| t.starts_with("renamed")).collect();
        assert_eq!(renames, ["renamed the room to plans, revised"]);
    }
    // Alice's own namings (the new group's, the one told to Carol's devices) are passed over
    // in her timeline, though she cannot open them.
    let seen = texts(&alice, server_room).await;
    assert!(!seen.iter().any(|t| t.contains("cannot show")), "{seen:?}");
    let direct = alice.rooms().create(RoomKind::Direct, None, vec![bob_id]).await.unwrap();
    assert!(matches!(
        alice.room(direct).rename("no names here").await,
        Err(tidings_core::Error::Invalid(_))
    ));

    // None of it is in the server's files.
    drop((alice, bob, carol, carol2));
    let mut server = server;
    server.stop().await.unwrap();
    for entry in walk(server.data_dir()) {
        let bytes = std::fs::read(&entry).unwrap();
        for needle in ["eagle", "copy that", "welcome aboard", "new plan", "both of carol", "plans"]
        {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{entry:?} holds {needle:?}"
            );
        }
    }
}

#[tokio::test]
async fn photos_and_files_go_up_sealed_and_open_only_for_the_room() {
    let server = TestServer::start().await.unwrap();
    let (alice, alice_dir) = app_user(&server, "alice").await;
    let (bob, bob_dir) = app_user(&server, "bob").await;
    let bob_id = alice.contacts().lookup("bob").await.unwrap();
    let room = alice.rooms().create(RoomKind::Direct, None, vec![bob_id]).await.unwrap();

    // Alice sends a photo and a file of several sealed chunks, with a name worth hiding.
    let photo = tidings_testkit::test_images().unwrap().join("canon_sx60_3mp_orient6.jpg");
    alice.room(room).send_queue().send_image(&photo, "the view").await.unwrap();
    let files = tempfile::tempdir().unwrap();
    let plan = files.path().join("merger-with-initech.txt");
    let words: Vec<u8> =
        (0..40_000).flat_map(|i| format!("clause {i} stays secret\n").into_bytes()).collect();
    std::fs::write(&plan, &words).unwrap();
    alice.room(room).send_queue().send_file(&plan).await.unwrap();
    tidings_core::sync::sync_until_idle(&alice).await.unwrap();
    let server_room = alice.room(room).server_id().await.unwrap().unwrap();

    // Bob sees both and opens them: the very bytes Alice sent.
    tidings_core::sync::sync_until_idle(&bob).await.unwrap();
    let bobs = bob.rooms().list().await.unwrap();
    let bobs = bobs.iter().find(|r| r.server_id == Some(server_room)).unwrap().room;
    let page = bob.room(bobs).timeline().page(None, 10).await.unwrap();
    let with_photo = page.iter().find(|m| m.image.is_some()).expect("the photo");
    let with_file = page.iter().find(|m| m.file.is_some()).expect("the file");
    assert_eq!(with_file.file.as_ref().unwrap().name, "merger-with-initech.txt");
    let photo_seq = with_photo.seq.unwrap();
    let full_photo = bob.media().open_full(bobs, photo_seq).await.unwrap();
    let full_file = bob.media().open_full(bobs, with_file.seq.unwrap()).await.unwrap();
    assert_eq!(full_file, words);
    let sent_photo = alice.media().open_full(room, photo_seq).await.unwrap();
    assert_eq!(full_photo, sent_photo, "Bob's photo is the one Alice prepared");
    assert!(image::load_from_memory(&full_photo).is_ok());
    // Opened again, from the cache.
    assert_eq!(bob.media().open_full(bobs, photo_seq).await.unwrap(), full_photo);

    // Both profiles keep them sealed at rest (docs/storage.md): no part of either file in
    // the clear in any file of Alice's (who sent them) or Bob's (who opened them).
    let pieces: Vec<&[u8]> = (1..8)
        .map(|k| &full_photo[k * full_photo.len() / 8..][..32])
        .chain([&b"merger-with-initech"[..], &b"stays secret"[..]])
        .collect();
    for dir in [alice_dir.path(), bob_dir.path()] {
        for entry in walk(dir) {
            let bytes = std::fs::read(&entry).unwrap();
            let found = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
            assert!(!pieces.iter().any(|p| found(p)), "{entry:?} holds an attachment in clear");
        }
    }

    // The server holds only sealed bytes: sizes padded, no part of either file in clear.
    let sealed_len = tidings_core::e2ee::file::sealed_len(full_photo.len() as u64);
    let stored: Vec<_> = walk(server.data_dir())
        .into_iter()
        .filter(|p| std::fs::metadata(p).unwrap().len() == sealed_len)
        .collect();
    assert_eq!(stored.len(), 1, "the sealed photo, {sealed_len} bytes");

    // A sealed file changed on the server is refused, typed, and nothing of it is kept.
    let mut bytes = std::fs::read(&stored[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&stored[0], &bytes).unwrap();
    let cache = bob_dir.path().join("cache");
    for entry in std::fs::read_dir(&cache).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let damaged = bob.media().open_full(bobs, photo_seq).await;
    assert!(matches!(damaged, Err(tidings_core::Error::AttachmentDamaged)), "{damaged:?}");
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0, "nothing of it kept");

    drop((alice, bob));
    let mut server = server;
    server.stop().await.unwrap();
    let windows: Vec<&[u8]> =
        (1..8).map(|k| &full_photo[k * full_photo.len() / 8..][..32]).collect();
    for entry in walk(server.data_dir()) {
        let bytes = std::fs::read(&entry).unwrap();
        let found = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(!found(b"merger-with-initech") && !found(b"stays secret"), "{entry:?}");
        assert!(!windows.iter().any(|w| found(w)), "{entry:?} holds the photo");
    }
}

/// The identity key that certified the device of the profile in `dir`.
fn identity_of(dir: &std::path::Path) -> e2ee::IdentityKey {
    let db = tidings_core::store::open_profile(dir).unwrap().0;
    Device::load(&db).unwrap().expect("device keys").identity()
}

#[tokio::test]
async fn a_device_linked_by_qr_code_carries_the_identity_and_reads_every_room() {
    let server = TestServer::start_with(|c| c.max_devices_per_user = 3).await.unwrap();
    let (laptop, laptop_dir) = app_user(&server, "alice").await;
    let (bob, bob_dir) = app_user(&server, "bob").await;
    let sync = |app: &tidings_core::Client| {
        let app = app.clone();
        async move { tidings_core::sync::sync_until_idle(&app).await.unwrap() }
    };
    let bob_id = laptop.contacts().lookup("bob").await.unwrap();
    let room = laptop.rooms().create(RoomKind::Direct, None, vec![bob_id]).await.unwrap();
    laptop.room(room).send_queue().send_text("before the new phone").await.unwrap();
    sync(&laptop).await;
    sync(&bob).await;
    let server_room = laptop.room(room).server_id().await.unwrap().unwrap();

    // The laptop shows a link code as a QR code; the new phone reads it from the picture.
    let offer = laptop.sessions().offer_link().await.unwrap();
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()
            as i64;
    assert!(offer.expires_ms > now_ms, "the code works for a while");
    let png = tidings_core::contact::qr_png(&offer.code, 6);
    let scanned: tidings_core::link::LinkCode = tidings_core::contact::scan_for(&png).unwrap();
    assert_eq!(scanned, offer.code);

    // The phone links with it: no password, the same account, a device of its own, and the
    // account's identity, so Bob's security code for Alice stays the same.
    let phone_dir = tempfile::tempdir().unwrap();
    let phone = tidings_core::Client::open(phone_dir.path()).unwrap();
    let account = phone.sessions().link(&scanned).await.unwrap();
    let laptop_account = laptop.account().await.unwrap().unwrap();
    assert_eq!(account.user_id, laptop_account.user_id);
    assert_ne!(account.device_id, laptop_account.device_id);
    assert_eq!(identity_of(phone_dir.path()), identity_of(laptop_dir.path()));

    // A code works once.
    let late_dir = tempfile::tempdir().unwrap();
    let late = tidings_core::Client::open(late_dir.path()).unwrap();
    match late.sessions().link(&scanned).await {
        Err(tidings_core::Error::Server(e)) => assert_eq!(e.code, ErrorCode::InvalidLinkCode),
        other => panic!("a used code linked again: {other:?}"),
    }
    assert!(late.account().await.unwrap().is_none(), "nothing kept from a refused code");

    // The phone joins the room by itself (nobody else online) and reads what Bob writes
    // next; what it writes reaches Bob and Alice's laptop.
    sync(&phone).await;
    sync(&bob).await;
    let bob_room = bob.rooms().list().await.unwrap();
    let bob_room = bob_room.iter().find(|r| r.server_id == Some(server_room)).unwrap().room;
    bob.room(bob_room).send_queue().send_text("hello, new phone").await.unwrap();
    sync(&bob).await;
    sync(&phone).await;
    assert!(texts(&phone, server_room).await.contains(&"hello, new phone".to_owned()));
    let phone_room = phone.rooms().list().await.unwrap();
    let phone_room = phone_room.iter().find(|r| r.server_id == Some(server_room)).unwrap().room;
    phone.room(phone_room).send_queue().send_text("typed on the phone").await.unwrap();
    sync(&phone).await;
    sync(&bob).await;
    sync(&laptop).await;
    for app in [&bob, &laptop] {
        assert!(texts(app, server_room).await.contains(&"typed on the phone".to_owned()));
    }
    // Bob's group has both of Alice's devices, certified by one identity.
    let db = tidings_core::store::open_profile(bob_dir.path()).unwrap().0;
    let group: Vec<u8> = db
        .query_row("SELECT mls_group FROM rooms WHERE server_id = ?1", [server_room], |r| r.get(0))
        .unwrap();
    let alices: Vec<_> = e2ee::identities(&db, &group)
        .unwrap()
        .into_iter()
        .filter(|(leaf, _)| leaf.user == account.user_id)
        .collect();
    assert_eq!(alices.len(), 2, "{alices:?}");
    assert!(alices.iter().all(|(_, key)| *key == identity_of(laptop_dir.path())));

    // Signing in with the password instead makes a new identity (a changed security code).
    let tablet_dir = tempfile::tempdir().unwrap();
    let tablet = tidings_core::Client::open(tablet_dir.path()).unwrap();
    let endpoint = tidings_core::endpoint::Endpoint::parse(&server.http_url()).unwrap();
    tablet.sessions().sign_in(&endpoint, "alice", "correct horse battery").await.unwrap();
    sync(&tablet).await;
    assert_ne!(identity_of(tablet_dir.path()), identity_of(laptop_dir.path()));

    // Three devices is this server's cap: no fourth, by password or by code.
    let fourth_dir = tempfile::tempdir().unwrap();
    let fourth = tidings_core::Client::open(fourth_dir.path()).unwrap();
    match fourth.sessions().sign_in(&endpoint, "alice", "correct horse battery").await {
        Err(tidings_core::Error::Server(e)) => assert_eq!(e.code, ErrorCode::TooManyDevices),
        other => panic!("a fourth device: {other:?}"),
    }
    match laptop.sessions().offer_link().await {
        Err(tidings_core::Error::Server(e)) => assert_eq!(e.code, ErrorCode::TooManyDevices),
        other => panic!("a code for a fourth device: {other:?}"),
    }
    // Signing one out makes room again.
    tablet.sessions().sign_out().await.unwrap();
    laptop.sessions().offer_link().await.unwrap();
}

#[tokio::test]
async fn a_signed_out_device_leaves_every_group_with_the_next_message() {
    let server = TestServer::start().await.unwrap();
    let (alice, alice_dir) = app_user(&server, "alice").await;
    let (laptop, _laptop_dir) = app_user(&server, "bob").await;
    let sync = |app: &tidings_core::Client| {
        let app = app.clone();
        async move { tidings_core::sync::sync_until_idle(&app).await.unwrap() }
    };
    let bob_id = alice.contacts().lookup("bob").await.unwrap();
    let room = alice.rooms().create(RoomKind::Direct, None, vec![bob_id]).await.unwrap();
    alice.room(room).send_queue().send_text("hello bob").await.unwrap();
    sync(&alice).await;
    sync(&laptop).await;
    let server_room = alice.room(room).server_id().await.unwrap().unwrap();

    // Bob links his phone; it joins the room's group.
    let offer = laptop.sessions().offer_link().await.unwrap();
    let phone_dir = tempfile::tempdir().unwrap();
    let phone = tidings_core::Client::open(phone_dir.path()).unwrap();
    let phone_id = phone.sessions().link(&offer.code).await.unwrap().device_id;
    sync(&phone).await;
    sync(&alice).await;
    let phone_leaf = LeafId { user: bob_id, device: phone_id };
    assert!(leaf_ids(alice_dir.path(), server_room).contains(&phone_leaf));

    // The phone is lost: Bob signs it out from his laptop. Alice's next message first
    // removes its leaf, so nothing she writes from then on is sealed for it.
    laptop.sessions().revoke(phone_id).await.unwrap();
    sync(&alice).await;
    alice.room(room).send_queue().send_text("after the phone was lost").await.unwrap();
    sync(&alice).await;
    let now = leaf_ids(alice_dir.path(), server_room);
    assert!(!now.contains(&phone_leaf), "{now:?}");
    assert_eq!(now.len(), 2, "alice and bob's laptop: {now:?}");
    sync(&laptop).await;
    assert!(texts(&laptop, server_room).await.contains(&"after the phone was lost".to_owned()));
}

#[tokio::test]
async fn a_forged_signature_in_a_catch_up_page_refuses_that_message_alone() {
    let server = TestServer::start().await.unwrap();
    let (app, _profile) = app_user(&server, "dora").await;

    // Bob's room with dora: a page of messages for her to catch up on, one of them sealed
    // with Bob's keys for the room but signed with another key than his device's.
    let (mut bob, room) = bobs_room_with_dora(&server).await;
    for text in ["one", "two"] {
        bob.send(request_id(), room, bob.seal_text(text)).await.unwrap();
    }
    bob.send(request_id(), room, bob.forge_text("forged")).await.unwrap();
    for text in ["three", "four"] {
        bob.send(request_id(), room, bob.seal_text(text)).await.unwrap();
    }

    // Her engine checks a page's signatures beside decrypting it: the forged one fails the
    // page, which is opened again checking each — every real message shows, the forged one
    // is refused and said to be, and sync goes on.
    tidings_core::sync::sync_until_idle(&app).await.unwrap();
    let rooms = app.rooms().list().await.unwrap();
    let summary = rooms.iter().find(|r| r.server_id == Some(room.0)).expect("the room");
    let page = app.room(summary.room).timeline().page(None, 50).await.unwrap();
    let texts: Vec<&str> = page.iter().map(|m| m.text.as_str()).collect();
    for text in ["one", "two", "three", "four"] {
        assert!(texts.contains(&text), "{text}: {texts:?}");
    }
    assert!(!texts.iter().any(|t| t.contains("forged")), "{texts:?}");
    let issues = security_notices(&page);
    assert_eq!(issues, [("bob", tidings_core::SecurityIssue::BadSignature)]);

    // What follows still opens.
    bob.send(request_id(), room, bob.seal_text("five")).await.unwrap();
    tidings_core::sync::sync_until_idle(&app).await.unwrap();
    let page = app.room(summary.room).timeline().page(None, 50).await.unwrap();
    assert!(page.iter().any(|m| m.text == "five"));
}

#[tokio::test]
async fn what_fails_a_check_of_who_is_in_the_group_is_refused_and_shown_as_a_security_event() {
    let server = TestServer::start().await.unwrap();
    let (app, _profile) = app_user(&server, "dora").await;

    // Bob (a device speaking MLS directly) sets up a room's group with dora's device in it.
    let (mut bob, room) = bobs_room_with_dora(&server).await;
    bob.send(request_id(), room, bob.seal_text("hello dora")).await.unwrap();

    // A second device of Bob's sends what Bob's first device sealed: the log names one
    // device, the encryption another.
    let mut bob2 = Member::with(Client::sign_in(&server.ws_url(), "bob").await.unwrap());
    bob2.send(request_id(), room, bob.seal_text("which device am I?")).await.unwrap();

    // Bob adds a device of Mallory's, who is not in the room, to its group.
    let mut mallory = Member::sign_up(&server, "mallory").await;
    mallory.publish(2).await;
    let packages = bob.claim(mallory.client.me().user.id.0).await;
    let add = bob.mls(|d, db| d.add(db, GROUP, &packages).unwrap());
    bob.handshake(request_id(), room, &add).await.unwrap();
    bob.mls(|d, db| d.confirm(db, GROUP).unwrap());
    bob.send(request_id(), room, bob.seal_text("mallory is listening")).await.unwrap();

    // Dora's engine refused both, says so in the timeline, and did not let Mallory in.
    tidings_core::sync::sync_until_idle(&app).await.unwrap();
    let rooms = app.rooms().list().await.unwrap();
    let summary = rooms.iter().find(|r| r.server_id == Some(room.0)).expect("the room");
    let page = app.room(summary.room).timeline().page(None, 50).await.unwrap();
    let issues = security_notices(&page);
    assert_eq!(
        issues,
        [
            ("bob", tidings_core::SecurityIssue::NotAMember),
            ("bob", tidings_core::SecurityIssue::WrongSender)
        ]
    );
    let texts: Vec<&str> = page.iter().map(|m| m.text.as_str()).collect();
    assert!(texts.contains(&"hello dora"), "{texts:?}");
    assert!(!texts.contains(&"which device am I?"), "{texts:?}");
    assert!(!texts.contains(&"mallory is listening"), "{texts:?}");
    // Her device dropped out of the group rather than be in it with Mallory: joining again
    // from the server's GroupInfo (which has Mallory's leaf) is refused too.
    let db = tidings_core::store::open_profile(app.dir()).unwrap().0;
    let group: Option<Vec<u8>> = db
        .query_row("SELECT mls_group FROM rooms WHERE server_id = ?1", [room.0], |r| r.get(0))
        .unwrap();
    assert_eq!(group, None);
    assert_eq!(e2ee::epoch(&db, GROUP).unwrap(), None);
    // The refusals count as nothing unread: Bob's two messages do (the one after Mallory
    // came in is one she cannot open).
    assert_eq!(summary.unread, 2);
    assert!(texts.contains(&"(message this version cannot show)"), "{texts:?}");
}
