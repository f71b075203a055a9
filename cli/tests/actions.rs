//! What people do with messages, end to end through a real `tidings serve`: reply, edit,
//! delete for everyone and for me, react and unreact — on both devices of both users, the
//! edits and deletions made offline and delivered later, sealed for the room's group.

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

mod common;

use std::path::{Path, PathBuf};

use common::{exec, ok, serve};
use serde_json::Value;

/// The room's messages on a profile (its only room), oldest first.
fn messages(profile: &Path) -> Vec<Value> {
    let room = ok(profile, &["rooms"])[0]["room"].as_str().unwrap().to_owned();
    ok(profile, &["messages", &room])
}

/// The message whose text (or, deleted, whose seq) is this.
fn by_seq(msgs: &[Value], seq: u64) -> Value {
    msgs.iter().find(|m| m["seq"] == seq).cloned().unwrap_or_else(|| panic!("no #{seq}"))
}

fn seq_of(msgs: &[Value], text: &str) -> u64 {
    msgs.iter().find(|m| m["text"] == text).and_then(|m| m["seq"].as_u64()).unwrap()
}

/// Syncs every device twice over, so that what each sent reaches all the others.
fn sync(dir: &Path, devices: &[&str]) {
    for _ in 0..2 {
        for d in devices {
            ok(&dir.join(d), &["sync"]);
        }
    }
}

fn room_of(profile: &Path) -> String {
    ok(profile, &["rooms"])[0]["room"].as_str().unwrap().to_owned()
}

#[test]
fn replies_edits_deletions_and_reactions_show_on_every_device_also_when_made_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let p = |name: &str| -> PathBuf { dir.path().join(name) };
    common::sign_in_all(
        dir.path(),
        &server.url,
        &[
            ("alice", "alice", "signup"),
            ("bob", "bob", "signup"),
            ("alice2", "alice", "login"),
            ("bob2", "bob", "login"),
        ],
    );
    let devices = ["alice", "bob", "alice2", "bob2"];
    let sync_all = || sync(dir.path(), &devices);
    // Bob has alice as a contact: her room is no request to him.
    let code = ok(&p("alice"), &["contact-code"])[0]["uri"].as_str().unwrap().to_owned();
    ok(&p("bob"), &["add-contact", &code]);
    let room = ok(&p("alice"), &["create-room", "--member", "bob"])[0]["room"]
        .as_str()
        .unwrap()
        .to_owned();
    for text in ["hello", "tpyo", "a secret", "mine to hide"] {
        ok(&p("alice"), &["send", &room, text]);
    }
    sync_all();
    let seen = messages(&p("bob2"));
    let (hello, typo, secret, hide) = (
        seq_of(&seen, "hello"),
        seq_of(&seen, "tpyo"),
        seq_of(&seen, "a secret"),
        seq_of(&seen, "mine to hide"),
    );

    // Offline (no sync in between): alice edits and deletes, bob reacts and replies. Each
    // shows at once on the device that did it.
    ok(&p("alice"), &["edit", &room, &typo.to_string(), "typo"]);
    ok(&p("alice"), &["delete", &room, &secret.to_string()]);
    let now = messages(&p("alice"));
    assert_eq!(
        (by_seq(&now, typo)["text"].as_str(), by_seq(&now, typo)["edited"].as_bool()),
        (Some("typo"), Some(true))
    );
    assert_eq!(by_seq(&now, secret)["deleted"], true);
    let bob_room = room_of(&p("bob"));
    ok(&p("bob"), &["react", &bob_room, &hello.to_string(), "👍"]);
    ok(&p("bob2"), &["react", &room_of(&p("bob2")), &hello.to_string(), "🎉"]);
    let reply = ok(&p("bob"), &["reply", &bob_room, &hello.to_string(), "hi alice"]);
    assert_eq!(reply[0]["state"], "pending");

    // Only the sender edits or deletes for everyone: refused with a usage error.
    let h = hello.to_string();
    for args in [&["edit", &bob_room, &h, "not mine"][..], &["delete", &bob_room, &h][..]] {
        assert_eq!(exec(&p("bob"), args, "").0, 2, "{args:?}");
    }
    // Not an emoji, no such message: refused too.
    assert_eq!(exec(&p("bob"), &["react", &bob_room, &hello.to_string(), "ok"], "").0, 2);
    assert_eq!(exec(&p("bob"), &["react", &bob_room, "999", "👍"], "").0, 2);

    sync_all();
    for d in devices {
        let msgs = messages(&p(d));
        let texts: Vec<&str> = msgs.iter().filter_map(|m| m["text"].as_str()).collect();
        assert!(!texts.iter().any(|t| t.contains("secret")), "{d}: {texts:?}");
        let edited = by_seq(&msgs, typo);
        assert_eq!(
            (edited["text"].as_str(), edited["edited"].as_bool()),
            (Some("typo"), Some(true)),
            "{d}"
        );
        let gone = by_seq(&msgs, secret);
        assert_eq!(
            (gone["deleted"].as_bool(), gone["text"].as_str()),
            (Some(true), Some("message deleted")),
            "{d}"
        );
        let reactions: Vec<(String, u64)> = by_seq(&msgs, hello)["reactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["emoji"].as_str().unwrap().to_owned(),
                    r["users"].as_array().unwrap().len() as u64,
                )
            })
            .collect();
        let mut sorted = reactions.clone();
        sorted.sort();
        assert_eq!(sorted, [("🎉".to_owned(), 1), ("👍".to_owned(), 1)], "{d}");
        let reply = msgs.iter().find(|m| m["text"] == "hi alice").unwrap_or_else(|| panic!("{d}"));
        assert_eq!(
            (
                reply["reply_to"]["seq"].as_u64(),
                reply["reply_to"]["text"].as_str(),
                reply["reply_to"]["sender"].as_str()
            ),
            (Some(hello), Some("hello"), Some("alice")),
            "{d}"
        );
        // Relations are not messages of their own: nothing else appeared.
        let shown: Vec<&str> = texts.iter().copied().filter(|t| *t != "created the room").collect();
        assert_eq!(shown, ["hello", "typo", "message deleted", "mine to hide", "hi alice"], "{d}");
    }

    // Unreact: gone everywhere; react again on the other device counts once per member.
    ok(&p("bob2"), &["unreact", &room_of(&p("bob2")), &hello.to_string(), "🎉"]);
    ok(&p("bob2"), &["react", &room_of(&p("bob2")), &hello.to_string(), "👍"]);
    sync_all();
    for d in devices {
        let r = by_seq(&messages(&p(d)), hello)["reactions"].clone();
        assert_eq!(r.as_array().unwrap().len(), 1, "{d}: {r}");
        assert_eq!(
            (r[0]["emoji"].as_str(), r[0]["users"].as_array().unwrap().len()),
            (Some("👍"), 1),
            "{d}"
        );
        assert_eq!(r[0]["mine"].as_bool(), Some(d.starts_with("bob")), "{d}");
    }

    // Delete for me: gone from this device only.
    ok(&p("alice2"), &["delete", &room_of(&p("alice2")), &hide.to_string(), "--for-me"]);
    assert!(messages(&p("alice2")).iter().all(|m| m["seq"] != hide));
    sync_all();
    assert!(messages(&p("alice2")).iter().all(|m| m["seq"] != hide), "still hidden after sync");
    for d in ["alice", "bob", "bob2"] {
        assert_eq!(by_seq(&messages(&p(d)), hide)["text"], "mine to hide", "{d}");
    }

    // Search, offline, on every device: the text as it shows now — edited, not deleted, not
    // hidden for me — by words, the last a prefix, case and accents ignored.
    ok(&p("bob"), &["send", &bob_room, "Rendez-vous au Café Привет at six"]);
    sync_all();
    let found = |d: &str, query: &str| -> Vec<String> {
        ok(&p(d), &["search", query])
            .iter()
            .map(|h| h["text"].as_str().unwrap().to_owned())
            .collect()
    };
    for d in devices {
        assert_eq!(found(d, "typo"), ["[typo]"], "{d}");
        assert!(found(d, "tpyo").is_empty(), "{d}: the text before the edit");
        assert!(found(d, "secret").is_empty(), "{d}: deleted for everyone");
        assert_eq!(found(d, "cafe привет"), ["Rendez-vous au [Café] [Привет] at six"], "{d}");
        assert_eq!(found(d, "HI ALI"), ["[hi] [alice]"], "{d}");
        assert!(found(d, "\"OR NEAR(").is_empty(), "{d}: words, never query syntax");
    }
    assert!(found("alice2", "hide").is_empty(), "deleted for me");
    assert_eq!(found("alice", "hide"), ["mine to [hide]"]);
    let hit = &ok(&p("bob"), &["search", "six", "--room", &bob_room])[0];
    assert_eq!(
        (hit["sender"].as_str(), hit["room"].as_str()),
        (Some("bob"), Some(bob_room.as_str()))
    );
    assert!(ok(&p("bob"), &["search", "six", "--room", "999"]).is_empty());
}

/// The room named `name` on a profile.
fn room_named(profile: &Path, name: &str) -> String {
    let rooms = ok(profile, &["rooms"]);
    let room = rooms.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no {name}"));
    room["room"].as_str().unwrap().to_owned()
}

#[test]
fn forwards_disappearing_messages_and_mentions_reach_every_device() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let p = |name: &str| -> PathBuf { dir.path().join(name) };
    common::sign_in_all(
        dir.path(),
        &server.url,
        &[("alice", "alice", "signup"), ("bob", "bob", "signup"), ("bob2", "bob", "login")],
    );
    let devices = ["alice", "bob", "bob2"];
    let sync_all = || sync(dir.path(), &devices);
    let code = ok(&p("alice"), &["contact-code"])[0]["uri"].as_str().unwrap().to_owned();
    ok(&p("bob"), &["add-contact", &code]);
    for name in ["photos", "plans"] {
        ok(&p("alice"), &["create-room", "--name", name, "--member", "bob"]);
    }
    let photo = tidings_testkit::test_images().unwrap().join("iphone6_8mp.jpg");
    let photos = room_named(&p("alice"), "photos");
    ok(&p("alice"), &["send", &photos, "--image", photo.to_str().unwrap(), "--caption", "the bay"]);
    ok(&p("alice"), &["send", &photos, "a tpyo"]);
    sync_all();
    let in_photos = ok(&p("alice"), &["messages", &photos]);
    let (bay, typo) = (seq_of(&in_photos, "the bay"), seq_of(&in_photos, "a tpyo"));
    ok(&p("alice"), &["edit", &photos, &typo.to_string(), "no typo"]);

    // Forward: bob forwards the photo and the edited text into "plans" — the same upload,
    // its key sealed for that room; the text as it shows now.
    let (bob_photos, bob_plans) = (room_named(&p("bob"), "photos"), room_named(&p("bob"), "plans"));
    sync_all();
    ok(&p("bob"), &["forward", &bob_photos, &bay.to_string(), &bob_plans]);
    ok(&p("bob"), &["forward", &bob_photos, &typo.to_string(), &bob_plans]);
    // Not a message here: refused.
    assert_eq!(exec(&p("bob"), &["forward", &bob_photos, "999", &bob_plans], "").0, 2);
    sync_all();
    let original = by_seq(&ok(&p("bob2"), &["messages", &room_named(&p("bob2"), "photos")]), bay);
    for d in devices {
        let plans = room_named(&p(d), "plans");
        let msgs = ok(&p(d), &["messages", &plans]);
        let fwd = msgs.iter().find(|m| m["text"] == "the bay").unwrap_or_else(|| panic!("{d}"));
        assert_eq!((fwd["forwarded"].as_bool(), fwd["sender"].as_str()), (Some(true), Some("bob")));
        assert_eq!(fwd["image"]["media"], original["image"]["media"], "{d}: not uploaded again");
        let text = msgs.iter().find(|m| m["text"] == "no typo").unwrap_or_else(|| panic!("{d}"));
        assert_eq!(text["forwarded"], true, "{d}");
        // The forwarded photo opens with the key that came with the forward.
        let out = dir.path().join(format!("{d}.jpg"));
        let seq = fwd["seq"].as_u64().unwrap().to_string();
        ok(&p(d), &["fetch-media", &plans, &seq, "--out", out.to_str().unwrap()]);
        assert!(std::fs::metadata(&out).unwrap().len() > 100_000, "{d}");
    }

    // Disappearing messages: alice turns them on in "plans"; what is sent after carries
    // the timer and goes on every device when it expires; an edit after that does nothing.
    let plans = room_named(&p("alice"), "plans");
    ok(&p("alice"), &["disappearing", &plans, "20"]);
    ok(&p("alice"), &["send", &plans, "poof"]);
    assert_eq!(exec(&p("alice"), &["disappearing", &plans, "soon"], "").0, 2);
    sync_all();
    let mut expires = 0;
    for d in devices {
        let rooms = ok(&p(d), &["rooms"]);
        let room = rooms.iter().find(|r| r["name"] == "plans").unwrap();
        assert_eq!(room["disappearing_s"], 20, "{d}");
        let msgs = ok(&p(d), &["messages", &room_named(&p(d), "plans")]);
        let notice = msgs.iter().find(|m| m["notice"]["kind"] == "disappearing").unwrap();
        assert_eq!(
            (notice["sender"].as_str(), notice["notice"]["seconds"].as_u64()),
            (Some("alice"), Some(20))
        );
        let poof = msgs.iter().find(|m| m["text"] == "poof").unwrap_or_else(|| panic!("{d}"));
        expires = expires.max(poof["expires_ms"].as_i64().unwrap());
        // What was there before the timer stays.
        assert_eq!(
            msgs.iter().find(|m| m["text"] == "the bay").unwrap()["expires_ms"],
            Value::Null
        );
    }
    let poof_seq = seq_of(&ok(&p("alice"), &["messages", &plans]), "poof");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let wait = (expires - now.as_millis() as i64).max(0) as u64 + 300;
    std::thread::sleep(std::time::Duration::from_millis(wait));
    for d in devices {
        let msgs = ok(&p(d), &["messages", &room_named(&p(d), "plans")]);
        assert!(!msgs.iter().any(|m| m["text"] == "poof"), "{d}: expired");
        assert!(msgs.iter().any(|m| m["text"] == "the bay"), "{d}");
    }
    assert_eq!(exec(&p("alice"), &["edit", &plans, &poof_seq.to_string(), "back"], "").0, 2);
    ok(&p("alice"), &["disappearing", &plans, "off"]);
    ok(&p("alice"), &["send", &plans, "stays"]);

    // Mentions: bob mentions alice in a room she muted; her room list counts it.
    ok(&p("alice"), &["mute", &plans]);
    ok(&p("bob"), &["send", &room_named(&p("bob"), "plans"), "@alice are you in?"]);
    sync_all();
    let rooms = ok(&p("alice"), &["rooms"]);
    let room = rooms.iter().find(|r| r["name"] == "plans").unwrap();
    assert_eq!((room["muted"].as_bool(), room["unread_mentions"].as_u64()), (Some(true), Some(1)));
    assert_eq!(room["disappearing_s"], Value::Null, "turned off");
    let msgs = ok(&p("alice"), &["messages", &plans]);
    let mention = msgs.iter().find(|m| m["text"] == "@alice are you in?").unwrap();
    assert_eq!(mention["mentions_me"], true);
    assert_eq!(msgs.iter().find(|m| m["text"] == "stays").unwrap()["expires_ms"], Value::Null);
    ok(&p("alice"), &["read", &plans]);
    let rooms = ok(&p("alice"), &["rooms"]);
    assert_eq!(rooms.iter().find(|r| r["name"] == "plans").unwrap()["unread_mentions"], 0);
}
