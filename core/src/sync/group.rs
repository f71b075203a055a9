//! A room's MLS group as a sender needs it: what must happen before this device seals a
//! message for the room ([`crate::e2ee`] does the MLS, the machine the requests).
//!
//! Before sealing, the room's group must hold this device and match the room's membership
//! as the log has it. [`need`] reads the profile and says which step is next:
//!
//! - **no group here** → ask the server for the room's GroupInfo: none means nobody set the
//!   group up yet, so claim the KeyPackages of every member's devices (my other devices too)
//!   and set it up with a Welcome for them; one means join it by external commit;
//! - **leaves of users who are no longer members** (they left, or were removed) → a commit
//!   removing them, so they cannot read what follows;
//! - **members without a leaf** (invited since, or without KeyPackages when the group was
//!   set up) → claim their KeyPackages and commit adding them; each member is claimed at most
//!   once per connection, so a member with no KeyPackages does not cost a claim per message;
//! - otherwise the group is **ready**: seal.
//!
//! Each step is one request, built when the machine flushes (never offline) on a room it has
//! just caught up. A commit stays pending until the log says where it is: apply merges it
//! when it meets it there (core/src/apply.rs), so the events logged before it still open at
//! the epoch they were sealed for. A setup or an external join is merged when the server
//! logs it: nothing before it in the log was this device's to open. `stale_epoch` means:
//! catch up and ask [`need`] again.
//!
//! A device that is a member of a room whose group it is not in (no Welcome named it: it
//! was signed in later, or had no KeyPackages) joins by external commit on its own, without
//! another member online (`rooms.mls_absent`, set by apply).

use std::collections::BTreeSet;

use rusqlite::{params, Connection, OptionalExtension};
use tidings_proto::{MlsBlob, Request, RoomId};

use crate::{
    e2ee::{self, Commit, Device, LeafId},
    model::RoomKey,
    Error,
};

/// What a room's group needs before this device can seal a message for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Need {
    /// Seal with this group.
    Ready(Vec<u8>),
    /// The log says I am no longer a member: nothing is sealed for the room.
    NotMember,
    /// This device is in no group of the room: ask the server for its GroupInfo.
    Discover,
    /// Claim these users' KeyPackages, then add their devices to `group`.
    Add {
        /// The room's group.
        group: Vec<u8>,
        /// Members without a leaf.
        users: Vec<i64>,
    },
    /// Commit removing these leaves: of users no longer members, and of devices their users
    /// signed out.
    Remove {
        /// The room's group.
        group: Vec<u8>,
        /// The leaves to remove.
        leaves: Vec<LeafId>,
    },
}

/// The next step for `room`'s group, for user `me`; `claimed` holds the (room, user) pairs
/// whose KeyPackages were already claimed over this connection.
pub(super) fn need(
    c: &Connection,
    room: RoomKey,
    me: i64,
    claimed: &BTreeSet<(RoomKey, i64)>,
) -> Result<Need, Error> {
    let members = active_members(c, room)?;
    if !members.contains(&me) {
        return Ok(Need::NotMember);
    }
    let Some(group) = current(c, room)? else { return Ok(Need::Discover) };
    // A group this device was removed from, or whose state is gone: join it again.
    if e2ee::epoch(c, &group)?.is_none() {
        leave_group(c, room, &group)?;
        return Ok(Need::Discover);
    }
    let all = e2ee::members(c, &group)?;
    let mut signed_out =
        c.prepare_cached("SELECT 1 FROM signed_out_devices WHERE user = ?1 AND device = ?2")?;
    let mut gone = Vec::new();
    for leaf in &all {
        if !members.contains(&leaf.user) || signed_out.exists([leaf.user, leaf.device])? {
            gone.push(*leaf);
        }
    }
    if !gone.is_empty() {
        return Ok(Need::Remove { group, leaves: gone });
    }
    let leaves: BTreeSet<i64> = all.iter().map(|l| l.user).collect();
    let missing: Vec<i64> = members
        .difference(&leaves)
        .filter(|user| !claimed.contains(&(room, **user)))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Ok(Need::Add { group, users: missing });
    }
    Ok(Need::Ready(group))
}

/// The room's group, if this device is in one.
pub(crate) fn current(c: &Connection, room: RoomKey) -> Result<Option<Vec<u8>>, Error> {
    Ok(c.prepare_cached("SELECT mls_group FROM rooms WHERE id = ?1")?
        .query_row([room], |r| r.get(0))
        .optional()?
        .flatten())
}

/// Asks the sync session to set up (or join) `room`'s group though no message waits to be
/// sealed: a call's signals are sealed with it.
pub(crate) fn want(c: &Connection, room: RoomKey) -> Result<(), Error> {
    c.prepare_cached("UPDATE rooms SET mls_wanted = 1 WHERE id = ?1 AND mls_group IS NULL")?
        .execute([room])?;
    Ok(())
}

/// Whether a call asked for `room`'s group ([`want`]).
pub(super) fn wanted(c: &Connection, room: RoomKey) -> Result<bool, Error> {
    Ok(c.prepare_cached("SELECT mls_wanted FROM rooms WHERE id = ?1")?
        .query_row([room], |r| r.get::<_, i64>(0))
        .optional()?
        == Some(1))
}

/// The room's active members, as the log has them.
pub(super) fn active_members(c: &Connection, room: RoomKey) -> Result<BTreeSet<i64>, Error> {
    let mut st =
        c.prepare_cached("SELECT user_id FROM members WHERE room_id = ?1 AND active = 1")?;
    let rows = st.query_map([room], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Drops this device's state of `group` and marks the room as one to join again.
pub(super) fn leave_group(c: &Connection, room: RoomKey, group: &[u8]) -> Result<(), Error> {
    e2ee::forget(c, group)?;
    c.prepare_cached("UPDATE rooms SET mls_group = NULL, mls_absent = 1 WHERE id = ?1")?
        .execute([room])?;
    Ok(())
}

/// This device's MLS keys (made on first use for the signed-in session).
pub(crate) fn device(c: &Connection) -> Result<Device, Error> {
    let account = crate::account::stored(c)?.ok_or(Error::NotSignedIn)?;
    Ok(Device::for_session(c, LeafId { user: account.user_id, device: account.device_id })?)
}

/// A new group for the room, set up with the devices of `packages` (pending until the
/// server logs the setup).
pub(super) fn set_up(c: &Connection, packages: &[Vec<u8>]) -> Result<Commit, Error> {
    let id: [u8; e2ee::GROUP_ID_LEN] = rand::random();
    Ok(device(c)?.create_group(c, &id, packages)?)
}

/// The `Mls` request carrying `commit` for server room `room`.
pub(super) fn request(room: i64, commit: &Commit) -> Result<Request, Error> {
    let blob = |bytes: Vec<u8>| MlsBlob::new(bytes).map_err(|e| Error::Internal(e.to_string()));
    Ok(Request::Mls {
        request: crate::client::new_request_id(),
        room: RoomId(room),
        commit: (!commit.commit.is_empty()).then(|| blob(commit.commit.clone())).transpose()?,
        welcome: commit.welcome.clone().map(blob).transpose()?,
        group_info: blob(commit.group_info.clone())?,
    })
}

/// Records a setup or external join about to be sent, so that apply adopts it if the reply
/// is lost and the log shows it (apply.rs).
pub(super) fn remember_pending(
    c: &Connection,
    room: RoomKey,
    group: &[u8],
    request: &Request,
) -> Result<(), Error> {
    let request = request.request_id().map(|r| r.0.to_vec());
    c.prepare_cached(
        "UPDATE rooms SET mls_pending_group = ?2, mls_pending_request = ?3 WHERE id = ?1",
    )?
    .execute(params![room, group, request])?;
    Ok(())
}

/// Seals outbox item `id`'s message body for `group` and keeps the sealed bytes in the row,
/// in one transaction: every resend sends them unchanged. `false` when the sealed message
/// would not fit a body (an item queued before the plaintext limit): nothing is kept.
pub(super) fn seal(c: &mut Connection, id: i64, group: &[u8]) -> Result<bool, Error> {
    let tx = c.transaction()?;
    let op: Vec<u8> =
        tx.query_row("SELECT operation FROM outbox WHERE id = ?1", [id], |r| r.get(0))?;
    let request: Request =
        tidings_proto::codec::decode(&op).map_err(|e| Error::Internal(e.to_string()))?;
    let Request::Send { body, .. } = request else { return Ok(true) };
    if body.as_bytes().len() > tidings_proto::limits::MAX_PLAINTEXT_BYTES {
        return Ok(false);
    }
    let sealed = device(&tx)?.encrypt(&tx, group, body.as_bytes())?;
    if sealed.len() > tidings_proto::limits::MAX_BODY_BYTES {
        return Ok(false);
    }
    tx.execute("UPDATE outbox SET sealed = ?2 WHERE id = ?1", params![id, sealed])?;
    tx.commit()?;
    Ok(true)
}
