//! What an outside attacker tries, against the real server on a loopback port: guessing a
//! member's password from many connections, holding sockets open, trickling uploads,
//! reading too slowly, flooding cheap requests. Each attack fails, and the people it was
//! aimed at, or who share the server, are not hurt.
//!
//! "Different addresses" are made with a trusted proxy: the server trusts 127.0.0.1's
//! `X-Forwarded-For`, as it would trust nginx in front of it.

use std::{net::IpAddr, time::Duration};

use tidings_proto::{
    bounded::Text, codec, ClientFrame, Credentials, ErrorCode, Password, Reply, Request,
    ServerFrame,
};
use tidings_server::{config::MetricsAt, ratelimit::Rate};
use tidings_testkit::{credentials, text, Client, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const ATTACKER: &str = "203.0.113.66";
const OWNER: &str = "198.51.100.7";

/// A connection forwarded for `from`, after Hello.
async fn from(server: &TestServer, from: &str) -> Client {
    let mut c = Client::connect_from(&server.ws_url(), ip(from)).await.unwrap();
    c.hello().await.unwrap();
    c
}

fn wrong_password(username: &str) -> Request {
    Request::SignIn(Credentials {
        username: text(username),
        password: Password(Text::new("not the password").unwrap()),
        device_name: text("guess"),
    })
}

#[tokio::test]
async fn guessing_a_password_from_one_address_neither_locks_out_the_owner_nor_stalls_sends() {
    let server =
        TestServer::start_with(|c| c.trusted_proxies = vec![ip("127.0.0.1")]).await.unwrap();
    let url = server.ws_url();
    let mut member = Client::sign_up(&url, "member").await.unwrap();
    Client::sign_up(&url, "alice").await.unwrap();
    let room = group(&mut member, &[]).await;

    // 500 sign-in attempts at once, on 50 connections from one address.
    let attack = (0..50).map(|_| {
        let server = &server;
        async move {
            let mut c = from(server, ATTACKER).await;
            let mut limited = 0;
            for _ in 0..10 {
                match c.request(wrong_password("alice")).await.unwrap() {
                    Err(e) if e.code == ErrorCode::RateLimited => limited += 1,
                    Err(e) => assert_eq!(e.code, ErrorCode::BadCredentials, "{e}"),
                    Ok(r) => panic!("signed in with a wrong password: {r:?}"),
                }
            }
            limited
        }
    });
    let sends = async {
        // Meanwhile a member keeps sending; every send is answered.
        for i in 0..20 {
            let seq = post(&mut member, room, &format!("still here {i}")).await;
            assert_eq!(seq, 2 + i);
        }
    };
    let (limited, ()) = tokio::join!(futures_util::future::join_all(attack), sends);
    let limited: u32 = limited.iter().sum();
    assert!(limited >= 450, "only {limited} of 500 guesses were refused before hashing");

    // The owner, from her own address, signs in with her password at once.
    let mut owner = from(&server, OWNER).await;
    let reply = owner.request(Request::SignIn(credentials("alice"))).await.unwrap();
    assert!(matches!(reply, Ok(Reply::Session { .. })), "{reply:?}");
    // The attacker's address stays refused, even with the right password.
    let mut attacker = from(&server, ATTACKER).await;
    let reply = attacker.request(Request::SignIn(credentials("alice"))).await.unwrap();
    assert_eq!(reply.unwrap_err().code, ErrorCode::RateLimited);
}

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let server = TestServer::start_with(|c| {
        c.trusted_proxies = vec![ip("127.0.0.1")];
        c.sign_up_rate_per_addr = Rate { per_second: 0.001, burst: 3.0 };
    })
    .await
    .unwrap();
    let mut results = Vec::new();
    for i in 0..4 {
        // A new connection each time: the per-connection limit is not what stops this.
        let mut c = from(&server, ATTACKER).await;
        let reply = c.request(Request::SignUp(credentials(&format!("bot{i}")))).await.unwrap();
        results.push(reply.map(|_| ()).map_err(|e| e.code));
    }
    assert_eq!(results, [Ok(()), Ok(()), Ok(()), Err(ErrorCode::RateLimited)]);
    let mut elsewhere = from(&server, OWNER).await;
    let reply = elsewhere.request(Request::SignUp(credentials("human"))).await.unwrap();
    assert!(reply.is_ok(), "{reply:?}");
}

#[tokio::test]
async fn a_socket_that_never_joins_is_closed_even_though_it_answers_pings() {
    let server = TestServer::start_with(|c| {
        c.join_timeout = Duration::from_millis(500);
        c.ping_interval = Duration::from_millis(100);
    })
    .await
    .unwrap();
    let mut silent = Client::connect_hello(&server.ws_url()).await.unwrap();
    // tungstenite answers the server's pings by itself while we wait.
    let frame = tokio::time::timeout(Duration::from_secs(5), silent.recv()).await.unwrap();
    match frame.unwrap() {
        ServerFrame::Closing { error } => assert_eq!(error.code, ErrorCode::Unauthenticated),
        other => panic!("expected Closing, got {other:?}"),
    }
    assert!(silent.recv().await.is_err(), "the socket is closed after the reason");
    // A client that joins in time stays.
    let mut member = Client::sign_up(&server.ws_url(), "member").await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let pong = member.request(Request::Ping { nonce: 5 }).await.unwrap().unwrap();
    assert_eq!(pong, Reply::Pong { nonce: 5 });
}

#[tokio::test]
async fn a_trickling_upload_is_cut_and_a_quick_one_goes_through() {
    let server = TestServer::start_with(|c| {
        c.upload_grace = Duration::from_millis(500);
        c.min_upload_bytes_per_s = 10_000;
    })
    .await
    .unwrap();
    let member = Client::sign_up(&server.ws_url(), "member").await.unwrap();
    let token = member.me().token.0.as_str().to_owned();
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/media HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 100000\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    // 100 bytes every 100 ms: 1 kB/s, a tenth of the minimum.
    let cut = tokio::time::timeout(Duration::from_secs(10), async {
        let mut answer = Vec::new();
        loop {
            if tcp.write_all(&[b'x'; 100]).await.is_err() {
                break;
            }
            let mut buf = [0u8; 512];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(100), tcp.read(&mut buf)).await
            {
                answer.extend_from_slice(&buf[..n]);
                if n == 0 || answer.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .expect("a trickling upload held its connection for 10 s");
    assert!(cut.is_empty() || cut.starts_with("HTTP/1.1 4"), "{cut}");
    // Nothing half-written is left behind.
    let parts = std::fs::read_dir(server.data_dir().join("media"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "part"))
        .count();
    assert_eq!(parts, 0);
    // At full speed the same upload is taken.
    let http = reqwest::Client::new();
    let ok = http
        .post(format!("{}/v1/media", server.http_url()))
        .bearer_auth(&token)
        .body(vec![b'x'; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 201);
}

#[tokio::test]
async fn a_reader_that_falls_behind_by_bytes_gets_closing_too_slow_as_its_last_frame() {
    // Plenty of frames allowed: the byte bound is what stops it.
    let server = TestServer::start_with(|c| {
        c.outbound_queue = 4096;
        c.outbound_bytes = 1 << 20;
    })
    .await
    .unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut slow = Client::sign_in(&url, "alice").await.unwrap();
    let room = group(&mut alice, &[]).await;
    post_big(&mut alice, room, 40).await;
    // ~2.4 MB pages, pipelined, not read.
    for id in 0..50u32 {
        let frame =
            ClientFrame { id: 1000 + id, request: Request::CatchUp { room, after: 0, limit: 500 } };
        if slow.send_raw(codec::encode_client(&frame).unwrap()).await.is_err() {
            break;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Now it reads: whatever was already in the socket, then the reason, then the end.
    let mut last = None;
    while let Ok(frame) = slow.recv().await {
        last = Some(frame);
    }
    match last {
        Some(ServerFrame::Closing { error }) => assert_eq!(error.code, ErrorCode::TooSlow),
        other => panic!("the last frame was not Closing{{too_slow}}: {other:?}"),
    }
    assert_eq!(
        alice.request(Request::Ping { nonce: 1 }).await.unwrap().unwrap(),
        Reply::Pong { nonce: 1 },
        "the fast connection is unaffected"
    );
}

#[tokio::test]
async fn cheap_requests_are_rate_limited_and_rooms_per_user_across_connections() {
    let server = TestServer::start_with(|c| {
        c.lookup_rate = Rate { per_second: 0.001, burst: 5.0 };
        c.create_room_rate = Rate { per_second: 0.001, burst: 3.0 };
    })
    .await
    .unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    Client::sign_up(&url, "bob").await.unwrap();
    let mut codes = Vec::new();
    for _ in 0..6 {
        let reply = alice.request(Request::LookupUser { username: text("bob") }).await.unwrap();
        codes.push(reply.err().map(|e| e.code));
    }
    assert_eq!(codes, [None, None, None, None, None, Some(ErrorCode::RateLimited)]);
    for _ in 0..3 {
        group(&mut alice, &[]).await;
    }
    // A second connection of the same user shares the user's room budget.
    let mut again = Client::sign_in(&url, "alice").await.unwrap();
    let reply = again
        .request(Request::CreateRoom {
            request: tidings_testkit::request_id(),
            kind: tidings_proto::RoomKind::Group,
            name: Some(text("one too many")),
            members: tidings_proto::bounded::List::empty(),
        })
        .await
        .unwrap();
    assert_eq!(reply.unwrap_err().code, ErrorCode::RateLimited);
}

#[tokio::test]
async fn connections_are_capped_per_address_and_per_device() {
    let server = TestServer::start_with(|c| {
        c.max_connections_per_addr = 3;
        c.max_connections_per_device = 2;
    })
    .await
    .unwrap();
    let url = server.ws_url();
    let first = Client::sign_up(&url, "alice").await.unwrap();
    let session = first.session.clone().unwrap();
    let (second, joined) = Client::resume(&url, &session, &[], &[]).await.unwrap();
    assert!(joined.is_ok());
    // Two joined connections of this device: a third is refused.
    let (third, joined) = Client::resume(&url, &session, &[], &[]).await.unwrap();
    assert_eq!(joined.unwrap_err().code, ErrorCode::RateLimited);
    // Three sockets from 127.0.0.1 are open: a fourth is closed at once.
    let mut fourth = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), fourth.read(&mut buf)).await.unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // Closing one makes room again.
    drop((third, second));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = reqwest::get(format!("{}/healthz", server.http_url())).await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    drop(first);
}

#[tokio::test]
async fn metrics_can_be_moved_off_the_public_listener_or_turned_off() {
    let off = TestServer::start_with(|c| c.metrics = MetricsAt::Off).await.unwrap();
    let status = reqwest::get(format!("{}/metrics", off.http_url())).await.unwrap().status();
    assert_eq!(status.as_u16(), 404);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let apart = TestServer::start_with(|c| c.metrics = MetricsAt::Separate(port)).await.unwrap();
    let main = reqwest::get(format!("{}/metrics", apart.http_url())).await.unwrap().status();
    assert_eq!(main.as_u16(), 404);
    let own = reqwest::get(format!("http://{port}/metrics")).await.unwrap();
    assert_eq!(own.status().as_u16(), 200);
    assert!(own.text().await.unwrap().contains("tidings_connections"));
}

#[tokio::test]
async fn rooms_forced_on_a_user_stop_at_the_cap_and_their_join_still_lists_every_room() {
    let server = TestServer::start_with(|c| {
        c.max_rooms_per_user = 20;
        c.create_room_rate = Rate { per_second: 1000.0, burst: 1000.0 };
        c.send_rate = Rate { per_second: 1000.0, burst: 1000.0 };
    })
    .await
    .unwrap();
    let url = server.ws_url();
    let mut attacker = Client::sign_up(&url, "mallory").await.unwrap();
    let victim = Client::sign_up(&url, "victim").await.unwrap();
    let victim_id = victim.me().user.id;
    let session = victim.session.clone().unwrap();
    drop(victim);
    let mut refused = None;
    for i in 0..30 {
        let create = Request::CreateRoom {
            request: tidings_testkit::request_id(),
            kind: tidings_proto::RoomKind::Group,
            name: Some(text(&format!("spam {i}"))),
            members: tidings_proto::bounded::List::new(vec![victim_id]).unwrap(),
        };
        if let Err(e) = attacker.request(create).await.unwrap() {
            refused = Some((i, e.code));
            break;
        }
    }
    // Mallory is in every room too: the cap of whoever reaches it first stops it.
    assert_eq!(refused.map(|(_, code)| code), Some(ErrorCode::QuotaExceeded), "{refused:?}");
    let (_, joined) = Client::resume(&url, &session, &[], &[]).await.unwrap();
    match joined.unwrap() {
        Reply::Joined { rooms, .. } => assert!(rooms.len() <= 20 && !rooms.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_lifetime_however_often_it_joins() {
    let server = TestServer::start_with(|c| {
        c.session_ttl = Duration::from_secs(60);
        c.session_max_age = Duration::from_millis(1500);
    })
    .await
    .unwrap();
    let url = server.ws_url();
    let session = Client::sign_up(&url, "alice").await.unwrap().session.unwrap();
    let started = std::time::Instant::now();
    // Joining keeps it alive (each Join would slide a plain TTL forward)…
    while started.elapsed() < Duration::from_millis(1000) {
        let (_, joined) = Client::resume(&url, &session, &[], &[]).await.unwrap();
        assert!(joined.is_ok(), "{joined:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // …but not past its lifetime.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, joined) = Client::resume(&url, &session, &[], &[]).await.unwrap();
    assert_eq!(joined.unwrap_err().code, ErrorCode::Unauthenticated);
}

/// `POST /v1/media` of `bytes` bytes as `token`; the status and the error code if any.
async fn upload_status(server: &TestServer, token: &str, bytes: usize) -> (u16, Option<String>) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/media", server.http_url()))
        .bearer_auth(token)
        .body(vec![b'x'; bytes])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["code"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn a_user_over_quota_gets_quota_exceeded_and_others_are_unaffected() {
    let server = TestServer::start_with(|c| {
        c.quota_bytes = 1000;
        c.quota_files = 3;
        c.max_open_uploads = 2;
    })
    .await
    .unwrap();
    let url = server.ws_url();
    let full = Client::sign_up(&url, "hoarder").await.unwrap();
    let other = Client::sign_up(&url, "neighbour").await.unwrap();
    let (full, other) =
        (full.me().token.0.as_str().to_owned(), other.me().token.0.as_str().to_owned());
    assert_eq!(upload_status(&server, &full, 600).await.0, 201);
    let (status, code) = upload_status(&server, &full, 600).await;
    assert_eq!((status, code.as_deref()), (507, Some("quota_exceeded")));
    assert_eq!(upload_status(&server, &other, 600).await.0, 201, "the neighbour is unaffected");
    // Files count too.
    assert_eq!(upload_status(&server, &full, 10).await.0, 201);
    assert_eq!(upload_status(&server, &full, 10).await.0, 201);
    assert_eq!(upload_status(&server, &full, 10).await.1.as_deref(), Some("quota_exceeded"));
    // A resumable upload reserves its whole length up front, and open ones are capped.
    let open = |token: String, length: u64| {
        let url = format!("{}/v1/uploads", server.http_url());
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .header("upload-length", length.to_string())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (status, body["code"].as_str().map(str::to_owned))
        }
    };
    assert_eq!(open(other.clone(), 5000).await.1.as_deref(), Some("quota_exceeded"));
    assert_eq!(open(other.clone(), 10).await.0, 201);
    assert_eq!(open(other.clone(), 10).await.0, 201);
    assert_eq!(
        open(other.clone(), 10).await.1.as_deref(),
        Some("quota_exceeded"),
        "two open at most"
    );
    // Nothing refused was kept on disk.
    let files = std::fs::read_dir(server.data_dir().join("media")).unwrap().count();
    assert_eq!(files, 4 + 2, "4 media files and 2 open uploads");
}

#[tokio::test]
async fn media_no_message_lists_is_swept_and_sent_media_stays() {
    let server = TestServer::start_with(|c| {
        c.unreferenced_media_grace = Duration::from_millis(300);
        c.sweep_interval = Duration::from_millis(200);
    })
    .await
    .unwrap();
    let mut alice = Client::sign_up(&server.ws_url(), "alice").await.unwrap();
    let token = alice.me().token.0.as_str().to_owned();
    let http = server.http_url();
    let sent = upload(&http, &alice.me().token, b"a photo that was sent".to_vec()).await.unwrap();
    let stray = upload(&http, &alice.me().token, b"a photo never sent".to_vec()).await.unwrap();
    let room = group(&mut alice, &[]).await;
    let photo = Request::Send {
        request: tidings_testkit::request_id(),
        room,
        body: body("look"),
        attachments: tidings_proto::bounded::List::new(vec![sent]).unwrap(),
        redacts: None,
    };
    alice.request(photo).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let get = |id: tidings_proto::MediaId| {
        let (url, token) = (format!("{http}/v1/media/{}", id.0), token.clone());
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(get(sent).await, 200);
    assert_eq!(get(stray).await, 404);
    let files = std::fs::read_dir(server.data_dir().join("media")).unwrap().count();
    assert_eq!(files, 1, "the stray file is gone from disk");
}

#[tokio::test]
async fn a_nearly_full_disk_refuses_new_writes_and_keeps_serving_reads() {
    // A server that believes its disk is always nearly full.
    let data = tempfile::tempdir().unwrap();
    let mut normal = TestServer::start_in(data.path().to_owned(), |_| {}).await.unwrap();
    let mut alice = Client::sign_up(&normal.ws_url(), "alice").await.unwrap();
    let session = alice.session.clone().unwrap();
    let room = group(&mut alice, &[]).await;
    let said = send(room, "before");
    alice.request(said.clone()).await.unwrap().unwrap();
    drop(alice);
    normal.stop().await.unwrap();
    let full =
        TestServer::start_in(data.path().to_owned(), |c| c.min_free_disk = u64::MAX).await.unwrap();
    let url = full.ws_url();
    let (mut alice, joined) = Client::resume(&url, &session, &[], &[]).await.unwrap();
    assert!(joined.is_ok(), "Join works on a full disk: {joined:?}");
    // A new message is refused, transiently (the client's outbox keeps it).
    let refused = alice.request(send(room, "after")).await.unwrap().unwrap_err();
    assert_eq!(refused.code, ErrorCode::StorageFull);
    assert!(refused.code.is_transient());
    // A resend of what was stored is still answered as stored.
    assert!(matches!(alice.request(said).await.unwrap(), Ok(Reply::Logged { seq: 2, .. })));
    // Reading goes on.
    let page = alice.request(Request::CatchUp { room, after: 0, limit: 10 }).await.unwrap();
    assert!(matches!(page, Ok(Reply::Page { last_seq: 2, .. })), "{page:?}");
    // No new accounts, no uploads.
    let mut newcomer = Client::connect_hello(&url).await.unwrap();
    let signup = newcomer.request(Request::SignUp(credentials("bob"))).await.unwrap();
    assert_eq!(signup.unwrap_err().code, ErrorCode::StorageFull);
    let (status, code) = upload_status(&full, session.token.0.as_str(), 10).await;
    assert_eq!((status, code.as_deref()), (507, Some("storage_full")));
}

#[tokio::test]
async fn turn_credentials_are_issued_only_around_a_call_and_last_minutes() {
    let server = TestServer::start_with(|c| {
        c.turn_urls = vec!["turn:127.0.0.1:3478?transport=udp".into()];
        c.turn_secret = Some(tidings_server::config::Secret("shared with coturn".into()));
    })
    .await
    .unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let mut bob = Client::sign_up(&url, "bob").await.unwrap();
    let mut eve = Client::sign_up(&url, "eve").await.unwrap();
    let bob_id = bob.me().user.id;
    let turn_ttl = |reply: Reply| match reply {
        Reply::IceServers { servers, ttl_s } => {
            let turn =
                servers.iter().any(|s| s.urls.iter().any(|u| u.as_str().starts_with("turn:")));
            turn.then_some(ttl_s)
        }
        other => panic!("{other:?}"),
    };
    // Signed in but in no call: a free relay for nobody.
    for c in [&mut alice, &mut bob, &mut eve] {
        let reply = c.request(Request::IceServers {}).await.unwrap().unwrap();
        assert_eq!(turn_ttl(reply), None);
    }
    // Alice rings bob: both ends get credentials, for minutes; eve still gets none.
    let room = group(&mut alice, &[bob_id]).await;
    bob.request(Request::Accept { request: tidings_testkit::request_id(), room })
        .await
        .unwrap()
        .unwrap();
    let inquire = Request::Signal {
        room,
        to_user: bob_id,
        to_device: None,
        call: 3,
        signal: tidings_proto::CallSignal::Inquire { video: false },
    };
    alice.unanswered(inquire).await.unwrap().unwrap();
    for c in [&mut alice, &mut bob] {
        let reply = c.request(Request::IceServers {}).await.unwrap().unwrap();
        let ttl = turn_ttl(reply).expect("TURN credentials during a call");
        assert!((60..=15 * 60).contains(&ttl), "{ttl} s");
    }
    let reply = eve.request(Request::IceServers {}).await.unwrap().unwrap();
    assert_eq!(turn_ttl(reply), None);
}

#[tokio::test]
async fn every_session_is_listed_a_page_at_a_time() {
    let server = TestServer::start_with(|c| {
        c.sign_in_rate = Rate { per_second: 1000.0, burst: 1000.0 };
        c.sign_in_rate_per_addr = Rate { per_second: 1000.0, burst: 1000.0 };
        c.max_devices_per_user = 200;
    })
    .await
    .unwrap();
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let sessions = 104;
    for _ in 0..sessions {
        Client::sign_in(&url, "alice").await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = alice.request(Request::ListDevices { after }).await.unwrap().unwrap();
        let Reply::Devices { devices, next } = page else { panic!("{page:?}") };
        pages += 1;
        seen.extend(devices.iter().map(|d| (d.id, d.current)));
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(seen.len(), sessions + 1, "every session once");
    let ids: Vec<_> = seen.iter().map(|(id, _)| id.0).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "no session twice, in id order: {ids:?}");
    assert_eq!(seen.iter().filter(|(_, current)| *current).count(), 1);
}
