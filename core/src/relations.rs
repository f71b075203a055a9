//! What a message does to an earlier one: an **edit**, a **deletion for everyone**, a
//! **reaction** (and its removal). Each is a sealed message of the room log like any other
//! (the server sees only that something was sent), whose body names the message it is about
//! by that message's request id — which every device has, also for a message still pending
//! on the device that sent it, so these work offline through the outbox like a send.
//!
//! They are kept in the `relations` table by the message they are about, whether or not it
//! has arrived (a relation can reach a device before its message: a history page, a link),
//! and put together with it when the timeline is read:
//!
//! - **edit**: the text of the last edit by log order (`position`) whose sender is the
//!   message's sender. Earlier versions stay (the edit history, [`edits`]).
//! - **delete for everyone**: the first deletion whose sender is the message's sender erases
//!   the message where it is stored — content, edits, reactions — leaving a stub (`deleted`).
//!   A deletion that comes first is applied when the message arrives ([`arrived`]).
//! - **reaction**: per member and emoji, the last of react/unreact by log order counts.
//!
//! The rules hold on every device because every device applies them to the same log: an
//! edit or deletion by anyone but the message's sender is refused (not stored when the
//! message is here, never matched when it comes later), and so is an edit of a deleted
//! message. Deletion for me is local: the message no longer shows on this device.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};
use tidings_proto::{bounded, codec, Body, EventContent, RequestId};

use crate::{
    body::{decode_body, describe, MessageBody},
    model::{Quote, Reaction, RoomKey},
    stamp::request_string,
    Error,
};

/// Longest quote of a replied-to message in a timeline item, in characters.
const QUOTE_CHARS: usize = 200;

pub use crate::body::{emoji, MessageRef, Relation, RelationKind, MAX_EMOJI_BYTES};

/// A relation's row: its kind and value.
fn column(kind: &RelationKind) -> (&'static str, &str) {
    match kind {
        RelationKind::Edit { text } => ("edit", text),
        RelationKind::Delete => ("delete", ""),
        RelationKind::React { emoji } => ("react", emoji.as_str()),
        RelationKind::Unreact { emoji } => ("unreact", emoji.as_str()),
    }
}

/// The stored message a relation is about.
struct Target {
    room: RoomKey,
    sender: i64,
    deleted: bool,
    message: bool,
}

fn target(c: &Connection, to: &[u8]) -> Result<Option<Target>, Error> {
    Ok(c.prepare_cached(
        "SELECT room_id, sender, deleted, is_message FROM events
         WHERE request_id = ?1",
    )?
    .query_row([to], |r| {
        Ok(Target { room: r.get(0)?, sender: r.get(1)?, deleted: r.get(2)?, message: r.get(3)? })
    })
    .optional()?)
}

/// Whether I may send relation `r` in `room` now: its message is a message of that room
/// here, not deleted, and (for an edit or a deletion) mine.
pub(crate) fn check_mine(
    c: &Connection,
    room: RoomKey,
    me: i64,
    r: &Relation,
) -> Result<(), Error> {
    let found = target(c, r.to.as_bytes())?;
    let Some(t) = found.filter(|t| t.room == room && t.message && !t.deleted) else {
        return Err(Error::NoSuchMessage(request_string(r.to.as_bytes())));
    };
    if matches!(r.kind, RelationKind::Edit { .. } | RelationKind::Delete) && t.sender != me {
        return Err(Error::NotYourMessage(request_string(r.to.as_bytes())));
    }
    Ok(())
}

/// Stores relation `r`, sent by `sender` as request `request` at `position` in `room`'s
/// log, and applies it. A relation already stored (mine, sent from this device) only moves
/// to its place in the log. One the rules refuse is dropped.
#[allow(clippy::too_many_arguments)]
pub(crate) fn take(
    tx: &Connection,
    room: RoomKey,
    sender: i64,
    request: &RequestId,
    position: i64,
    at_ms: i64,
    r: &Relation,
) -> Result<(), Error> {
    let to = r.to.as_bytes();
    if let Some(t) = target(tx, to)? {
        let only_sender = matches!(r.kind, RelationKind::Edit { .. } | RelationKind::Delete);
        if t.room != room || !t.message || (only_sender && t.sender != sender) || t.deleted {
            tracing::debug!(room, kind = column(&r.kind).0, "A relation the rules refuse.");
            return Ok(());
        }
    }
    let (kind, value) = column(&r.kind);
    tx.prepare_cached(
        "INSERT INTO relations (request_id, room_id, target, sender, position, at_ms, kind, value)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (request_id) DO UPDATE SET position = excluded.position, at_ms = excluded.at_ms",
    )?
    .execute(params![&request.0[..], room, to, sender, position, at_ms, kind, value])?;
    match r.kind {
        RelationKind::Delete => erase(tx, room, to, sender),
        RelationKind::Edit { .. } => {
            let shown: Option<i64> = tx
                .prepare_cached(
                    "SELECT id FROM events
                     WHERE request_id = ?1 AND sender = ?2 AND deleted = 0 AND hidden = 0",
                )?
                .query_row(params![to, sender], |r| r.get(0))
                .optional()?;
            if let (Some(id), Some(text)) = (shown, last_edit(tx, to)?) {
                crate::search::index::put(tx, id, &text)?;
            }
            refresh_preview(tx, room, to)
        }
        RelationKind::React { .. } | RelationKind::Unreact { .. } => Ok(()),
    }
}

/// My relation `request`, sent from this device (which cannot open it when the log brings it
/// back): moves it to its place in the log; whether it was one.
pub(crate) fn confirm_mine(
    tx: &Connection,
    request: &RequestId,
    position: i64,
    at_ms: i64,
) -> Result<bool, Error> {
    let mine = tx
        .prepare_cached("UPDATE relations SET position = ?2, at_ms = ?3 WHERE request_id = ?1")?
        .execute(params![&request.0[..], position, at_ms])?
        > 0;
    if mine {
        // No longer needed to recognise it (see [`remember_mine`]).
        tx.prepare_cached("DELETE FROM quiet_messages WHERE request_id = ?1")?
            .execute([&request.0[..]])?;
    }
    Ok(mine)
}

/// Remembers my relation `request`, queued from this device, as one to pass over when the
/// log brings it back: if its message is erased meanwhile (deleted by its sender, or expired),
/// its row goes with it, and this device — which cannot open its own messages — would
/// otherwise not know it for one of its own relations.
pub(crate) fn remember_mine(tx: &Connection, request: &RequestId) -> Result<(), Error> {
    tx.prepare_cached("INSERT OR IGNORE INTO quiet_messages (request_id) VALUES (?1)")?
        .execute([&request.0[..]])?;
    Ok(())
}

/// Message `request` (sent by `sender`) was just stored in `room`: a deletion by its sender
/// that came before it applies now.
pub(crate) fn arrived(
    tx: &Connection,
    room: RoomKey,
    request: &RequestId,
    sender: i64,
) -> Result<(), Error> {
    let deleted: bool = tx
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM relations
                            WHERE target = ?1 AND kind = 'delete' AND sender = ?2 AND room_id = ?3)",
        )?
        .query_row(params![&request.0[..], sender, room], |r| r.get(0))?;
    if deleted {
        erase(tx, room, &request.0, sender)?;
    }
    Ok(())
}

/// Erases message `to` of `room`, deleted for everyone by `sender` if it is theirs: its
/// content becomes an empty message (a stub), its edits and reactions go. Its attachments'
/// keys went with the content, so their cached copies (sealed with those keys) can no longer
/// be opened; they are first out of the cache.
pub(crate) fn erase(tx: &Connection, room: RoomKey, to: &[u8], sender: i64) -> Result<(), Error> {
    let Some(content) = tx
        .prepare_cached(
            "SELECT content FROM events
             WHERE request_id = ?1 AND room_id = ?2 AND sender = ?3 AND deleted = 0",
        )?
        .query_row(params![to, room, sender], |r| r.get::<_, Vec<u8>>(0))
        .optional()?
    else {
        return Ok(());
    };
    if let Ok(EventContent::Message { attachments, .. }) = codec::decode::<EventContent>(&content) {
        for media in attachments.iter() {
            tx.prepare_cached("UPDATE media_cache SET used_ms = 0 WHERE media_id = ?1")?
                .execute([media.0])?;
        }
    }
    let id: i64 = tx
        .prepare_cached(
            "UPDATE events SET content = ?2, deleted = 1 WHERE request_id = ?1 RETURNING id",
        )?
        .query_row(params![to, stub()?], |r| r.get(0))?;
    crate::search::index::forget(tx, id)?;
    tx.prepare_cached("DELETE FROM relations WHERE target = ?1 AND kind != 'delete'")?
        .execute([to])?;
    refresh_preview(tx, room, to)
}

/// The content a deleted message keeps: an empty message.
fn stub() -> Result<Vec<u8>, Error> {
    let body = codec::encode(&MessageBody::text("")).map_err(|e| Error::Internal(e.to_string()))?;
    let body = Body::new(body).map_err(|e| Error::Internal(e.to_string()))?;
    codec::encode(&EventContent::Message { body, attachments: bounded::List::empty() })
        .map_err(|e| Error::Internal(e.to_string()))
}

/// The room list's preview, if message `to` is the room's last one.
fn refresh_preview(tx: &Connection, room: RoomKey, to: &[u8]) -> Result<(), Error> {
    let Some((id, content, deleted)) = tx
        .prepare_cached(
            "SELECT e.id, e.content, e.deleted FROM events e JOIN rooms r ON r.last_event_id = e.id
             WHERE r.id = ?1 AND e.request_id = ?2",
        )?
        .query_row(params![room, to], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, bool>(2)?))
        })
        .optional()?
    else {
        return Ok(());
    };
    let preview = shown_text(tx, to, &content, deleted)?;
    tx.prepare_cached("UPDATE rooms SET last_preview = ?2 WHERE id = ?1 AND last_event_id = ?3")?
        .execute(params![room, preview, id])?;
    Ok(())
}

/// The text a stored message shows: its last edit's, a stub's, or its own.
fn shown_text(
    c: &Connection,
    request: &[u8],
    content: &[u8],
    deleted: bool,
) -> Result<String, Error> {
    if deleted {
        return Ok(DELETED_TEXT.into());
    }
    if let Some(text) = last_edit(c, request)? {
        return Ok(text);
    }
    Ok(codec::decode::<EventContent>(content).map(|c| describe(&c)).unwrap_or_default())
}

/// The text of a message deleted for everyone (its stub).
pub const DELETED_TEXT: &str = "message deleted";

/// The text of the last edit of message `request` by its sender, if it was edited.
pub(crate) fn last_edit(c: &Connection, request: &[u8]) -> Result<Option<String>, Error> {
    Ok(c.prepare_cached(
        "SELECT r.value FROM relations r JOIN events e ON e.request_id = r.target
         WHERE r.target = ?1 AND r.kind = 'edit' AND r.sender = e.sender
             AND r.room_id = e.room_id
         ORDER BY r.position DESC LIMIT 1",
    )?
    .query_row([request], |r| r.get(0))
    .optional()?)
}

/// The versions of message `request` after the first, oldest first, as (text, Unix ms).
pub(crate) fn edits(c: &Connection, request: &[u8]) -> Result<Vec<(String, i64)>, Error> {
    let mut st = c.prepare_cached(
        "SELECT r.value, r.at_ms FROM relations r JOIN events e ON e.request_id = r.target
         WHERE r.target = ?1 AND r.kind = 'edit' AND r.sender = e.sender
             AND r.room_id = e.room_id
         ORDER BY r.position",
    )?;
    let rows = st.query_map([request], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The reactions to message `request` of `room`: per emoji (in order of first use), who
/// reacts with it now.
pub(crate) fn reactions(
    c: &Connection,
    room: RoomKey,
    request: &[u8],
    me: i64,
) -> Result<Vec<Reaction>, Error> {
    let mut st = c.prepare_cached(
        "SELECT r.sender, coalesce(u.username, '?'), r.value, r.kind = 'react'
         FROM relations r LEFT JOIN users u ON u.id = r.sender
         WHERE r.target = ?1 AND r.room_id = ?2 AND r.kind IN ('react', 'unreact')
         ORDER BY r.position",
    )?;
    let rows = st.query_map(params![request, room], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get(3)?))
    })?;
    // The last word of each (member, emoji), and the order emoji were first used in.
    let mut state: BTreeMap<(String, i64), (String, bool)> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for row in rows {
        let (sender, name, emoji, on): (i64, String, String, bool) = row?;
        if !order.contains(&emoji) {
            order.push(emoji.clone());
        }
        state.insert((emoji, sender), (name, on));
    }
    let mut out: Vec<Reaction> =
        order.into_iter().map(|emoji| Reaction { emoji, users: Vec::new(), mine: false }).collect();
    for ((emoji, sender), (name, on)) in state {
        if let (true, Some(r)) = (on, out.iter_mut().find(|r| r.emoji == emoji)) {
            r.users.push(name);
            r.mine |= sender == me;
        }
    }
    out.retain(|r| !r.users.is_empty());
    Ok(out)
}

/// The quote of message `to` that a reply in `room` shows (who, what, where to jump); a
/// message not here (yet) is quoted without its text.
pub(crate) fn quote(c: &Connection, room: RoomKey, to: &[u8]) -> Result<Quote, Error> {
    type Row = (Option<i64>, i64, String, Vec<u8>, bool);
    let row: Option<Row> = c
        .prepare_cached(
            "SELECT e.seq, e.position, coalesce(u.username, '?'), e.content, e.deleted
             FROM events e LEFT JOIN users u ON u.id = e.sender
             WHERE e.request_id = ?1 AND e.room_id = ?2 AND e.hidden = 0",
        )?
        .query_row(params![to, room], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let request_id = request_string(to);
    Ok(match row {
        None => Quote { request_id, seq: None, position: None, sender: None, text: None },
        Some((seq, position, sender, content, deleted)) => {
            let text: String =
                shown_text(c, to, &content, deleted)?.chars().take(QUOTE_CHARS).collect();
            Quote {
                request_id,
                seq: seq.map(|s| s as tidings_proto::Seq),
                position: Some(position),
                sender: Some(sender),
                text: Some(text),
            }
        }
    })
}

/// The relation a message body carries, if it is one (it then shows nothing itself).
pub(crate) fn of_body(content: &EventContent) -> Option<Relation> {
    match content {
        EventContent::Message { body, .. } => decode_body(body.as_bytes())?.relates,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    //! The rules, through apply on a real store: who may edit or delete, log order, a
    //! deletion before its message, reactions toggled, and what refuses.

    use tidings_proto::RequestId;

    use super::*;
    use crate::testing::{LogRoom as Room, ALICE, BOB, ME};

    impl Room {
        /// (text shown, deleted) of message `r`.
        fn shown(&self, r: RequestId) -> (String, bool) {
            let (content, deleted): (Vec<u8>, bool) = self
                .c
                .query_row(
                    "SELECT content, deleted FROM events WHERE request_id = ?1",
                    [&r.0[..]],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .unwrap();
            (shown_text(&self.c, &r.0, &content, deleted).unwrap(), deleted)
        }
    }

    fn edit(text: &str) -> RelationKind {
        RelationKind::Edit { text: text.into() }
    }

    fn react(e: &str) -> RelationKind {
        RelationKind::React { emoji: emoji(e).unwrap() }
    }

    #[test]
    fn the_last_edit_by_the_sender_wins_and_others_edits_are_refused() {
        let mut room = Room::new();
        let m = room.log(ALICE, MessageBody::text("first"));
        room.relate(ALICE, m, edit("second"));
        room.relate(BOB, m, edit("bob was here"));
        room.relate(ALICE, m, edit("third"));
        assert_eq!(room.shown(m), ("third".into(), false));
        let history: Vec<String> =
            edits(&room.c, &m.0).unwrap().into_iter().map(|(t, _)| t).collect();
        assert_eq!(history, ["second", "third"]);
        // Bob's attempt is not even kept.
        let bobs: i64 = room
            .c
            .query_row("SELECT count(*) FROM relations WHERE sender = ?1", [BOB], |r| r.get(0))
            .unwrap();
        assert_eq!(bobs, 0);
        // Relations are part of the log, not the timeline; the room's preview follows.
        let (rows, preview): (i64, String) = room
            .c
            .query_row(
                "SELECT (SELECT count(*) FROM events), last_preview FROM rooms WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((rows, preview.as_str()), (1, "third"));
    }

    #[test]
    fn a_deletion_erases_the_content_edits_and_reactions_and_only_the_sender_deletes() {
        let mut room = Room::new();
        let m = room.log(ALICE, MessageBody::text("a secret"));
        room.relate(ALICE, m, edit("a bigger secret"));
        room.relate(BOB, m, react("👍"));
        room.relate(BOB, m, RelationKind::Delete);
        assert_eq!(room.shown(m), ("a bigger secret".into(), false), "bob cannot delete it");
        room.relate(ALICE, m, RelationKind::Delete);
        assert_eq!(room.shown(m), (DELETED_TEXT.into(), true));
        // Nothing of it is left: not in the event, not in its edits.
        let content: Vec<u8> = room
            .c
            .query_row("SELECT content FROM events WHERE request_id = ?1", [&m.0[..]], |r| r.get(0))
            .unwrap();
        assert!(!String::from_utf8_lossy(&content).contains("secret"));
        let left: i64 = room
            .c
            .query_row("SELECT count(*) FROM relations WHERE kind != 'delete'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
        assert!(reactions(&room.c, 1, &m.0, ME).unwrap().is_empty());
        // An edit after the deletion does nothing.
        room.relate(ALICE, m, edit("back again"));
        assert_eq!(room.shown(m), (DELETED_TEXT.into(), true));
    }

    #[test]
    fn relations_that_come_before_their_message_apply_when_it_arrives() {
        let mut room = Room::new();
        let (deleted, edited) = (crate::stamp::new_request_id(), crate::stamp::new_request_id());
        room.relate(ALICE, deleted, RelationKind::Delete);
        room.relate(BOB, deleted, RelationKind::Delete);
        room.relate(ALICE, edited, edit("later text"));
        room.relate(BOB, edited, react("🎉"));
        room.log_as(ALICE, deleted, MessageBody::text("gone before it came"));
        room.log_as(ALICE, edited, MessageBody::text("early text"));
        assert_eq!(room.shown(deleted), (DELETED_TEXT.into(), true));
        assert_eq!(room.shown(edited), ("later text".into(), false));
        let r = reactions(&room.c, 1, &edited.0, ME).unwrap();
        assert_eq!(
            (r.len(), r[0].emoji.as_str(), r[0].users.as_slice()),
            (1, "🎉", &["bob".to_owned()][..])
        );
        // Bob's deletion, logged before the message too, never matched it.
        let other = room.log(ALICE, MessageBody::text("stays"));
        room.relate(BOB, other, RelationKind::Delete);
        assert_eq!(room.shown(other), ("stays".into(), false));
    }

    #[test]
    fn reactions_toggle_per_member_and_count() {
        let mut room = Room::new();
        let m = room.log(ALICE, MessageBody::text("lunch?"));
        room.relate(BOB, m, react("👍"));
        room.relate(ME, m, react("👍"));
        room.relate(ALICE, m, react("❤️"));
        room.relate(BOB, m, react("👍")); // twice counts once
        room.relate(ME, m, RelationKind::Unreact { emoji: emoji("👍").unwrap() });
        let r = reactions(&room.c, 1, &m.0, ME).unwrap();
        let seen: Vec<(&str, Vec<String>, bool)> =
            r.iter().map(|r| (r.emoji.as_str(), r.users.clone(), r.mine)).collect();
        assert_eq!(
            seen,
            [("👍", vec!["bob".to_owned()], false), ("❤️", vec!["alice".to_owned()], false)]
        );
        room.relate(ME, m, react("❤️"));
        let r = reactions(&room.c, 1, &m.0, ME).unwrap();
        assert_eq!((r[1].users.len(), r[1].mine), (2, true));
    }

    #[test]
    fn emoji_are_checked() {
        for bad in ["", "ok", " 👍", "👍\n", &"👍".repeat(20)] {
            assert!(emoji(bad).is_err(), "{bad:?}");
        }
        for good in ["👍", "❤️", "👨‍👩‍👧‍👦", "1️⃣"] {
            assert!(emoji(good).is_ok(), "{good:?}");
        }
    }
}
