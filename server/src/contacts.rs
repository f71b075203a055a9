//! Contacts: contact keys (what a user's QR code carries) and redeeming them.
//!
//! A user has at most one contact key; asking for it makes one (or gives the current one,
//! so every device of the user shows the same code), `reset` replaces it (so the old one is
//! revoked), and it may expire. The key is stored as it is — every device must be able to
//! show it — and grants nothing but becoming a contact. Showing a valid key
//! makes both users contacts and opens their direct room — or reuses the direct room they
//! already share, so redeeming twice, or redeeming each other's codes, never makes a second
//! room. The room is made like `CreateRoom` makes it (a `Created` event, fanned out after
//! the commit), so both users' devices learn about it by the usual sync. Keys are 256-bit
//! random, so guessing one is hopeless; a wrong key says `invalid_contact_key` and an old
//! one `expired_contact_key`.

use rusqlite::{params, OptionalExtension};
use tidings_proto::{
    bounded::Text, limits::MAX_CONTACTS, validate, Contact, ContactKeyText, ErrorCode,
    EventContent, Reply, RequestId, RoomId, RoomKind, UserId,
};

use crate::{
    auth,
    connection::Conn,
    error::OpError,
    ops::{create_room, fan_out, Consent},
    roomlog::{self, bounded},
    unix_ms,
};

impl Conn {
    /// My contact key, made (or replaced) as asked.
    pub(crate) async fn contact_key(
        &mut self,
        reset: bool,
        ttl_s: Option<u32>,
    ) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        self.shared
            .store
            .write(move |tx| {
                let now = unix_ms();
                let mut lifetime_ms = ttl_s.map(|s| i64::from(s) * 1000);
                if !reset {
                    let current: Option<(String, i64, Option<i64>)> = tx
                        .prepare_cached(
                            "SELECT key, created_ms, expires_ms FROM contact_keys
                             WHERE user_id = ?1",
                        )?
                        .query_row([actor.user.0], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .optional()?;
                    match current {
                        // A live key is shown again.
                        Some((key, _, expires_ms)) if expires_ms.is_none_or(|e| e > now) => {
                            let key = ContactKeyText(Text::new(key).map_err(OpError::internal)?);
                            return Ok(Reply::ContactKey { key, expires_ms });
                        }
                        // An expired one is replaced by one that lives as long as it did.
                        Some((_, created, Some(expired))) => {
                            lifetime_ms = Some((expired - created).max(1000));
                        }
                        _ => {}
                    }
                }
                let key = auth::new_secret().secret;
                let expires_ms = lifetime_ms.map(|l| now + l);
                tx.prepare_cached(
                    "INSERT INTO contact_keys (user_id, key, created_ms, expires_ms)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (user_id) DO UPDATE SET key = excluded.key,
                         created_ms = excluded.created_ms, expires_ms = excluded.expires_ms",
                )?
                .execute(params![actor.user.0, key, now, expires_ms])?;
                let key = ContactKeyText(Text::new(key).map_err(OpError::internal)?);
                Ok(Reply::ContactKey { key, expires_ms })
            })
            .await
    }

    /// Redeems `user`'s contact key: we become contacts with a direct room.
    pub(crate) async fn add_contact(
        &mut self,
        user: String,
        key: String,
    ) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        // Like making a room (which this may do): the send rate applies.
        self.send_bucket.take(std::time::Instant::now()).map_err(OpError::rate_limited)?;
        if validate::username(&user).is_err() || !tidings_proto::contact::valid_key(&key) {
            return Err(OpError::new(ErrorCode::InvalidContactKey, "no such contact key"));
        }
        let shared = self.shared.clone();
        let conn_id = self.id;
        let caps = self.shared.config.caps();
        self.shared
            .store
            .write(move |tx| {
                let now = unix_ms();
                let found: Option<(i64, Option<i64>)> = tx
                    .prepare_cached(
                        "SELECT u.id, k.expires_ms FROM users u
                         JOIN contact_keys k ON k.user_id = u.id
                         WHERE u.username = ?1 AND k.key = ?2",
                    )?
                    .query_row([user.as_str(), key.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((owner, expires)) = found else {
                    return Err(OpError::new(ErrorCode::InvalidContactKey, "no such contact key"));
                };
                if expires.is_some_and(|e| e <= now) {
                    return Err(OpError::new(
                        ErrorCode::ExpiredContactKey,
                        "this contact code has expired; ask for a new one",
                    ));
                }
                let owner = UserId(owner);
                if owner == actor.user {
                    return Err(OpError::invalid("this is your own contact code"));
                }
                let count = |u: UserId| -> Result<usize, OpError> {
                    let n: i64 = tx
                        .prepare_cached(
                            "SELECT count(*) FROM contacts WHERE user_id = ?1 AND contact_id != ?2",
                        )?
                        .query_row(params![u.0, if u == owner { actor.user.0 } else { owner.0 }], |r| {
                            r.get(0)
                        })?;
                    Ok(n as usize)
                };
                if count(actor.user)? >= MAX_CONTACTS || count(owner)? >= MAX_CONTACTS {
                    return Err(OpError::invalid(format!(
                        "a user has at most {MAX_CONTACTS} contacts"
                    )));
                }
                // Showing a code is consent both ways: a request either of us still holds
                // from the other in our direct room is accepted, said in the log so that
                // every device learns it; a new direct room is no request to either.
                let room = match direct_room(tx, actor.user, owner)? {
                    Some(room) => {
                        for user in [actor.user, owner] {
                            if roomlog::request_of(tx, room, user)?.is_some() {
                                roomlog::accept_request(tx, room, user, caps.rooms)?;
                                let content = EventContent::Accepted { user };
                                announce(tx, &shared, conn_id, room, actor, content)?;
                            }
                        }
                        room
                    }
                    None => {
                        let direct = RoomKind::Direct;
                        let change =
                            create_room(tx, actor, direct, None, &[owner], caps, Consent::Given)?;
                        announce(tx, &shared, conn_id, change.room, actor, change.content)?;
                        change.room
                    }
                };
                for (a, b) in [(actor.user, owner), (owner, actor.user)] {
                    tx.prepare_cached(
                        "INSERT INTO contacts (user_id, contact_id, room_id, added_ms)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (user_id, contact_id) DO UPDATE SET room_id = excluded.room_id",
                    )?
                    .execute(params![a.0, b.0, room.0, now])?;
                }
                let user = roomlog::user(tx, owner)?
                    .ok_or_else(|| OpError::internal("the key's owner has no user row"))?;
                Ok(Reply::Contact { contact: Contact { user, room } })
            })
            .await
    }

    /// My contacts, by username.
    pub(crate) async fn contacts(&self) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        self.shared
            .store
            .read(move |conn| {
                let rows = conn
                    .prepare_cached(
                        "SELECT u.id, u.username, c.room_id FROM contacts c
                         JOIN users u ON u.id = c.contact_id
                         WHERE c.user_id = ?1 ORDER BY u.username",
                    )?
                    .query_map([actor.user.0], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut contacts = Vec::with_capacity(rows.len());
                for (id, name, room) in rows {
                    contacts.push(Contact {
                        user: roomlog::user_ref(UserId(id), name)?,
                        room: RoomId(room),
                    });
                }
                Ok(Reply::Contacts { contacts: bounded(contacts)? })
            })
            .await
    }
}

/// Appends `content` to `room`'s log as `actor`'s (a server-made request id) and delivers it
/// to the members after the commit.
fn announce(
    tx: &mut crate::store::Tx<'_>,
    shared: &std::sync::Arc<crate::Shared>,
    conn_id: crate::switchboard::ConnId,
    room: RoomId,
    actor: roomlog::Actor,
    content: EventContent,
) -> Result<(), OpError> {
    let request = RequestId(rand::random());
    let (event, _) = roomlog::append(tx, room, actor, request, unix_ms(), content)?;
    fan_out(tx, shared, conn_id, event, Vec::new())
}

/// The direct room `a` and `b` are both current members of, if any (the oldest).
fn direct_room(tx: &rusqlite::Connection, a: UserId, b: UserId) -> Result<Option<RoomId>, OpError> {
    Ok(tx
        .prepare_cached(
            "SELECT r.id FROM rooms r
             JOIN members ma ON ma.room_id = r.id AND ma.user_id = ?1 AND ma.active = 1
             JOIN members mb ON mb.room_id = r.id AND mb.user_id = ?2 AND mb.active = 1
             WHERE r.kind = 'direct' ORDER BY r.id LIMIT 1",
        )?
        .query_row([a.0, b.0], |r| r.get(0))
        .optional()?
        .map(RoomId))
}
