//! Crash safety of the client: `tidings sync` processes killed with SIGKILL at random moments
//! while three clients in three rooms send 500 messages. Nothing may be lost, nothing
//! duplicated, and every member must see the same order. The seed is printed; set
//! `CRASH_SEED` to replay a failure.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod common;

use std::{collections::BTreeMap, path::PathBuf, process::Child, process::Stdio, time::Duration};

use common::{command, ok_stdin, serve, serve_on};

use rand::{rngs::StdRng, Rng, SeedableRng};

#[test]
fn killed_syncs_lose_nothing_and_duplicate_nothing() {
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("CRASH_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let url = server.url.clone();

    let names = ["ann", "ben", "cat"];
    let profiles: Vec<PathBuf> = names.iter().map(|n| dir.path().join(n)).collect();
    for (p, n) in profiles.iter().zip(names) {
        let args = ["signup", "--server", &url, "--username", n, "--password-stdin"];
        ok_stdin(p, &args, "correct horse battery\n");
    }
    // Three rooms with all three members, one created by each client.
    let mut rooms = Vec::new();
    for (i, p) in profiles.iter().enumerate() {
        let others: Vec<&str> = names.iter().copied().filter(|n| *n != names[i]).collect();
        let mut args = vec!["create-room", "--name"];
        let name = format!("room-{i}");
        args.push(&name);
        for o in &others {
            args.extend(["--member", o]);
        }
        rooms.push(ok_stdin(p, &args, "")[0]["room"].as_str().unwrap().to_owned());
        ok_stdin(p, &["sync"], "");
    }
    for p in &profiles {
        ok_stdin(p, &["sync"], "");
    }

    // Each client sends to all three rooms while its syncs are killed at random moments.
    let per_client = [167, 167, 166];
    let handles: Vec<_> = profiles
        .iter()
        .cloned()
        .enumerate()
        .map(|(i, profile)| {
            let count = per_client[i];
            let mut rng = StdRng::seed_from_u64(seed + i as u64);
            std::thread::spawn(move || {
                let rooms_here = ok_stdin(&profile, &["rooms"], "");
                let ids: Vec<String> =
                    rooms_here.iter().map(|r| r["room"].as_str().unwrap().to_owned()).collect();
                let mut sent = Vec::new();
                let mut sync: Option<Child> = None;
                for n in 0..count {
                    let room = &ids[n % ids.len()];
                    let text = format!("{}-{n}", profile.file_name().unwrap().to_string_lossy());
                    ok_stdin(&profile, &["send", room, &text], "");
                    sent.push(text);
                    if rng.random_bool(0.15) {
                        if let Some(mut s) = sync.take() {
                            let _ = s.kill(); // SIGKILL
                            let _ = s.wait();
                        }
                        sync = Some(
                            command(&profile)
                                .arg("sync")
                                .stdout(Stdio::null())
                                .stderr(Stdio::null())
                                .spawn()
                                .unwrap(),
                        );
                    }
                    if rng.random_bool(0.1) {
                        std::thread::sleep(Duration::from_millis(rng.random_range(0..40)));
                    }
                }
                if let Some(mut s) = sync.take() {
                    std::thread::sleep(Duration::from_millis(rng.random_range(0..100)));
                    let _ = s.kill();
                    let _ = s.wait();
                }
                sent
            })
        })
        .collect();
    let sent: Vec<String> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    assert_eq!(sent.len(), 500);

    // Heal: sync everyone until the outboxes are empty and all have caught up.
    for _ in 0..3 {
        for p in &profiles {
            ok_stdin(p, &["sync", "--timeout", "60"], "");
        }
    }
    let mut logs: Vec<BTreeMap<String, Vec<(u64, String)>>> = Vec::new();
    for p in &profiles {
        assert!(ok_stdin(p, &["outbox"], "").is_empty(), "outbox of {} not empty", p.display());
        let mut by_room = BTreeMap::new();
        for r in ok_stdin(p, &["rooms"], "") {
            let name = r["name"].as_str().unwrap().to_owned();
            let id = r["room"].as_str().unwrap();
            let msgs = ok_stdin(p, &["messages", id, "--limit", "10000"], "");
            let log: Vec<(u64, String)> = msgs
                .iter()
                .filter(|m| m["text"].as_str().is_some_and(|t| t.contains('-') && !t.contains(' ')))
                .map(|m| {
                    (m["seq"].as_u64().expect("confirmed"), m["text"].as_str().unwrap().to_owned())
                })
                .collect();
            by_room.insert(name, log);
        }
        logs.push(by_room);
    }
    // Identical per-room order on every member.
    assert_eq!(logs[0], logs[1], "seed {seed}");
    assert_eq!(logs[1], logs[2], "seed {seed}");
    // Every message exactly once.
    let mut seen: Vec<String> = logs[0].values().flatten().map(|(_, t)| t.clone()).collect();
    let total = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), total, "duplicates (seed {seed})");
    let mut expected = sent.clone();
    expected.sort();
    assert_eq!(seen, expected, "lost messages (seed {seed})");
}

#[test]
fn the_outbox_delivers_the_rest_after_the_server_is_killed_mid_sync() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    // A fixed port, so that the restarted server is where the profiles expect it.
    let addr =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let url = format!("http://{addr}");
    let mut server = serve_on(&addr, &data);
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    for (p, n) in [(&alice, "alice"), (&bob, "bob")] {
        ok_stdin(
            p,
            &["signup", "--server", &url, "--username", n, "--password-stdin"],
            "correct horse battery\n",
        );
    }
    let room = ok_stdin(&alice, &["create-room", "--member", "bob"], "")[0]["room"]
        .as_str()
        .unwrap()
        .to_owned();
    let sent: Vec<String> = (0..150).map(|i| format!("m{i:03}")).collect();
    for text in &sent {
        ok_stdin(&alice, &["send", &room, text], "");
    }
    // Sync, and kill -9 the server while it is taking the burst.
    let mut sync =
        command(&alice).arg("sync").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let status = sync.wait().unwrap();
    assert!(!status.success(), "the sync cannot have finished: the server died under it");
    let left = ok_stdin(&alice, &["outbox"], "").len();
    println!("outbox items left after the crash: {left}");

    // Restart on the same data; the next sync delivers the rest, once.
    let _server = serve_on(&addr, &data);
    ok_stdin(&alice, &["sync", "--timeout", "60"], "");
    assert!(ok_stdin(&alice, &["outbox"], "").is_empty());
    ok_stdin(&bob, &["sync", "--timeout", "60"], "");
    let bob_room = ok_stdin(&bob, &["rooms"], "")[0]["room"].as_str().unwrap().to_owned();
    let got: Vec<String> = ok_stdin(&bob, &["messages", &bob_room, "--limit", "1000"], "")
        .iter()
        .filter_map(|m| m["text"].as_str().filter(|t| t.starts_with('m')).map(str::to_owned))
        .collect();
    assert_eq!(got, sent, "every message once, in the order sent");
}
