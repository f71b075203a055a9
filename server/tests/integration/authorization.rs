//! Authorization, proven by a table: every operation × every kind of caller.
//!
//! Callers: a user who is not in the room, a former member, a member's revoked session, a
//! bad token, an expired session, and a member. Every (operation, caller) pair has an
//! expected outcome; the test runs them all against the real server and fails on any
//! difference — in particular on any unauthorized success — and when an operation of the
//! protocol has no row.

use std::{collections::BTreeSet, time::Duration};

use tidings_proto::{
    bounded::{List, Text},
    CallOutcome, CallRecord, CallSignal, DeviceId, ErrorCode, MediaId, Request, RoomCursor, RoomId,
    RoomKind, Token, UserId,
};
use tidings_server::ratelimit::Rate;
use tidings_testkit::{credentials, request_id, text, Client, Session, TestServer};

use crate::common::*;

/// Who attempts the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    NonMember,
    FormerMember,
    RevokedSession,
    BadToken,
    ExpiredToken,
    Member,
}

const CALLERS: [Caller; 6] = [
    Caller::NonMember,
    Caller::FormerMember,
    Caller::RevokedSession,
    Caller::BadToken,
    Caller::ExpiredToken,
    // Last: the member's operation may change the room (leave, remove, sign out).
    Caller::Member,
];

/// What should happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Denied(ErrorCode),
}

use Caller::*;
use Outcome::*;

/// The HTTP operations, besides every `Request` kind.
const HTTP_OPS: [&str; 2] = ["media_upload", "media_download"];

/// The table. One arm per operation; the completeness test below fails when the protocol has
/// an operation that is missing here.
fn expected(op: &str, caller: Caller) -> Outcome {
    let no_session = matches!(caller, RevokedSession | BadToken | ExpiredToken);
    match op {
        // Need no session: anyone may say hello, sign up, sign in and ping.
        "Hello" | "SignUp" | "SignIn" | "Ping" => Allowed,
        // Join is the session check itself.
        "Join" if no_session => Denied(ErrorCode::Unauthenticated),
        "Join" => Allowed,
        _ if no_session && !HTTP_OPS.contains(&op) => Denied(ErrorCode::Unauthenticated),
        // Account operations: any signed-in user, on their own account only.
        "SignOut" | "ListDevices" | "LookupUser" | "CreateRoom" => Allowed,
        // Revoking someone else's device looks like revoking a device that does not exist.
        "RevokeDevice" if caller == Member => Allowed,
        "RevokeDevice" => Denied(ErrorCode::NotFound),
        // Room operations: current members only.
        "Invite" | "Leave" | "RemoveMember" | "Rename" | "Send" | "RecordCall" | "Receipt"
        | "Typing" | "Signal" | "CatchUp" => match caller {
            Member => Allowed,
            _ => Denied(ErrorCode::Forbidden),
        },
        // HTTP: a bad session is 401 (reported as unauthenticated).
        "media_upload" | "media_download" if no_session => Denied(ErrorCode::Unauthenticated),
        "media_upload" => Allowed,
        // Download: the uploader or a current member of a room that references the media;
        // anyone else gets the same 404 as for a media id that does not exist.
        "media_download" if caller == Member => Allowed,
        "media_download" => Denied(ErrorCode::NotFound),
        other => panic!("operation {other:?} has no row in the authorization table"),
    }
}

#[test]
fn every_operation_has_a_row() {
    let mut ops: BTreeSet<&str> = tidings_proto::Request::KINDS.iter().copied().collect();
    ops.extend(HTTP_OPS);
    for op in ops {
        for caller in CALLERS {
            // Panics with the operation's name if a row is missing.
            let _ = expected(op, caller);
        }
    }
}

/// One room and the people around it, fresh for each operation.
struct World {
    http: String,
    ws: String,
    /// Created the room; member.
    alice: Client,
    /// Member.
    bob: Client,
    /// Never in the room.
    carol: Client,
    /// Was in the room, left.
    dave: Client,
    /// A member's second device, signed out by the first.
    revoked: Session,
    /// A member's third device, whose session has expired.
    expired: Session,
    /// Someone to invite.
    frank: UserId,
    frank_name: String,
    room: RoomId,
    /// Uploaded by alice, referenced by a message in the room.
    media: MediaId,
    /// A second device of bob's, for RevokeDevice.
    bob_other_device: DeviceId,
}

impl World {
    async fn new(server: &TestServer, tag: &str) -> Self {
        let (ws, http) = (server.ws_url(), server.http_url());
        let mut alice = Client::sign_up(&ws, &format!("alice{tag}")).await.unwrap();
        let bob = Client::sign_up(&ws, &format!("bob{tag}")).await.unwrap();
        let carol = Client::sign_up(&ws, &format!("carol{tag}")).await.unwrap();
        let mut dave = Client::sign_up(&ws, &format!("dave{tag}")).await.unwrap();
        let mut erin = Client::sign_up(&ws, &format!("erin{tag}")).await.unwrap();
        let erin2 = Client::sign_in(&ws, &format!("erin{tag}")).await.unwrap();
        let erin3 = Client::sign_in(&ws, &format!("erin{tag}")).await.unwrap();
        // Time passes for erin3's session: expire it in the server's database.
        let db = rusqlite::Connection::open(server.data_dir().join("tidings.sqlite")).unwrap();
        db.busy_timeout(Duration::from_secs(5)).unwrap();
        db.execute("UPDATE sessions SET expires_ms = 1 WHERE id = ?1", [erin3.me().device.0])
            .unwrap();
        let bob2 = Client::sign_in(&ws, &format!("bob{tag}")).await.unwrap();
        let frank = Client::sign_up(&ws, &format!("frank{tag}")).await.unwrap();
        let members = [bob.me().user.id, dave.me().user.id, erin.me().user.id];
        let room = group(&mut alice, &members).await;
        let leave = Request::Leave { request: request_id(), room };
        dave.request(leave).await.unwrap().unwrap();
        let revoke = Request::RevokeDevice { device: erin2.me().device };
        erin.request(revoke).await.unwrap().unwrap();
        let media = upload(&http, &alice.me().token, b"photo bytes".to_vec()).await.unwrap();
        let send = Request::Send {
            request: request_id(),
            room,
            body: body("a photo"),
            attachments: List::new(vec![media]).unwrap(),
        };
        alice.request(send).await.unwrap().unwrap();
        Self {
            http,
            ws,
            alice,
            bob,
            carol,
            dave,
            revoked: erin2.me().clone(),
            expired: erin3.me().clone(),
            frank: frank.me().user.id,
            frank_name: format!("frank{tag}"),
            room,
            media,
            bob_other_device: bob2.me().device,
        }
    }

    /// The caller's token and, for callers with a valid session, a joined connection.
    fn caller(&mut self, op: &str, caller: Caller) -> (Token, Option<&mut Client>) {
        let wrong_secret =
            Token(Text::new(format!("{}.{}", self.bob.me().device, "0".repeat(64))).unwrap());
        match caller {
            NonMember => (self.carol.me().token.clone(), Some(&mut self.carol)),
            FormerMember => (self.dave.me().token.clone(), Some(&mut self.dave)),
            RevokedSession => (self.revoked.token.clone(), None),
            BadToken => (wrong_secret, None),
            ExpiredToken => (self.expired.token.clone(), None),
            // Only the room's creator removes members.
            Member if op == "RemoveMember" => {
                (self.alice.me().token.clone(), Some(&mut self.alice))
            }
            Member => (self.bob.me().token.clone(), Some(&mut self.bob)),
        }
    }
}

/// The request for `op` in `world`, as `caller` would send it.
fn request_for(op: &str, w: &World, caller: Caller) -> Request {
    let room = w.room;
    let bob = w.bob.me().user.id;
    let alice = w.alice.me().user.id;
    match op {
        "Hello" => Request::Hello { min_version: 1, max_version: 1, client: text("authz") },
        "SignUp" => Request::SignUp(credentials(&format!("n{}", &request_id().to_string()[..16]))),
        "SignIn" => Request::SignIn(credentials(&w.frank_name)),
        "Join" => unreachable!("Join is attempted on a fresh connection"),
        "SignOut" => Request::SignOut {},
        "ListDevices" => Request::ListDevices {},
        "RevokeDevice" => Request::RevokeDevice { device: w.bob_other_device },
        "LookupUser" => Request::LookupUser { username: w.alice.me().user.username.clone() },
        "CreateRoom" => Request::CreateRoom {
            request: request_id(),
            kind: RoomKind::Direct,
            name: None,
            members: List::new(vec![alice]).unwrap(),
        },
        "Invite" => Request::Invite { request: request_id(), room, user: w.frank },
        "Leave" => Request::Leave { request: request_id(), room },
        "RemoveMember" => Request::RemoveMember { request: request_id(), room, user: bob },
        "Rename" => Request::Rename { request: request_id(), room, name: text("renamed") },
        "Send" => send(room, "hello"),
        "RecordCall" => Request::RecordCall {
            request: request_id(),
            room,
            record: CallRecord {
                call: 1,
                caller: alice,
                outcome: CallOutcome::Missed,
                duration_ms: 0,
                video: false,
            },
        },
        "Receipt" => Request::Receipt { room, delivered: Some(1), read: Some(1) },
        "Typing" => Request::Typing { room, active: true },
        "Signal" => Request::Signal {
            room,
            to_user: if caller == Member { alice } else { bob },
            to_device: None,
            call: 1,
            signal: CallSignal::Inquire { video: false },
        },
        "CatchUp" => Request::CatchUp { room, after: 0, limit: 10 },
        "Ping" => Request::Ping { nonce: 1 },
        other => panic!("no request for {other}"),
    }
}

fn outcome<T>(result: Result<T, tidings_proto::ErrorInfo>) -> Outcome {
    match result {
        Ok(_) => Allowed,
        Err(e) => Denied(e.code),
    }
}

fn http_outcome<T>(result: Result<T, u16>) -> Outcome {
    match result {
        Ok(_) => Allowed,
        Err(401) => Denied(ErrorCode::Unauthenticated),
        Err(404) => Denied(ErrorCode::NotFound),
        Err(status) => panic!("unexpected HTTP status {status}"),
    }
}

/// Attempts `op` as `caller` and reports what happened.
async fn attempt(op: &str, w: &mut World, caller: Caller) -> Outcome {
    let (ws, http, media, room) = (w.ws.clone(), w.http.clone(), w.media, w.room);
    let user = w.alice.me().user.clone();
    let request = (!matches!(op, "media_upload" | "media_download" | "Join"))
        .then(|| request_for(op, w, caller));
    let (token, joined) = w.caller(op, caller);
    match op {
        "media_upload" => return http_outcome(upload(&http, &token, b"bytes".to_vec()).await),
        "media_download" => return http_outcome(download(&http, &token, media).await),
        "Join" => {
            let session = Session { user, device: DeviceId(0), token };
            let cursors = [RoomCursor { room, last_seq: 0 }];
            let (_c, joined) = Client::resume(&ws, &session, &cursors, &[]).await.unwrap();
            return outcome(joined);
        }
        _ => {}
    }
    let request = request.expect("a protocol request");
    let mut stray;
    let client = match joined {
        Some(client) => client,
        None => {
            // A session that cannot join: try, then send the operation anyway.
            let session = Session { user, device: DeviceId(0), token };
            let joined;
            (stray, joined) = Client::resume(&ws, &session, &[], &[]).await.unwrap();
            assert_eq!(outcome(joined), Denied(ErrorCode::Unauthenticated), "{caller:?} joined");
            &mut stray
        }
    };
    let ephemeral = matches!(request, Request::Typing { .. } | Request::Signal { .. });
    if ephemeral {
        outcome(client.unanswered(request).await.unwrap())
    } else {
        outcome(client.request(request).await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_operation_succeeds_for_a_caller_it_should_not() {
    let generous = Rate { per_second: 1000.0, burst: 1000.0 };
    let server = TestServer::start_with(|c| {
        c.sign_in_rate = generous;
        c.send_rate = generous;
        c.typing_rate = generous;
    })
    .await
    .unwrap();
    let mut ops: Vec<&str> = tidings_proto::Request::KINDS.to_vec();
    ops.extend(HTTP_OPS);
    let (mut unauthorized_successes, mut mismatches, mut allowed) = (0, Vec::new(), 0);
    for (n, op) in ops.iter().enumerate() {
        let mut world = World::new(&server, &n.to_string()).await;
        for caller in CALLERS {
            let want = expected(op, caller);
            let got = attempt(op, &mut world, caller).await;
            if got == Allowed && want != Allowed {
                unauthorized_successes += 1;
            }
            if got == Allowed {
                allowed += 1;
            }
            if got != want {
                mismatches.push(format!("{op} as {caller:?}: expected {want:?}, got {got:?}"));
            }
        }
    }
    assert_eq!(unauthorized_successes, 0, "{mismatches:#?}");
    assert!(mismatches.is_empty(), "{mismatches:#?}");
    // The member (and public) rows really succeed: the table cannot pass by denying all.
    assert!(allowed >= ops.len(), "only {allowed} attempts succeeded");
}
