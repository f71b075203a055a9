//! The rules of disappearing messages (see [`crate::disappearing`]): a leaf module that
//! apply, the send queue and opening the profile call in their own transactions.

use rusqlite::{params, Connection, OptionalExtension};

use tidings_proto::Body;

use crate::{
    body::{decode_body, MessageBody},
    model::RoomKey,
    stamp::now_ms,
    Error,
};

/// Longest timer: four weeks, in seconds.
pub const MAX_TIMER_S: u32 = 28 * 24 * 3600;

/// Checks a timer in seconds (`0`: off).
pub fn timer(seconds: u32) -> Result<u32, Error> {
    if seconds > MAX_TIMER_S {
        return Err(Error::Invalid(format!(
            "a disappearing-message timer may be at most {MAX_TIMER_S} seconds (four weeks)"
        )));
    }
    Ok(seconds)
}

/// The room's timer (seconds; `None` when off): what a message sent now carries.
pub(crate) fn of_room(c: &Connection, room: RoomKey) -> Result<Option<u32>, Error> {
    let seconds: Option<u32> = c
        .prepare_cached("SELECT disappearing_s FROM rooms WHERE id = ?1")?
        .query_row([room], |r| r.get(0))
        .optional()?;
    Ok(seconds.filter(|s| *s > 0))
}

/// `body`, a message about to be sent into `room`, with the room's timer if it is on and
/// the message is one that disappears (not an edit, reaction or deletion, a naming, a proof
/// or a setting): `None` when it goes as it is.
pub(crate) fn stamp(c: &Connection, room: RoomKey, body: &[u8]) -> Result<Option<Body>, Error> {
    let Some(seconds) = of_room(c, room)? else { return Ok(None) };
    let Some(mut message) = decode_body(body) else { return Ok(None) };
    if !disappears(&message) {
        return Ok(None);
    }
    message.expires_in = Some(seconds);
    let encoded =
        tidings_proto::codec::encode(&message).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Some(Body::new(encoded).map_err(|e| Error::Invalid(e.to_string()))?))
}

/// Whether a message of this kind disappears with the room's timer.
fn disappears(m: &MessageBody) -> bool {
    m.relates.is_none() && m.name.is_none() && m.verified.is_none() && m.disappearing.is_none()
}

/// Sets `room`'s timer to `seconds` (0: off), as a setting in its log says.
pub(crate) fn set(tx: &Connection, room: RoomKey, seconds: u32) -> Result<(), Error> {
    tx.prepare_cached("UPDATE rooms SET disappearing_s = ?2 WHERE id = ?1")?
        .execute(params![room, seconds.min(MAX_TIMER_S)])?;
    Ok(())
}

/// Gives stored event `id`, sent at `at_ms` with timer `expires_in`, its expiry; erases it
/// at once if it expired already (it arrived late). Whether it did.
pub(crate) fn start(tx: &Connection, id: i64, at_ms: i64, expires_in: u32) -> Result<bool, Error> {
    let expires = at_ms.saturating_add(i64::from(expires_in.min(MAX_TIMER_S)) * 1000);
    tx.prepare_cached("UPDATE events SET expires_ms = ?2 WHERE id = ?1")?
        .execute(params![id, expires])?;
    if expires <= now_ms() {
        erase(tx, id)?;
        return Ok(true);
    }
    Ok(false)
}

/// Erases every message that expired by `now`: the rooms they were in.
pub(crate) fn sweep(tx: &Connection, now: i64) -> Result<Vec<RoomKey>, Error> {
    let expired: Vec<(i64, RoomKey)> = {
        let mut st = tx.prepare_cached(
            "SELECT id, room_id FROM events WHERE expires_ms <= ?1 ORDER BY expires_ms",
        )?;
        let rows = st.query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut rooms: Vec<RoomKey> = Vec::new();
    for (id, room) in expired {
        erase(tx, id)?;
        if !rooms.contains(&room) {
            rooms.push(room);
        }
    }
    Ok(rooms)
}

/// When the next message expires (Unix ms), if one will.
pub(crate) fn next(c: &Connection) -> Result<Option<i64>, Error> {
    Ok(c.prepare_cached("SELECT min(expires_ms) FROM events")?.query_row([], |r| r.get(0))?)
}

/// Erases expired event `id`: as a deletion for everyone, then hidden; the room list's
/// preview forgets it.
fn erase(tx: &Connection, id: i64) -> Result<(), Error> {
    let (room, request, sender): (RoomKey, Vec<u8>, i64) = tx
        .prepare_cached("SELECT room_id, request_id, sender FROM events WHERE id = ?1")?
        .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    crate::relations::erase(tx, room, &request, sender)?;
    crate::search::index::forget(tx, id)?;
    tx.prepare_cached("UPDATE events SET hidden = 1, expires_ms = NULL WHERE id = ?1")?
        .execute([id])?;
    tx.prepare_cached(
        "UPDATE rooms SET last_preview = NULL, last_sender = NULL
         WHERE id = ?1 AND last_event_id = ?2",
    )?
    .execute(params![room, id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Through apply on a real store, as sync applies the log.

    use super::*;
    use crate::body::RelationKind;
    use crate::testing::{LogRoom, ALICE, BOB};

    fn disappearing(text: &str, seconds: u32) -> MessageBody {
        MessageBody { expires_in: Some(seconds), ..MessageBody::text(text) }
    }

    /// (hidden, deleted, expires_ms, searchable) of the event with request id `r`.
    fn state(c: &Connection, r: &tidings_proto::RequestId) -> (bool, bool, Option<i64>, bool) {
        c.query_row(
            "SELECT hidden, deleted, expires_ms, EXISTS (SELECT 1 FROM search WHERE rowid = e.id)
             FROM events e WHERE request_id = ?1",
            [&r.0[..]],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap()
    }

    #[test]
    fn the_last_setting_in_the_log_is_the_rooms_timer() {
        let mut room = LogRoom::new();
        assert_eq!(of_room(&room.c, 1).unwrap(), None);
        room.log(ALICE, MessageBody { disappearing: Some(3600), ..MessageBody::text("") });
        assert_eq!(of_room(&room.c, 1).unwrap(), Some(3600));
        room.log(BOB, MessageBody { disappearing: Some(0), ..MessageBody::text("") });
        assert_eq!(of_room(&room.c, 1).unwrap(), None, "turned off");
        // What a message sent now carries: nothing while off; the timer once on.
        assert!(stamp(&room.c, 1, &encoded(&MessageBody::text("hi"))).unwrap().is_none());
        room.log(ALICE, MessageBody { disappearing: Some(60), ..MessageBody::text("") });
        let stamped = stamp(&room.c, 1, &encoded(&MessageBody::text("hi"))).unwrap().unwrap();
        assert_eq!(decode_body(stamped.as_bytes()).unwrap().expires_in, Some(60));
        // An edit or a reaction has no timer of its own: it goes with its message.
        let to = crate::body::MessageRef::new(vec![1; 16]).unwrap();
        let relates = Some(crate::body::Relation { to, kind: RelationKind::Delete });
        let deletion = MessageBody { relates, ..MessageBody::text("") };
        assert!(stamp(&room.c, 1, &encoded(&deletion)).unwrap().is_none());
    }

    fn encoded(body: &MessageBody) -> Vec<u8> {
        tidings_proto::codec::encode(body).unwrap()
    }

    #[test]
    fn an_expired_message_is_erased_with_its_edits_and_reactions_and_later_ones_do_nothing() {
        let mut room = LogRoom::new();
        let now = now_ms();
        room.at_ms = Some(now - 10_000);
        // Sent ten seconds ago with a 30-second timer: here for twenty more seconds.
        let m = room.log(ALICE, disappearing("see you at six", 30));
        room.relate(BOB, m, RelationKind::React { emoji: crate::body::emoji("👍").unwrap() });
        room.relate(ALICE, m, RelationKind::Edit { text: "see you at seven".into() });
        assert_eq!(state(&room.c, &m), (false, false, Some(now + 20_000), true));
        assert_eq!(next(&room.c).unwrap(), Some(now + 20_000));

        let tx = room.c.unchecked_transaction().unwrap();
        assert_eq!(sweep(&tx, now).unwrap(), Vec::<RoomKey>::new(), "not yet");
        assert_eq!(sweep(&tx, now + 20_000).unwrap(), vec![1]);
        tx.commit().unwrap();
        assert_eq!(state(&room.c, &m), (true, true, None, false), "erased, hidden, unsearchable");
        let relations: i64 =
            room.c.query_row("SELECT count(*) FROM relations", [], |r| r.get(0)).unwrap();
        assert_eq!(relations, 0, "its edit and reaction went with it");
        let preview: Option<String> =
            room.c.query_row("SELECT last_preview FROM rooms", [], |r| r.get(0)).unwrap();
        assert_eq!(preview, None);
        assert_eq!(next(&room.c).unwrap(), None);

        // An edit or a deletion that comes later does nothing.
        room.relate(ALICE, m, RelationKind::Edit { text: "back again".into() });
        room.relate(ALICE, m, RelationKind::Delete);
        assert_eq!(crate::relations::last_edit(&room.c, &m.0).unwrap(), None);
        assert!(state(&room.c, &m).0, "still erased");
    }

    #[test]
    fn a_message_that_arrives_expired_is_never_shown() {
        let mut room = LogRoom::new();
        room.at_ms = Some(now_ms() - 120_000);
        let late = room.log(ALICE, disappearing("too late", 60));
        assert_eq!(state(&room.c, &late), (true, true, None, false));
        let (unread, preview): (i64, Option<String>) = room
            .c
            .query_row("SELECT unread, last_preview FROM rooms", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap();
        assert_eq!((unread, preview), (0, None), "not counted, not previewed");
        // A message without a timer beside it stays.
        let kept = room.log(BOB, MessageBody::text("no timer"));
        assert_eq!(state(&room.c, &kept), (false, false, None, true));
    }
}
