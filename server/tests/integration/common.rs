//! Helpers shared by the integration tests.

use tidings_proto::{
    bounded::List, Body, EventContent, MediaId, Reply, Request, RoomId, RoomKind, ServerFrame,
    Token, UserId,
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
        redacts: None,
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

/// `a` scans `b`'s contact code: they become contacts (rooms either makes with the other
/// are then no requests); returns their direct room.
pub async fn befriend(a: &mut Client, b: &mut Client) -> RoomId {
    let key = b.request(Request::ContactKey { reset: false, ttl_s: None }).await.unwrap();
    let Ok(Reply::ContactKey { key, .. }) = key else { panic!("{key:?}") };
    let user = b.me().user.username.clone();
    let add = Request::AddContact { user, key: tidings_proto::ContactKeyText(key.0) };
    match a.request(add).await.unwrap().unwrap() {
        Reply::Contact { contact } => contact.room,
        other => panic!("{other:?}"),
    }
}

/// Posts `text` and returns its seq.
pub async fn post(client: &mut Client, room: RoomId, text: &str) -> u64 {
    match client.request(send(room, text)).await.unwrap().unwrap() {
        Reply::Logged { seq, .. } => seq,
        other => panic!("unexpected {other:?}"),
    }
}

/// Posts `n` messages of 60 kB each (the log a slow reader is then made to page through),
/// waiting out the send rate limit.
pub async fn post_big(client: &mut Client, room: RoomId, n: usize) {
    let big = "x".repeat(60_000);
    let mut posts = 0;
    while posts < n {
        match client.request(send(room, &big)).await.unwrap() {
            Ok(_) => posts += 1,
            Err(e) if e.code == tidings_proto::ErrorCode::RateLimited => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e}"),
        }
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

/// Uploads `bytes` with `token`; the media id, or the HTTP status of a refusal.
pub async fn upload(
    http: &str,
    token: &Token,
    bytes: impl Into<reqwest::Body>,
) -> Result<MediaId, u16> {
    let response = reqwest::Client::new()
        .post(format!("{http}/v1/media"))
        .bearer_auth(token.0.as_str())
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status != 201 {
        return Err(status);
    }
    let text = response.text().await.unwrap();
    let id = text
        .split("\"media\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no media id in {text}"));
    Ok(MediaId(id))
}

/// Downloads media with `token`; the bytes, or the HTTP status of a refusal.
pub async fn download(http: &str, token: &Token, media: MediaId) -> Result<Vec<u8>, u16> {
    let response = reqwest::Client::new()
        .get(format!("{http}/v1/media/{}", media.0))
        .bearer_auth(token.0.as_str())
        .send()
        .await
        .unwrap();
    match response.status().as_u16() {
        200 => Ok(response.bytes().await.unwrap().to_vec()),
        status => Err(status),
    }
}
