//! Requests end to end through a real `tidings serve`, from both sides: a room from someone
//! who is not a contact waits for an answer (accept by replying, decline, block), and a
//! blocked user's next room is refused.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod common;

use std::path::Path;

use common::{exec, ok, serve};
use serde_json::Value;

fn signup(url: &str, profile: &Path, name: &str) {
    let args = ["signup", "--server", url, "--username", name, "--password-stdin"];
    assert_eq!(exec(profile, &args, "correct horse battery\n").0, 0, "signup {name}");
}

/// `from` makes a direct room with `to`, writes `text` in it and syncs; returns the room.
fn ask(from: &Path, to: &str, text: &str) -> String {
    let room = ok(from, &["create-room", "--member", to])[0]["room"].as_str().unwrap().to_owned();
    ok(from, &["send", &room, text]);
    ok(from, &["sync"]);
    room
}

fn texts(profile: &Path, room: &str) -> Vec<String> {
    ok(profile, &["messages", room])
        .iter()
        .filter_map(|m| m["text"].as_str().map(str::to_owned))
        .collect()
}

fn room_of<'a>(rooms: &'a [Value], room: &str) -> &'a Value {
    rooms.iter().find(|r| r["room"] == room).unwrap()
}

#[test]
fn a_room_from_a_stranger_waits_to_be_accepted_declined_or_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let p = |name: &str| dir.path().join(name);
    let (alice, bob, mallory) = (p("alice"), p("bob"), p("mallory"));
    for (profile, name) in [(&alice, "alice"), (&bob, "bob"), (&mallory, "mallory")] {
        signup(&server.url, profile, name);
    }

    // Alice is not bob's contact: her room is a request, with who and what she wrote.
    let room = ask(&alice, "bob", "hi bob, it's alice from the climbing club");
    ok(&bob, &["sync"]);
    let requests = ok(&bob, &["requests"]);
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(
        (requests[0]["from"].as_str(), requests[0]["last_message"].as_str()),
        (Some("alice"), Some("hi bob, it's alice from the climbing club"))
    );
    let at_bob = requests[0]["room"].as_str().unwrap().to_owned();
    assert_eq!(room_of(&ok(&bob, &["rooms"]), &at_bob)["request_from"], "alice");
    // Replying accepts: the request is gone on his side, and alice sees both.
    ok(&bob, &["send", &at_bob, "hi alice"]);
    ok(&bob, &["sync"]);
    assert!(ok(&bob, &["requests"]).is_empty());
    assert!(room_of(&ok(&bob, &["rooms"]), &at_bob)["request_from"].is_null());
    ok(&alice, &["sync"]);
    let seen = texts(&alice, &room);
    assert!(seen.contains(&"accepted the invitation".to_owned()), "{seen:?}");
    assert!(seen.contains(&"hi alice".to_owned()), "{seen:?}");
    // There is nothing left to accept.
    assert_eq!(exec(&bob, &["accept", &at_bob], "").0, 2);

    // Mallory's room: declined, which is leaving.
    ask(&mallory, "bob", "click this link");
    ok(&bob, &["sync"]);
    let declined = ok(&bob, &["requests"])[0]["room"].as_str().unwrap().to_owned();
    ok(&bob, &["decline", &declined]);
    ok(&bob, &["sync"]);
    assert!(ok(&bob, &["requests"]).is_empty());
    assert_eq!(room_of(&ok(&bob, &["rooms"]), &declined)["member"], false);

    // She tries again; bob blocks her: her request is declined and her next room refused.
    ask(&mallory, "bob", "why did you leave?");
    ok(&bob, &["sync"]);
    assert_eq!(ok(&bob, &["requests"]).len(), 1);
    ok(&bob, &["block", "mallory"]);
    assert!(ok(&bob, &["requests"]).is_empty());
    assert_eq!(ok(&bob, &["blocked"])[0]["user"], "mallory");
    ask(&mallory, "bob", "let me in");
    let outbox = ok(&mallory, &["outbox"]);
    let create = outbox.iter().find(|o| o["kind"] == "create_room").unwrap();
    assert_eq!(create["state"], "failed", "{outbox:?}");
    assert!(create["error"].as_str().unwrap().contains("does not accept"), "{outbox:?}");
    ok(&bob, &["sync"]);
    assert!(ok(&bob, &["requests"]).is_empty());

    ok(&bob, &["unblock", "mallory"]);
    assert!(ok(&bob, &["blocked"]).is_empty());
}
