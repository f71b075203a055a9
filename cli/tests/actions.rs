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

fn room_of(profile: &Path) -> String {
    ok(profile, &["rooms"])[0]["room"].as_str().unwrap().to_owned()
}

#[test]
fn replies_edits_deletions_and_reactions_show_on_every_device_also_when_made_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(&dir.path().join("server"));
    let p = |name: &str| -> PathBuf { dir.path().join(name) };
    for (profile, name, cmd) in [
        ("alice", "alice", "signup"),
        ("bob", "bob", "signup"),
        ("alice2", "alice", "login"),
        ("bob2", "bob", "login"),
    ] {
        let args = [cmd, "--server", &server.url, "--username", name, "--password-stdin"];
        assert_eq!(exec(&p(profile), &args, "correct horse battery\n").0, 0, "{profile}");
    }
    let devices = ["alice", "bob", "alice2", "bob2"];
    let sync_all = || {
        for _ in 0..2 {
            for d in devices {
                ok(&p(d), &["sync"]);
            }
        }
    };
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
    // hidden for me — by word prefixes, case and accents ignored.
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
