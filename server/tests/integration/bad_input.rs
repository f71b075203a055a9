//! Bad input from the network: each gets a typed error or a clean close, memory stays
//! bounded, and other users keep working.

use std::time::Duration;

use serde::Serialize;
use tidings_proto::{codec, ErrorCode, Reply, Request, ServerFrame};
use tidings_testkit::{Client, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// Sends raw bytes and returns the error reply they earned.
async fn error_for(client: &mut Client, bytes: Vec<u8>) -> tidings_proto::ErrorInfo {
    client.send_raw(bytes).await.unwrap();
    match client.recv().await.unwrap() {
        ServerFrame::Reply { result: Err(e), .. } => e,
        other => panic!("expected an error reply, got {other:?}"),
    }
}

/// A client frame with any request body, for requests this build would not encode.
#[derive(Serialize)]
struct RawFrame<T> {
    id: u32,
    request: T,
}

fn raw<T: Serialize>(id: u32, request: T) -> Vec<u8> {
    rmp_serde::to_vec_named(&RawFrame { id, request }).unwrap()
}

#[tokio::test]
async fn malformed_frames_get_typed_errors_and_the_connection_survives_a_few() {
    let server = TestServer::start().await.unwrap();
    let mut c = Client::connect_hello(&server.ws_url()).await.unwrap();

    let e = error_for(&mut c, b"\xc1\xff garbage".to_vec()).await;
    assert_eq!(e.code, ErrorCode::Malformed);

    // A frame of the wrong type: a server frame sent by a client.
    let wrong = codec::encode_server(&ServerFrame::Closing {
        error: tidings_proto::ErrorInfo::new(ErrorCode::Internal, "x"),
    })
    .unwrap();
    assert_eq!(error_for(&mut c, wrong).await.code, ErrorCode::Malformed);

    // A request kind this server does not know: unknown_request, with the frame's id.
    #[derive(Serialize)]
    enum Future {
        Teleport { to: u32 },
    }
    c.send_raw(raw(77, Future::Teleport { to: 1 })).await.unwrap();
    let frame = c.recv().await.unwrap();
    let ServerFrame::Reply { id: 77, result: Err(e) } = frame else { panic!("{frame:?}") };
    assert_eq!(e.code, ErrorCode::UnknownRequest);

    // Invalid UTF-8 in a string: fixmap{"id":1,"request":{"LookupUser":{"username": <bad>}}}.
    let mut bad_utf8 = Vec::new();
    rmp::encode::write_map_len(&mut bad_utf8, 2).unwrap();
    rmp::encode::write_str(&mut bad_utf8, "id").unwrap();
    rmp::encode::write_uint(&mut bad_utf8, 5).unwrap();
    rmp::encode::write_str(&mut bad_utf8, "request").unwrap();
    rmp::encode::write_map_len(&mut bad_utf8, 1).unwrap();
    rmp::encode::write_str(&mut bad_utf8, "LookupUser").unwrap();
    rmp::encode::write_map_len(&mut bad_utf8, 1).unwrap();
    rmp::encode::write_str(&mut bad_utf8, "username").unwrap();
    rmp::encode::write_str_len(&mut bad_utf8, 4).unwrap();
    bad_utf8.extend_from_slice(&[0xff, 0xfe, 0x80, 0x41]);
    let e = error_for(&mut c, bad_utf8).await;
    assert_eq!(e.code, ErrorCode::Malformed);

    // A text message instead of a binary one.
    c.send_text("{\"hello\": 1}").await.unwrap();
    let frame = c.recv().await.unwrap();
    assert!(
        matches!(frame, ServerFrame::Reply { result: Err(ref e), .. } if e.code == ErrorCode::Malformed)
    );

    // The connection still works.
    let pong = c.request(Request::Ping { nonce: 9 }).await.unwrap().unwrap();
    assert_eq!(pong, Reply::Pong { nonce: 9 });

    // …until it has sent too many bad frames.
    for _ in 0..10 {
        if c.send_raw(b"\xc1".to_vec()).await.is_err() {
            break;
        }
    }
    let reason = c.closed().await.unwrap();
    assert_eq!(reason.map(|r| r.code), Some(ErrorCode::Malformed));
}

#[tokio::test]
async fn an_oversized_list_is_refused_while_decoding() {
    let server = TestServer::start().await.unwrap();
    let mut alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    #[derive(Serialize)]
    enum Req {
        CreateRoom {
            #[serde(with = "serde_bytes_16")]
            request: [u8; 16],
            kind: &'static str,
            name: Option<String>,
            members: Vec<i64>,
        },
    }
    mod serde_bytes_16 {
        pub fn serialize<S: serde::Serializer>(b: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b)
        }
    }
    let members: Vec<i64> = (0..10_000).collect();
    let frame = raw(3, Req::CreateRoom { request: [7; 16], kind: "group", name: None, members });
    let e = error_for(&mut alice, frame).await;
    assert_eq!(e.code, ErrorCode::Malformed);
    assert!(e.message.contains("256"), "says the limit: {e}");
}

/// Opens a websocket by hand so that we can write frame headers the client library refuses.
async fn raw_websocket(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let handshake = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(handshake.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        response.push(tcp.read_u8().await.unwrap());
    }
    assert!(response.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&response));
    tcp
}

#[tokio::test]
async fn a_frame_declaring_4_gib_is_refused_before_it_is_read() {
    let server = TestServer::start().await.unwrap();
    let mut bob = Client::sign_up(&server.ws_url(), "bob").await.unwrap();
    let mut tcp = raw_websocket(server.addr).await;
    // FIN + binary, masked, 64-bit length = 4 GiB, then a mask and a few bytes.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(4u64 << 30).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    header.extend_from_slice(&[0u8; 64]);
    tcp.write_all(&header).await.unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut received)).await;
    assert!(read.is_ok(), "the server closed the connection");
    let text = String::from_utf8_lossy(&received);
    assert!(text.contains("too_large"), "a Closing frame says why: {text:?}");
    // Others are unaffected.
    let pong = bob.request(Request::Ping { nonce: 1 }).await.unwrap().unwrap();
    assert_eq!(pong, Reply::Pong { nonce: 1 });
}

#[tokio::test]
async fn a_flood_of_sends_is_rate_limited_and_others_keep_working() {
    let server = TestServer::start().await.unwrap();
    let url = server.ws_url();
    let mut flooder = Client::sign_up(&url, "flooder").await.unwrap();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let room = group(&mut flooder, &[]).await;
    let own = group(&mut alice, &[]).await;
    let mut limited = 0;
    for i in 0..400 {
        match flooder.request(send(room, &format!("spam {i}"))).await.unwrap() {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e.code, ErrorCode::RateLimited);
                limited += 1;
            }
        }
    }
    assert!(limited > 100, "only {limited} of 400 sends were limited");
    assert_eq!(post(&mut alice, own, "still fine").await, 2);
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test]
async fn a_reader_that_does_not_keep_up_is_disconnected_not_buffered() {
    let server = TestServer::start_with(|c| c.outbound_queue = 16).await.unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut slow = Client::sign_in(&url, "alice").await.unwrap();
    let room = group(&mut alice, &[]).await;
    post_big(&mut alice, room, 100).await;
    let before = rss_bytes();
    // Ask for ~6 MB pages 400 times (≈2.4 GB if buffered) and never read.
    for id in 0..400u32 {
        let frame = tidings_proto::ClientFrame {
            id: 1000 + id,
            request: Request::CatchUp { room, after: 0, limit: 500 },
        };
        if slow.send_raw(codec::encode_client(&frame).unwrap()).await.is_err() {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grown = rss_bytes().saturating_sub(before);
    assert!(grown < 300 << 20, "memory grew by {} MiB", grown >> 20);
    // The slow connection is closed; the other one works.
    let mut closed = false;
    for _ in 0..2000 {
        if slow.recv().await.is_err() {
            closed = true;
            break;
        }
    }
    assert!(closed, "the slow reader was not disconnected");
    assert_eq!(
        alice.request(Request::Ping { nonce: 3 }).await.unwrap().unwrap(),
        Reply::Pong { nonce: 3 }
    );
    let metrics = reqwest_free_get(server.addr, "/metrics").await;
    assert!(metrics.contains("tidings_slow_disconnects_total 1"), "{metrics}");
}

/// A minimal HTTP GET over a TCP stream (keeps this module free of an HTTP client).
async fn reqwest_free_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn health_and_metrics_endpoints_answer() {
    let server = TestServer::start().await.unwrap();
    let _alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    let health = reqwest_free_get(server.addr, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"), "{health}");
    let metrics = reqwest_free_get(server.addr, "/metrics").await;
    for name in [
        "tidings_connections 1",
        "tidings_frames_received_total",
        "tidings_request_duration_seconds_count{kind=\"sign_up\"} 1",
    ] {
        assert!(metrics.contains(name), "missing {name} in {metrics}");
    }
}
