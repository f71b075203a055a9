//! Authorization, proven by a table: every operation × every kind of caller
//! (shared/DESIGN.md §5).
//!
//! The operations are every `Request` kind of the protocol plus the two HTTP media endpoints.
//! The callers are a user who was never in the room, a member who left, a member who was
//! removed, a member's revoked session, a token with a wrong secret, a garbage token, a
//! member's expired session, and a member. [`TABLE`] states what each of them must get; one
//! loop runs every cell against the real server and fails on any difference — above all on
//! any unauthorized success. Both tests fail when the protocol has an operation the table
//! does not list (the set of rows must equal `Request::KINDS` plus the HTTP operations).

use std::{collections::BTreeSet, time::Duration};

use tidings_proto::{
    bounded::{List, Text},
    CallOutcome, CallRecord, CallSignal, DeviceId, ErrorCode, ErrorInfo, MediaId, Reply, Request,
    RoomCursor, RoomId, RoomKind, Token, UserId, PROTOCOL_VERSION,
};
use tidings_server::{ratelimit::Rate, Config};
use tidings_testkit::{credentials, request_id, text, Client, TestServer};
use tokio::time::Instant;

use crate::common::*;

/// Who attempts the operation. The order is the table's column order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    /// Signed in, never in the room.
    NonMember,
    /// Was in the room (and could read its media), then left.
    LeftMember,
    /// Was in the room (and could read its media), then was removed by the creator.
    RemovedMember,
    /// A member's second device, revoked from the member's first device.
    RevokedSession,
    /// A well-formed token naming a member's live session, with a wrong secret.
    WrongSecret,
    /// Not a token at all.
    GarbageToken,
    /// A member's session whose time-to-live has passed.
    ExpiredSession,
    /// A current member (the room's creator for creator-only operations).
    Member,
}

use Caller::*;

/// The table's columns. The member goes last because its operations change the room
/// (leave, remove, sign out, revoke).
const CALLERS: [Caller; 8] = [
    NonMember,
    LeftMember,
    RemovedMember,
    RevokedSession,
    WrongSecret,
    GarbageToken,
    ExpiredSession,
    Member,
];

/// What an attempt got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    /// An error reply; over HTTP, 401 reads as `Unauthenticated` and 404 as `NotFound`.
    Denied(ErrorCode),
    /// Any other HTTP status.
    Status(u16),
    /// Join accepted a session that is not valid (so the operation was not even tried).
    InvalidSessionJoined,
}

impl Outcome {
    /// Whether the server let the caller do something.
    fn is_success(self) -> bool {
        matches!(self, Outcome::Allowed | Outcome::InvalidSessionJoined)
    }
}

/// Allowed.
const A: Outcome = Outcome::Allowed;
/// Denied: not a member of the room.
const F: Outcome = Outcome::Denied(ErrorCode::Forbidden);
/// Denied: no valid session (HTTP 401).
const U: Outcome = Outcome::Denied(ErrorCode::Unauthenticated);
/// Denied: invalid input (here: not visible nearby, so not allowed to look).
const I: Outcome = Outcome::Denied(ErrorCode::InvalidInput);
/// Denied as if the thing did not exist (HTTP 404).
const N: Outcome = Outcome::Denied(ErrorCode::NotFound);
const B: Outcome = Outcome::Denied(ErrorCode::BadCredentials);

/// The HTTP operations, besides every `Request` kind.
const HTTP_OPS: [&str; 5] =
    ["media_upload", "media_download", "upload_open", "upload_state", "upload_append"];

/// Every operation against every caller. Columns follow [`CALLERS`].
///
/// Callers without a valid session (revoked, wrong secret, garbage, expired) first present
/// their token in Join, which must say `unauthenticated`, and then try the operation on that
/// connection anyway; over HTTP they send the token as a bearer token.
#[rustfmt::skip]
const TABLE: &[(&str, [Outcome; 8])] = &[
    //                   never  left  removed revoked secret garbage expired member
    // No session needed (Join is where a session is presented).
    ("Hello",           [A,     A,    A,      A,      A,     A,      A,      A]),
    ("SignUp",          [A,     A,    A,      A,      A,     A,      A,      A]),
    ("SignIn",          [A,     A,    A,      A,      A,     A,      A,      A]),
    // A link code is the proof: each attempt redeems an offer of its own.
    ("RedeemLink",      [A,     A,    A,      A,      A,     A,      A,      A]),
    ("Ping",            [A,     A,    A,      A,      A,     A,      A,      A]),
    ("Join",            [A,     A,    A,      U,      U,     U,      U,      A]),
    // Account operations: any signed-in user, on their own account. Revoking another
    // user's device answers as if the device did not exist.
    ("SignOut",         [A,     A,    A,      U,      U,     U,      U,      A]),
    ("SignOutEverywhere", [A,   A,    A,      U,      U,     U,      U,      A]),
    // The member's current password: right only for the member's own account.
    ("ChangePassword",  [B,     B,    B,      U,      U,     U,      U,      A]),
    ("ListDevices",     [A,     A,    A,      U,      U,     U,      U,      A]),
    ("RevokeDevice",    [N,     N,    N,      U,      U,     U,      U,      A]),
    ("LookupUser",      [A,     A,    A,      U,      U,     U,      U,      A]),
    ("IceServers",      [A,     A,    A,      U,      U,     U,      U,      A]),
    ("ContactKey",      [A,     A,    A,      U,      U,     U,      U,      A]),
    ("Contacts",        [A,     A,    A,      U,      U,     U,      U,      A]),
    ("AddContact",      [A,     A,    A,      U,      U,     U,      U,      A]),
    // Blocking is about my own account: anyone signed in.
    ("Block",           [A,     A,    A,      U,      U,     U,      U,      A]),
    ("Unblock",         [A,     A,    A,      U,      U,     U,      U,      A]),
    ("Blocked",         [A,     A,    A,      U,      U,     U,      U,      A]),
    // People nearby: anyone signed in may appear or vanish; only the visible (here the
    // member) may look.
    ("NearbyOn",        [A,     A,    A,      U,      U,     U,      U,      A]),
    ("NearbyOff",       [A,     A,    A,      U,      U,     U,      U,      A]),
    ("NearbyList",      [I,     I,    I,      U,      U,     U,      U,      A]),
    ("CreateRoom",      [A,     A,    A,      U,      U,     U,      U,      A]),
    // Room operations: current members only.
    ("Invite",          [F,     F,    F,      U,      U,     U,      U,      A]),
    // The member here is hank, who holds the room as a request (alice is no contact).
    ("Accept",          [F,     F,    F,      U,      U,     U,      U,      A]),
    ("Leave",           [F,     F,    F,      U,      U,     U,      U,      A]),
    ("RemoveMember",    [F,     F,    F,      U,      U,     U,      U,      A]),
    ("Rename",          [F,     F,    F,      U,      U,     U,      U,      A]),
    ("Send",            [F,     F,    F,      U,      U,     U,      U,      A]),
    ("RecordCall",      [F,     F,    F,      U,      U,     U,      U,      A]),
    ("Receipt",         [F,     F,    F,      U,      U,     U,      U,      A]),
    ("Typing",          [F,     F,    F,      U,      U,     U,      U,      A]),
    ("Signal",          [F,     F,    F,      U,      U,     U,      U,      A]),
    ("CatchUp",         [F,     F,    F,      U,      U,     U,      U,      A]),
    // End-to-end encryption: a room's group (its setup here) and GroupInfo are members'
    // business; KeyPackages are published and claimed by anyone signed in.
    ("Mls",             [F,     F,    F,      U,      U,     U,      U,      A]),
    ("GroupInfo",       [F,     F,    F,      U,      U,     U,      U,      A]),
    ("PublishKeyPackages", [A,  A,    A,      U,      U,     U,      U,      A]),
    ("ClaimKeyPackages", [A,    A,    A,      U,      U,     U,      U,      A]),
    ("OfferLink",       [A,     A,    A,      U,      U,     U,      U,      A]),
    // Media over HTTP: any signed-in user uploads; the uploader and current members of a
    // room with a message that lists the media download; anyone else gets the same 404 as
    // for media that does not exist.
    ("media_upload",    [A,     A,    A,      U,      U,     U,      U,      A]),
    ("media_download",  [N,     N,    N,      U,      U,     U,      U,      A]),
    // Resumable uploads: anyone signed in opens one; only its uploader (here the member,
    // bob) sees or extends it — to everyone else it does not exist.
    ("upload_open",     [A,     A,    A,      U,      U,     U,      U,      A]),
    ("upload_state",    [N,     N,    N,      U,      U,     U,      U,      A]),
    ("upload_append",   [N,     N,    N,      U,      U,     U,      U,      A]),
];

#[test]
fn the_table_has_exactly_one_row_for_every_operation() {
    check_the_table();
}

/// Fails unless the table has one row per operation, each allowing the member.
fn check_the_table() {
    let names: Vec<&str> = TABLE.iter().map(|(op, _)| *op).collect();
    let rows: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(rows.len(), names.len(), "an operation has two rows: {names:?}");
    let mut operations: BTreeSet<&str> = Request::KINDS.iter().copied().collect();
    operations.extend(HTTP_OPS);
    let missing: Vec<_> = operations.difference(&rows).collect();
    let unknown: Vec<_> = rows.difference(&operations).collect();
    assert!(missing.is_empty(), "operations with no row in the table: {missing:?}");
    assert!(unknown.is_empty(), "rows for operations that do not exist: {unknown:?}");
    // The table cannot pass by denying everything: a member may do every operation.
    let member = CALLERS.iter().position(|c| *c == Member).unwrap();
    for (op, row) in TABLE {
        assert_eq!(row[member], A, "{op} must be allowed to a member");
    }
}

#[tokio::test]
async fn no_caller_gets_more_than_the_table_allows_and_members_get_everything() {
    check_the_table();
    // Sessions on this server expire; its world is only ever used by the expired caller.
    const TTL: Duration = Duration::from_secs(3);
    let expiring =
        TestServer::start_with(|c| generous_rates_and(c, |c| c.session_ttl = TTL)).await.unwrap();
    let expired = World::new(&expiring, "x").await;
    let expired_by = Instant::now() + TTL + Duration::from_millis(100);

    let server = TestServer::start_with(|c| generous_rates_and(c, |_| {})).await.unwrap();
    let (mut unauthorized, mut member_successes, mut differences) = (0, 0, Vec::new());
    for (n, (op, row)) in TABLE.iter().enumerate() {
        // Operations change the room (leave, remove, sign out): a fresh world for each.
        let mut world = World::new(&server, &n.to_string()).await;
        for (caller, want) in CALLERS.into_iter().zip(*row) {
            if caller == ExpiredSession {
                tokio::time::sleep_until(expired_by).await;
            }
            let got = attempt(op, caller, &mut world, &expired).await;
            if got.is_success() && want != A {
                unauthorized += 1;
            }
            if got == A && caller == Member {
                member_successes += 1;
            }
            if got != want {
                differences.push(format!("{op} by {caller:?}: expected {want:?}, got {got:?}"));
            }
        }
    }
    assert_eq!(unauthorized, 0, "unauthorized successes: {differences:#?}");
    assert_eq!(member_successes, TABLE.len(), "members were refused: {differences:#?}");
    assert!(differences.is_empty(), "{differences:#?}");
}

/// Raises the rate limits out of the way (the table signs in and sends a lot), then `tune`.
fn generous_rates_and(c: &mut Config, tune: impl FnOnce(&mut Config)) {
    let generous = Rate { per_second: 1000.0, burst: 1000.0 };
    c.sign_in_rate = generous;
    c.sign_in_rate_per_addr = generous;
    c.sign_up_rate_per_addr = generous;
    c.send_rate = generous;
    c.typing_rate = generous;
    c.create_room_rate = generous;
    // Each row signs frank in once per caller.
    c.max_devices_per_user = 100;
    tune(c);
}

/// A group room with media in it, and the people around it.
#[derive(Debug)]
struct World {
    ws: String,
    http: String,
    /// Created the room; uploaded `media` and posted it there.
    alice: Client,
    /// Member.
    bob: Client,
    /// Never in the room.
    carol: Client,
    /// Left the room after the media was posted.
    dave: Client,
    /// Removed by alice after the media was posted.
    grace: Client,
    /// Invited by alice, not a contact of hers: holds the room as a request (what Accept
    /// takes).
    hank: Client,
    /// Bob's second device, revoked from his first.
    revoked: Token,
    /// Bob's third device, signed in and idle: what RevokeDevice targets.
    bob_spare: DeviceId,
    /// Not in the room: whom Invite adds and SignIn signs in.
    frank: UserId,
    frank_name: String,
    room: RoomId,
    media: MediaId,
    /// A resumable upload bob opened.
    upload: String,
    /// Alice's contact key (what AddContact redeems).
    alice_key: String,
}

impl World {
    async fn new(server: &TestServer, tag: &str) -> Self {
        let (ws, http) = (server.ws_url(), server.http_url());
        let name = |who: &str| format!("{who}{tag}");
        let mut alice = Client::sign_up(&ws, &name("alice")).await.unwrap();
        let mut bob = Client::sign_up(&ws, &name("bob")).await.unwrap();
        let revoked = Client::sign_in(&ws, &name("bob")).await.unwrap().me().token.clone();
        let bob_spare = Client::sign_in(&ws, &name("bob")).await.unwrap().me().device;
        let carol = Client::sign_up(&ws, &name("carol")).await.unwrap();
        let mut dave = Client::sign_up(&ws, &name("dave")).await.unwrap();
        let mut grace = Client::sign_up(&ws, &name("grace")).await.unwrap();
        let frank = Client::sign_up(&ws, &name("frank")).await.unwrap().me().user.id;
        let hank = Client::sign_up(&ws, &name("hank")).await.unwrap();

        let members = [bob.me().user.id, dave.me().user.id, grace.me().user.id];
        let room = group(&mut alice, &members).await;
        // Alice is nobody's contact: the room is a request to each until they accept.
        for member in [&mut bob, &mut dave, &mut grace] {
            member.request(Request::Accept { request: request_id(), room }).await.unwrap().unwrap();
        }
        let invite = Request::Invite { request: request_id(), room, user: hank.me().user.id };
        alice.request(invite).await.unwrap().unwrap();
        let media = upload(&http, &alice.me().token, b"photo".to_vec()).await.unwrap();
        let opened = reqwest::Client::new()
            .post(format!("{http}/v1/uploads"))
            .bearer_auth(bob.me().token.0.as_str())
            .header("upload-length", "10")
            .send()
            .await
            .unwrap();
        let opened: serde_json::Value = opened.json().await.unwrap();
        let upload_id = opened["upload"].as_str().unwrap().to_owned();
        let photo = Request::Send {
            request: request_id(),
            room,
            body: body("a photo"),
            attachments: List::new(vec![media]).unwrap(),
            redacts: None,
        };
        alice.request(photo).await.unwrap().unwrap();
        // The former members could read the media while they were members.
        for former in [&dave, &grace] {
            assert!(download(&http, &former.me().token, media).await.is_ok());
        }
        dave.request(Request::Leave { request: request_id(), room }).await.unwrap().unwrap();
        let remove =
            Request::RemoveMember { request: request_id(), room, user: grace.me().user.id };
        alice.request(remove).await.unwrap().unwrap();
        let revoke = Request::RevokeDevice { device: device_of(&revoked) };
        bob.request(revoke).await.unwrap().unwrap();
        let key = alice.request(Request::ContactKey { reset: false, ttl_s: None }).await.unwrap();
        let visible = Request::NearbyOn { cell: text("u09tvw"), ttl_s: 600 };
        bob.request(visible).await.unwrap().unwrap();
        let Ok(Reply::ContactKey { key, .. }) = key else { panic!("{key:?}") };

        Self {
            ws,
            http,
            alice,
            bob,
            carol,
            dave,
            grace,
            hank,
            revoked,
            bob_spare,
            frank,
            frank_name: name("frank"),
            room,
            media,
            upload: upload_id,
            alice_key: key.0.into_string(),
        }
    }

    /// The member who performs `op`: only the room's creator removes members, and only a
    /// member holding a request accepts it.
    fn member(&mut self, op: &str) -> &mut Client {
        match op {
            "RemoveMember" => &mut self.alice,
            "Accept" => &mut self.hank,
            _ => &mut self.bob,
        }
    }

    /// The token of [`World::member`].
    fn member_token(&self, op: &str) -> Token {
        let member = match op {
            "RemoveMember" => &self.alice,
            "Accept" => &self.hank,
            _ => &self.bob,
        };
        member.me().token.clone()
    }
}

/// The device a token names.
fn device_of(token: &Token) -> DeviceId {
    let (id, _secret) = token.0.as_str().split_once('.').unwrap();
    DeviceId(id.parse().unwrap())
}

/// One operation, ready to attempt.
enum Operation {
    Upload,
    Download(MediaId),
    /// `method` on `/v1/uploads[/id]` with these headers.
    Resumable(reqwest::Method, String, Vec<(&'static str, &'static str)>),
    Join(RoomId),
    Request(Request),
}

/// Operation `op` against `w`'s room, as a member would make it (fresh request ids).
fn operation(op: &str, w: &World) -> Operation {
    let room = w.room;
    let alice = w.alice.me().user.id;
    let request = match op {
        "media_upload" => return Operation::Upload,
        "media_download" => return Operation::Download(w.media),
        "upload_open" => {
            let url = format!("{}/v1/uploads", w.http);
            return Operation::Resumable(reqwest::Method::POST, url, vec![("upload-length", "5")]);
        }
        "upload_state" => {
            let url = format!("{}/v1/uploads/{}", w.http, w.upload);
            return Operation::Resumable(reqwest::Method::GET, url, vec![]);
        }
        "upload_append" => {
            let url = format!("{}/v1/uploads/{}", w.http, w.upload);
            return Operation::Resumable(reqwest::Method::PATCH, url, vec![("upload-offset", "0")]);
        }
        "Join" => return Operation::Join(room),
        "Hello" => Request::Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            client: text("authorization test"),
        },
        "SignUp" => {
            Request::SignUp(credentials(&format!("new{}", &request_id().to_string()[..16])))
        }
        "SignIn" => Request::SignIn(credentials(&w.frank_name)),
        "Ping" => Request::Ping { nonce: 7 },
        "IceServers" => Request::IceServers {},
        "ContactKey" => Request::ContactKey { reset: false, ttl_s: None },
        "Contacts" => Request::Contacts {},
        "Block" => Request::Block { user: w.frank },
        "Unblock" => Request::Unblock { user: w.frank },
        "Blocked" => Request::Blocked {},
        "Accept" => Request::Accept { request: request_id(), room },
        "NearbyOn" => Request::NearbyOn { cell: text("u09tvw"), ttl_s: 600 },
        "NearbyOff" => Request::NearbyOff {},
        "NearbyList" => Request::NearbyList {},
        "AddContact" => Request::AddContact {
            user: w.alice.me().user.username.clone(),
            key: tidings_proto::ContactKeyText(text(&w.alice_key)),
        },
        "SignOut" => Request::SignOut {},
        "SignOutEverywhere" => Request::SignOutEverywhere {},
        "ChangePassword" => Request::ChangePassword {
            old: credentials(w.bob.me().user.username.as_str()).password,
            new: tidings_proto::Password(text("a brand new password")),
        },
        "ListDevices" => Request::ListDevices { after: None },
        // Bob's own idle device: the member is bob; for everyone else it is someone else's.
        "RevokeDevice" => Request::RevokeDevice { device: w.bob_spare },
        "LookupUser" => Request::LookupUser { username: w.alice.me().user.username.clone() },
        "CreateRoom" => Request::CreateRoom {
            request: request_id(),
            kind: RoomKind::Direct,
            name: None,
            members: List::new(vec![alice]).unwrap(),
        },
        "Invite" => Request::Invite { request: request_id(), room, user: w.frank },
        "Leave" => Request::Leave { request: request_id(), room },
        "RemoveMember" => {
            Request::RemoveMember { request: request_id(), room, user: w.bob.me().user.id }
        }
        "Rename" => Request::Rename { request: request_id(), room, name: text("renamed") },
        "Send" => send(room, "hello"),
        "RecordCall" => Request::RecordCall {
            request: request_id(),
            room,
            // A call is recorded by its caller: the member making the request (bob).
            record: CallRecord {
                call: 1,
                caller: w.bob.me().user.id,
                outcome: CallOutcome::Missed,
                duration_ms: 0,
                video: false,
            },
        },
        "Receipt" => Request::Receipt { room, delivered: Some(1), read: Some(1) },
        "Typing" => Request::Typing { room, active: true },
        // Alice is a member with a live connection; the member making the call is bob.
        "Signal" => Request::Signal {
            room,
            to_user: alice,
            to_device: None,
            call: 1,
            signal: CallSignal::Inquire { video: false },
        },
        "CatchUp" => Request::CatchUp { room, after: 0, limit: 10 },
        "Mls" => Request::Mls {
            request: request_id(),
            room,
            commit: None,
            welcome: None,
            group_info: tidings_proto::bounded::Blob::new(group_info()).unwrap(),
        },
        "GroupInfo" => Request::GroupInfo { room },
        "PublishKeyPackages" => {
            Request::PublishKeyPackages { packages: List::empty(), last_resort: None }
        }
        "ClaimKeyPackages" => Request::ClaimKeyPackages { user: alice },
        "OfferLink" => Request::OfferLink {
            id: link_id(),
            sealed: tidings_proto::bounded::Blob::new(vec![1; 48]).unwrap(),
        },
        // Redeemed offers are made fresh for each attempt (see `attempt`).
        "RedeemLink" => Request::RedeemLink { id: link_id(), device_name: text("new device") },
        other => panic!("no operation named {other:?}: add it here and to the table"),
    };
    Operation::Request(request)
}

/// A new link offer id.
fn link_id() -> tidings_proto::LinkId {
    use sha2::Digest;
    let id = sha2::Sha256::digest(request_id().to_string()).to_vec();
    tidings_proto::bounded::Blob::new(id).unwrap()
}

/// RedeemLink for an offer a new account made on the server at `ws`.
async fn fresh_offer(ws: &str) -> Request {
    let name = format!("o{}", &request_id().to_string()[..16]);
    let mut offerer = Client::sign_up(ws, &name).await.unwrap();
    let id = link_id();
    let sealed = tidings_proto::bounded::Blob::new(vec![1; 48]).unwrap();
    offerer.request(Request::OfferLink { id: id.clone(), sealed }).await.unwrap().unwrap();
    Request::RedeemLink { id, device_name: text("new device") }
}

/// The GroupInfo of a new one-device MLS group: what a room's setup carries.
fn group_info() -> Vec<u8> {
    use openmls::prelude::*;
    let provider = openmls_rust_crypto::OpenMlsRustCrypto::default();
    let signer = openmls_basic_credential::SignatureKeyPair::new(SignatureScheme::ED25519).unwrap();
    let credential = CredentialWithKey {
        credential: BasicCredential::new(vec![0; 16]).into(),
        signature_key: signer.public().into(),
    };
    let group = MlsGroup::builder()
        .ciphersuite(Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519)
        .build(&provider, &signer, credential)
        .unwrap();
    group.export_group_info(provider.crypto(), &signer, true).unwrap().to_bytes().unwrap()
}

/// Attempts `op` as `caller` and reports what happened.
async fn attempt(op: &str, caller: Caller, world: &mut World, expired: &World) -> Outcome {
    // The expired session is a member's, in the world whose sessions expire.
    let place = if caller == ExpiredSession { expired } else { &*world };
    let (ws, http) = (place.ws.clone(), place.http.clone());
    let operation = match op {
        // A code works once: each attempt redeems an offer made for it, on its server.
        "RedeemLink" => Operation::Request(fresh_offer(&ws).await),
        _ => operation(op, place),
    };
    let bob_device = world.bob.me().device;
    let (token, connection): (Token, Option<&mut Client>) = match caller {
        NonMember => joined(&mut world.carol),
        LeftMember => joined(&mut world.dave),
        RemovedMember => joined(&mut world.grace),
        Member => joined(world.member(op)),
        RevokedSession => (world.revoked.clone(), None),
        WrongSecret => (token(&format!("{bob_device}.{}", "0".repeat(64))), None),
        GarbageToken => (token("garbage"), None),
        ExpiredSession => (expired.member_token(op), None),
    };
    match operation {
        Operation::Upload => http_outcome(upload(&http, &token, b"bytes".to_vec()).await),
        Operation::Download(media) => http_outcome(download(&http, &token, media).await),
        Operation::Resumable(method, url, headers) => {
            let mut request =
                reqwest::Client::new().request(method, url).bearer_auth(token.0.as_str());
            for (name, value) in headers {
                request = request.header(name, value);
            }
            // An empty chunk: the uploader may send it any number of times.
            let status = request.body(Vec::new()).send().await.unwrap().status();
            http_outcome(if status.is_success() { Ok(()) } else { Err(status.as_u16()) })
        }
        Operation::Join(room) => join(&ws, token, &[RoomCursor { room, last_seq: 0 }]).await.1,
        Operation::Request(request) => {
            let mut fresh;
            let client = match connection {
                Some(client) => client,
                None => {
                    // A session that must not join: present it, then try the operation on
                    // the connection it left unjoined.
                    let joined;
                    (fresh, joined) = join(&ws, token, &[]).await;
                    match joined {
                        U => &mut fresh,
                        A => return Outcome::InvalidSessionJoined,
                        other => return other,
                    }
                }
            };
            // Typing and call signals are answered only when they fail.
            if matches!(request, Request::Typing { .. } | Request::Signal { .. }) {
                outcome(client.unanswered(request).await.unwrap())
            } else {
                outcome(client.request(request).await.unwrap())
            }
        }
    }
}

/// A joined caller's token and connection.
fn joined(client: &mut Client) -> (Token, Option<&mut Client>) {
    (client.me().token.clone(), Some(client))
}

fn token(s: &str) -> Token {
    Token(Text::new(s).unwrap())
}

/// Opens a connection and presents `token` in Join.
async fn join(ws: &str, token: Token, rooms: &[RoomCursor]) -> (Client, Outcome) {
    let mut client = Client::connect_hello(ws).await.unwrap();
    let join = Request::Join {
        token,
        protocol_version: PROTOCOL_VERSION,
        rooms: List::new(rooms.to_vec()).unwrap(),
        unconfirmed: List::empty(),
    };
    let joined = client.request(join).await.unwrap();
    (client, outcome(joined))
}

fn outcome<T>(result: Result<T, ErrorInfo>) -> Outcome {
    match result {
        Ok(_) => Outcome::Allowed,
        Err(e) => Outcome::Denied(e.code),
    }
}

fn http_outcome<T>(result: Result<T, u16>) -> Outcome {
    match result {
        Ok(_) => Outcome::Allowed,
        Err(401) => U,
        Err(404) => N,
        Err(status) => Outcome::Status(status),
    }
}
