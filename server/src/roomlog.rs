//! SQL over the room logs: appending events with the per-room gap-free seq, membership,
//! receipts and idempotency records. Plain functions over a connection, called inside a
//! writer job (mutations) or a read (queries).

use rusqlite::{params, Connection, OptionalExtension};
use tidings_proto::{
    bounded::List, codec, DeviceId, EventContent, Member, RequestId, RoomEvent, RoomId, Seq,
    UserId, UserRef,
};

use crate::error::OpError;

/// Who is acting: a joined connection's user and device.
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    /// The user.
    pub user: UserId,
    /// The device (session).
    pub device: DeviceId,
}

/// Appends an event to `room`'s log and returns it. The seq is the room's next one; the
/// increment and the insert commit together, so the log has no gaps.
pub fn append(
    conn: &Connection,
    room: RoomId,
    actor: Actor,
    request: RequestId,
    at_ms: i64,
    content: EventContent,
) -> Result<(RoomEvent, Vec<u8>), OpError> {
    let seq: i64 = conn
        .prepare_cached(
            "UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq",
        )?
        .query_row([room.0], |r| r.get(0))?;
    let event = RoomEvent {
        room,
        seq: seq as Seq,
        sender: actor.user,
        device: actor.device,
        request,
        at_ms,
        content,
    };
    let bytes = codec::encode(&event).map_err(OpError::internal)?;
    conn.prepare_cached("INSERT INTO events (room_id, seq, event) VALUES (?1, ?2, ?3)")?
        .execute(params![room.0, seq, bytes])?;
    Ok((event, bytes))
}

/// Whether `user` is a current member of `room`.
pub fn is_member(conn: &Connection, room: RoomId, user: UserId) -> Result<bool, OpError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM members WHERE room_id = ?1 AND user_id = ?2 AND active = 1")?
        .exists(params![room.0, user.0])?)
}

/// Current members of `room`.
pub fn members(conn: &Connection, room: RoomId) -> Result<Vec<UserId>, OpError> {
    let mut st =
        conn.prepare_cached("SELECT user_id FROM members WHERE room_id = ?1 AND active = 1")?;
    let rows = st.query_map([room.0], |r| Ok(UserId(r.get(0)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Current members of `room` with usernames and receipt watermarks.
pub fn member_states(conn: &Connection, room: RoomId) -> Result<Vec<Member>, OpError> {
    let mut st = conn.prepare_cached(
        "SELECT m.user_id, u.username, m.delivered_seq, m.read_seq
         FROM members m JOIN users u ON u.id = m.user_id
         WHERE m.room_id = ?1 AND m.active = 1 ORDER BY m.user_id",
    )?;
    let rows = st.query_map([room.0], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, i64>(3)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, name, delivered, read) = row?;
        out.push(Member {
            user: user_ref(UserId(id), name)?,
            delivered: delivered as Seq,
            read: read as Seq,
        });
    }
    Ok(out)
}

/// A user reference from a stored username.
pub fn user_ref(id: UserId, username: String) -> Result<UserRef, OpError> {
    let username = tidings_proto::Username::new(username).map_err(OpError::internal)?;
    Ok(UserRef { id, username })
}

/// Looks a user up by id.
pub fn user(conn: &Connection, id: UserId) -> Result<Option<UserRef>, OpError> {
    let name: Option<String> = conn
        .prepare_cached("SELECT username FROM users WHERE id = ?1")?
        .query_row([id.0], |r| r.get(0))
        .optional()?;
    name.map(|n| user_ref(id, n)).transpose()
}

/// Makes `user` a member of `room` who has agreed to be there, unless they are in
/// `max_rooms` agreed rooms already: a cap that keeps every Join's room list whole, whoever
/// puts them in rooms.
pub fn activate_member(
    conn: &Connection,
    room: RoomId,
    user: UserId,
    max_rooms: usize,
) -> Result<(), OpError> {
    check_room_cap(conn, user, max_rooms)?;
    conn.prepare_cached(
        "INSERT INTO members (room_id, user_id, active) VALUES (?1, ?2, 1)
         ON CONFLICT (room_id, user_id) DO UPDATE SET active = 1, requested_by = NULL",
    )?
    .execute(params![room.0, user.0])?;
    Ok(())
}

fn check_room_cap(conn: &Connection, user: UserId, max_rooms: usize) -> Result<(), OpError> {
    let rooms: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM members
             WHERE user_id = ?1 AND active = 1 AND requested_by IS NULL",
        )?
        .query_row([user.0], |r| r.get(0))?;
    if rooms as usize >= max_rooms {
        return Err(OpError::new(
            tidings_proto::ErrorCode::QuotaExceeded,
            format!("user {} is in {max_rooms} rooms, the most there can be", user.0),
        ));
    }
    Ok(())
}

/// The caps that bound what others can put on a user.
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    /// Agreed rooms per user.
    pub rooms: usize,
    /// Open requests per user.
    pub requests: usize,
}

/// Adds `user` to `room` on `by`'s initiative, with consent (docs/protocol.md, "Requests
/// and blocking"): `by` themselves, or someone `user` has as a contact, makes an agreed
/// member; anyone else makes a request, at most `caps.requests` open at once per user; a
/// user who blocks `by` is not added at all (`forbidden`). Returns whether it is a request.
pub fn add_member(
    conn: &Connection,
    room: RoomId,
    user: UserId,
    by: UserId,
    caps: Caps,
) -> Result<bool, OpError> {
    if user == by || is_contact(conn, user, by)? {
        activate_member(conn, room, user, caps.rooms)?;
        return Ok(false);
    }
    if blocks(conn, user, by)? {
        return Err(OpError::forbidden(format!("user {} does not accept rooms from you", user.0)));
    }
    let open: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM members
             WHERE user_id = ?1 AND active = 1 AND requested_by IS NOT NULL",
        )?
        .query_row([user.0], |r| r.get(0))?;
    if open as usize >= caps.requests {
        return Err(OpError::new(
            tidings_proto::ErrorCode::QuotaExceeded,
            format!("user {} has {} open requests, the most there can be", user.0, caps.requests),
        ));
    }
    conn.prepare_cached(
        "INSERT INTO members (room_id, user_id, active, requested_by) VALUES (?1, ?2, 1, ?3)
         ON CONFLICT (room_id, user_id) DO UPDATE SET active = 1, requested_by = ?3",
    )?
    .execute(params![room.0, user.0, by.0])?;
    Ok(true)
}

/// `user`'s membership of `room`: `None` if not a current member, else who asked them in
/// while they still hold the room as a request (`Some(None)`: agreed).
pub fn membership(
    conn: &Connection,
    room: RoomId,
    user: UserId,
) -> Result<Option<Option<UserId>>, OpError> {
    Ok(conn
        .prepare_cached(
            "SELECT requested_by FROM members WHERE room_id = ?1 AND user_id = ?2 AND active = 1",
        )?
        .query_row(params![room.0, user.0], |r| r.get::<_, Option<i64>>(0))
        .optional()?
        .map(|by| by.map(UserId)))
}

/// Who asked `user` into `room`, if `user` is a member who has not accepted yet.
pub fn request_of(
    conn: &Connection,
    room: RoomId,
    user: UserId,
) -> Result<Option<UserId>, OpError> {
    Ok(membership(conn, room, user)?.flatten())
}

/// Accepts `user`'s request in `room`: from now on it counts as one of their rooms.
pub fn accept_request(
    conn: &Connection,
    room: RoomId,
    user: UserId,
    max_rooms: usize,
) -> Result<(), OpError> {
    if request_of(conn, room, user)?.is_none() {
        return Err(OpError::invalid("there is no request to accept in this room"));
    }
    activate_member(conn, room, user, max_rooms)
}

/// Whether `user` has `other` as a contact.
pub fn is_contact(conn: &Connection, user: UserId, other: UserId) -> Result<bool, OpError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM contacts WHERE user_id = ?1 AND contact_id = ?2")?
        .exists(params![user.0, other.0])?)
}

/// Whether `user` blocks `other`.
pub fn blocks(conn: &Connection, user: UserId, other: UserId) -> Result<bool, OpError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM blocks WHERE user_id = ?1 AND blocked_id = ?2")?
        .exists(params![user.0, other.0])?)
}

/// Ends a membership (the row stays, with its watermarks).
pub fn deactivate_member(conn: &Connection, room: RoomId, user: UserId) -> Result<(), OpError> {
    conn.prepare_cached("UPDATE members SET active = 0 WHERE room_id = ?1 AND user_id = ?2")?
        .execute(params![room.0, user.0])?;
    Ok(())
}

/// The answer recorded for `(device, request)`, if any: its fingerprint, room and seq.
pub fn find_request(
    conn: &Connection,
    device: DeviceId,
    request: RequestId,
) -> Result<Option<(Vec<u8>, RoomId, Seq)>, OpError> {
    Ok(conn
        .prepare_cached(
            "SELECT fingerprint, room_id, seq FROM requests WHERE device_id = ?1 AND request_id = ?2",
        )?
        .query_row(params![device.0, &request.0[..]], |r| {
            Ok((r.get(0)?, RoomId(r.get(1)?), r.get::<_, i64>(2)? as Seq))
        })
        .optional()?)
}

/// Drops the content of message `target` (its request id) of `room`, deleted for everyone
/// by its sender `user`: the event stays in the log, in its place, as a message with an
/// empty body and no attachments (clients show a deleted stub), and its media are no longer
/// referenced, so the media sweep deletes them. A message not logged (yet) is left alone;
/// anyone else's is refused.
pub fn redact(
    conn: &Connection,
    room: RoomId,
    user: UserId,
    target: RequestId,
) -> Result<(), OpError> {
    let logged: Option<i64> = conn
        .prepare_cached("SELECT seq FROM requests WHERE request_id = ?1 AND room_id = ?2")?
        .query_row(params![&target.0[..], room.0], |r| r.get(0))
        .optional()?;
    let Some(seq) = logged else { return Ok(()) };
    let stored: Vec<u8> = conn
        .prepare_cached("SELECT event FROM events WHERE room_id = ?1 AND seq = ?2")?
        .query_row(params![room.0, seq], |r| r.get(0))?;
    let mut event: RoomEvent = codec::decode(&stored).map_err(OpError::internal)?;
    if event.sender != user || !matches!(event.content, EventContent::Message { .. }) {
        return Err(OpError::forbidden("only a message's sender deletes it for everyone"));
    }
    event.content = EventContent::Message {
        body: tidings_proto::Body::new(Vec::new()).map_err(OpError::internal)?,
        attachments: List::empty(),
    };
    conn.prepare_cached("UPDATE events SET event = ?3 WHERE room_id = ?1 AND seq = ?2")?
        .execute(params![room.0, seq, codec::encode(&event).map_err(OpError::internal)?])?;
    conn.prepare_cached("DELETE FROM message_media WHERE room_id = ?1 AND seq = ?2")?
        .execute(params![room.0, seq])?;
    Ok(())
}

/// Records the answer to a committed mutation.
pub fn record_request(
    conn: &Connection,
    device: DeviceId,
    request: RequestId,
    fingerprint: &[u8],
    room: RoomId,
    seq: Seq,
) -> Result<(), OpError> {
    conn.prepare_cached(
        "INSERT INTO requests (device_id, request_id, fingerprint, room_id, seq)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![device.0, &request.0[..], fingerprint, room.0, seq as i64])?;
    Ok(())
}

/// The room's last seq, if the room exists.
pub fn last_seq(conn: &Connection, room: RoomId) -> Result<Option<Seq>, OpError> {
    Ok(conn
        .prepare_cached("SELECT last_seq FROM rooms WHERE id = ?1")?
        .query_row([room.0], |r| r.get::<_, i64>(0))
        .optional()?
        .map(|s| s as Seq))
}

/// Encoded events a page may carry: the frame limit less room for the member list.
pub const PAGE_BUDGET_BYTES: usize = tidings_proto::limits::MAX_FRAME_BYTES - 32 * 1024;

/// Events of `room` after `after`, oldest first: at most `limit`, and no more than fit in
/// [`PAGE_BUDGET_BYTES`] (at least one), so a page of photo messages still fits a frame.
pub fn page(
    conn: &Connection,
    room: RoomId,
    after: Seq,
    limit: usize,
) -> Result<Vec<RoomEvent>, OpError> {
    let mut st = conn.prepare_cached(
        "SELECT event FROM events WHERE room_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    )?;
    // A seq past i64::MAX is past every stored seq: clamp it, never wrap it to a negative
    // number (which would return the log from seq 1).
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let rows = st.query_map(params![room.0, after, limit as i64], |r| r.get::<_, Vec<u8>>(0))?;
    let mut events = Vec::new();
    let mut bytes = 0;
    for row in rows {
        let row = row?;
        bytes += row.len();
        if bytes > PAGE_BUDGET_BYTES && !events.is_empty() {
            break;
        }
        events.push(codec::decode::<RoomEvent>(&row).map_err(OpError::internal)?);
    }
    Ok(events)
}

/// Moves `user`'s watermarks in `room` forward (never back, never past the log's head).
/// Returns the new `(delivered, read)` if either moved.
pub fn advance_receipts(
    conn: &Connection,
    room: RoomId,
    user: UserId,
    delivered: Option<Seq>,
    read: Option<Seq>,
) -> Result<Option<(Seq, Seq)>, OpError> {
    let head = last_seq(conn, room)?.unwrap_or(0);
    let (old_d, old_r): (i64, i64) = conn
        .prepare_cached(
            "SELECT delivered_seq, read_seq FROM members WHERE room_id = ?1 AND user_id = ?2",
        )?
        .query_row(params![room.0, user.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let (old_d, old_r) = (old_d as Seq, old_r as Seq);
    let read_to = read.unwrap_or(0).min(head).max(old_r);
    // Whatever was read was delivered.
    let delivered_to = delivered.unwrap_or(0).min(head).max(old_d).max(read_to);
    if (delivered_to, read_to) == (old_d, old_r) {
        return Ok(None);
    }
    conn.prepare_cached(
        "UPDATE members SET delivered_seq = ?3, read_seq = ?4 WHERE room_id = ?1 AND user_id = ?2",
    )?
    .execute(params![room.0, user.0, delivered_to as i64, read_to as i64])?;
    Ok(Some((delivered_to, read_to)))
}

/// Rooms `user` is a member of, with their heads.
pub fn rooms_of(conn: &Connection, user: UserId) -> Result<Vec<(RoomId, Seq)>, OpError> {
    let mut st = conn.prepare_cached(
        "SELECT r.id, r.last_seq FROM members m JOIN rooms r ON r.id = m.room_id
         WHERE m.user_id = ?1 AND m.active = 1 ORDER BY r.id",
    )?;
    let rows = st.query_map([user.0], |r| Ok((RoomId(r.get(0)?), r.get::<_, i64>(1)? as Seq)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Helper for building bounded lists from query results that the schema already bounds.
pub fn bounded<T, const MAX: usize>(items: Vec<T>) -> Result<List<T, MAX>, OpError> {
    List::new(items).map_err(OpError::internal)
}
