//! Verified contacts: each user's identity key as this device has seen it, whether I
//! verified it, and what happens when it changes (docs/e2ee.md, "Verified contacts").
//!
//! A user's key is learnt from the leaves of the groups this device holds — each certified by
//! that user's identity (crate::e2ee) — and kept per user in `identities`, in one of three
//! states ([`Trust`]):
//!
//! - **unverified**: seen, trusted on first use;
//! - **verified**: by one scan of their contact code (its fingerprint matched the leaves the
//!   server handed out: `Contacts::add`), by their proof that they scanned mine (sealed in our
//!   direct room: [`take_proof`]), by my other device's proof of either, or by scanning the
//!   security code on their screen (`Contacts::verify`);
//! - **changed**: a verified key was replaced, or a scanned code's fingerprint did not match.
//!   Sending into every room they are in is held ([`held`]: [`crate::Error::KeyChanged`])
//!   until I accept the new key (`Contacts::accept_key`) or verify again.
//!
//! **Observing.** Apply calls [`observe`] after every handshake that changed a group this
//! device holds, with the leaves it brought in (all of them when this device just joined).
//! A new device certified by the same identity changes nothing. A leaf of another identity
//! replaces the key: the rooms we share get a `key_changed` notice, and a verified key
//! becomes **changed**. When a group is joined whole, a key still present in it is kept (an
//! old device of theirs keeps its leaf until it goes), so joining never raises a false alarm.
//! A leaf whose certificate does not verify never gets here: the group refuses it, and the
//! timeline shows an `uncertified` notice (crate::apply).
//!
//! Notices are local timeline rows (no seq; at the room's end, before anything pending), with
//! the user the notice is about as sender. Everything here runs inside the caller's
//! transaction, so the key, its state and the notices commit with the handshake.

use std::collections::BTreeMap;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::{
    e2ee::{self, Identity, IdentityKey, LeafId},
    model::{RoomKey, SecurityIssue},
    Error,
};

/// How far I trust a user's identity key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum Trust {
    /// Seen (or not yet), not verified.
    Unverified,
    /// Verified by a scan, a proof or a compared security code.
    Verified,
    /// A verified key was replaced (or a scanned code did not match): sending is held until
    /// the new key is accepted or verified.
    Changed,
}

impl Trust {
    fn from_name(name: &str) -> Self {
        match name {
            "verified" => Trust::Verified,
            "changed" => Trust::Changed,
            _ => Trust::Unverified,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Trust::Unverified => "unverified",
            Trust::Verified => "verified",
            Trust::Changed => "changed",
        }
    }
}

pub use crate::body::ProofBody;

/// The stored key and trust of `user`, if this device has seen their key.
pub(crate) fn stored(c: &Connection, user: i64) -> Result<Option<(IdentityKey, Trust)>, Error> {
    let row: Option<(Vec<u8>, String)> = c
        .prepare_cached("SELECT key, state FROM identities WHERE user = ?1")?
        .query_row([user], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    Ok(row.and_then(|(key, state)| {
        let key: [u8; 32] = key.try_into().ok()?;
        Some((IdentityKey(key), Trust::from_name(&state)))
    }))
}

/// Keeps `key` as `user`'s, with its trust.
pub(crate) fn set_key(
    c: &Connection,
    user: i64,
    key: &IdentityKey,
    trust: Trust,
) -> Result<(), Error> {
    c.prepare_cached(
        "INSERT INTO identities (user, key, state, since_ms) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (user) DO UPDATE SET key = excluded.key, state = excluded.state,
             since_ms = excluded.since_ms",
    )?
    .execute(params![user, key.0.as_slice(), trust.as_str(), crate::stamp::now_ms()])?;
    Ok(())
}

/// `user`'s key: the stored one, else the one their leaves show in a group we share (then
/// stored, trusted on first use). `None` if we share no encrypted room.
pub(crate) fn key_of(c: &Connection, user: i64) -> Result<Option<IdentityKey>, Error> {
    if let Some((key, _)) = stored(c, user)? {
        return Ok(Some(key));
    }
    let mut groups = c.prepare_cached(
        "SELECT r.mls_group FROM rooms r JOIN members m ON m.room_id = r.id
         WHERE m.user_id = ?1 AND m.active = 1 AND r.mls_group IS NOT NULL
         ORDER BY r.kind = 'direct' DESC, r.id DESC",
    )?;
    let groups: Vec<Vec<u8>> = groups.query_map([user], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for group in groups {
        let newest = e2ee::identities(c, &group)?
            .into_iter()
            .filter(|(leaf, _)| leaf.user == user)
            .max_by_key(|(leaf, _)| leaf.device);
        if let Some((_, key)) = newest {
            set_key(c, user, &key, Trust::Unverified)?;
            return Ok(Some(key));
        }
    }
    Ok(None)
}

/// Takes note of the identity keys of `group`'s leaves in `joined` (every leaf when `None`:
/// this device just joined the group). See the module doc.
pub(crate) fn observe(
    tx: &Connection,
    me: i64,
    group: &[u8],
    joined: Option<&[LeafId]>,
) -> Result<(), Error> {
    // Per user (not me): every key in the group, and the joined leaves' (by device).
    #[derive(Default)]
    struct Seen {
        all: Vec<IdentityKey>,
        new: Vec<(i64, IdentityKey)>,
    }
    let mut users: BTreeMap<i64, Seen> = BTreeMap::new();
    for (leaf, key) in e2ee::identities(tx, group)? {
        if leaf.user == me {
            continue;
        }
        let seen = users.entry(leaf.user).or_default();
        seen.all.push(key);
        if joined.is_none_or(|j| j.contains(&leaf)) {
            seen.new.push((leaf.device, key));
        }
    }
    for (user, Seen { all, mut new }) in users {
        new.sort_by_key(|(device, _)| *device);
        let Some(&(_, newest)) = new.last() else { continue };
        match stored(tx, user)? {
            None => set_key(tx, user, &newest, Trust::Unverified)?,
            Some((known, _)) if joined.is_none() && all.contains(&known) => {}
            Some((known, _)) if new.iter().all(|(_, k)| *k == known) => {}
            Some((known, trust)) => {
                let key = new.iter().rev().map(|(_, k)| *k).find(|k| *k != known).unwrap_or(newest);
                let trust = match trust {
                    Trust::Unverified => Trust::Unverified,
                    Trust::Verified | Trust::Changed => Trust::Changed,
                };
                tracing::warn!(user, ?trust, "A contact's identity key changed.");
                set_key(tx, user, &key, trust)?;
                notice_in_shared_rooms(tx, me, user, SecurityIssue::KeyChanged)?;
            }
        }
    }
    Ok(())
}

/// Adds a `issue` notice about `user` to every room we are both in.
fn notice_in_shared_rooms(
    tx: &Connection,
    me: i64,
    user: i64,
    issue: SecurityIssue,
) -> Result<(), Error> {
    let rooms: Vec<RoomKey> = {
        let mut st = tx.prepare_cached(
            "SELECT r.id FROM rooms r JOIN members m ON m.room_id = r.id
             WHERE m.user_id = ?1 AND m.active = 1 AND r.member = 1 AND m.user_id != ?2",
        )?;
        let rows = st.query_map(params![user, me], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    for room in rooms {
        notice(tx, room, user, issue)?;
    }
    Ok(())
}

/// Adds a security notice about `user` at the end of `room`'s timeline (before what is
/// pending). Notices show from their `security` name; the content is an empty message.
pub(crate) fn notice(
    tx: &Connection,
    room: RoomKey,
    user: i64,
    issue: SecurityIssue,
) -> Result<(), Error> {
    let position: i64 = tx
        .prepare_cached(
            "SELECT coalesce(max(position), 0) + 1 FROM events
             WHERE room_id = ?1 AND position < ?2",
        )?
        .query_row(params![room, crate::store::PENDING_POSITION], |r| r.get(0))?;
    let content = tidings_proto::codec::encode(&tidings_proto::EventContent::Message {
        body: tidings_proto::Body::new(Vec::new()).map_err(|e| Error::Internal(e.to_string()))?,
        attachments: tidings_proto::bounded::List::empty(),
    })
    .map_err(|e| Error::Internal(e.to_string()))?;
    tx.prepare_cached(
        "INSERT INTO events (room_id, position, request_id, sender, at_ms, content, security)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        room,
        position,
        &crate::stamp::new_request_id().0[..],
        user,
        crate::stamp::now_ms(),
        content,
        issue.as_str()
    ])?;
    Ok(())
}

/// Marks `user`'s key `key` verified, with a `verified` notice in `room` when it was not.
pub(crate) fn verified(
    tx: &Connection,
    room: Option<RoomKey>,
    user: i64,
    key: &IdentityKey,
) -> Result<(), Error> {
    let was = stored(tx, user)?;
    set_key(tx, user, key, Trust::Verified)?;
    if was != Some((*key, Trust::Verified)) {
        if let Some(room) = room {
            notice(tx, room, user, SecurityIssue::Verified)?;
        }
    }
    Ok(())
}

/// Someone in `room` whose key changed while verified (their username), if any: sending
/// into the room is held until I accept their new key or verify them again.
pub(crate) fn held(c: &Connection, room: RoomKey, me: i64) -> Result<Option<String>, Error> {
    Ok(c.prepare_cached(
        "SELECT coalesce(u.username, '?') FROM members m
         JOIN identities i ON i.user = m.user_id LEFT JOIN users u ON u.id = m.user_id
         WHERE m.room_id = ?1 AND m.active = 1 AND m.user_id != ?2 AND i.state = 'changed'
         LIMIT 1",
    )?
    .query_row(params![room, me], |r| r.get(0))
    .optional()?)
}

/// The proof message I send after scanning `owner`'s contact code: I verified their key
/// `key`, and `secret` (from the code) makes the proof that I saw it.
pub(crate) fn proof_body(
    me: (i64, &IdentityKey),
    owner: (i64, &IdentityKey),
    secret: &[u8; 16],
) -> ProofBody {
    ProofBody {
        user: owner.0,
        key: hex::encode(owner.1 .0),
        proof: hex::encode(e2ee::proof(secret, owner, me)),
    }
}

/// Takes a proof message opened in `room`, from leaf `sender`. Mine from another device: its
/// verification is mine too (if it is of the key I know). Someone's proof that they scanned my
/// code: checked with my identity's secret, it verifies their key as my group shows it.
/// Anything else is passed over. Proof messages show nothing (the caller passes them over).
pub(crate) fn take_proof(
    tx: &Connection,
    room: RoomKey,
    me: i64,
    group: &[u8],
    sender: LeafId,
    proof: &ProofBody,
) -> Result<(), Error> {
    let Some(key) = hex32(&proof.key) else { return Ok(()) };
    if sender.user == me {
        if proof.user != me && stored(tx, proof.user)?.is_none_or(|(known, _)| known == key) {
            verified(tx, Some(room), proof.user, &key)?;
        }
        return Ok(());
    }
    if proof.user != me {
        return Ok(());
    }
    let Some(mine) = Identity::load(tx, me)? else { return Ok(()) };
    let Some((_, theirs)) =
        e2ee::identities(tx, group)?.into_iter().find(|(leaf, _)| *leaf == sender)
    else {
        return Ok(());
    };
    let tag = hex::decode(&proof.proof).unwrap_or_default();
    let holds = key == mine.public()
        && e2ee::proof_holds(&tag, &mine.contact_secret(), (me, &key), (sender.user, &theirs));
    if holds {
        verified(tx, Some(room), sender.user, &theirs)?;
    } else {
        tracing::warn!(user = sender.user, "A verification proof that does not hold.");
    }
    Ok(())
}

fn hex32(text: &str) -> Option<IdentityKey> {
    hex::decode(text).ok()?.try_into().ok().map(IdentityKey)
}
