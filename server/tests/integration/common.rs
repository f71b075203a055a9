//! Helpers shared by the integration tests.

use tidings_proto::{
    bounded::List, Body, EventContent, Reply, Request, RoomId, RoomKind, ServerFrame, UserId,
};
use tidings_testkit::{request_id, Client};

/// A message body from text.
pub fn body(text: &str) -> Body {
    Body::new(text.as_bytes().to_vec()).unwrap()
}

/// A Send request with a fresh request id.
pub fn send(room: RoomId, text: &str) -> Request {
    Request::Send {
        request: request_id(),
        room,
        body: body(text),
        attachments: List::empty(),
    }
}

/// Creates a group room of `creator` with `members`; returns its id.
pub async fn group(creator: &mut Client, members: &[UserId]) -> RoomId {
    let reply = creator
        .request(Request::CreateRoom {
            request: request_id(),
            kind: RoomKind::Group,
            name: Some(tidings_testkit::text("friends")),
            members: List::new(members.to_vec()).unwrap(),
        })
        .await
        .unwrap()
        .unwrap();
    match reply {
        Reply::Logged { room, seq: 1 } => room,
        other => panic!("unexpected {other:?}"),
    }
}

/// Posts `text` and returns its seq.
pub async fn post(client: &mut Client, room: RoomId, text: &str) -> u64 {
    match client.request(send(room, text)).await.unwrap().unwrap() {
        Reply::Logged { seq, .. } => seq,
        other => panic!("unexpected {other:?}"),
    }
}

/// Waits for the next room event push, skipping receipts and typing.
pub async fn next_event(client: &mut Client) -> tidings_proto::RoomEvent {
    loop {
        match client.next_push().await.unwrap() {
            ServerFrame::Event { event } => return event,
            ServerFrame::Receipt { .. } | ServerFrame::Typing { .. } => continue,
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

/// The text of a message event.
pub fn text_of(content: &EventContent) -> String {
    match content {
        EventContent::Message { body, .. } => String::from_utf8(body.as_bytes().to_vec()).unwrap(),
        other => panic!("not a message: {other:?}"),
    }
}
