//! Consent: nobody lands in a room or rings a device without agreeing. A room or invitation
//! from someone who is not a contact is a request (readable, acceptable, declinable); a
//! blocked user cannot put anyone in a room, call them or write to them directly; forced
//! requests stop at a cap and lock nobody out.

use std::time::Duration;

use tidings_proto::{
    bounded::List, CallSignal, ErrorCode, EventContent, RefuseReason, Reply, Request, RoomId,
    RoomKind, ServerFrame, UserId,
};
use tidings_server::ratelimit::Rate;
use tidings_testkit::{request_id, text, Client, TestServer};

use crate::common::*;

/// A direct room of `from` with `to`.
async fn direct(from: &mut Client, to: UserId) -> Result<RoomId, ErrorCode> {
    let create = Request::CreateRoom {
        request: request_id(),
        kind: RoomKind::Direct,
        name: None,
        members: List::new(vec![to]).unwrap(),
    };
    match from.request(create).await.unwrap() {
        Ok(Reply::Logged { room, .. }) => Ok(room),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.code),
    }
}

fn inquire(room: RoomId, to_user: UserId) -> Request {
    Request::Signal {
        room,
        to_user,
        to_device: None,
        call: 5,
        signal: CallSignal::Inquire { video: false },
    }
}

/// Whether `caller`'s Inquire was refused as unavailable by the server, with no ring.
async fn refused_without_ring(caller: &mut Client, callee: &mut Client, room: RoomId) -> bool {
    let to = callee.me().user.id;
    caller.unanswered(inquire(room, to)).await.unwrap().unwrap();
    let refused = loop {
        match caller.next_push().await.unwrap() {
            ServerFrame::Signal { signal, .. } => {
                break signal == CallSignal::Refuse { reason: RefuseReason::Unavailable }
            }
            _ => continue,
        }
    };
    let rang = loop {
        match callee.next_push_within(Duration::from_millis(300)).await.unwrap() {
            Some(ServerFrame::Signal { .. }) => break true,
            Some(_) => continue,
            None => break false,
        }
    };
    refused && !rang
}

#[tokio::test]
async fn a_room_from_a_stranger_is_a_request_until_accepted() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut bob = Client::sign_up(&url, "bob").await.unwrap();
    let bob_id = bob.me().user.id;
    let room = direct(&mut alice, bob_id).await.unwrap();
    post(&mut alice, room, "hi, it's alice from the climbing club").await;
    // Bob sees who and the first message, marked as a request to him.
    let created = next_event(&mut bob).await;
    let EventContent::Created { requested, .. } = &created.content else { panic!() };
    assert_eq!(requested.to_vec(), vec![bob_id]);
    assert_eq!(
        text_of(&next_event(&mut bob).await.content),
        "hi, it's alice from the climbing club"
    );
    // Until he accepts he can read and leave, not write, and alice cannot ring him.
    let refused = bob.request(send(room, "hello?")).await.unwrap().unwrap_err();
    assert_eq!(refused.code, ErrorCode::Forbidden);
    assert!(refused_without_ring(&mut alice, &mut bob, room).await);
    // Accepting is an event everyone sees; then he writes and she rings.
    let accept = Request::Accept { request: request_id(), room };
    let Reply::Logged { seq, .. } = bob.request(accept.clone()).await.unwrap().unwrap() else {
        panic!()
    };
    // A resend is answered with the same seq.
    assert_eq!(bob.request(accept).await.unwrap().unwrap(), Reply::Logged { room, seq });
    let accepted = next_event(&mut alice).await;
    assert_eq!(accepted.content, EventContent::Accepted { user: bob_id });
    post(&mut bob, room, "hi alice").await;
    alice.unanswered(inquire(room, bob_id)).await.unwrap().unwrap();
    let rang = loop {
        match bob.next_push().await.unwrap() {
            ServerFrame::Signal { signal: CallSignal::Inquire { .. }, .. } => break true,
            ServerFrame::Signal { .. } => break false,
            _ => continue,
        }
    };
    assert!(rang);
    // Accepting twice: there is nothing left to accept.
    let again = bob.request(Request::Accept { request: request_id(), room }).await.unwrap();
    assert_eq!(again.unwrap_err().code, ErrorCode::InvalidInput);
}

#[tokio::test]
async fn an_invitation_from_a_stranger_is_a_request_and_from_a_contact_is_not() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut bob = Client::sign_up(&url, "bob").await.unwrap();
    let mut carol = Client::sign_up(&url, "carol").await.unwrap();
    let (bob_id, carol_id) = (bob.me().user.id, carol.me().user.id);
    befriend(&mut carol, &mut alice).await;
    let room = group(&mut alice, &[]).await;
    for user in [bob_id, carol_id] {
        let invite = Request::Invite { request: request_id(), room, user };
        alice.request(invite).await.unwrap().unwrap();
    }
    let mut requests = Vec::new();
    for e in alice.room_log(room).await.unwrap() {
        if let EventContent::Joined { user, request, .. } = e.content {
            requests.push((user.id, request));
        }
    }
    assert_eq!(requests, [(bob_id, true), (carol_id, false)]);
    // Carol writes at once; bob declines by leaving.
    post(&mut carol, room, "thanks for adding me").await;
    bob.request(Request::Leave { request: request_id(), room }).await.unwrap().unwrap();
    let page = bob.request(Request::CatchUp { room, after: 0, limit: 10 }).await.unwrap();
    assert_eq!(page.unwrap_err().code, ErrorCode::Forbidden);
}

#[tokio::test]
async fn a_blocked_user_cannot_add_invite_call_or_write_to_the_blocker() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut bob = Client::sign_up(&url, "bob").await.unwrap();
    let mut mallory = Client::sign_up(&url, "mallory").await.unwrap();
    let (bob_id, mallory_id) = (bob.me().user.id, mallory.me().user.id);
    // A direct room bob accepted before he knew better.
    let room = direct(&mut mallory, bob_id).await.unwrap();
    bob.request(Request::Accept { request: request_id(), room }).await.unwrap().unwrap();
    post(&mut mallory, room, "hi").await;
    bob.request(Request::Block { user: mallory_id }).await.unwrap().unwrap();
    bob.request(Request::Block { user: mallory_id }).await.unwrap().unwrap();
    let listed = bob.request(Request::Blocked {}).await.unwrap().unwrap();
    let Reply::Blocked { users } = listed else { panic!("{listed:?}") };
    assert_eq!(users.iter().map(|u| u.id).collect::<Vec<_>>(), [mallory_id]);
    // No new rooms, no invitations, no messages, no ringing.
    assert_eq!(direct(&mut mallory, bob_id).await, Err(ErrorCode::Forbidden));
    let group = group(&mut mallory, &[]).await;
    let invite = Request::Invite { request: request_id(), room: group, user: bob_id };
    assert_eq!(mallory.request(invite).await.unwrap().unwrap_err().code, ErrorCode::Forbidden);
    let write = mallory.request(send(room, "you can't ignore me")).await.unwrap();
    assert_eq!(write.unwrap_err().code, ErrorCode::Forbidden);
    assert!(refused_without_ring(&mut mallory, &mut bob, room).await);
    // Bob himself still writes in the room, and unblocking lets mallory ask again.
    post(&mut bob, room, "bye").await;
    bob.request(Request::Unblock { user: mallory_id }).await.unwrap().unwrap();
    assert!(direct(&mut mallory, bob_id).await.is_ok());
    let me = bob.request(Request::Block { user: bob_id }).await.unwrap();
    assert_eq!(me.unwrap_err().code, ErrorCode::InvalidInput);
}

#[tokio::test]
async fn a_contact_added_by_code_rings_at_once_and_a_pending_request_is_accepted_by_scanning() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut bob = Client::sign_up(&url, "bob").await.unwrap();
    let bob_id = bob.me().user.id;
    // Alice asked first; then they meet and bob scans her code: the same direct room, now
    // agreed (an Accepted event), and she rings him.
    let asked = direct(&mut alice, bob_id).await.unwrap();
    let room = befriend(&mut bob, &mut alice).await;
    assert_eq!(room, asked);
    let log = bob.room_log(room).await.unwrap();
    assert!(log.iter().any(|e| e.content == EventContent::Accepted { user: bob_id }), "{log:?}");
    post(&mut bob, room, "nice to meet you").await;
    alice.unanswered(inquire(room, bob_id)).await.unwrap().unwrap();
    loop {
        match bob.next_push().await.unwrap() {
            ServerFrame::Signal { signal, .. } => {
                assert!(matches!(signal, CallSignal::Inquire { .. }), "{signal:?}");
                break;
            }
            _ => continue,
        }
    }
}

#[tokio::test]
async fn forced_requests_stop_at_the_cap_and_lock_nobody_out() {
    let server = TestServer::start_with(|c| {
        c.max_requests_per_user = 5;
        c.create_room_rate = Rate { per_second: 1000.0, burst: 1000.0 };
        c.send_rate = Rate { per_second: 1000.0, burst: 1000.0 };
    })
    .await
    .unwrap();
    let url = server.ws_url();
    let mut mallory = Client::sign_up(&url, "mallory").await.unwrap();
    let mut victim = Client::sign_up(&url, "victim").await.unwrap();
    let mut friend = Client::sign_up(&url, "friend").await.unwrap();
    let mut stranger = Client::sign_up(&url, "stranger").await.unwrap();
    let victim_id = victim.me().user.id;
    let mut made = 0;
    let refused = loop {
        let create = Request::CreateRoom {
            request: request_id(),
            kind: RoomKind::Group,
            name: Some(text(&format!("spam {made}"))),
            members: List::new(vec![victim_id]).unwrap(),
        };
        match mallory.request(create).await.unwrap() {
            Ok(_) => made += 1,
            Err(e) => break e.code,
        }
        assert!(made <= 5, "more requests than the cap");
    };
    assert_eq!((made, refused), (5, ErrorCode::QuotaExceeded));
    // The victim still makes rooms, a contact still adds them, and their Join lists all.
    let own = group(&mut victim, &[]).await;
    let with_friend = befriend(&mut friend, &mut victim).await;
    let from_friend = group(&mut friend, &[victim_id]).await;
    post(&mut victim, from_friend, "still here").await;
    let session = victim.session.clone().unwrap();
    let (_, joined) = Client::resume(&url, &session, &[], &[]).await.unwrap();
    let Reply::Joined { rooms, .. } = joined.unwrap() else { panic!() };
    for room in [own, with_friend, from_friend] {
        assert!(rooms.iter().any(|h| h.room == room), "{room:?} missing");
    }
    assert_eq!(rooms.len(), 5 + 3);
    // Declining one frees a place for someone else's request.
    assert_eq!(direct(&mut stranger, victim_id).await, Err(ErrorCode::QuotaExceeded));
    let spam = rooms.iter().map(|h| h.room).find(|r| ![own, with_friend, from_friend].contains(r));
    let decline = Request::Leave { request: request_id(), room: spam.unwrap() };
    victim.request(decline).await.unwrap().unwrap();
    assert!(direct(&mut stranger, victim_id).await.is_ok());
}
