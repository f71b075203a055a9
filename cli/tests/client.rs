//! The client commands end to end: two profiles chat through a real `tidings serve`.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod common;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
};

use common::{exec, ok, serve};
use serde_json::Value;

#[test]
fn a_message_sent_offline_is_delivered_once_and_its_ticks_follow_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    let server = serve(&dir.path().join("server"));
    let signup = |p: &Path, name: &str| {
        let args = ["signup", "--server", &server.url, "--username", name, "--password-stdin"];
        let (code, lines) = exec(p, &args, "correct horse battery\n");
        assert_eq!(code, 0);
        assert_eq!(lines[0]["username"], name);
    };
    signup(&alice, "alice");
    signup(&bob, "bob");

    let room =
        ok(&alice, &["create-room", "--member", "bob"])[0]["room"].as_str().unwrap().to_owned();
    // Queued at once, before any sync: pending.
    let sent = ok(&alice, &["send", &room, "hello bob"]);
    assert_eq!(sent[0]["state"], "pending");
    let request_id = sent[0]["request_id"].as_str().unwrap().to_owned();
    let mine = ok(&alice, &["messages", &room]);
    assert_eq!((mine[0]["state"].as_str(), mine[0]["seq"].is_null()), (Some("pending"), true));

    ok(&alice, &["sync"]);
    assert!(ok(&alice, &["outbox"]).is_empty(), "the outbox is empty after sync");
    let mine = ok(&alice, &["messages", &room]);
    assert_eq!(mine.last().unwrap()["state"], "sent");

    // Syncing twice delivers once.
    ok(&alice, &["sync"]);
    ok(&bob, &["sync"]);
    ok(&bob, &["sync"]);
    let rooms = ok(&bob, &["rooms"]);
    assert_eq!(
        (rooms.len(), rooms[0]["name"].as_str(), rooms[0]["unread"].as_u64()),
        (1, Some("alice"), Some(1))
    );
    let bob_room = rooms[0]["room"].as_str().unwrap().to_owned();
    let theirs = ok(&bob, &["messages", &bob_room]);
    let texts: Vec<&str> = theirs.iter().filter_map(|m| m["text"].as_str()).collect();
    assert_eq!(texts.iter().filter(|t| **t == "hello bob").count(), 1, "{texts:?}");
    let hello = theirs.iter().find(|m| m["text"] == "hello bob").unwrap();
    assert_eq!(
        (hello["sender"].as_str(), hello["request_id"].as_str()),
        (Some("alice"), Some(request_id.as_str()))
    );

    // Bob's sync acknowledged delivery: two ticks for alice.
    ok(&alice, &["sync"]);
    assert_eq!(ok(&alice, &["messages", &room]).last().unwrap()["state"], "delivered");
    // Bob reads: blue ticks for alice, no unread for bob.
    ok(&bob, &["read", &bob_room]);
    ok(&bob, &["sync"]);
    assert_eq!(ok(&bob, &["rooms"])[0]["unread"], 0);
    ok(&alice, &["sync"]);
    assert_eq!(ok(&alice, &["messages", &room]).last().unwrap()["state"], "read");
}

#[test]
fn scripts_get_exit_codes_and_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p");
    let (code, _) = exec(&profile, &["send", "1", "x"], "");
    assert_eq!(code, 1, "not signed in");
    let (code, _) = exec(&profile, &["messages", "not-a-room"], "");
    assert_eq!(code, 2, "bad input");
    let args = ["signup", "--server", "http://127.0.0.1:9", "--username", "x", "--password-stdin"];
    let (code, _) = exec(&profile, &args, "password123\n");
    assert_eq!(code, 3, "server unreachable");
}

#[test]
fn membership_commands_listen_and_a_second_device_of_the_same_account() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let p = |name: &str| dir.path().join(name);
    common::sign_in_all(
        dir.path(),
        &server.url,
        &[
            ("alice", "alice", "signup"),
            ("bob", "bob", "signup"),
            ("carol", "carol", "signup"),
            ("alice2", "alice", "login"),
        ],
    );
    // Carol has alice as a contact: alice's invitation is no request to her.
    let code = ok(&p("alice"), &["contact-code"])[0]["uri"].as_str().unwrap().to_owned();
    ok(&p("carol"), &["add-contact", &code]);
    let room = ok(&p("alice"), &["create-room", "--name", "climbing", "--member", "bob"])[0]
        ["room"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&p("alice"), &["sync"]);

    // Bob listens: events arrive as JSON lines while alice acts.
    let mut listener = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .args(["--json", "listen", "--profile"])
        .arg(p("bob"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(listener.stdout.take().unwrap()).lines();
    let wait_for = |lines: &mut std::io::Lines<BufReader<std::process::ChildStdout>>,
                    kind: &str| {
        for line in lines.by_ref() {
            let v: Value = serde_json::from_str(&line.unwrap()).unwrap();
            if v["kind"] == kind {
                return v;
            }
        }
        panic!("listen ended before a {kind} event");
    };
    assert_eq!(wait_for(&mut lines, "connection")["state"], "connecting");
    wait_for(&mut lines, "timeline_changed");

    ok(&p("alice"), &["typing", &room]);
    let typing = wait_for(&mut lines, "typing");
    assert_eq!((typing["user"].as_str(), typing["active"].as_bool()), (Some("alice"), Some(true)));
    ok(&p("alice"), &["invite", &room, "carol"]);
    ok(&p("alice"), &["rename", &room, "bouldering"]);
    ok(&p("alice"), &["send", &room, "see you at 6"]);
    ok(&p("alice"), &["sync"]);
    let live = wait_for(&mut lines, "timeline_changed");
    assert!(live["room"].is_number(), "{live}");
    listener.kill().unwrap();
    listener.wait().unwrap();

    // What bob's listener applied is in his profile: renamed, and the message.
    let rooms = ok(&p("bob"), &["rooms"]);
    assert_eq!(rooms[0]["name"], "bouldering");
    let bob_room = rooms[0]["room"].as_str().unwrap().to_owned();
    let texts: Vec<String> = ok(&p("bob"), &["messages", &bob_room])
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(texts.contains(&"see you at 6".to_owned()), "{texts:?}");
    assert!(texts.contains(&"carol joined".to_owned()), "{texts:?}");

    // Alice's second device sees her message as hers, and its outbox is its own (empty).
    ok(&p("alice2"), &["sync"]);
    let rooms2 = ok(&p("alice2"), &["rooms"]);
    let mine = ok(&p("alice2"), &["messages", rooms2[0]["room"].as_str().unwrap()]);
    let last = mine.last().unwrap();
    assert_eq!(
        (last["text"].as_str(), last["sender"].as_str()),
        (Some("see you at 6"), Some("alice"))
    );
    assert!(ok(&p("alice2"), &["outbox"]).is_empty());

    // Carol leaves; bob sees it.
    ok(&p("carol"), &["sync"]);
    let carol_room = ok(&p("carol"), &["rooms"])[0]["room"].as_str().unwrap().to_owned();
    ok(&p("carol"), &["leave", &carol_room]);
    ok(&p("carol"), &["sync"]);
    assert_eq!(ok(&p("carol"), &["rooms"])[0]["member"], false);
    ok(&p("bob"), &["sync"]);
    let last = ok(&p("bob"), &["messages", &bob_room]).last().unwrap().clone();
    assert_eq!(last["text"], "left");
}

#[test]
fn reading_on_one_device_clears_unread_on_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let p = |name: &str| dir.path().join(name);
    common::sign_in_all(
        dir.path(),
        &server.url,
        &[("alice", "alice", "signup"), ("bob", "bob", "signup"), ("alice2", "alice", "login")],
    );
    let room = ok(&p("bob"), &["create-room", "--member", "alice"])[0]["room"]
        .as_str()
        .unwrap()
        .to_owned();
    ok(&p("bob"), &["send", &room, "one"]);
    ok(&p("bob"), &["send", &room, "two"]);
    ok(&p("bob"), &["sync"]);
    ok(&p("alice"), &["sync"]);
    ok(&p("alice2"), &["sync"]);
    assert_eq!(ok(&p("alice2"), &["rooms"])[0]["unread"], 2);
    let alice_room = ok(&p("alice"), &["rooms"])[0]["room"].as_str().unwrap().to_owned();
    ok(&p("alice"), &["read", &alice_room]);
    ok(&p("alice"), &["sync"]);
    ok(&p("alice2"), &["sync"]);
    assert_eq!(ok(&p("alice2"), &["rooms"])[0]["unread"], 0, "read on the other device");
}

#[test]
fn a_listening_profile_sends_what_another_process_queued() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let p = |name: &str| dir.path().join(name);
    for name in ["alice", "bob"] {
        let args = ["signup", "--server", &server.url, "--username", name, "--password-stdin"];
        assert_eq!(exec(&p(name), &args, "correct horse battery\n").0, 0);
    }
    let room = ok(&p("alice"), &["create-room", "--member", "bob"])[0]["room"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut listener = common::command(&p("alice"))
        .arg("listen")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ok(&p("alice"), &["send", &room, "from a script"]);
    // No `sync` from alice: her listening process picks the message up on its own.
    let mut delivered = false;
    for _ in 0..50 {
        ok(&p("bob"), &["sync"]);
        if let Some(r) = ok(&p("bob"), &["rooms"]).first() {
            let msgs = ok(&p("bob"), &["messages", r["room"].as_str().unwrap()]);
            if msgs.iter().any(|m| m["text"] == "from a script") {
                delivered = true;
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    listener.kill().unwrap();
    listener.wait().unwrap();
    assert!(delivered, "the listening process never sent the queued message");
}
