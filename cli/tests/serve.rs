//! `tidings serve` as a process: it prints its URL, and every acknowledged message survives
//! kill -9 during a burst of sends.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use tidings_proto::{bounded::List, Body, EventContent, Reply, Request, RoomKind};
use tidings_testkit::{request_id, text, Client};

/// Starts `tidings serve` on a free port with `data`; returns the child and its ws URL.
fn serve(data: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tidings binary starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("reads the first line");
    let url = line.trim().rsplit(' ').next().expect("a URL on the first line").to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (child, url.replace("http://", "ws://") + "/v1/ws")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_kill_9_during_a_burst() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = serve(dir.path());
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
                let send =
                    Request::Send { request: request_id(), room, body, attachments: List::empty() };
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
    child.kill().expect("kill -9"); // SIGKILL on Unix
    child.wait().unwrap();
    let mut acked = Vec::new();
    for s in senders {
        acked.extend(s.await.unwrap());
    }
    assert!(acked.len() > 50, "the burst was too small to mean anything: {}", acked.len());

    let (mut child, url) = serve(dir.path());
    let (mut alice, _) = Client::resume(&url, &session, &[], &[]).await.unwrap();
    let log = alice.room_log(room).await.unwrap();
    let seqs: Vec<u64> = log.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "gap-free after restart");
    for (seq, text) in &acked {
        let content = &log[*seq as usize - 1].content;
        let EventContent::Message { body, .. } = content else { panic!("seq {seq}: {content:?}") };
        assert_eq!(body.as_bytes(), text.as_bytes(), "seq {seq}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
