//! Network faults between client and server, through a fault-injecting TCP proxy: cuts,
//! stalls (half-open links) and reconnect storms. Afterwards every message arrives exactly
//! once, in the same order for everyone, and no tick ever moves backwards.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod common;

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use common::{exec, ok, ok_stdin, serve};
use rand::{rngs::StdRng, Rng, SeedableRng};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// A TCP proxy that can cut every connection or stall all traffic.
struct Proxy {
    addr: String,
    stalled: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stalled = Arc::new(AtomicBool::new(false));
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (s, l) = (stalled.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                let Ok(up) = TcpStream::connect(&upstream).await else { continue };
                let (dr, dw) = down.into_split();
                let (ur, uw) = up.into_split();
                let mut l = l.lock().unwrap();
                l.push(tokio::spawn(pipe(dr, uw, s.clone())));
                l.push(tokio::spawn(pipe(ur, dw, s.clone())));
            }
        });
        Self { addr, stalled, links }
    }

    /// Drops every open connection (both directions, at once).
    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// Stops (or resumes) forwarding: connections stay open, nothing arrives.
    fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    stalled: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buf).await else { return };
        if n == 0 {
            return;
        }
        while stalled.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn rank(state: &str) -> u8 {
    match state {
        "pending" => 0,
        "sent" => 1,
        "delivered" => 2,
        "read" => 3,
        other => panic!("unexpected state {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cuts_stalls_and_reconnect_storms_lose_nothing_and_never_move_ticks_back() {
    let seed: u64 = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("FAULT_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let proxy = Proxy::start(server.url.trim_start_matches("http://").to_owned()).await;
    let url = format!("http://{}", proxy.addr);
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    for (p, n) in [(&alice, "alice"), (&bob, "bob")] {
        ok_stdin(
            p,
            &["signup", "--server", &url, "--username", n, "--password-stdin"],
            "correct horse battery\n",
        );
    }
    let room =
        ok(&alice, &["create-room", "--member", "bob"])[0]["room"].as_str().unwrap().to_owned();
    let mut sent = Vec::new();
    let mut best: BTreeMap<String, u8> = BTreeMap::new();
    for i in 0..30 {
        let text = format!("msg-{i:02}");
        ok(&alice, &["send", &room, &text]);
        sent.push(text);
        // A fault now and then, while syncs are running.
        let fault = rng.random_range(0..4);
        let (a, b) = (alice.clone(), bob.clone());
        let syncs = tokio::task::spawn_blocking(move || {
            let ra = exec(&a, &["sync", "--timeout", "3"], "").0;
            let rb = exec(&b, &["sync", "--timeout", "3"], "").0;
            (ra, rb)
        });
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..60))).await;
        match fault {
            0 => proxy.cut(),
            1 => {
                proxy.stall(true);
                tokio::time::sleep(Duration::from_millis(rng.random_range(100..1500))).await;
                proxy.stall(false);
            }
            2 => {
                // Reconnect storm: cut again and again.
                for _ in 0..5 {
                    proxy.cut();
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            }
            _ => {}
        }
        let (ra, rb) = syncs.await.unwrap();
        assert!([0, 3].contains(&ra) && [0, 3].contains(&rb), "sync exit codes {ra}, {rb}");
        if rng.random_bool(0.3) {
            let bob_rooms = ok(&bob, &["rooms"]);
            if let Some(r) = bob_rooms.first() {
                ok(&bob, &["read", r["room"].as_str().unwrap()]);
            }
        }
        // Ticks only move forward.
        for m in ok(&alice, &["messages", &room, "--limit", "100"]) {
            let Some(text) = m["text"].as_str().filter(|t| t.starts_with("msg-")) else { continue };
            let now = rank(m["state"].as_str().unwrap());
            let before = best.entry(text.to_owned()).or_insert(now);
            assert!(now >= *before, "{text} went back from {before} to {now} (seed {seed})");
            *before = now;
        }
    }
    // Healed: converge.
    proxy.stall(false);
    for p in [&alice, &bob, &alice] {
        ok(p, &["sync", "--timeout", "30"]);
    }
    assert!(ok(&alice, &["outbox"]).is_empty());
    let bob_room = ok(&bob, &["rooms"])[0]["room"].as_str().unwrap().to_owned();
    let texts = |p: &std::path::Path, room: &str| -> Vec<(u64, String)> {
        ok(p, &["messages", room, "--limit", "1000"])
            .iter()
            .filter(|m| m["text"].as_str().is_some_and(|t| t.starts_with("msg-")))
            .map(|m| (m["seq"].as_u64().unwrap(), m["text"].as_str().unwrap().to_owned()))
            .collect()
    };
    let at_bob = texts(&bob, &bob_room);
    assert_eq!(at_bob, texts(&alice, &room), "same order everywhere (seed {seed})");
    let got: Vec<String> = at_bob.into_iter().map(|(_, t)| t).collect();
    assert_eq!(got, sent, "every message once, in order (seed {seed})");
}

#[test]
fn sync_with_a_timeout_waits_for_a_server_that_is_not_up_yet() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let alice = dir.path().join("alice");
    let server = serve(&data);
    let addr = server.url.trim_start_matches("http://").to_owned();
    let args = ["signup", "--server", &server.url, "--username", "alice", "--password-stdin"];
    ok_stdin(&alice, &args, "correct horse battery\n");
    let room = ok(&alice, &["create-room", "--name", "notes", "--member", "alice"])[0]["room"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&alice, &["send", &room, "written while the server was down"]);
    drop(server);
    // The server comes back two seconds after the sync started: the sync waits for it.
    let started = std::time::Instant::now();
    let sync = std::thread::spawn({
        let alice = alice.clone();
        move || exec(&alice, &["sync", "--timeout", "30"], "").0
    });
    std::thread::sleep(Duration::from_secs(2));
    let _back = common::serve_on(&addr, &data);
    assert_eq!(sync.join().unwrap(), 0, "sync gave up instead of waiting");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(ok(&alice, &["outbox"]).is_empty());
    // With nobody to wait for, it still ends at its deadline, as a network failure.
    drop(_back);
    ok(&alice, &["send", &room, "and again"]);
    assert_eq!(exec(&alice, &["sync", "--timeout", "2"], "").0, 3);
}
