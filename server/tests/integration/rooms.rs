//! Every room operation, live fan-out, catch-up, idempotency and concurrency.

use std::time::Duration;

use tidings_proto::{
    bounded::List, CallOutcome, CallRecord, CallSignal, ErrorCode, EventContent, RefuseReason,
    Reply, Request, RoomCursor, RoomKind, ServerFrame,
};
use tidings_testkit::{request_id, text, Client, TestServer};

use crate::common::*;

#[tokio::test]
async fn a_message_reaches_every_device_of_every_other_member_in_order() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut bob = Client::sign_up(&url, "bob").await.unwrap();
    let mut bob2 = Client::sign_in(&url, "bob").await.unwrap();
    let room = group(&mut alice, &[bob.me().user.id]).await;
    for b in [&mut bob, &mut bob2] {
        let created = next_event(b).await;
        assert_eq!((created.room, created.seq), (room, 1));
        assert!(matches!(created.content, EventContent::Created { kind: RoomKind::Group, .. }));
    }
    for i in 0..5 {
        assert_eq!(post(&mut alice, room, &format!("hello {i}")).await, 2 + i);
    }
    for b in [&mut bob, &mut bob2] {
        for i in 0..5 {
            let e = next_event(b).await;
            assert_eq!(e.seq, 2 + i);
            assert_eq!(e.sender, alice.me().user.id);
            assert_eq!(text_of(&e.content), format!("hello {i}"));
        }
    }
    // The sending connection does not get its own event back: it has the reply.
    assert!(alice.next_push_within(Duration::from_millis(200)).await.unwrap().is_none());
}

#[tokio::test]
async fn a_resent_request_id_gets_the_same_seq_and_no_second_event() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut bob = Client::sign_up(&url, "bob").await.unwrap();
    let room = group(&mut alice, &[bob.me().user.id]).await;
    next_event(&mut bob).await;
    let request = send(room, "only once");
    let first = alice.request(request.clone()).await.unwrap().unwrap();
    let again = alice.request(request.clone()).await.unwrap().unwrap();
    assert_eq!(first, Reply::Logged { room, seq: 2 });
    assert_eq!(again, first);
    // A resend on a new connection of the same device (after a reconnect) too.
    let (mut alice_again, _) = Client::resume(&url, alice.me(), &[], &[]).await.unwrap();
    assert_eq!(alice_again.request(request.clone()).await.unwrap().unwrap(), first);
    // Bob saw it once.
    assert_eq!(next_event(&mut bob).await.seq, 2);
    assert!(bob.next_push_within(Duration::from_millis(300)).await.unwrap().is_none());
    // The same id with different content is refused.
    let Request::Send { request: id, .. } = request else { unreachable!() };
    let reused = Request::Send {
        request: id,
        room,
        body: body("something else"),
        attachments: List::empty(),
        redacts: None,
    };
    let err = alice.request(reused).await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::RequestIdReused);
    // The log has exactly two events.
    let page = alice.request(Request::CatchUp { room, after: 0, limit: 100 }).await.unwrap();
    let Ok(Reply::Page { events, last_seq, .. }) = page else { panic!("{page:?}") };
    assert_eq!((events.len(), last_seq), (2, 2));
}

#[tokio::test]
async fn join_confirms_unconfirmed_request_ids_the_server_committed() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let room = group(&mut alice, &[]).await;
    let sent = send(room, "committed");
    let Request::Send { request: committed, .. } = sent.clone() else { unreachable!() };
    alice.request(sent).await.unwrap().unwrap();
    let never_sent = request_id();
    let (_c, joined) =
        Client::resume(&url, alice.me(), &[], &[committed, never_sent]).await.unwrap();
    let Ok(Reply::Joined { confirmed, .. }) = joined else { panic!("{joined:?}") };
    assert_eq!(confirmed.len(), 1);
    assert_eq!((confirmed[0].request, confirmed[0].room, confirmed[0].seq), (committed, room, 2));
}

#[tokio::test]
async fn a_client_that_was_offline_catches_up_in_pages() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let bob = Client::sign_up(&url, "bob").await.unwrap();
    let bob_session = bob.me().clone();
    drop(bob);
    let room = group(&mut alice, &[bob_session.user.id]).await;
    let quiet = group(&mut alice, &[bob_session.user.id]).await;
    for i in 0..30 {
        post(&mut alice, room, &format!("m{i}")).await;
    }
    // Bob knew `quiet` up to seq 1 and `room` not at all.
    let cursors = [RoomCursor { room: quiet, last_seq: 1 }];
    let (mut bob, joined) = Client::resume(&url, &bob_session, &cursors, &[]).await.unwrap();
    let Ok(Reply::Joined { rooms, left, .. }) = joined else { panic!("{joined:?}") };
    assert_eq!(rooms.iter().map(|h| (h.room, h.last_seq)).collect::<Vec<_>>(), [(room, 31)]);
    assert!(left.is_empty());
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = bob.request(Request::CatchUp { room, after, limit: 7 }).await.unwrap();
        let Ok(Reply::Page { events, last_seq, members, .. }) = page else { panic!("{page:?}") };
        assert_eq!(members.len(), 2);
        seen.extend(events.iter().map(|e| e.seq));
        after = events.last().map_or(after, |e| e.seq);
        if after >= last_seq {
            break;
        }
    }
    assert_eq!(seen, (1..=31).collect::<Vec<_>>(), "gap-free, in order, no duplicates");
}

#[tokio::test]
async fn two_clients_posting_at_once_get_gap_free_distinct_seqs() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut bob = Client::sign_up(&url, "bob").await.unwrap();
    // Contacts: the room is no request to bob, he writes at once.
    befriend(&mut bob, &mut alice).await;
    next_event(&mut alice).await;
    let room = group(&mut alice, &[bob.me().user.id]).await;
    next_event(&mut bob).await;
    let n = 100;
    let a = async {
        let mut seqs = Vec::new();
        for i in 0..n {
            seqs.push(post(&mut alice, room, &format!("a{i}")).await);
        }
        seqs
    };
    let b = async {
        let mut seqs = Vec::new();
        for i in 0..n {
            seqs.push(post(&mut bob, room, &format!("b{i}")).await);
        }
        seqs
    };
    let (sa, sb) = tokio::join!(a, b);
    assert!(sa.windows(2).all(|w| w[0] < w[1]) && sb.windows(2).all(|w| w[0] < w[1]));
    let mut all: Vec<u64> = sa.into_iter().chain(sb).collect();
    all.sort_unstable();
    assert_eq!(all, (2..2 + 2 * n).collect::<Vec<_>>());
    let seqs: Vec<u64> = alice.room_log(room).await.unwrap().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..2 + 2 * n).collect::<Vec<_>>());
}

#[tokio::test]
async fn membership_changes_are_in_the_log_and_reach_who_they_concern() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut bob = Client::sign_up(&url, "bob").await.unwrap();
    let mut carol = Client::sign_up(&url, "carol").await.unwrap();
    let (bob_id, carol_id) = (bob.me().user.id, carol.me().user.id);
    let room = group(&mut alice, &[bob_id]).await;
    next_event(&mut bob).await;

    let invite = Request::Invite { request: request_id(), room, user: carol_id };
    assert_eq!(alice.request(invite).await.unwrap().unwrap(), Reply::Logged { room, seq: 2 });
    for c in [&mut bob, &mut carol] {
        let e = next_event(c).await;
        assert!(matches!(e.content, EventContent::Joined { ref user, .. } if user.id == carol_id));
    }
    let rename = Request::Rename { request: request_id(), room, name: text("climbing") };
    alice.request(rename).await.unwrap().unwrap();
    for c in [&mut bob, &mut carol] {
        let e = next_event(c).await;
        assert!(
            matches!(e.content, EventContent::Renamed { ref name } if name.as_str() == "climbing")
        );
    }
    let remove = Request::RemoveMember { request: request_id(), room, user: carol_id };
    alice.request(remove).await.unwrap().unwrap();
    for c in [&mut bob, &mut carol] {
        let e = next_event(c).await;
        assert!(matches!(e.content, EventContent::Removed { user, .. } if user == carol_id));
    }
    // Carol no longer receives the room's messages and cannot post.
    post(&mut alice, room, "after carol").await;
    assert_eq!(text_of(&next_event(&mut bob).await.content), "after carol");
    assert!(carol.next_push_within(Duration::from_millis(300)).await.unwrap().is_none());
    let err = carol.request(send(room, "let me in")).await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden);

    let leave = Request::Leave { request: request_id(), room };
    assert_eq!(bob.request(leave).await.unwrap().unwrap(), Reply::Logged { room, seq: 6 });
    let e = next_event(&mut alice).await;
    assert!(matches!(e.content, EventContent::Left { user } if user == bob_id));
    // A rejoining client learns it left.
    let cursors = [RoomCursor { room, last_seq: 6 }];
    let (_b, joined) = Client::resume(&url, bob.me(), &cursors, &[]).await.unwrap();
    let Ok(Reply::Joined { left, .. }) = joined else { panic!() };
    assert_eq!(&left[..], &[room]);
}

#[tokio::test]
async fn direct_rooms_have_exactly_two_members_and_no_name() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let bob = Client::sign_up(&url, "bob").await.unwrap();
    let carol = Client::sign_up(&url, "carol").await.unwrap();
    let direct = |members| Request::CreateRoom {
        request: request_id(),
        kind: RoomKind::Direct,
        name: None,
        members: List::new(members).unwrap(),
    };
    let three = direct(vec![bob.me().user.id, carol.me().user.id]);
    assert_eq!(alice.request(three).await.unwrap().unwrap_err().code, ErrorCode::InvalidInput);
    let Reply::Logged { room, .. } =
        alice.request(direct(vec![bob.me().user.id])).await.unwrap().unwrap()
    else {
        panic!()
    };
    let rename = Request::Rename { request: request_id(), room, name: text("x") };
    assert_eq!(alice.request(rename).await.unwrap().unwrap_err().code, ErrorCode::InvalidInput);
}

#[tokio::test]
async fn receipts_are_watermarks_that_only_move_forward() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut bob = Client::sign_up(&url, "bob").await.unwrap();
    let bob_id = bob.me().user.id;
    let room = group(&mut alice, &[bob_id]).await;
    next_event(&mut bob).await;
    for i in 0..3 {
        post(&mut alice, room, &format!("{i}")).await;
    }
    let receipt = |delivered, read| Request::Receipt { room, delivered, read };
    bob.request(receipt(Some(4), Some(2))).await.unwrap().unwrap();
    let push = loop {
        match alice.next_push().await.unwrap() {
            r @ ServerFrame::Receipt { .. } => break r,
            _ => continue,
        }
    };
    assert_eq!(push, ServerFrame::Receipt { room, user: bob_id, delivered: 4, read: 2 });
    // Backwards and beyond the head: clamped, never back.
    bob.request(receipt(Some(1), Some(99))).await.unwrap().unwrap();
    let page = alice.request(Request::CatchUp { room, after: 4, limit: 1 }).await.unwrap();
    let Ok(Reply::Page { members, .. }) = page else { panic!() };
    let b = members.iter().find(|m| m.user.id == bob_id).unwrap();
    assert_eq!((b.delivered, b.read), (4, 4));
}

#[tokio::test]
async fn typing_is_relayed_to_the_other_members_only() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut bob = Client::sign_up(&url, "bob").await.unwrap();
    let room = group(&mut alice, &[bob.me().user.id]).await;
    next_event(&mut bob).await;
    alice.unanswered(Request::Typing { room, active: true }).await.unwrap().unwrap();
    let push = bob.next_push().await.unwrap();
    assert_eq!(push, ServerFrame::Typing { room, user: alice.me().user.id, active: true });
    assert!(alice.next_push_within(Duration::from_millis(200)).await.unwrap().is_none());
}

#[tokio::test]
async fn typing_floods_are_rate_limited() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let room = group(&mut alice, &[]).await;
    let mut limited = None;
    for _ in 0..20 {
        if let Err(e) = alice.unanswered(Request::Typing { room, active: true }).await.unwrap() {
            limited = Some(e);
            break;
        }
    }
    let e = limited.expect("typing was never rate limited");
    assert_eq!(e.code, ErrorCode::RateLimited);
    assert!(e.retry_after_ms.is_some_and(|ms| ms > 0));
}

#[tokio::test]
async fn call_signals_are_relayed_and_an_offline_callee_is_unavailable_at_once() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut bob = Client::sign_up(&url, "bob").await.unwrap();
    let bob_id = bob.me().user.id;
    // Contacts: alice's call rings at once.
    befriend(&mut bob, &mut alice).await;
    next_event(&mut alice).await;
    let room = group(&mut alice, &[bob_id]).await;
    next_event(&mut bob).await;
    let signal =
        |to_user, signal| Request::Signal { room, to_user, to_device: None, call: 7, signal };
    alice.unanswered(signal(bob_id, CallSignal::Inquire { video: false })).await.unwrap().unwrap();
    let push = bob.next_push().await.unwrap();
    let ServerFrame::Signal {
        from_user,
        from_device,
        call: 7,
        signal: CallSignal::Inquire { .. },
        ..
    } = push
    else {
        panic!("{push:?}")
    };
    assert_eq!((from_user, from_device), (alice.me().user.id, alice.me().device));
    let grant = Request::Signal {
        room,
        to_user: from_user,
        to_device: Some(from_device),
        call: 7,
        signal: CallSignal::Grant {},
    };
    bob.unanswered(grant).await.unwrap().unwrap();
    assert!(matches!(
        alice.next_push().await.unwrap(),
        ServerFrame::Signal { call: 7, signal: CallSignal::Grant {}, .. }
    ));
    // Bob goes offline: an Inquire is refused as unavailable by the server, at once.
    drop(bob);
    tokio::time::sleep(Duration::from_millis(200)).await;
    alice.unanswered(signal(bob_id, CallSignal::Inquire { video: false })).await.unwrap().unwrap();
    let push = alice.next_push().await.unwrap();
    assert!(
        matches!(
            push,
            ServerFrame::Signal {
                call: 7,
                signal: CallSignal::Refuse { reason: RefuseReason::Unavailable },
                ..
            }
        ),
        "{push:?}"
    );
    // A call record is a room event.
    let record = CallRecord {
        call: 7,
        caller: alice.me().user.id,
        outcome: CallOutcome::Missed,
        duration_ms: 0,
        video: false,
    };
    let reply = alice
        .request(Request::RecordCall { request: request_id(), room, record: record.clone() })
        .await
        .unwrap()
        .unwrap();
    let Reply::Logged { seq, .. } = reply else { panic!() };
    let page = alice.request(Request::CatchUp { room, after: seq - 1, limit: 1 }).await.unwrap();
    let Ok(Reply::Page { events, .. }) = page else { panic!() };
    assert_eq!(events[0].content, EventContent::Call(record));
}

#[tokio::test]
async fn a_call_is_recorded_only_by_its_caller_and_only_with_an_outcome_the_server_knows() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut bob = Client::sign_up(&url, "bob").await.unwrap();
    let bob_id = bob.me().user.id;
    let room = group(&mut alice, &[bob_id]).await;
    next_event(&mut bob).await;
    let record = |caller, outcome| Request::RecordCall {
        request: request_id(),
        room,
        record: CallRecord { call: 3, caller, outcome, duration_ms: 0, video: false },
    };
    // Alice cannot put words in bob's mouth ("bob called and you declined").
    let forged = alice.request(record(bob_id, CallOutcome::Declined)).await.unwrap();
    assert_eq!(forged.unwrap_err().code, ErrorCode::Forbidden);
    let unknown = alice.request(record(alice.me().user.id, CallOutcome::Other)).await.unwrap();
    assert_eq!(unknown.unwrap_err().code, ErrorCode::InvalidInput);
    // Nothing was logged: the room still ends at its creation.
    let page = bob.request(Request::CatchUp { room, after: 0, limit: 10 }).await.unwrap();
    let Ok(Reply::Page { last_seq, .. }) = page else { panic!() };
    assert_eq!(last_seq, 1);
}

#[tokio::test]
async fn catching_up_after_a_seq_past_i64_max_returns_nothing_instead_of_the_whole_log() {
    let server = TestServer::start().await.unwrap();
    let mut alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    let room = group(&mut alice, &[]).await;
    post(&mut alice, room, "one").await;
    for after in [1u64 << 63, u64::MAX] {
        let page = alice.request(Request::CatchUp { room, after, limit: 10 }).await.unwrap();
        let Ok(Reply::Page { events, last_seq, .. }) = page else { panic!() };
        assert!(events.is_empty(), "after {after}: {events:?}");
        assert_eq!(last_seq, 2);
    }
}

#[tokio::test]
async fn a_hang_up_reaches_my_other_devices_and_nothing_else_goes_to_myself() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut phone = Client::sign_up(&url, "bob").await.unwrap();
    let mut laptop = Client::sign_in(&url, "bob").await.unwrap();
    let alice = Client::sign_up(&url, "alice").await.unwrap();
    let room = group(&mut phone, &[alice.me().user.id]).await;
    next_event(&mut laptop).await;
    let me = phone.me().user.id;
    let to_me = |signal| Request::Signal { room, to_user: me, to_device: None, call: 9, signal };
    // Answered on the phone: the laptop stops ringing; the phone does not hear itself.
    let elsewhere = CallSignal::Hangup { reason: tidings_proto::HangupReason::AnsweredElsewhere };
    phone.unanswered(to_me(elsewhere.clone())).await.unwrap().unwrap();
    let push = laptop.next_push().await.unwrap();
    assert!(
        matches!(&push, ServerFrame::Signal { call: 9, signal, .. } if *signal == elsewhere),
        "{push:?}"
    );
    // Calling myself is refused.
    let inquire = phone.unanswered(to_me(CallSignal::Inquire { video: false })).await.unwrap();
    assert_eq!(inquire.unwrap_err().code, ErrorCode::Forbidden);
    let echo = phone.next_push_within(Duration::from_millis(300)).await.unwrap();
    assert!(echo.is_none(), "nothing came back to the sender: {echo:?}");
}

#[tokio::test]
async fn accounts_devices_and_sign_out() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut alice2 = Client::sign_in(&url, "alice").await.unwrap();
    // Username taken, bad password, bad username.
    let mut anon = Client::connect_hello(&url).await.unwrap();
    let taken = anon.request(Request::SignUp(tidings_testkit::credentials("alice"))).await.unwrap();
    assert_eq!(taken.unwrap_err().code, ErrorCode::UsernameTaken);
    let mut wrong = tidings_testkit::credentials("alice");
    wrong.password = tidings_proto::Password(text("not her password"));
    let bad = anon.request(Request::SignIn(wrong)).await.unwrap();
    assert_eq!(bad.unwrap_err().code, ErrorCode::BadCredentials);
    let nobody =
        anon.request(Request::SignIn(tidings_testkit::credentials("nobody"))).await.unwrap();
    assert_eq!(
        nobody.unwrap_err().code,
        ErrorCode::BadCredentials,
        "same answer as a bad password"
    );
    let invalid =
        anon.request(Request::SignUp(tidings_testkit::credentials("No Caps"))).await.unwrap();
    assert_eq!(invalid.unwrap_err().code, ErrorCode::InvalidInput);

    // Lookup by exact username only.
    let found = alice.request(Request::LookupUser { username: text("alice") }).await.unwrap();
    assert!(matches!(found, Ok(Reply::User { ref user }) if user.id == alice.me().user.id));
    let partial = alice.request(Request::LookupUser { username: text("ali") }).await.unwrap();
    assert_eq!(partial.unwrap_err().code, ErrorCode::NotFound);

    let devices = alice.request(Request::ListDevices { after: None }).await.unwrap().unwrap();
    let Reply::Devices { devices, .. } = devices else { panic!() };
    assert_eq!(devices.len(), 2);
    assert_eq!(devices.iter().filter(|d| d.current).count(), 1);

    // Revoking alice2 kicks its connection and its token stops working; alice goes on.
    let revoke = Request::RevokeDevice { device: alice2.me().device };
    alice.request(revoke).await.unwrap().unwrap();
    let reason = alice2.closed().await.unwrap();
    assert_eq!(reason.map(|r| r.code), Some(ErrorCode::Unauthenticated));
    let (_c, joined) = Client::resume(&url, alice2.me(), &[], &[]).await.unwrap();
    assert_eq!(joined.unwrap_err().code, ErrorCode::Unauthenticated);
    assert!(alice.request(Request::Ping { nonce: 1 }).await.unwrap().is_ok());

    // Signing out ends this session only.
    let mut alice3 = Client::sign_in(&url, "alice").await.unwrap();
    assert_eq!(alice.request(Request::SignOut {}).await.unwrap().unwrap(), Reply::Done {});
    let (_c, joined) = Client::resume(&url, alice.me(), &[], &[]).await.unwrap();
    assert_eq!(joined.unwrap_err().code, ErrorCode::Unauthenticated);
    assert_eq!(
        alice3.request(Request::Ping { nonce: 2 }).await.unwrap().unwrap(),
        Reply::Pong { nonce: 2 }
    );
}

#[tokio::test]
async fn an_incompatible_client_gets_a_clear_error_and_the_connection_closes() {
    let server = TestServer::start().await.unwrap();
    let mut c = Client::connect(&server.ws_url()).await.unwrap();
    let hello = Request::Hello { min_version: 90, max_version: 99, client: text("future") };
    let err = c.request(hello).await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::IncompatibleVersion);
    let newest = tidings_proto::PROTOCOL_VERSION.to_string();
    assert!(err.message.contains(&newest), "says which versions the server speaks: {err}");
    c.closed().await.unwrap();
}

#[tokio::test]
async fn an_expired_session_cannot_join() {
    let server =
        TestServer::start_with(|c| c.session_ttl = Duration::from_millis(300)).await.unwrap();
    let url = server.ws_url();
    let alice = Client::sign_up(&url, "alice").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_c, joined) = Client::resume(&url, alice.me(), &[], &[]).await.unwrap();
    assert_eq!(joined.unwrap_err().code, ErrorCode::Unauthenticated);
}

#[tokio::test]
async fn a_dead_link_is_dropped_after_the_idle_timeout() {
    let server = TestServer::start_with(|c| {
        c.idle_timeout = Duration::from_millis(300);
        c.ping_interval = Duration::from_secs(3600);
    })
    .await
    .unwrap();
    let mut c = Client::connect_hello(&server.ws_url()).await.unwrap();
    // The client says nothing (and cannot answer pings it never reads): dropped.
    tokio::time::sleep(Duration::from_millis(800)).await;
    c.closed().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_connections_with_a_reason_and_keeps_the_data() {
    let mut server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let room = group(&mut alice, &[]).await;
    post(&mut alice, room, "kept").await;
    let (stopped, reason) = tokio::join!(server.stop(), alice.closed());
    stopped.unwrap();
    assert_eq!(reason.unwrap().map(|r| r.code), Some(ErrorCode::ShuttingDown));
    let data = server.data_dir().to_owned();
    let again = TestServer::start_in(data, |_| {}).await.unwrap();
    let (mut alice, _) = Client::resume(&again.ws_url(), alice.me(), &[], &[]).await.unwrap();
    let page = alice.request(Request::CatchUp { room, after: 1, limit: 10 }).await.unwrap();
    let Ok(Reply::Page { events, .. }) = page else { panic!() };
    assert_eq!(text_of(&events[0].content), "kept");
}

#[tokio::test]
async fn a_room_over_the_member_limit_is_invalid_input_not_a_server_fault() {
    let server = TestServer::start().await.unwrap();
    let mut alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    let others: Vec<tidings_proto::UserId> = (1000..1000
        + tidings_proto::limits::MAX_ROOM_MEMBERS as i64)
        .map(tidings_proto::UserId)
        .collect();
    let create = Request::CreateRoom {
        request: request_id(),
        kind: RoomKind::Group,
        name: None,
        members: List::new(others).unwrap(),
    };
    let err = alice.request(create).await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidInput, "{err}");
}

#[tokio::test]
async fn pages_of_large_messages_stay_within_the_frame_limit_and_miss_nothing() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let bob = Client::sign_up(&url, "bob").await.unwrap();
    let room = group(&mut alice, &[bob.me().user.id]).await;
    // Bodies near the 64 KiB limit (a photo message carries its thumbnail): 500 of them
    // would be 30 MB in one page.
    let big = "x".repeat(60 * 1024);
    for _ in 0..20 {
        post(&mut alice, room, &big).await;
    }
    let mut bob = bob;
    let (mut after, mut pages) = (0, 0);
    loop {
        let page = bob.request(Request::CatchUp { room, after, limit: 500 }).await.unwrap();
        let Ok(Reply::Page { events, last_seq, .. }) = page else { panic!("{page:?}") };
        let bytes = tidings_proto::codec::encode(&events.clone().into_vec()).unwrap().len();
        assert!(bytes < tidings_proto::limits::MAX_FRAME_BYTES, "a page of {bytes} bytes");
        assert!(!events.is_empty());
        assert_eq!(events[0].seq, after + 1, "no gap between pages");
        after = events.last().unwrap().seq;
        pages += 1;
        if after >= last_seq {
            break;
        }
    }
    assert_eq!((after, pages > 1), (21, true));
}
