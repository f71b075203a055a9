//! History for a linked device through the `tidings` commands and a real `tidings serve`:
//! `link-code --history` prints the archive's size, and the new device shows the past chats
//! after its first `sync`.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod common;

use std::path::Path;

use common::{exec, ok, serve};

fn signup(url: &str, profile: &Path, name: &str) {
    let args = ["signup", "--server", url, "--username", name, "--password-stdin"];
    assert_eq!(exec(profile, &args, "correct horse battery\n").0, 0, "signup {name}");
}

/// The texts of the messages the room's log holds, as `profile` shows them: without this
/// device's own security notices (no seq), which are not history — "bob is verified" on
/// the laptop that scanned his code is the laptop's verification, not sent in the archive.
fn texts(profile: &Path, room: &str) -> Vec<String> {
    ok(profile, &["messages", room])
        .iter()
        .filter(|m| m["seq"].is_u64())
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_device_linked_with_history_shows_the_past_chats_after_its_first_sync() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let (laptop, phone, tablet, bob) = (
        dir.path().join("laptop"),
        dir.path().join("phone"),
        dir.path().join("tablet"),
        dir.path().join("bob"),
    );
    signup(&server.url, &laptop, "alice");
    signup(&server.url, &bob, "bob");
    let contact = ok(&laptop, &["contact-code"])[0]["uri"].as_str().unwrap().to_owned();
    let bob_room = ok(&bob, &["add-contact", &contact])[0]["room"].as_str().unwrap().to_owned();
    ok(&bob, &["send", &bob_room, "before the phone, from bob"]);
    ok(&bob, &["sync"]);
    ok(&laptop, &["sync"]);
    let room = ok(&laptop, &["rooms"])[0]["room"].as_str().unwrap().to_owned();
    ok(&laptop, &["send", &room, "before the phone, from the laptop"]);
    ok(&laptop, &["sync"]);
    let past = texts(&laptop, &room);
    assert_eq!(past.len(), 3, "{past:?}");

    // The laptop's code with its history, and the size of what goes with it.
    let shown = ok(&laptop, &["link-code", "--history"]);
    let history = &shown[0]["history"];
    assert_eq!(history["messages"], 2, "{shown:?}");
    let bytes = history["bytes"].as_u64().unwrap();
    assert!(bytes > 0 && bytes < 4096, "{bytes}");
    let uri = shown[0]["uri"].as_str().unwrap();

    // The phone links (the archive waits), then its first sync imports it.
    let linked = ok(&phone, &["link", uri]);
    assert_eq!(linked[0]["history"].as_u64(), Some(bytes));
    ok(&phone, &["sync"]);
    let room = ok(&phone, &["rooms"])[0]["room"].as_str().unwrap().to_owned();
    assert_eq!(texts(&phone, &room), past);

    // Without --history, no archive, and the past stays sealed on the new device.
    let shown = ok(&laptop, &["link-code"]);
    assert!(shown[0]["history"].is_null());
    let linked = ok(&tablet, &["link", shown[0]["uri"].as_str().unwrap()]);
    assert!(linked[0]["history"].is_null());
    ok(&tablet, &["sync"]);
    let room = ok(&tablet, &["rooms"])[0]["room"].as_str().unwrap().to_owned();
    let sealed = texts(&tablet, &room);
    assert!(!sealed.contains(&"before the phone, from bob".to_owned()), "{sealed:?}");
}
