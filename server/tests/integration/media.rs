//! Media endpoints: upload limits, streaming to disk, and who may download.

use futures_util::stream;
use tidings_proto::{bounded::List, ErrorCode, Request};
use tidings_testkit::{request_id, Client, TestServer};

use crate::common::*;

/// Files in the media directory (finished uploads and partial ones).
fn media_files(server: &TestServer) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(server.data_dir().join("media"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn an_upload_downloads_byte_for_byte() {
    let server = TestServer::start().await.unwrap();
    let alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let media = upload(&server.http_url(), &alice.me().token, bytes.clone()).await.unwrap();
    let got = download(&server.http_url(), &alice.me().token, media).await.unwrap();
    assert_eq!(got, bytes);
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused_and_leaves_nothing_behind() {
    let server = TestServer::start_with(|c| c.max_upload_bytes = 1024).await.unwrap();
    let alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    let http = server.http_url();
    // Declared too large: refused before reading.
    assert_eq!(upload(&http, &alice.me().token, vec![0u8; 2048]).await, Err(413));
    // Streamed without a length: refused while reading.
    let chunks = stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![1u8; 512])));
    let streamed = reqwest::Body::wrap_stream(chunks);
    assert_eq!(upload(&http, &alice.me().token, streamed).await, Err(413));
    assert!(media_files(&server).is_empty(), "{:?}", media_files(&server));
    // At the limit is fine.
    assert!(upload(&http, &alice.me().token, vec![0u8; 1024]).await.is_ok());
    assert_eq!(media_files(&server).len(), 1);
}

#[tokio::test]
async fn a_message_cannot_reference_media_its_sender_cannot_read() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut mallory = Client::sign_up(&url, "mallory").await.unwrap();
    let secret = upload(&server.http_url(), &alice.me().token, b"private".to_vec()).await.unwrap();
    let room = group(&mut mallory, &[]).await;
    // Referencing it would make it readable to mallory's room: refused as unknown.
    let send = Request::Send {
        request: request_id(),
        room,
        body: body("look"),
        attachments: List::new(vec![secret]).unwrap(),
    };
    let err = mallory.request(send).await.unwrap().unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert_eq!(download(&server.http_url(), &mallory.me().token, secret).await, Err(404));
}

#[tokio::test]
async fn a_removed_member_can_no_longer_download_the_rooms_media() {
    let server = TestServer::start().await.unwrap();
    let (url, http) = (server.ws_url(), server.http_url());
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let bob = Client::sign_up(&url, "bob").await.unwrap();
    let room = group(&mut alice, &[bob.me().user.id]).await;
    let media = upload(&http, &alice.me().token, b"photo".to_vec()).await.unwrap();
    assert_eq!(download(&http, &bob.me().token, media).await, Err(404), "not referenced yet");
    let send = Request::Send {
        request: request_id(),
        room,
        body: body("photo"),
        attachments: List::new(vec![media]).unwrap(),
    };
    alice.request(send).await.unwrap().unwrap();
    assert_eq!(download(&http, &bob.me().token, media).await.unwrap(), b"photo");
    let remove = Request::RemoveMember { request: request_id(), room, user: bob.me().user.id };
    alice.request(remove).await.unwrap().unwrap();
    assert_eq!(download(&http, &bob.me().token, media).await, Err(404));
}
