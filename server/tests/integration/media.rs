//! Media endpoints: the upload round trip, the upload limit (declared and streamed, leaving
//! nothing on disk), and who may download.

use std::time::{Duration, Instant};

use futures_util::stream;
use serde_json::json;
use tidings_proto::{
    bounded::List, ErrorCode, EventContent, MediaId, Reply, Request, RoomId, Token,
};
use tidings_testkit::{request_id, Client, TestServer};
use tokio::io::AsyncWriteExt;

use crate::common::*;

/// Names of the files in the media directory, finished uploads and partial ones alike.
fn media_files(server: &TestServer) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(server.data_dir().join("media"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `POST /v1/media`: the status and the JSON body.
async fn post_media(
    server: &TestServer,
    token: Option<&Token>,
    bytes: impl Into<reqwest::Body>,
) -> (u16, serde_json::Value) {
    let mut post = reqwest::Client::new().post(format!("{}/v1/media", server.http_url()));
    if let Some(token) = token {
        post = post.bearer_auth(token.0.as_str());
    }
    let response = post.body(bytes).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// A body of `chunks` chunks of `size` bytes, streamed without a declared length.
fn streamed(chunks: usize, size: usize) -> reqwest::Body {
    let chunks = stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(vec![7u8; size])));
    reqwest::Body::wrap_stream(chunks)
}

/// A Send of `text` with `attachments`.
fn send_with(room: RoomId, text: &str, attachments: Vec<MediaId>) -> Request {
    Request::Send {
        request: request_id(),
        room,
        body: body(text),
        attachments: List::new(attachments).unwrap(),
        redacts: None,
    }
}

#[tokio::test]
async fn an_upload_downloads_byte_for_byte() {
    let server = TestServer::start().await.unwrap();
    let alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (status, answer) = post_media(&server, Some(&alice.me().token), bytes.clone()).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["size"], json!(bytes.len()));
    let media = MediaId(answer["media"].as_i64().unwrap());
    let got = download(&server.http_url(), &alice.me().token, media).await.unwrap();
    assert_eq!(got, bytes);
    let files = media_files(&server);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(!files[0].ends_with(".part"), "{files:?}");
}

#[tokio::test]
async fn uploads_and_downloads_need_a_valid_session() {
    let server = TestServer::start().await.unwrap();
    let alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    let media = upload(&server.http_url(), &alice.me().token, b"photo".to_vec()).await.unwrap();
    let (status, answer) = post_media(&server, None, b"anonymous".to_vec()).await;
    assert_eq!((status, &answer["code"]), (401, &json!("unauthenticated")), "{answer}");
    let anonymous = reqwest::get(format!("{}/v1/media/{}", server.http_url(), media.0)).await;
    assert_eq!(anonymous.unwrap().status().as_u16(), 401);
    assert_eq!(media_files(&server).len(), 1, "the anonymous upload left a file");
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused_whether_declared_or_streamed_and_leaves_no_file() {
    let server = TestServer::start_with(|c| c.max_upload_bytes = 1024).await.unwrap();
    let alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    let token = Some(&alice.me().token);
    // Content-Length over the limit: refused before reading the body.
    let (status, answer) = post_media(&server, token, vec![0u8; 1025]).await;
    assert_eq!((status, &answer["code"]), (413, &json!("too_large")), "{answer}");
    // No length declared: refused once the bytes read pass the limit.
    let (status, answer) = post_media(&server, token, streamed(8, 512)).await;
    assert_eq!((status, &answer["code"]), (413, &json!("too_large")), "{answer}");
    let (status, answer) = post_media(&server, token, streamed(1, 1025)).await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(media_files(&server), Vec::<String>::new(), "a refused upload left a file");

    // Exactly at the limit is fine, declared or streamed.
    let (status, answer) = post_media(&server, token, vec![0u8; 1024]).await;
    assert_eq!((status, &answer["size"]), (201, &json!(1024)), "{answer}");
    let (status, answer) = post_media(&server, token, streamed(2, 512)).await;
    assert_eq!((status, &answer["size"]), (201, &json!(1024)), "{answer}");
    let files = media_files(&server);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.iter().all(|f| !f.ends_with(".part")), "{files:?}");
}

#[tokio::test]
async fn a_message_cannot_attach_media_its_sender_cannot_read() {
    let server = TestServer::start().await.unwrap();
    let (url, http) = (server.ws_url(), server.http_url());
    let alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut mallory = Client::sign_up(&url, "mallory").await.unwrap();
    let friend = Client::sign_up(&url, "friend").await.unwrap();
    let secret = upload(&http, &alice.me().token, b"private".to_vec()).await.unwrap();
    // Alice and mallory share no room; attaching alice's upload would hand it to mallory
    // and her friend.
    let room = group(&mut mallory, &[friend.me().user.id]).await;
    let err = mallory.request(send_with(room, "look", vec![secret])).await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound, "same answer as for media that does not exist");
    let missing = MediaId(secret.0 + 1000);
    let err = mallory.request(send_with(room, "look", vec![missing])).await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    // Nothing was logged, and the media stays unreadable to both.
    let log = mallory.room_log(room).await.unwrap();
    assert!(log.iter().all(|e| !matches!(e.content, EventContent::Message { .. })), "{log:?}");
    assert_eq!(download(&http, &mallory.me().token, secret).await, Err(404));
    assert_eq!(download(&http, &friend.me().token, secret).await, Err(404));
}

#[tokio::test]
async fn a_removed_member_can_no_longer_download_the_rooms_media() {
    let server = TestServer::start().await.unwrap();
    let (url, http) = (server.ws_url(), server.http_url());
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let bob = Client::sign_up(&url, "bob").await.unwrap();
    let room = group(&mut alice, &[bob.me().user.id]).await;
    let media = upload(&http, &alice.me().token, b"photo".to_vec()).await.unwrap();
    assert_eq!(download(&http, &bob.me().token, media).await, Err(404), "not posted yet");
    alice.request(send_with(room, "photo", vec![media])).await.unwrap().unwrap();
    assert_eq!(download(&http, &bob.me().token, media).await.unwrap(), b"photo");

    let remove = Request::RemoveMember { request: request_id(), room, user: bob.me().user.id };
    alice.request(remove).await.unwrap().unwrap();
    assert_eq!(download(&http, &bob.me().token, media).await, Err(404));
    // The same answer as for media that does not exist; the uploader still has it.
    let missing = MediaId(media.0 + 1000);
    assert_eq!(download(&http, &bob.me().token, missing).await, Err(404));
    assert_eq!(download(&http, &alice.me().token, media).await.unwrap(), b"photo");
}

#[tokio::test]
async fn an_upload_cut_off_midway_leaves_no_file() {
    let server = TestServer::start().await.unwrap();
    let alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/media HTTP/1.1\r\nHost: tidings\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 100000\r\n\r\n",
        alice.me().token.0.as_str()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&[1u8; 10_000]).await.unwrap();
    tcp.flush().await.unwrap();
    eventually("the upload starts", || !media_files(&server).is_empty()).await;
    drop(tcp);
    eventually("the partial file is gone", || media_files(&server).is_empty()).await;
}

/// Waits (up to five seconds) until `done` holds.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "waited in vain until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `method url` with alice's token and `headers`: the status and the JSON body.
async fn call(
    method: reqwest::Method,
    url: String,
    token: &Token,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().request(method, url).bearer_auth(token.0.as_str());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.body(body).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or(json!(null)))
}

#[tokio::test]
async fn a_resumable_upload_continues_at_the_servers_offset_and_becomes_media_once() {
    let server = TestServer::start_with(|c| c.max_upload_bytes = 100_000).await.unwrap();
    let http = server.http_url();
    let alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    let eve = Client::sign_up(&server.ws_url(), "eve").await.unwrap();
    let token = &alice.me().token;
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();

    let (status, answer) = call(
        reqwest::Method::POST,
        format!("{http}/v1/uploads"),
        token,
        &[("upload-length", "200000".into())],
        vec![],
    )
    .await;
    assert_eq!((status, &answer["code"]), (413, &json!("too_large")), "over the limit upfront");
    let (status, answer) = call(
        reqwest::Method::POST,
        format!("{http}/v1/uploads"),
        token,
        &[("upload-length", bytes.len().to_string())],
        vec![],
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let url = format!("{http}/v1/uploads/{}", answer["upload"].as_str().unwrap());
    let patch = |offset: usize, chunk: &[u8]| {
        let headers = vec![("upload-offset", offset.to_string())];
        let (url, chunk) = (url.clone(), chunk.to_vec());
        async move { call(reqwest::Method::PATCH, url, token, &headers, chunk).await }
    };
    let (status, answer) = patch(0, &bytes[..20_000]).await;
    assert_eq!((status, &answer["received"]), (200, &json!(20_000)), "{answer}");
    // A chunk at the wrong offset (a client that lost track) is refused and says where to go.
    let (status, answer) = patch(10_000, &bytes[10_000..30_000]).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("20000"), "{answer}");
    // Someone else's upload does not exist for them.
    let (status, _) = call(reqwest::Method::GET, url.clone(), &eve.me().token, &[], vec![]).await;
    assert_eq!(status, 404);
    let (status, answer) = call(reqwest::Method::GET, url.clone(), token, &[], vec![]).await;
    assert_eq!((status, &answer["received"]), (200, &json!(20_000)));
    // Too many bytes for the declared length.
    let mut long = bytes[20_000..].to_vec();
    long.push(0);
    let (status, _) = patch(20_000, &long).await;
    assert_eq!(status, 413);
    let (_, answer) = call(reqwest::Method::GET, url.clone(), token, &[], vec![]).await;
    let at = answer["received"].as_u64().unwrap() as usize;
    let (status, answer) = patch(at, &bytes[at..]).await;
    assert_eq!(status, 201, "{answer}");
    let media = MediaId(answer["media"].as_i64().unwrap());
    // Asking again (a lost answer) gives the same media.
    let (_, again) = call(reqwest::Method::GET, url.clone(), token, &[], vec![]).await;
    assert_eq!(again["media"], json!(media.0));
    assert_eq!(download(&http, token, media).await.unwrap(), bytes);
    assert!(media_files(&server).iter().all(|f| !f.ends_with(".part")));
}

#[tokio::test]
async fn a_download_resumes_from_a_range() {
    let server = TestServer::start().await.unwrap();
    let http = server.http_url();
    let alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
    let media = upload(&http, &alice.me().token, bytes.clone()).await.unwrap();
    let response = reqwest::Client::new()
        .get(format!("{http}/v1/media/{}", media.0))
        .bearer_auth(alice.me().token.0.as_str())
        .header("range", "bytes=6000-")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 206);
    assert_eq!(response.headers()["content-range"], "bytes 6000-9999/10000");
    assert_eq!(response.bytes().await.unwrap().to_vec(), bytes[6000..]);
}

#[tokio::test]
async fn an_abandoned_upload_is_forgotten_after_its_ttl_with_its_partial_bytes() {
    let server = TestServer::start_with(|c| c.upload_ttl = Duration::from_secs(2)).await.unwrap();
    let http = server.http_url();
    let alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    let token = &alice.me().token;
    let open = || {
        let url = format!("{http}/v1/uploads");
        let headers = vec![("upload-length", "100".to_owned())];
        async move { call(reqwest::Method::POST, url, token, &headers, vec![]).await }
    };
    let (_, answer) = open().await;
    let old = format!("{http}/v1/uploads/{}", answer["upload"].as_str().unwrap());
    let headers = [("upload-offset", "0".to_owned())];
    let (status, _) = call(reqwest::Method::PATCH, old.clone(), token, &headers, vec![1; 40]).await;
    assert_eq!(status, 200);
    assert_eq!(media_files(&server).len(), 1, "its partial bytes");
    // Within the TTL it is kept when another upload opens.
    open().await;
    assert_eq!(call(reqwest::Method::GET, old.clone(), token, &[], vec![]).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let (_, fresh) = open().await;
    assert_eq!(call(reqwest::Method::GET, old, token, &[], vec![]).await.0, 404, "forgotten");
    let fresh = format!("{}.part", fresh["upload"].as_str().unwrap());
    assert_eq!(media_files(&server), [fresh], "only the new upload's file is left");
}

#[tokio::test]
async fn a_deletion_for_everyone_drops_the_message_and_its_media_and_only_its_sender_deletes() {
    let server = TestServer::start_with(|c| {
        c.unreferenced_media_grace = Duration::from_millis(300);
        c.sweep_interval = Duration::from_millis(200);
    })
    .await
    .unwrap();
    let mut alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    let mut bob = Client::sign_up(&server.ws_url(), "bob").await.unwrap();
    let room = befriend(&mut alice, &mut bob).await;
    let http = server.http_url();
    let media = upload(&http, &alice.me().token, b"a photo to take back".to_vec()).await.unwrap();
    let photo = send_with(room, "a photo", vec![media]);
    let Request::Send { request: photo_request, .. } = photo.clone() else { unreachable!() };
    let Reply::Logged { seq, .. } = alice.request(photo).await.unwrap().unwrap() else {
        panic!("not logged")
    };
    let deleting = |redacts| Request::Send {
        request: request_id(),
        room,
        body: body("(sealed: a deletion)"),
        attachments: List::empty(),
        redacts: Some(redacts),
    };
    // Bob may not delete alice's message: refused, nothing logged, nothing dropped.
    let before = bob.room_log(room).await.unwrap().len();
    let err = bob.request(deleting(photo_request)).await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::Forbidden, "{err:?}");
    assert_eq!(bob.room_log(room).await.unwrap().len(), before);
    assert_eq!(download(&http, &bob.me().token, media).await.unwrap(), b"a photo to take back");

    // Alice may: the deletion is logged, and the message keeps its place with no content.
    alice.request(deleting(photo_request)).await.unwrap().unwrap();
    let log = bob.room_log(room).await.unwrap();
    assert_eq!(log.len(), before + 1);
    let dropped = log.iter().find(|e| e.seq == seq).unwrap();
    match &dropped.content {
        EventContent::Message { body, attachments } => {
            assert!(body.as_bytes().is_empty() && attachments.is_empty(), "{dropped:?}")
        }
        other => panic!("{other:?}"),
    }
    // Its media is no longer any message's: the sweep deletes it, row then file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while download(&http, &bob.me().token, media).await.is_ok() || !media_files(&server).is_empty()
    {
        assert!(Instant::now() < deadline, "the media is still kept: {:?}", media_files(&server));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A deletion naming a message not in the log (yet) logs and drops nothing else.
    alice.request(deleting(request_id())).await.unwrap().unwrap();
}
