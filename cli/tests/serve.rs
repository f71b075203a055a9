//! `tidings serve` as a process: it prints its URL, and every acknowledged message survives
//! kill -9 during a burst of sends.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod common;

use std::time::Duration;

use common::serve;

use tidings_proto::{bounded::List, Body, EventContent, Reply, Request, RoomKind};
use tidings_testkit::{request_id, text, Client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9_during_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path());
    let url = server.ws_url();
    let mut alice = Client::sign_up(&url, "alice").await.unwrap();
    let session = alice.me().clone();
    let create = Request::CreateRoom {
        request: request_id(),
        kind: RoomKind::Group,
        name: Some(text("crash")),
        members: List::empty(),
    };
    let Reply::Logged { room, .. } = alice.request(create).await.unwrap().unwrap() else {
        panic!()
    };
    drop(alice);

    // Four connections send as fast as they can; each records what was acknowledged.
    let mut senders = Vec::new();
    for w in 0..4 {
        let url = url.clone();
        let session = session.clone();
        senders.push(tokio::spawn(async move {
            let (mut c, _) = Client::resume(&url, &session, &[], &[]).await.unwrap();
            let mut acked = Vec::new();
            for i in 0.. {
                let body = Body::new(format!("w{w}-{i}").into_bytes()).unwrap();
                let send = Request::Send {
                    request: request_id(),
                    room,
                    body,
                    attachments: List::empty(),
                    redacts: None,
                };
                match c.request(send).await {
                    Ok(Ok(Reply::Logged { seq, .. })) => acked.push((seq, format!("w{w}-{i}"))),
                    Ok(Ok(other)) => panic!("unexpected {other:?}"),
                    // Rate limited: back off a little.
                    Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
                    // The server died.
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.child.kill().expect("kill -9"); // SIGKILL on Unix
    server.child.wait().unwrap();
    let mut acked = Vec::new();
    for s in senders {
        acked.extend(s.await.unwrap());
    }
    assert!(acked.len() > 50, "the burst was too small to mean anything: {}", acked.len());

    let restarted = serve(dir.path());
    let url = restarted.ws_url();
    let (mut alice, _) = Client::resume(&url, &session, &[], &[]).await.unwrap();
    let log = alice.room_log(room).await.unwrap();
    let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "gap-free after restart");
    for (seq, text) in &acked {
        let content = &log[*seq as usize - 1].content;
        let EventContent::Message { body, .. } = content else { panic!("seq {seq}: {content:?}") };
        assert_eq!(body.as_bytes(), text.as_bytes(), "seq {seq}");
    }
}
