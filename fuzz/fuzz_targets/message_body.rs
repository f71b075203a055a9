//! A message's body is what another member wrote, sealed: once opened it may say anything —
//! a reply, an edit, a deletion or a reaction naming any message, with any text or emoji —
//! or be bytes that are no body at all. Applying it (core's `apply::event`, on a real
//! profile in memory) must never panic or fail, and the rules of core's relations must hold
//! whatever it says: Bob's edit or deletion never changes Alice's message, and Alice's
//! deletion leaves nothing of it.
//!
//! Byte 0: who sends it (bit 0 set: Alice, else Bob) and whether the rest is the body as it
//! is (bit 1) or the pieces of one (then byte 1 picks the kind — edit, delete, react,
//! unreact, reply, a disappearing-message setting, a disappearing message with mentions, a
//! forward — byte 2 the message it names: Alice's, Bob's or one not here, and the rest is its
//! text, emoji or number). A disappearing message sent in 1970 arrives expired: it must
//! never show. Each input is applied in a transaction that is rolled back, so
//! every input meets the same two messages.
#![no_main]

use std::sync::{Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use rusqlite::{params, Connection};
use tidings_core::{
    apply::{self, MessageBody},
    relations::{MessageRef, Relation, RelationKind},
};
use tidings_proto::{
    bounded::{List, Text},
    codec, Body, DeviceId, EventContent, RequestId, RoomEvent, RoomId, UserId,
};

const ALICE: i64 = 1;
const BOB: i64 = 2;
/// The profile's own user, who only watches.
const ME: i64 = 3;
const ALICES: RequestId = RequestId([0xa1; 16]);
const BOBS: RequestId = RequestId([0xb0; 16]);
const ALICES_TEXT: &str = "alice's own words";

fn event(seq: u64, sender: i64, request: RequestId, body: Body) -> RoomEvent {
    RoomEvent {
        room: RoomId(10),
        seq,
        sender: UserId(sender),
        device: DeviceId(sender),
        request,
        at_ms: seq as i64,
        content: EventContent::Message { body, attachments: List::empty() },
    }
}

fn text_body(text: &str) -> Body {
    Body::new(codec::encode(&MessageBody::text(text)).expect("encodes")).expect("fits")
}

/// A profile watching a group of Alice and Bob, one message of each logged.
fn room() -> &'static Mutex<Connection> {
    static ROOM: OnceLock<Mutex<Connection>> = OnceLock::new();
    ROOM.get_or_init(|| {
        let conn = tidings_core::store::open(std::path::Path::new(":memory:"), None)
            .expect("an in-memory profile opens");
        conn.execute("INSERT INTO rooms (id, server_id, kind) VALUES (1, 10, 'group')", [])
            .expect("a room");
        for (id, name) in [(ALICE, "alice"), (BOB, "bob"), (ME, "me")] {
            conn.execute("INSERT INTO users (id, username) VALUES (?1, ?2)", params![id, name])
                .expect("a user");
        }
        apply::event(&conn, 1, ME, &event(1, ALICE, ALICES, text_body(ALICES_TEXT)))
            .expect("alice's message");
        apply::event(&conn, 1, ME, &event(2, BOB, BOBS, text_body("bob's words")))
            .expect("bob's message");
        Mutex::new(conn)
    })
}

/// The body an input stands for.
fn body(data: &[u8]) -> Option<Vec<u8>> {
    let (&head, rest) = data.split_first()?;
    if head & 2 != 0 {
        return Some(rest.to_vec());
    }
    let (&kind, rest) = rest.split_first()?;
    let (&which, rest) = rest.split_first()?;
    let to = match which % 3 {
        0 => ALICES,
        1 => BOBS,
        _ => RequestId([0x5e; 16]),
    };
    let to = MessageRef::new(to.0.to_vec()).expect("16 bytes");
    let words = String::from_utf8_lossy(rest).into_owned();
    let number = |b: &[u8]| u32::from_le_bytes([0, 1, 2, 3].map(|i| b.get(i).copied().unwrap_or(0)));
    let body = match kind % 8 {
        5 => MessageBody { disappearing: Some(number(rest)), ..MessageBody::text("") },
        6 => MessageBody {
            expires_in: Some(number(rest)),
            mentions: rest.iter().map(|b| i64::from(*b % 5)).collect(),
            ..MessageBody::text(words)
        },
        7 => MessageBody { forwarded: true, reply_to: Some(to), ..MessageBody::text(words) },
        0 => MessageBody {
            relates: Some(Relation { to, kind: RelationKind::Edit { text: words } }),
            ..MessageBody::text("")
        },
        1 => MessageBody {
            relates: Some(Relation { to, kind: RelationKind::Delete }),
            ..MessageBody::text("")
        },
        2 | 3 => {
            let emoji = Text::new(words).ok()?;
            let kind = if kind % 5 == 2 {
                RelationKind::React { emoji }
            } else {
                RelationKind::Unreact { emoji }
            };
            MessageBody { relates: Some(Relation { to, kind }), ..MessageBody::text("") }
        }
        _ => MessageBody { reply_to: Some(to), ..MessageBody::text(words) },
    };
    codec::encode(&body).ok()
}

fuzz_target!(init: write_seeds(), |data: &[u8]| {
    let Some(bytes) = body(data) else { return };
    let Ok(body) = Body::new(bytes) else { return };
    let sender = if data[0] & 1 != 0 { ALICE } else { BOB };
    let conn = room().lock().expect("not poisoned");
    let tx = conn.unchecked_transaction().expect("begin");
    let e = event(3, sender, RequestId([0x33; 16]), body);
    apply::event(&tx, 1, ME, &e).expect("applying a body never fails");
    let shown_expired: bool = tx
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM events
                            WHERE request_id = ?1 AND hidden = 0 AND expires_ms IS NOT NULL)",
            [&e.request.0[..]],
            |r| r.get(0),
        )
        .expect("events");
    assert!(!shown_expired, "a message that expired long ago is shown");

    let (content, deleted): (Vec<u8>, bool) = tx
        .query_row("SELECT content, deleted FROM events WHERE request_id = ?1", [&ALICES.0[..]], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .expect("alice's message is still there");
    let text = codec::decode::<EventContent>(&content)
        .ok()
        .map(|c| apply::describe(&c))
        .expect("stored content decodes");
    let changes: i64 = tx
        .query_row(
            "SELECT count(*) FROM relations
             WHERE target = ?1 AND kind IN ('edit', 'delete') AND sender != ?2",
            params![&ALICES.0[..], ALICE],
            |r| r.get(0),
        )
        .expect("relations");
    assert_eq!(changes, 0, "someone else's edit or deletion of alice's message was kept");
    if deleted {
        assert_eq!(sender, ALICE, "deleted by someone else");
        assert!(text.is_empty(), "a deleted message kept its text: {text:?}");
        let left: i64 = tx
            .query_row(
                "SELECT count(*) FROM relations WHERE target = ?1 AND kind != 'delete'",
                [&ALICES.0[..]],
                |r| r.get(0),
            )
            .expect("relations");
        assert_eq!(left, 0, "a deleted message kept edits or reactions");
    } else {
        assert_eq!(text, ALICES_TEXT, "the stored message itself changed");
    }
    tx.rollback().expect("rollback");
});

/// Seeds: each kind, naming each message, from each sender.
fn write_seeds() {
    let Some(root) = std::env::var_os("TIDINGS_FUZZ_SEEDS") else { return };
    let dir = std::path::Path::new(&root).join("message_body");
    std::fs::create_dir_all(&dir).expect("seed directory");
    for sender in [0u8, 1] {
        for kind in 0u8..8 {
            for which in 0u8..3 {
                let words: &[u8] = if kind == 2 || kind == 3 { "👍".as_bytes() } else { b"new words" };
                let mut seed = vec![sender, kind, which];
                seed.extend_from_slice(words);
                let name = format!("s{sender}-k{kind}-t{which}");
                std::fs::write(dir.join(name), seed).expect("seed");
            }
        }
    }
}
