//! Applying what the server says to the store: room events (in seq order, gap-free), member
//! watermarks, and the confirmation of outbox items. Plain functions over a transaction; the
//! caller commits and then emits events.

use rusqlite::{params, Connection, OptionalExtension};
use tidings_proto::{codec, EventContent, Member, RequestId, RoomEvent, RoomKind, Seq, UserRef};

use crate::{
    model::{RoomKey, SecurityIssue},
    Error,
};

/// Timeline position of a server event.
pub fn position_of_seq(seq: Seq) -> i64 {
    (seq as i64) << 20
}

pub use crate::store::PENDING_POSITION;

pub use crate::body::{
    body_text, decode_body, describe, FileBody, ImageBody, MessageBody, SealedFile, VideoBody,
    MAX_THUMBNAIL_BYTES,
};

/// Opens an encrypted message of `group` as the content to store: the plaintext body if it
/// decrypts and its MLS sender is the device the log names; otherwise the event as logged,
/// which the timeline shows as a message it cannot show (never a stalled sync) — or, for my
/// own message from this device, which MLS never opens for its sender, as my echo shows it
/// ([`event`]). A message whose MLS sender is another device than the log's is a security
/// event.
fn open(
    tx: &Connection,
    loaded: &mut crate::e2ee::Loaded,
    group: &[u8],
    e: &RoomEvent,
    body: &tidings_proto::Body,
    attachments: &tidings_proto::bounded::List<
        tidings_proto::MediaId,
        { tidings_proto::limits::MAX_ATTACHMENTS },
    >,
) -> Result<(EventContent, Option<SecurityIssue>, bool), Error> {
    use crate::e2ee::{E2eeError, Processed};
    let logged = || Ok((e.content.clone(), None, false));
    match loaded.open(tx, group, body.as_bytes()) {
        Ok(Processed::Application { sender, plaintext })
            if (sender.user, sender.device) == (e.sender.0, e.device.0) =>
        {
            match tidings_proto::Body::new(plaintext) {
                Ok(body) => Ok((
                    EventContent::Message { body, attachments: attachments.clone() },
                    None,
                    true,
                )),
                Err(_) => logged(),
            }
        }
        Ok(Processed::Application { .. }) => {
            tracing::warn!(seq = e.seq, "A message whose MLS sender is not its logged sender.");
            Ok((e.content.clone(), Some(SecurityIssue::WrongSender), false))
        }
        Err(E2eeError::BadSignature) => {
            tracing::warn!(seq = e.seq, "A message whose signature is not its sender's.");
            Ok((e.content.clone(), Some(SecurityIssue::BadSignature), false))
        }
        Ok(_) => logged(),
        Err(E2eeError::Storage(err)) => Err(err.into()),
        Err(err) => {
            tracing::debug!(seq = e.seq, error = %err, "A message this device cannot open.");
            logged()
        }
    }
}

/// The content of my local echo of request `request`, if this device has it.
fn echo_content(
    tx: &Connection,
    request: &tidings_proto::RequestId,
) -> Result<Option<EventContent>, Error> {
    let content: Option<Vec<u8>> = tx
        .prepare_cached("SELECT content FROM events WHERE request_id = ?1")?
        .query_row([&request.0[..]], |r| r.get(0))
        .optional()?;
    Ok(content.and_then(|c| codec::decode(&c).ok()))
}

/// Applies a handshake of the room's group: joins from its Welcome when this device is not in
/// the group yet, else merges its commit. What is not for this device, or does not process,
/// is passed over. A group this device is not in (no Welcome named it) or was removed from
/// is marked `mls_absent`: the machine joins it again by external commit (sync/group.rs).
/// One that fails a check of who is in the group (a certificate, the room's membership) is
/// refused all the same, and is the security issue returned, for the timeline.
fn handshake(
    tx: &Connection,
    room: RoomKey,
    me: i64,
    group: Option<&[u8]>,
    request: &RequestId,
    commit: Option<&tidings_proto::MlsBlob>,
    welcome: Option<&tidings_proto::MlsBlob>,
) -> Result<Option<SecurityIssue>, Error> {
    use crate::e2ee::E2eeError;
    let absent = |tx: &Connection| -> Result<(), E2eeError> {
        tx.prepare_cached("UPDATE rooms SET mls_group = NULL, mls_absent = 1 WHERE id = ?1")?
            .execute([room])?;
        Ok(())
    };
    // My own setup or external join, whose reply was lost: it is the group now.
    let pending: Option<(Vec<u8>, Vec<u8>)> = tx
        .prepare_cached(
            "SELECT mls_pending_group, mls_pending_request FROM rooms
             WHERE id = ?1 AND mls_pending_group IS NOT NULL",
        )?
        .query_row([room], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if let (None, Some((pending, _))) =
        (group, pending.as_ref().filter(|(_, rid)| rid[..] == request.0[..]))
    {
        crate::e2ee::confirm(tx, pending)?;
        crate::verification::observe(tx, me, pending, None)?;
        tx.prepare_cached(
            "UPDATE rooms SET mls_group = mls_pending_group, mls_absent = 0,
                 mls_pending_group = NULL, mls_pending_request = NULL
             WHERE id = ?1",
        )?
        .execute([room])?;
        return Ok(None);
    }
    let mut told = None;
    let result = match (group, commit, welcome) {
        (None, _, Some(welcome)) => {
            match crate::e2ee::join(tx, welcome.as_bytes(), &roster(tx, room)?) {
                Ok(group) => {
                    tx.prepare_cached(
                        "UPDATE rooms SET mls_group = ?2, mls_absent = 0 WHERE id = ?1",
                    )?
                    .execute(params![room, group])?;
                    told = Some(Told::Joined(group));
                    Ok(())
                }
                Err(E2eeError::Storage(err)) => Err(E2eeError::Storage(err)),
                Err(err) => absent(tx).and(Err(err)),
            }
        }
        (None, Some(_), None) => absent(tx),
        (Some(group), Some(commit), _) => (|| {
            let before = crate::e2ee::members(tx, group)?;
            match crate::e2ee::process(tx, group, commit.as_bytes(), &roster(tx, room)?) {
                Ok(_) => {
                    // Removed from the group (while still in the room, or the room's removal
                    // follows): its state goes.
                    if crate::e2ee::epoch(tx, group)?.is_none() {
                        crate::e2ee::forget(tx, group)?;
                        absent(tx)?;
                        return Ok(());
                    }
                    let after = crate::e2ee::members(tx, group)?;
                    let joined: Vec<_> =
                        after.iter().filter(|l| !before.contains(l)).copied().collect();
                    if !joined.is_empty() {
                        let stayed: Vec<_> =
                            before.iter().filter(|l| after.contains(l)).copied().collect();
                        told = Some(Told::Added { group: group.to_vec(), stayed, joined });
                    }
                    Ok(())
                }
                Err(E2eeError::Storage(err)) => Err(E2eeError::Storage(err)),
                Err(err) => {
                    // A commit on this device's epoch that does not process leaves it behind
                    // the log for good: it joins again. (Older commits — my own external join,
                    // merged when logged — are simply passed over.)
                    let at = crate::e2ee::header(commit.as_bytes()).ok().map(|h| h.1);
                    if at.is_some() && at == crate::e2ee::epoch(tx, group)? {
                        crate::e2ee::forget(tx, group)?;
                        absent(tx)?;
                    }
                    Err(err)
                }
            }
        })(),
        _ => Ok(()),
    };
    match result {
        Err(E2eeError::Storage(err)) => Err(err.into()),
        Err(err) => match SecurityIssue::of(&err) {
            Some(issue) => {
                tracing::warn!(error = %err, "A handshake that fails a security check: refused.");
                Ok(Some(issue))
            }
            None => {
                tracing::debug!(error = %err, "A handshake this device passes over.");
                Ok(None)
            }
        },
        Ok(()) => {
            match told {
                Some(Told::Added { group, stayed, joined }) => {
                    crate::verification::observe(tx, me, &group, Some(&joined))?;
                    tell_name(tx, room, &stayed, &joined)?;
                }
                Some(Told::Joined(group)) => crate::verification::observe(tx, me, &group, None)?,
                None => {}
            }
            Ok(None)
        }
    }
}

/// What a handshake that went through changed of the group's leaves.
enum Told {
    /// This device joined the group (from a Welcome): every leaf is new to it.
    Joined(Vec<u8>),
    /// A commit added the `joined` leaves; `stayed` were there before.
    Added { group: Vec<u8>, stayed: Vec<crate::e2ee::LeafId>, joined: Vec<crate::e2ee::LeafId> },
}

/// Who may hold a leaf of `room`'s group, as its log has it so far.
pub fn roster(c: &Connection, room: RoomKey) -> Result<crate::e2ee::Roster, rusqlite::Error> {
    let mut roster = crate::e2ee::Roster::default();
    let mut st = c.prepare_cached("SELECT user_id, active FROM members WHERE room_id = ?1")?;
    let mut rows = st.query([room])?;
    while let Some(row) = rows.next()? {
        let user: i64 = row.get(0)?;
        if row.get::<_, bool>(1)? {
            roster.now.insert(user);
        }
        roster.ever.insert(user);
    }
    Ok(roster)
}

/// The local room for a server room id, if this profile knows it.
pub fn known_room(c: &Connection, server_id: i64) -> Result<Option<RoomKey>, Error> {
    Ok(c.prepare_cached("SELECT id FROM rooms WHERE server_id = ?1")?
        .query_row([server_id], |r| r.get(0))
        .optional()?)
}

/// The local room for a server room id, created (as a placeholder) if unknown.
pub fn local_room(tx: &Connection, server_id: i64) -> Result<RoomKey, Error> {
    if let Some(id) = known_room(tx, server_id)? {
        return Ok(id);
    }
    tx.prepare_cached("INSERT INTO rooms (server_id, kind) VALUES (?1, 'group')")?
        .execute([server_id])?;
    Ok(tx.last_insert_rowid())
}

fn remember_user(tx: &Connection, user: &UserRef) -> Result<(), Error> {
    tx.prepare_cached(
        "INSERT INTO users (id, username) VALUES (?1, ?2)
         ON CONFLICT (id) DO UPDATE SET username = excluded.username",
    )?
    .execute(params![user.id.0, user.username.as_str()])?;
    Ok(())
}

fn set_member(tx: &Connection, room: RoomKey, user: i64, active: bool) -> Result<(), Error> {
    tx.prepare_cached(
        "INSERT INTO members (room_id, user_id, active) VALUES (?1, ?2, ?3)
         ON CONFLICT (room_id, user_id) DO UPDATE SET active = excluded.active",
    )?
    .execute(params![room, user, active])?;
    Ok(())
}

/// Marks `room` as a request from `from`, or as no request.
fn set_request(tx: &Connection, room: RoomKey, from: Option<i64>) -> Result<(), Error> {
    tx.prepare_cached("UPDATE rooms SET request_from = ?2 WHERE id = ?1")?
        .execute(params![room, from])?;
    Ok(())
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It was the next event: applied.
    Applied,
    /// Already had it.
    Duplicate,
    /// Events are missing before it: catch up from the room's synced seq first.
    Gap,
}

/// Recomputes the room's summary of the other members (count and lowest watermarks), which
/// the room list shows as ticks without reading members.
pub fn refresh_others(tx: &Connection, room: RoomKey, me: i64) -> Result<(), Error> {
    tx.prepare_cached(
        "UPDATE rooms SET (others, others_delivered_seq, others_read_seq) =
             (SELECT count(*), coalesce(min(delivered_seq), 0), coalesce(min(read_seq), 0)
              FROM members WHERE room_id = ?1 AND active = 1 AND user_id != ?2)
         WHERE id = ?1",
    )?
    .execute(params![room, me])?;
    Ok(())
}

/// Applies one event of a room whose local id is `room`, if it is the next in its log.
///
/// In a room whose MLS group this device is in, a message is opened here, in the caller's
/// transaction: its key is used up as the plaintext is stored and the cursor moves, all or
/// nothing (core/src/e2ee).
pub fn event(tx: &Connection, room: RoomKey, me: i64, e: &RoomEvent) -> Result<Applied, Error> {
    event_in(tx, &mut crate::e2ee::Loaded::default(), room, me, e)
}

/// Applies a page of `room`'s events in order ([`event`] for each), in transaction `tx`;
/// the room's group is loaded once for the whole page, and its messages' signatures are
/// checked on a second thread while the next are decrypted (core/src/e2ee/beside.rs). The
/// page goes in a savepoint: if a signature was bad, it is rolled back and applied again
/// with every signature checked in line, so the message that carried it is refused alone and
/// shown as a `bad_signature` security notice ([`open`]).
pub fn page(tx: &Connection, room: RoomKey, me: i64, events: &[RoomEvent]) -> Result<(), Error> {
    tx.execute_batch("SAVEPOINT page")?;
    let applied = page_in(tx, room, me, events);
    let end = if applied.is_ok() { "RELEASE page" } else { "ROLLBACK TO page; RELEASE page" };
    let ended = tx.execute_batch(end);
    applied?;
    Ok(ended?)
}

fn page_in(tx: &Connection, room: RoomKey, me: i64, events: &[RoomEvent]) -> Result<(), Error> {
    let mut loaded = crate::e2ee::Loaded::checking_beside();
    let applied = events.iter().try_for_each(|e| event_in(tx, &mut loaded, room, me, e).map(drop));
    if loaded.finish().is_ok() {
        return applied;
    }
    // Whatever else happened: what a forged message brought is not to be kept or acted on.
    tracing::warn!(room, "A page with a bad signature: opening it again, checking each.");
    tx.execute_batch("ROLLBACK TO page")?;
    let mut loaded = crate::e2ee::Loaded::default();
    for e in events {
        event_in(tx, &mut loaded, room, me, e)?;
    }
    Ok(())
}

fn event_in(
    tx: &Connection,
    loaded: &mut crate::e2ee::Loaded,
    room: RoomKey,
    me: i64,
    e: &RoomEvent,
) -> Result<Applied, Error> {
    let (synced, group): (i64, Option<Vec<u8>>) = tx
        .prepare_cached("SELECT synced_seq, mls_group FROM rooms WHERE id = ?1")?
        .query_row([room], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let seq = e.seq as i64;
    if seq <= synced {
        return Ok(Applied::Duplicate);
    }
    if seq > synced + 1 {
        return Ok(Applied::Gap);
    }
    // A message its sender deleted for everyone before this device got it: the server
    // dropped its content (Request::Send's `redacts`, crate::relations).
    let redacted = matches!(&e.content, EventContent::Message { body, attachments }
        if body.as_bytes().is_empty() && attachments.is_empty());
    let opened;
    let mut security = None;
    let mut sealed = false;
    let content = match (&e.content, &group) {
        (EventContent::Message { body, attachments }, Some(group)) if !redacted => {
            (opened, security, sealed) = open(tx, loaded, group, e, body, attachments)?;
            &opened
        }
        _ => &e.content,
    };
    // A verification proof, opened from the room's group (never one logged in clear).
    if let (true, Some(group), EventContent::Message { body, .. }) = (sealed, &group, content) {
        if let Some(MessageBody { verified: Some(proof), .. }) = decode_body(body.as_bytes()) {
            let sender = crate::e2ee::LeafId { user: e.sender.0, device: e.device.0 };
            crate::verification::take_proof(tx, room, me, group, sender, &proof)?;
            return passed_over(tx, room, me, e);
        }
    }
    // An edit, a deletion or a reaction (crate::relations): part of the log, shown with the
    // message it is about. Mine from this device (which cannot open it) is already here.
    if let Some(relation) = crate::relations::of_body(content) {
        let position = position_of_seq(e.seq);
        crate::relations::take(tx, room, e.sender.0, &e.request, position, e.at_ms, &relation)?;
        return passed_over(tx, room, me, e);
    }
    if e.sender.0 == me
        && matches!(content, EventContent::Message { .. })
        && crate::relations::confirm_mine(tx, &e.request, position_of_seq(e.seq), e.at_ms)?
    {
        return passed_over(tx, room, me, e);
    }
    // My own message that this device does not open (MLS never opens one for its sender; or
    // its group state went): its echo keeps the text I wrote, with the media ids attached
    // when the upload finished.
    let kept;
    let content = match content {
        EventContent::Message { body, .. }
            if e.sender.0 == me && !redacted && decode_body(body.as_bytes()).is_none() =>
        {
            match echo_content(tx, &e.request)? {
                Some(echo) => {
                    kept = echo;
                    &kept
                }
                None => content,
            }
        }
        _ => content,
    };
    // A group's name, sealed: shown where it is a rename; otherwise only taken.
    let renamed;
    let content = match naming(tx, room, me, e, content)? {
        Naming::Not => content,
        Naming::Renamed(name) => {
            renamed = EventContent::Renamed { name };
            &renamed
        }
        Naming::Quiet => return passed_over(tx, room, me, e),
    };
    match content {
        EventContent::Created { kind, name, members, requested } => {
            let kind = match kind {
                RoomKind::Direct => "direct",
                RoomKind::Group => "group",
            };
            // Tidings clients send a group's name sealed, after its creation: a name made
            // here stays until that message comes.
            tx.prepare_cached(
                "UPDATE rooms SET kind = ?2, name = coalesce(?3, name) WHERE id = ?1",
            )?
            .execute(params![room, kind, name.as_ref().map(|n| n.as_str())])?;
            for m in members.iter() {
                remember_user(tx, m)?;
                set_member(tx, room, m.id.0, true)?;
            }
            if requested.iter().any(|u| u.0 == me) {
                set_request(tx, room, Some(e.sender.0))?;
            }
        }
        EventContent::Joined { user, by, request } => {
            remember_user(tx, user)?;
            set_member(tx, room, user.id.0, true)?;
            if user.id.0 == me {
                tx.prepare_cached("UPDATE rooms SET member = 1 WHERE id = ?1")?.execute([room])?;
                set_request(tx, room, request.then_some(by.0))?;
            }
        }
        EventContent::Accepted { user } => {
            if user.0 == me {
                set_request(tx, room, None)?;
            }
        }
        EventContent::Left { user } | EventContent::Removed { user, .. } => {
            set_member(tx, room, user.0, false)?;
            if user.0 == me {
                tx.prepare_cached("UPDATE rooms SET member = 0 WHERE id = ?1")?.execute([room])?;
                set_request(tx, room, None)?;
            }
        }
        EventContent::Renamed { name } => {
            tx.prepare_cached("UPDATE rooms SET name = ?2 WHERE id = ?1")?
                .execute(params![room, name.as_str()])?;
        }
        EventContent::Message { .. } | EventContent::Call(_) => {}
        EventContent::Mls { commit, welcome } => {
            // A handshake of the room's group: part of the log, never of the timeline.
            if let Some(group) = &group {
                loaded.forget(group);
            }
            let (request, commit, welcome) = (&e.request, commit.as_ref(), welcome.as_ref());
            security = handshake(tx, room, me, group.as_deref(), request, commit, welcome)?;
            if security.is_none() {
                return passed_over(tx, room, me, e);
            }
            // Refused: it stays in the timeline as a security notice.
        }
        EventContent::DevicesSignedOut { devices } => {
            // Part of the log, never of the timeline: the next commit removes their leaves
            // (sync/group.rs), in this room and every other.
            for device in devices.iter() {
                tx.prepare_cached(
                    "INSERT INTO signed_out_devices (user, device) VALUES (?1, ?2)
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![e.sender.0, device.0])?;
            }
            return passed_over(tx, room, me, e);
        }
    }
    if matches!(
        content,
        EventContent::Created { .. }
            | EventContent::Joined { .. }
            | EventContent::Left { .. }
            | EventContent::Removed { .. }
    ) {
        refresh_others(tx, room, me)?;
    }
    let encoded = codec::encode(content).map_err(|err| Error::Internal(err.to_string()))?;
    // My own local echo becomes this event; anything else is new.
    let updated = if e.sender.0 == me {
        // The server's copy replaces the echo's content too: it carries the media ids the
        // uploads produced.
        tx.prepare_cached(
            "UPDATE events SET seq = ?2, position = ?3, at_ms = ?4, content = ?6
             WHERE request_id = ?1 AND room_id = ?5",
        )?
        .execute(params![
            &e.request.0[..],
            seq,
            position_of_seq(e.seq),
            e.at_ms,
            room,
            encoded
        ])?
    } else {
        0
    };
    let event_id = if updated == 0 {
        tx.prepare_cached(
            "INSERT INTO events (room_id, seq, position, request_id, sender, at_ms, content,
                                 is_message, security)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (request_id) DO NOTHING",
        )?
        .execute(params![
            room,
            seq,
            position_of_seq(e.seq),
            &e.request.0[..],
            e.sender.0,
            e.at_ms,
            encoded,
            matches!(content, EventContent::Message { .. }) && security.is_none(),
            security.map(SecurityIssue::as_str)
        ])?;
        tx.last_insert_rowid()
    } else {
        tx.prepare_cached("SELECT id FROM events WHERE request_id = ?1")?
            .query_row([&e.request.0[..]], |r| r.get(0))?
    };
    let message = matches!(content, EventContent::Message { .. }) && security.is_none();
    let body = match content {
        EventContent::Message { body, .. } if message && !redacted => decode_body(body.as_bytes()),
        _ => None,
    };
    // A disappearing message expires after its own timer; a setting sets the room's.
    let mut expired = false;
    if let Some(body) = &body {
        if let Some(seconds) = body.disappearing {
            crate::disappearing::expiry::set(tx, room, seconds)?;
        }
        if let Some(seconds) = body.expires_in {
            expired = crate::disappearing::expiry::start(tx, event_id, e.at_ms, seconds)?;
        }
    }
    let mentions_me = e.sender.0 != me
        && !expired
        && body
            .as_ref()
            .is_some_and(|b| b.mentions.iter().take(crate::body::MAX_MENTIONS).any(|u| *u == me));
    if mentions_me {
        tx.prepare_cached("UPDATE events SET mentions_me = 1 WHERE id = ?1")?
            .execute([event_id])?;
    }
    if redacted {
        tx.prepare_cached("UPDATE events SET deleted = 1 WHERE id = ?1")?.execute([event_id])?;
    } else if expired {
        // Erased on arrival: nothing of it is indexed or shown.
    } else if message && updated == 0 {
        // Searchable as it shows: an edit, or a deletion for everyone, may have come first.
        let edited = crate::relations::last_edit(tx, &e.request.0)?;
        if let Some(text) = edited.or_else(|| body.as_ref().and_then(crate::search::index::text_of))
        {
            crate::search::index::put(tx, event_id, &text)?;
        }
        crate::relations::arrived(tx, room, &e.request, e.sender.0)?;
    }
    let counts = e.sender.0 != me && message && !expired;
    let shown = (message || matches!(content, EventContent::Call(_))) && !expired;
    tx.prepare_cached(
        "UPDATE rooms SET synced_seq = ?2,
             unread = unread + CASE WHEN ?3 AND ?2 > read_seq THEN 1 ELSE 0 END,
             unread_mentions = unread_mentions + CASE WHEN ?10 AND ?2 > read_seq THEN 1 ELSE 0 END,
             last_event_id = CASE WHEN ?5 THEN ?4 ELSE last_event_id END,
             last_preview = CASE WHEN ?5 THEN ?7 ELSE last_preview END,
             last_sender = CASE WHEN ?5 THEN ?8 ELSE last_sender END,
             last_message_seq = CASE WHEN ?5 THEN ?2
                 WHEN last_request_id = ?9 THEN ?2 ELSE last_message_seq END,
             last_request_id = CASE WHEN ?5 THEN ?9 ELSE last_request_id END,
             last_activity_ms = max(last_activity_ms, ?6)
         WHERE id = ?1",
    )?
    .execute(params![
        room,
        seq,
        counts,
        event_id,
        shown,
        e.at_ms,
        shown.then(|| match redacted {
            true => crate::relations::DELETED_TEXT.to_owned(),
            false => describe(content),
        }),
        e.sender.0,
        &e.request.0[..],
        mentions_me
    ])?;
    if e.sender.0 == me {
        // The outbox item for this request, if it was this device's, is done.
        tx.prepare_cached("DELETE FROM outbox WHERE request_id = ?1")?
            .execute([&e.request.0[..]])?;
    }
    Ok(Applied::Applied)
}

/// Moves the room's cursor over event `e`, which is part of the log but never of the
/// timeline (a handshake, signed-out devices, a name told again); mine leaves the outbox.
fn passed_over(tx: &Connection, room: RoomKey, me: i64, e: &RoomEvent) -> Result<Applied, Error> {
    tx.prepare_cached("UPDATE rooms SET synced_seq = ?2 WHERE id = ?1")?
        .execute(params![room, e.seq as i64])?;
    if e.sender.0 == me {
        tx.prepare_cached("DELETE FROM outbox WHERE request_id = ?1")?
            .execute([&e.request.0[..]])?;
    }
    Ok(Applied::Applied)
}

/// What a message says of its room's name.
enum Naming {
    /// Nothing: it is a message.
    Not,
    /// It renames the group.
    Renamed(tidings_proto::RoomName),
    /// It names the group without a rename to show (a new group's name, the name told to
    /// devices that joined), or names it wrongly (a direct room, a name that is not one), or
    /// it is my own such message, which this device cannot open: passed over.
    Quiet,
}

fn naming(
    tx: &Connection,
    room: RoomKey,
    me: i64,
    e: &RoomEvent,
    content: &EventContent,
) -> Result<Naming, Error> {
    let EventContent::Message { body, .. } = content else { return Ok(Naming::Not) };
    let Some(body) = decode_body(body.as_bytes()) else {
        // Sealed still: my own quiet naming (this device kept no echo of it), or a message
        // this device cannot open.
        let mine = e.sender.0 == me
            && tx
                .prepare_cached("DELETE FROM quiet_messages WHERE request_id = ?1")?
                .execute([&e.request.0[..]])?
                > 0;
        return Ok(if mine { Naming::Quiet } else { Naming::Not });
    };
    let MessageBody { name: Some(name), rename, .. } = body else { return Ok(Naming::Not) };
    let kind: String = tx
        .prepare_cached("SELECT kind FROM rooms WHERE id = ?1")?
        .query_row([room], |r| r.get(0))?;
    let name = match tidings_proto::RoomName::new(name) {
        Ok(name) if kind == "group" && tidings_proto::validate::name(&name).is_ok() => name,
        _ => return Ok(Naming::Quiet),
    };
    if rename {
        return Ok(Naming::Renamed(name));
    }
    tx.prepare_cached("UPDATE rooms SET name = ?2 WHERE id = ?1")?
        .execute(params![room, name.as_str()])?;
    Ok(Naming::Quiet)
}

/// Tells `room`'s name, sealed, to the devices a handshake just brought into its group —
/// they cannot read the messages from before they joined — if this device is one of the two
/// to: the first (lowest) leaf that was there before of the newcomers' own user (a device
/// linked a moment ago learns it from the one that showed the code), and the first leaf of
/// anyone else (the newcomer's user may have no other device, or hold the room as a request,
/// from which nothing but an acceptance is sent). Those who know the name pass it over
/// ([`naming`]).
fn tell_name(
    tx: &Connection,
    room: RoomKey,
    stayed: &[crate::e2ee::LeafId],
    joined: &[crate::e2ee::LeafId],
) -> Result<(), Error> {
    let row: Option<(Option<String>, Option<i64>, bool)> = tx
        .prepare_cached(
            "SELECT name, server_id, request_from IS NOT NULL FROM rooms
             WHERE id = ?1 AND kind = 'group' AND member = 1",
        )?
        .query_row([room], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((Some(_), Some(_), request)) = row else { return Ok(()) };
    let me: Option<crate::e2ee::LeafId> = tx
        .prepare_cached("SELECT user_id, device_id FROM account WHERE id = 1")?
        .query_row([], |r| Ok(crate::e2ee::LeafId { user: r.get(0)?, device: r.get(1)? }))
        .optional()?;
    let Some(me) = me else { return Ok(()) };
    let theirs = |l: &&crate::e2ee::LeafId| joined.iter().any(|j| j.user == l.user);
    let first_of_theirs = stayed.iter().filter(theirs).min();
    let first_of_others = stayed.iter().filter(|l| !theirs(l)).min();
    let teller = (first_of_theirs == Some(&me) && !request) || first_of_others == Some(&me);
    if teller {
        // The sync session queues the message (crate::send_queue::queue_name_tellings).
        tx.prepare_cached("UPDATE rooms SET name_to_tell = 1 WHERE id = ?1")?.execute([room])?;
    }
    Ok(())
}

/// Stores members' receipt watermarks (they only move forward), mine included.
pub fn members(tx: &Connection, room: RoomKey, me: i64, members: &[Member]) -> Result<(), Error> {
    for m in members {
        remember_user(tx, &m.user)?;
        set_member(tx, room, m.user.id.0, true)?;
        watermarks(tx, room, m.user.id.0, m.delivered, m.read)?;
        if m.user.id.0 == me {
            my_read_marker(tx, room, me, m.read)?;
        }
    }
    refresh_others(tx, room, me)
}

/// Moves one known member's watermarks forward. A receipt of someone not known as a member
/// yet changes nothing: counting a room's members from receipts alone would show a tick
/// that the next member list takes back.
pub fn watermarks(
    tx: &Connection,
    room: RoomKey,
    user: i64,
    delivered: Seq,
    read: Seq,
) -> Result<(), Error> {
    tx.prepare_cached(
        "UPDATE members SET delivered_seq = max(delivered_seq, ?3), read_seq = max(read_seq, ?4)
         WHERE room_id = ?1 AND user_id = ?2",
    )?
    .execute(params![room, user, delivered as i64, read as i64])?;
    Ok(())
}

/// My read watermark as the server knows it, set by another of my devices: moves my read
/// marker forward here and recounts what is still unread.
pub fn my_read_marker(tx: &Connection, room: RoomKey, me: i64, read: Seq) -> Result<(), Error> {
    let moved = tx
        .prepare_cached(
            "UPDATE rooms SET read_seq = ?2, read_sent_seq = max(read_sent_seq, ?2)
             WHERE id = ?1 AND read_seq < ?2",
        )?
        .execute(params![room, read as i64])?;
    if moved > 0 {
        recount_unread(tx, room, me)?;
    }
    Ok(())
}

/// Counts again what is unread in `room`: others' messages after my read marker.
pub(crate) fn recount_unread(tx: &Connection, room: RoomKey, me: i64) -> Result<(), Error> {
    tx.prepare_cached(
        "UPDATE rooms SET unread = (SELECT count(*) FROM events e
             WHERE e.room_id = ?1 AND e.sender != ?2 AND e.seq > rooms.read_seq
               AND e.is_message = 1)
         WHERE id = ?1",
    )?
    .execute(params![room, me])?;
    Ok(())
}

/// Records the server's answer to an outbox item: its seq (and the room's server id for a
/// created room). A message's echo is then the event (the room's cursor moves over it,
/// [`skip_known`]); an operation without an echo (a rename, an invitation) arrives with
/// catch-up.
pub fn confirmed(
    tx: &Connection,
    request: &RequestId,
    server_room: i64,
    seq: Seq,
) -> Result<(), Error> {
    let row: Option<Option<i64>> = tx
        .prepare_cached("SELECT room_id FROM outbox WHERE request_id = ?1")?
        .query_row([&request.0[..]], |r| r.get(0))
        .optional()?;
    if let Some(Some(room)) = row {
        tx.prepare_cached("UPDATE rooms SET server_id = ?2 WHERE id = ?1 AND server_id IS NULL")?
            .execute(params![room, server_room])?;
    }
    tx.prepare_cached(
        "UPDATE events SET seq = ?2, position = ?3 WHERE request_id = ?1 AND seq IS NULL",
    )?
    .execute(params![&request.0[..], seq as i64, position_of_seq(seq)])?;
    tx.prepare_cached("UPDATE rooms SET last_message_seq = ?2 WHERE last_request_id = ?1")?
        .execute(params![&request.0[..], seq as i64])?;
    tx.prepare_cached("DELETE FROM outbox WHERE request_id = ?1")?.execute([&request.0[..]])?;
    if let Some(Some(room)) = row {
        skip_known(tx, room)?;
    }
    Ok(())
}

/// Moves a room's synced seq over the events right after it that are here already: my own
/// messages, whose `Logged` reply gave their echo its seq before the log brought them (the
/// server does not push my events back to me). The next event from others then applies at
/// once instead of looking like a gap to catch up. Run after a confirmation and after a
/// push (a catch-up page brings my events too, so it needs none).
pub fn skip_known(tx: &Connection, room: RoomKey) -> Result<(), Error> {
    let synced: i64 = tx
        .prepare_cached("SELECT synced_seq FROM rooms WHERE id = ?1")?
        .query_row([room], |r| r.get(0))?;
    let mut here =
        tx.prepare_cached("SELECT 1 FROM events WHERE room_id = ?1 AND position = ?2")?;
    let mut next = synced + 1;
    while here.exists(params![room, position_of_seq(next as Seq)])? {
        next += 1;
    }
    if next > synced + 1 {
        tx.prepare_cached("UPDATE rooms SET synced_seq = ?2 WHERE id = ?1")?
            .execute(params![room, next - 1])?;
    }
    Ok(())
}
