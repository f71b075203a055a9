//! What each request does: authentication, authorization and the change it makes.
//!
//! Every handler takes the connection's state explicitly and returns a [`Reply`] or an
//! [`OpError`]. Authorization is checked in the same transaction as the change it guards,
//! so a member removed a moment ago cannot slip a message in. Room-log mutations all go
//! through [`Conn::mutate`], which implements idempotency (shared/DESIGN.md §2): it looks up
//! `(device, request id)`, answers a resend with the recorded seq, refuses a reused id with
//! different content, and otherwise applies the change, appends the event, records the answer
//! and fans the event out after the commit.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};
use tidings_proto::{
    codec, validate, CallSignal, Confirmed, Credentials, DeviceId, DeviceInfo, ErrorCode,
    EventContent, LinkBlob, LinkId, MediaId, Name, RefuseReason, Reply, Request, RequestId,
    RoomCursor, RoomHead, RoomId, RoomKind, ServerFrame, Token, UserId, UserRef,
};

use tidings_proto::limits::MAX_PAGE_EVENTS;

use crate::{
    auth,
    connection::Conn,
    error::OpError,
    roomlog::{self, bounded, Actor},
    switchboard::Peer,
    unix_ms,
};

/// What a room-log mutation changes, decided inside the transaction.
pub(crate) struct Change {
    pub(crate) room: RoomId,
    pub(crate) content: EventContent,
    /// Users to tell besides the room's members after the change (who left or was removed).
    also_notify: Vec<UserId>,
    /// Media the event references.
    attachments: Vec<MediaId>,
}

impl Change {
    fn new(room: RoomId, content: EventContent) -> Self {
        Self { room, content, also_notify: Vec::new(), attachments: Vec::new() }
    }
}

impl Conn {
    /// The joined actor, or `unauthenticated`.
    pub(crate) fn actor(&self) -> Result<Actor, OpError> {
        self.joined
            .as_ref()
            .map(|p| Actor { user: p.user, device: p.device })
            .ok_or_else(|| OpError::new(ErrorCode::Unauthenticated, "join with a session first"))
    }

    /// Answers Hello: picks the newest version both sides speak.
    pub(crate) fn hello(&mut self, min: u16, max: u16) -> Result<Reply, OpError> {
        let version = max.min(tidings_proto::PROTOCOL_VERSION);
        if version < min.max(tidings_proto::MIN_PROTOCOL_VERSION) {
            return Err(OpError::new(
                ErrorCode::IncompatibleVersion,
                format!(
                    "this server speaks protocol versions {}–{}, the client {min}–{max}",
                    tidings_proto::MIN_PROTOCOL_VERSION,
                    tidings_proto::PROTOCOL_VERSION
                ),
            ));
        }
        self.version = Some(version);
        Ok(Reply::Welcome {
            version,
            server: Name::new(concat!("tidings-server/", env!("CARGO_PKG_VERSION")))
                .map_err(OpError::internal)?,
            limits: tidings_proto::ServerLimits {
                max_frame_bytes: tidings_proto::limits::MAX_FRAME_BYTES as u32,
                max_upload_bytes: self.shared.config.max_upload_bytes,
            },
        })
    }

    /// Sign-ins are limited per connection, per address, and per username *from that
    /// address*: someone guessing alice's password from one place slows down only there,
    /// and alice signs in from her own address as usual.
    fn limit_sign_in(&mut self, username: &str) -> Result<(), OpError> {
        let now = self.limit_sign_in_here()?;
        let mut by_name = self.shared.sign_ins.lock().map_err(OpError::internal)?;
        by_name.take((username.to_owned(), self.from), now).map_err(OpError::rate_limited)
    }

    /// The per-connection and per-address part of [`Conn::limit_sign_in`] (what redeeming a
    /// link code, which names no user, is limited by too); returns the time it checked at.
    fn limit_sign_in_here(&mut self) -> Result<Instant, OpError> {
        let now = Instant::now();
        self.auth_bucket.take(now).map_err(OpError::rate_limited)?;
        let mut by_addr = self.shared.sign_ins_by_addr.lock().map_err(OpError::internal)?;
        by_addr.take(self.from, now).map_err(OpError::rate_limited)?;
        Ok(now)
    }

    /// Creates an account and its first session.
    pub(crate) async fn sign_up(&mut self, c: Credentials) -> Result<Reply, OpError> {
        self.shared.disk.check()?;
        let now = Instant::now();
        self.auth_bucket.take(now).map_err(OpError::rate_limited)?;
        {
            let mut by_addr = self.shared.sign_ups_by_addr.lock().map_err(OpError::internal)?;
            by_addr.take(self.from, now).map_err(OpError::rate_limited)?;
        }
        validate::username(&c.username).map_err(|e| OpError::invalid(e.to_string()))?;
        validate::password(&c.password.0).map_err(|e| OpError::invalid(e.to_string()))?;
        validate::name(&c.device_name).map_err(|e| OpError::invalid(e.to_string()))?;
        let password = c.password.0.into_string();
        let hash = self
            .shared
            .password_work
            .run(move || auth::hash_password(&password))
            .await?
            .map_err(OpError::internal)?;
        let ttl = self.shared.config.session_ttl.min(self.shared.config.session_max_age);
        self.shared
            .store
            .write(move |tx| {
                let now = unix_ms();
                let taken = tx
                    .prepare_cached("SELECT 1 FROM users WHERE username = ?1")?
                    .exists([c.username.as_str()])?;
                if taken {
                    return Err(OpError::new(ErrorCode::UsernameTaken, "that username is taken"));
                }
                tx.prepare_cached(
                    "INSERT INTO users (username, password_hash, created_ms) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![c.username.as_str(), hash, now])?;
                let user = UserRef { id: UserId(tx.last_insert_rowid()), username: c.username };
                new_session(tx, user, &c.device_name, ttl, usize::MAX)
            })
            .await
    }

    /// Opens a new device session for an existing account.
    pub(crate) async fn sign_in(&mut self, c: Credentials) -> Result<Reply, OpError> {
        self.limit_sign_in(&c.username)?;
        validate::name(&c.device_name).map_err(|e| OpError::invalid(e.to_string()))?;
        let username = c.username.clone();
        let found: Option<(i64, String)> = self
            .shared
            .store
            .read(move |conn| {
                Ok::<_, OpError>(
                    conn.prepare_cached("SELECT id, password_hash FROM users WHERE username = ?1")?
                        .query_row([username.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()?,
                )
            })
            .await?;
        let password = c.password.0.into_string();
        let stored = found.as_ref().map(|(_, h)| h.clone());
        let ok = self
            .shared
            .password_work
            .run(move || auth::verify_password(&password, stored.as_deref()))
            .await?;
        let (Some((id, _)), true) = (found, ok) else {
            return Err(OpError::new(ErrorCode::BadCredentials, "wrong username or password"));
        };
        let ttl = self.shared.config.session_ttl.min(self.shared.config.session_max_age);
        let user = UserRef { id: UserId(id), username: c.username };
        let cap = self.shared.config.max_devices_per_user;
        self.shared.store.write(move |tx| new_session(tx, user, &c.device_name, ttl, cap)).await
    }

    /// Offers a session on my account to whoever presents `id` before the offer expires
    /// (docs/protocol.md, "Linking a device"). A device has one open offer: a new one
    /// replaces it. An account already at its device cap is told now, before anyone scans.
    pub(crate) async fn offer_link(
        &mut self,
        id: LinkId,
        sealed: LinkBlob,
    ) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        link_id(&id)?;
        let cap = self.shared.config.max_devices_per_user;
        let ttl_ms = self.shared.config.link_ttl.as_millis() as i64;
        self.shared
            .store
            .write(move |tx| {
                let now = unix_ms();
                check_device_cap(tx, actor.user, now, cap)?;
                let expires_ms = now + ttl_ms;
                tx.prepare_cached("DELETE FROM link_offers WHERE device_id = ?1")?
                    .execute([actor.device.0])?;
                let inserted = tx
                    .prepare_cached(
                        "INSERT INTO link_offers (id, user_id, device_id, sealed, expires_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (id) DO NOTHING",
                    )?
                    .execute(params![
                        id.as_bytes(),
                        actor.user.0,
                        actor.device.0,
                        sealed.as_bytes(),
                        expires_ms
                    ])?;
                if inserted == 0 {
                    return Err(OpError::invalid("that link id is taken: make a new code"));
                }
                Ok(Reply::LinkOffered { expires_ms })
            })
            .await
    }

    /// Redeems a link offer: a new session on the offering device's account, once. Limited
    /// like a sign-in (the id is a password that works once). The offer stays if the account
    /// is at its device cap, so the code works once a device is signed out.
    pub(crate) async fn redeem_link(
        &mut self,
        id: LinkId,
        device_name: Name,
    ) -> Result<Reply, OpError> {
        self.limit_sign_in_here()?;
        link_id(&id)?;
        validate::name(&device_name).map_err(|e| OpError::invalid(e.to_string()))?;
        let ttl = self.shared.config.session_ttl.min(self.shared.config.session_max_age);
        let cap = self.shared.config.max_devices_per_user;
        self.shared
            .store
            .write(move |tx| {
                let now = unix_ms();
                // The offer counts only while the device that made it is still signed in.
                let offer: Option<(i64, Vec<u8>)> = tx
                    .prepare_cached(
                        "SELECT o.user_id, o.sealed FROM link_offers o
                         JOIN sessions s ON s.id = o.device_id
                         WHERE o.id = ?1 AND o.expires_ms > ?2
                           AND s.revoked_ms IS NULL AND s.expires_ms > ?2",
                    )?
                    .query_row(params![id.as_bytes(), now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                let Some((user, sealed)) = offer else {
                    return Err(OpError::new(
                        ErrorCode::InvalidLinkCode,
                        "this link code is unknown, used or expired: show a new one",
                    ));
                };
                let user = roomlog::user(tx, UserId(user))?
                    .ok_or_else(|| OpError::internal("link offer of a missing user"))?;
                let Reply::Session { user, device, token } =
                    new_session(tx, user, &device_name, ttl, cap)?
                else {
                    return Err(OpError::internal("a session that is not one"));
                };
                tx.prepare_cached("DELETE FROM link_offers WHERE id = ?1")?
                    .execute([id.as_bytes()])?;
                let sealed = LinkBlob::new(sealed).map_err(OpError::internal)?;
                Ok(Reply::Linked { user, device, token, sealed })
            })
            .await
    }

    /// Binds the connection to a session. The Joined reply is queued and the connection
    /// registered for pushes in the same post-commit step, so no event falls between them.
    pub(crate) async fn join(
        &mut self,
        id: u32,
        token: Token,
        protocol_version: u16,
        rooms: Vec<RoomCursor>,
        unconfirmed: Vec<RequestId>,
    ) -> Result<(), OpError> {
        if self.joined.is_some() {
            return Err(OpError::invalid("this connection has already joined"));
        }
        if Some(protocol_version) != self.version {
            return Err(OpError::invalid("join with the protocol version agreed in hello"));
        }
        let ttl_ms = self.shared.config.session_ttl.as_millis() as i64;
        let max_age_ms = self.shared.config.session_max_age.as_millis() as i64;
        let shared = self.shared.clone();
        let (conn_id, queue, kicked) = (self.id, self.queue.clone(), self.kicked.clone());
        let peer = self
            .shared
            .store
            .write(move |tx| {
                let now = unix_ms();
                let Actor { user, device } = auth::check_token(tx, token.0.as_str(), now)?;
                // One device needs a connection or two; hundreds are someone holding sockets.
                let open =
                    shared.switchboard.peers_of(user).iter().filter(|p| p.device == device).count();
                if open >= shared.config.max_connections_per_device {
                    let mut info = tidings_proto::ErrorInfo::new(
                        ErrorCode::RateLimited,
                        "this device has too many connections open",
                    );
                    info.retry_after_ms = Some(5_000);
                    return Err(OpError::Client(info));
                }
                // Each Join extends the session, never past its absolute lifetime.
                tx.prepare_cached(
                    "UPDATE sessions SET last_seen_ms = ?2, expires_ms = MIN(?3, created_ms + ?4)
                     WHERE id = ?1",
                )?
                .execute(params![device.0, now, now + ttl_ms, max_age_ms])?;
                let user_ref = roomlog::user(tx, user)?
                    .ok_or_else(|| OpError::internal("session of a missing user"))?;
                let heads = roomlog::rooms_of(tx, user)?;
                let known: std::collections::BTreeMap<RoomId, u64> =
                    rooms.iter().map(|c| (c.room, c.last_seq)).collect();
                let left: Vec<RoomId> = known
                    .keys()
                    .filter(|r| heads.binary_search_by_key(*r, |(id, _)| *id).is_err())
                    .copied()
                    .collect();
                let changed: Vec<RoomHead> = heads
                    .into_iter()
                    .filter(|(room, last)| known.get(room).is_none_or(|k| k < last))
                    .map(|(room, last_seq)| RoomHead { room, last_seq })
                    .collect();
                let mut confirmed = Vec::new();
                for request in unconfirmed {
                    if let Some((_, room, seq)) = roomlog::find_request(tx, device, request)? {
                        confirmed.push(Confirmed { request, room, seq });
                    }
                }
                let reply = Reply::Joined {
                    user: user_ref,
                    device,
                    rooms: bounded(changed)?,
                    left: bounded(left)?,
                    confirmed: bounded(confirmed)?,
                };
                let frame = encode_frame(&ServerFrame::Reply { id, result: Ok(reply) })?;
                let peer = Arc::new(Peer::new(conn_id, user, device, queue, kicked));
                let registered = peer.clone();
                tx.after_commit(move || {
                    if registered.push(frame, &shared.metrics) {
                        shared.metrics.frames_out.inc();
                    }
                    shared.switchboard.add(registered);
                });
                Ok::<_, OpError>(peer)
            })
            .await?;
        self.joined = Some(peer);
        Ok(())
    }

    /// Ends this device's session.
    pub(crate) async fn sign_out(&mut self) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        self.revoke(actor, actor.device).await
    }

    /// Changes my password after checking the old one; every other session ends.
    pub(crate) async fn change_password(
        &mut self,
        old: String,
        new: String,
    ) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        // Guessing the old password here is a sign-in attempt like any other.
        let now = Instant::now();
        self.auth_bucket.take(now).map_err(OpError::rate_limited)?;
        validate::password(&new).map_err(|e| OpError::invalid(e.to_string()))?;
        let stored: Option<String> = self
            .shared
            .store
            .read(move |conn| {
                Ok::<_, OpError>(
                    conn.prepare_cached("SELECT password_hash FROM users WHERE id = ?1")?
                        .query_row([actor.user.0], |r| r.get(0))
                        .optional()?,
                )
            })
            .await?;
        let work = &self.shared.password_work;
        let right = work.run(move || auth::verify_password(&old, stored.as_deref())).await?;
        if !right {
            return Err(OpError::new(ErrorCode::BadCredentials, "the current password is wrong"));
        }
        let hash = work.run(move || auth::hash_password(&new)).await?.map_err(OpError::internal)?;
        let (shared, conn_id) = (self.shared.clone(), self.id);
        self.shared
            .store
            .write(move |tx| {
                tx.prepare_cached("UPDATE users SET password_hash = ?2 WHERE id = ?1")?
                    .execute(params![actor.user.0, hash])?;
                end_sessions(
                    tx,
                    &shared,
                    conn_id,
                    actor,
                    Some(actor.device),
                    "the password was changed",
                )?;
                Ok(Reply::Done {})
            })
            .await
    }

    /// Ends every session of mine, this one too.
    pub(crate) async fn sign_out_everywhere(&mut self) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        let (shared, conn_id) = (self.shared.clone(), self.id);
        self.shared
            .store
            .write(move |tx| {
                end_sessions(tx, &shared, conn_id, actor, None, "signed out everywhere")?;
                Ok(Reply::Done {})
            })
            .await
    }

    /// Signs one of my devices out and kicks its connections.
    pub(crate) async fn revoke(
        &mut self,
        actor: Actor,
        device: DeviceId,
    ) -> Result<Reply, OpError> {
        let shared = self.shared.clone();
        let conn_id = self.id;
        self.shared
            .store
            .write(move |tx| {
                let n = tx
                    .prepare_cached(
                        "UPDATE sessions SET revoked_ms = ?3
                         WHERE id = ?1 AND user_id = ?2 AND revoked_ms IS NULL",
                    )?
                    .execute(params![device.0, actor.user.0, unix_ms()])?;
                if n == 0 {
                    return Err(OpError::new(ErrorCode::NotFound, "no such device"));
                }
                log_signed_out(tx, &shared, conn_id, actor, vec![device])?;
                tx.after_commit(move || {
                    let reason =
                        tidings_proto::ErrorInfo::new(ErrorCode::Unauthenticated, "signed out");
                    shared.switchboard.kick_device(actor.user, device, &reason);
                });
                Ok(Reply::Done {})
            })
            .await
    }

    /// Lists my signed-in devices, a page at a time by id.
    pub(crate) async fn list_devices(&self, after: Option<DeviceId>) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        let page = tidings_proto::limits::MAX_DEVICES;
        self.shared
            .store
            .read(move |conn| {
                let mut st = conn.prepare_cached(
                    "SELECT id, name, created_ms, last_seen_ms FROM sessions
                     WHERE user_id = ?1 AND revoked_ms IS NULL AND expires_ms > ?2 AND id > ?4
                     ORDER BY id LIMIT ?3",
                )?;
                // One more than a page tells whether there is a next one.
                let rows = st.query_map(
                    params![actor.user.0, unix_ms(), page as i64 + 1, after.map_or(0, |d| d.0)],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?)),
                )?;
                let mut devices = Vec::new();
                for row in rows {
                    let (id, name, created_ms, last_seen_ms) = row?;
                    devices.push(DeviceInfo {
                        id: DeviceId(id),
                        name: Name::new(name).map_err(OpError::internal)?,
                        created_ms,
                        last_seen_ms,
                        current: id == actor.device.0,
                    });
                }
                let next = if devices.len() > page {
                    devices.truncate(page);
                    devices.last().map(|d| d.id)
                } else {
                    None
                };
                Ok(Reply::Devices { devices: bounded(devices)?, next })
            })
            .await
    }

    /// Finds a user by exact username.
    pub(crate) async fn lookup_user(&self, username: String) -> Result<Reply, OpError> {
        self.actor()?;
        self.shared
            .store
            .read(move |conn| {
                let id: Option<i64> = conn
                    .prepare_cached("SELECT id FROM users WHERE username = ?1")?
                    .query_row([username.as_str()], |r| r.get(0))
                    .optional()?;
                let id = id.ok_or_else(|| OpError::new(ErrorCode::NotFound, "no such user"))?;
                Ok(Reply::User { user: roomlog::user_ref(UserId(id), username)? })
            })
            .await
    }

    /// Applies a room-log mutation exactly once per `(device, request id)`.
    async fn mutate(
        &mut self,
        request: &Request,
        apply: impl FnOnce(&rusqlite::Connection, Actor) -> Result<Change, OpError> + Send + 'static,
    ) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        let Some(request_id) = request.request_id() else {
            return Err(OpError::internal("mutation without a request id"));
        };
        let fingerprint: Vec<u8> =
            Sha256::digest(codec::encode(request).map_err(OpError::internal)?).to_vec();
        let shared = self.shared.clone();
        let conn_id = self.id;
        self.shared
            .store
            .write(move |tx| {
                if let Some((recorded, room, seq)) =
                    roomlog::find_request(tx, actor.device, request_id)?
                {
                    return if recorded == fingerprint {
                        Ok(Reply::Logged { room, seq })
                    } else {
                        Err(OpError::new(
                            ErrorCode::RequestIdReused,
                            "this request id was used for a different request",
                        ))
                    };
                }
                // A replay above is answered even on a full disk; a new change is not stored.
                shared.disk.check()?;
                let change = apply(tx, actor)?;
                let room = change.room;
                let (event, _) =
                    roomlog::append(tx, room, actor, request_id, unix_ms(), change.content)?;
                let seq = event.seq;
                for media in change.attachments {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO message_media (media_id, room_id, seq)
                         VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![media.0, room.0, seq as i64])?;
                }
                roomlog::record_request(tx, actor.device, request_id, &fingerprint, room, seq)?;
                fan_out(tx, &shared, conn_id, event, change.also_notify)?;
                Ok(Reply::Logged { room, seq })
            })
            .await
    }

    /// Dispatches a room-log mutation to the change it makes.
    pub(crate) async fn room_mutation(&mut self, request: Request) -> Result<Reply, OpError> {
        self.send_bucket.take(Instant::now()).map_err(OpError::rate_limited)?;
        let r = request.clone();
        match r {
            Request::CreateRoom { kind, name, members, .. } => {
                if let Some(name) = &name {
                    validate::name(name).map_err(|e| OpError::invalid(e.to_string()))?;
                }
                let caps = self.shared.config.caps();
                self.mutate(&request, move |tx, actor| {
                    create_room(tx, actor, kind, name, &members, caps, Consent::Ask)
                })
                .await
            }
            Request::Invite { room, user, .. } => {
                let caps = self.shared.config.caps();
                self.mutate(&request, move |tx, actor| {
                    group_member_only(tx, room, actor)?;
                    if roomlog::is_member(tx, room, user)? {
                        return Err(OpError::invalid("already a member"));
                    }
                    if roomlog::members(tx, room)?.len() >= tidings_proto::limits::MAX_ROOM_MEMBERS
                    {
                        return Err(OpError::invalid("the room is full"));
                    }
                    let user_ref = roomlog::user(tx, user)?
                        .ok_or_else(|| OpError::new(ErrorCode::NotFound, "no such user"))?;
                    let request = roomlog::add_member(tx, room, user, actor.user, caps)?;
                    let content = EventContent::Joined { user: user_ref, by: actor.user, request };
                    Ok(Change::new(room, content))
                })
                .await
            }
            Request::Accept { room, .. } => {
                let max_rooms = self.shared.config.max_rooms_per_user;
                self.mutate(&request, move |tx, actor| {
                    member_only(tx, room, actor)?;
                    roomlog::accept_request(tx, room, actor.user, max_rooms)?;
                    Ok(Change::new(room, EventContent::Accepted { user: actor.user }))
                })
                .await
            }
            Request::Leave { room, .. } => {
                self.mutate(&request, move |tx, actor| {
                    member_only(tx, room, actor)?;
                    roomlog::deactivate_member(tx, room, actor.user)?;
                    let mut change = Change::new(room, EventContent::Left { user: actor.user });
                    change.also_notify.push(actor.user);
                    Ok(change)
                })
                .await
            }
            Request::RemoveMember { room, user, .. } => {
                self.mutate(&request, move |tx, actor| {
                    group_member_only(tx, room, actor)?;
                    let creator: i64 = tx
                        .prepare_cached("SELECT creator FROM rooms WHERE id = ?1")?
                        .query_row([room.0], |r| r.get(0))?;
                    if creator != actor.user.0 {
                        return Err(OpError::forbidden("only the room's creator removes members"));
                    }
                    if user == actor.user || !roomlog::is_member(tx, room, user)? {
                        return Err(OpError::invalid("not a member that can be removed"));
                    }
                    roomlog::deactivate_member(tx, room, user)?;
                    let mut change =
                        Change::new(room, EventContent::Removed { user, by: actor.user });
                    change.also_notify.push(user);
                    Ok(change)
                })
                .await
            }
            Request::Rename { room, name, .. } => {
                validate::name(&name).map_err(|e| OpError::invalid(e.to_string()))?;
                self.mutate(&request, move |tx, actor| {
                    group_member_only(tx, room, actor)?;
                    tx.prepare_cached("UPDATE rooms SET name = ?2 WHERE id = ?1")?
                        .execute(params![room.0, name.as_str()])?;
                    Ok(Change::new(room, EventContent::Renamed { name }))
                })
                .await
            }
            Request::Send { room, body, attachments, redacts, .. } => {
                self.mutate(&request, move |tx, actor| {
                    agreed_member_only(tx, room, actor)?;
                    crate::mls::check_body(tx, room, body.as_bytes())?;
                    if direct_peer_blocks(tx, room, actor)? {
                        return Err(OpError::forbidden(
                            "this user does not accept messages from you",
                        ));
                    }
                    for media in attachments.iter() {
                        if !crate::media::may_read(tx, actor.user, *media)? {
                            return Err(OpError::new(ErrorCode::NotFound, "no such media"));
                        }
                    }
                    if let Some(target) = redacts {
                        roomlog::redact(tx, room, actor.user, target)?;
                    }
                    let refs = attachments.to_vec();
                    let mut change = Change::new(room, EventContent::Message { body, attachments });
                    change.attachments = refs;
                    Ok(change)
                })
                .await
            }
            Request::Mls { room, commit, welcome, group_info, .. } => {
                self.mutate(&request, move |tx, actor| {
                    // A member holding the room as a request may read it, so a device of
                    // theirs may join its group (an external commit); nothing else.
                    let joining = match &commit {
                        Some(commit) => crate::mls::header(commit.as_bytes())?.external,
                        None => false,
                    };
                    if joining {
                        member_only(tx, room, actor)?;
                    } else {
                        agreed_member_only(tx, room, actor)?;
                    }
                    crate::mls::handshake(
                        tx,
                        room,
                        commit.as_ref(),
                        welcome.as_ref(),
                        &group_info,
                    )?;
                    Ok(Change::new(room, EventContent::Mls { commit, welcome }))
                })
                .await
            }
            Request::RecordCall { room, record, .. } => {
                self.mutate(&request, move |tx, actor| {
                    agreed_member_only(tx, room, actor)?;
                    // Only the caller records a call, and only as itself; an outcome this
                    // build cannot name would be stored as something it is not.
                    if record.caller != actor.user {
                        return Err(OpError::new(
                            ErrorCode::Forbidden,
                            "a call is recorded by its caller",
                        ));
                    }
                    if record.outcome == tidings_proto::CallOutcome::Other {
                        return Err(OpError::new(ErrorCode::InvalidInput, "unknown call outcome"));
                    }
                    Ok(Change::new(room, EventContent::Call(record)))
                })
                .await
            }
            other => Err(OpError::internal(format!("{} is not a room mutation", other.kind()))),
        }
    }

    /// Moves my receipt watermarks forward and tells the room.
    pub(crate) async fn receipt(
        &mut self,
        room: RoomId,
        delivered: Option<u64>,
        read: Option<u64>,
    ) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        let (shared, conn_id) = (self.shared.clone(), self.id);
        self.shared
            .store
            .write(move |tx| {
                member_only(tx, room, actor)?;
                if let Some((delivered, read)) =
                    roomlog::advance_receipts(tx, room, actor.user, delivered, read)?
                {
                    let members = roomlog::members(tx, room)?;
                    let frame = encode_frame(&ServerFrame::Receipt {
                        room,
                        user: actor.user,
                        delivered,
                        read,
                    })?;
                    tx.after_commit(move || {
                        shared.switchboard.deliver(
                            &members,
                            Some(conn_id),
                            &frame,
                            &shared.metrics,
                        );
                    });
                }
                Ok(Reply::Done {})
            })
            .await
    }

    /// Relays "typing" to the room's other members.
    pub(crate) async fn typing(&mut self, room: RoomId, active: bool) -> Result<(), OpError> {
        let actor = self.actor()?;
        self.typing_bucket.take(Instant::now()).map_err(OpError::rate_limited)?;
        let members = self
            .shared
            .store
            .read(move |conn| {
                agreed_member_only(conn, room, actor)?;
                roomlog::members(conn, room)
            })
            .await?;
        let others: Vec<UserId> = members.into_iter().filter(|u| *u != actor.user).collect();
        let frame = encode_frame(&ServerFrame::Typing { room, user: actor.user, active })?;
        self.shared.switchboard.deliver(&others, None, &frame, &self.shared.metrics);
        Ok(())
    }

    /// Relays a call signal to another member of the room, or to my own other devices (a
    /// call answered or declined here stops their ringing). An Inquire to someone with no
    /// connected device is refused at once with `unavailable`, so the caller does not wait.
    pub(crate) async fn signal(
        &mut self,
        room: RoomId,
        to_user: UserId,
        to_device: Option<DeviceId>,
        call: u64,
        signal: CallSignal,
    ) -> Result<(), OpError> {
        let actor = self.actor()?;
        let is_hangup = matches!(signal, CallSignal::Hangup { .. });
        let is_inquire = matches!(signal, CallSignal::Inquire { .. });
        let rings = self
            .shared
            .store
            .read(move |conn| {
                // A hang-up may still end a call from a room I have just declined.
                if is_hangup {
                    member_only(conn, room, actor)?;
                } else {
                    agreed_member_only(conn, room, actor)?;
                }
                // To myself: only a Hangup, to my other devices (a call answered or declined
                // here); calling myself is not a thing.
                if to_user == actor.user {
                    if !is_hangup {
                        return Err(OpError::forbidden("only a hang-up goes to my own devices"));
                    }
                    return Ok(true);
                } else if !roomlog::is_member(conn, room, to_user)? {
                    return Err(OpError::forbidden("the callee is not a member of the room"));
                }
                may_ring(conn, room, actor.user, to_user)
            })
            .await?;
        if is_inquire && !rings {
            // Not a contact in an accepted room, or blocked: refused as if nobody were
            // there, without a ring and without telling which.
            self.refuse_unavailable(room, to_user, call)?;
            return Ok(());
        }
        if !rings && !is_hangup {
            return Ok(());
        }
        // Both ends of a call being set up may get TURN credentials for a while.
        if is_inquire || matches!(signal, CallSignal::Grant {}) {
            let now = Instant::now();
            self.shared.calls.open(actor.user, now);
            self.shared.calls.open(to_user, now);
        }
        let metrics = &self.shared.metrics;
        let targets: Vec<_> = self
            .shared
            .switchboard
            .peers_of(to_user)
            .into_iter()
            .filter(|p| to_device.is_none_or(|d| d == p.device))
            .filter(|p| (p.user, p.device) != (actor.user, actor.device))
            .collect();
        if targets.is_empty() && to_user != actor.user {
            if is_inquire {
                self.refuse_unavailable(room, to_user, call)?;
            }
            return Ok(());
        }
        let frame = encode_frame(&ServerFrame::Signal {
            room,
            from_user: actor.user,
            from_device: actor.device,
            call,
            signal,
        })?;
        let mut delivered = 0;
        for peer in targets {
            delivered += u64::from(peer.push(frame.clone(), metrics));
        }
        metrics.deliveries.inc_by(delivered);
        Ok(())
    }

    /// Answers my own Inquire with `Refuse{unavailable}` as if from `callee`.
    fn refuse_unavailable(&self, room: RoomId, callee: UserId, call: u64) -> Result<(), OpError> {
        let refuse = encode_frame(&ServerFrame::Signal {
            room,
            from_user: callee,
            from_device: DeviceId(0),
            call,
            signal: CallSignal::Refuse { reason: RefuseReason::Unavailable },
        })?;
        if let Some(me) = &self.joined {
            me.push(refuse, &self.shared.metrics);
        }
        Ok(())
    }

    /// Blocks (or unblocks) `user` for me.
    pub(crate) async fn block(&mut self, user: UserId, block: bool) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        if user == actor.user {
            return Err(OpError::invalid("you cannot block yourself"));
        }
        self.shared
            .store
            .write(move |tx| {
                if !block {
                    tx.prepare_cached("DELETE FROM blocks WHERE user_id = ?1 AND blocked_id = ?2")?
                        .execute(params![actor.user.0, user.0])?;
                    return Ok(Reply::Done {});
                }
                roomlog::user(tx, user)?
                    .ok_or_else(|| OpError::new(ErrorCode::NotFound, "no such user"))?;
                let count: i64 = tx
                    .prepare_cached("SELECT COUNT(*) FROM blocks WHERE user_id = ?1")?
                    .query_row([actor.user.0], |r| r.get(0))?;
                if count as usize >= tidings_proto::limits::MAX_BLOCKED {
                    return Err(OpError::new(
                        ErrorCode::QuotaExceeded,
                        format!(
                            "at most {} users can be blocked",
                            tidings_proto::limits::MAX_BLOCKED
                        ),
                    ));
                }
                tx.prepare_cached(
                    "INSERT INTO blocks (user_id, blocked_id, created_ms) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                )?
                .execute(params![actor.user.0, user.0, unix_ms()])?;
                Ok(Reply::Done {})
            })
            .await
    }

    /// The users I block.
    pub(crate) async fn blocked(&self) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        self.shared
            .store
            .read(move |conn| {
                let mut st = conn.prepare_cached(
                    "SELECT u.id, u.username FROM blocks b JOIN users u ON u.id = b.blocked_id
                     WHERE b.user_id = ?1 ORDER BY u.username",
                )?;
                let rows = st.query_map([actor.user.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
                let mut users = Vec::new();
                for row in rows {
                    let (id, name): (i64, String) = row?;
                    users.push(roomlog::user_ref(UserId(id), name)?);
                }
                Ok(Reply::Blocked { users: bounded(users)? })
            })
            .await
    }

    /// A page of a room's log for a current member.
    pub(crate) async fn catch_up(
        &self,
        room: RoomId,
        after: u64,
        limit: u16,
    ) -> Result<Reply, OpError> {
        let actor = self.actor()?;
        let limit = usize::from(limit).clamp(1, MAX_PAGE_EVENTS);
        self.shared
            .store
            .read(move |conn| {
                member_only(conn, room, actor)?;
                let last_seq = roomlog::last_seq(conn, room)?.unwrap_or(0);
                let events = roomlog::page(conn, room, after, limit)?;
                let members = roomlog::member_states(conn, room)?;
                Ok(Reply::Page {
                    room,
                    events: bounded(events)?,
                    last_seq,
                    members: bounded(members)?,
                })
            })
            .await
    }
}

/// `forbidden` unless `actor` is a current member of `room`. A room that does not exist
/// answers the same, so ids reveal nothing.
fn member_only(conn: &rusqlite::Connection, room: RoomId, actor: Actor) -> Result<(), OpError> {
    if roomlog::is_member(conn, room, actor.user)? {
        Ok(())
    } else {
        Err(OpError::forbidden("not a member of this room"))
    }
}

/// Like [`member_only`], and the member must have agreed to be there: someone holding the
/// room as a request may read it, accept it or leave it, nothing else.
fn agreed_member_only(
    conn: &rusqlite::Connection,
    room: RoomId,
    actor: Actor,
) -> Result<(), OpError> {
    match roomlog::membership(conn, room, actor.user)? {
        Some(None) => Ok(()),
        Some(Some(_)) => Err(OpError::forbidden("accept the request first")),
        None => Err(OpError::forbidden("not a member of this room")),
    }
}

/// Whether the other member of a direct room blocks `actor`.
fn direct_peer_blocks(
    conn: &rusqlite::Connection,
    room: RoomId,
    actor: Actor,
) -> Result<bool, OpError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM rooms r
             JOIN members m ON m.room_id = r.id AND m.active = 1 AND m.user_id != ?2
             JOIN blocks b ON b.user_id = m.user_id AND b.blocked_id = ?2
             WHERE r.id = ?1 AND r.kind = 'direct'",
        )?
        .exists(params![room.0, actor.user.0])?)
}

/// Whether `caller` may ring `callee` from `room`: the callee does not block the caller, and
/// has the caller as a contact or has accepted the room.
fn may_ring(
    conn: &rusqlite::Connection,
    room: RoomId,
    caller: UserId,
    callee: UserId,
) -> Result<bool, OpError> {
    // One query: every signal of a call (candidates too) passes here.
    Ok(conn
        .prepare_cached(
            "SELECT NOT EXISTS (SELECT 1 FROM blocks WHERE user_id = ?3 AND blocked_id = ?2)
                AND (EXISTS (SELECT 1 FROM contacts WHERE user_id = ?3 AND contact_id = ?2)
                     OR NOT EXISTS (SELECT 1 FROM members WHERE room_id = ?1 AND user_id = ?3
                                    AND active = 1 AND requested_by IS NOT NULL))",
        )?
        .query_row(params![room.0, caller.0, callee.0], |r| r.get(0))?)
}

/// Like [`agreed_member_only`], and the room must be a group.
fn group_member_only(
    conn: &rusqlite::Connection,
    room: RoomId,
    actor: Actor,
) -> Result<(), OpError> {
    agreed_member_only(conn, room, actor)?;
    let kind: String = conn
        .prepare_cached("SELECT kind FROM rooms WHERE id = ?1")?
        .query_row([room.0], |r| r.get(0))?;
    if kind == "group" {
        Ok(())
    } else {
        Err(OpError::invalid("direct rooms have fixed members and no name"))
    }
}

/// Whether the members a room is made with have agreed to it already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Consent {
    /// Ask those who are not the creator's contacts: it is a request to them.
    Ask,
    /// They agreed (each showed the other a contact code).
    Given,
}

pub(crate) fn create_room(
    tx: &rusqlite::Connection,
    actor: Actor,
    kind: RoomKind,
    name: Option<tidings_proto::RoomName>,
    members: &[UserId],
    caps: roomlog::Caps,
    consent: Consent,
) -> Result<Change, OpError> {
    let mut ids = vec![actor.user];
    for m in members {
        if !ids.contains(m) {
            ids.push(*m);
        }
    }
    if ids.len() > tidings_proto::limits::MAX_ROOM_MEMBERS {
        return Err(OpError::invalid(format!(
            "a room has at most {} members, you included",
            tidings_proto::limits::MAX_ROOM_MEMBERS
        )));
    }
    if kind == RoomKind::Direct && ids.len() != 2 {
        return Err(OpError::invalid("a direct room has exactly one other member"));
    }
    let mut refs = Vec::with_capacity(ids.len());
    for id in &ids {
        refs.push(
            roomlog::user(tx, *id)?
                .ok_or_else(|| OpError::new(ErrorCode::NotFound, format!("no user {id}")))?,
        );
    }
    let (kind_str, name) = match kind {
        RoomKind::Direct => ("direct", None),
        RoomKind::Group => ("group", name),
    };
    tx.prepare_cached(
        "INSERT INTO rooms (kind, name, creator, last_seq, created_ms) VALUES (?1, ?2, ?3, 0, ?4)",
    )?
    .execute(params![kind_str, name.as_ref().map(|n| n.as_str()), actor.user.0, unix_ms()])?;
    let room = RoomId(tx.last_insert_rowid());
    let mut requested = Vec::new();
    for id in &ids {
        if consent == Consent::Given {
            roomlog::activate_member(tx, room, *id, caps.rooms)?;
        } else if roomlog::add_member(tx, room, *id, actor.user, caps)? {
            requested.push(*id);
        }
    }
    let (members, requested) = (bounded(refs)?, bounded(requested)?);
    Ok(Change::new(room, EventContent::Created { kind, name, members, requested }))
}

/// Revokes every live session of `actor`'s user but `keep`'s, and after the commit closes
/// their connections with `unauthenticated` and `why`.
fn end_sessions(
    tx: &mut crate::store::Tx<'_>,
    shared: &Arc<crate::Shared>,
    conn_id: crate::switchboard::ConnId,
    actor: Actor,
    keep: Option<tidings_proto::DeviceId>,
    why: &'static str,
) -> Result<(), OpError> {
    let ended: Vec<DeviceId> = tx
        .prepare_cached(
            "UPDATE sessions SET revoked_ms = ?3
             WHERE user_id = ?1 AND revoked_ms IS NULL AND id IS NOT ?2 RETURNING id",
        )?
        .query_map(params![actor.user.0, keep.map(|d| d.0), unix_ms()], |r| {
            Ok(DeviceId(r.get(0)?))
        })?
        .collect::<Result<_, _>>()?;
    log_signed_out(tx, shared, conn_id, actor, ended)?;
    let shared = shared.clone();
    tx.after_commit(move || {
        let reason = tidings_proto::ErrorInfo::new(ErrorCode::Unauthenticated, why);
        shared.switchboard.kick_user(actor.user, keep, &reason);
    });
    Ok(())
}

/// Logs that `devices` of the actor's user were signed out, in each of the user's rooms that
/// has an MLS group, so that the members' next commit removes their leaves (docs/e2ee.md).
/// At most [`MAX_DEVICES`](tidings_proto::limits::MAX_DEVICES) devices per event.
fn log_signed_out(
    tx: &mut crate::store::Tx<'_>,
    shared: &Arc<crate::Shared>,
    conn_id: crate::switchboard::ConnId,
    actor: Actor,
    devices: Vec<DeviceId>,
) -> Result<(), OpError> {
    if devices.is_empty() {
        return Ok(());
    }
    let rooms: Vec<RoomId> = tx
        .prepare_cached(
            "SELECT r.id FROM members m JOIN rooms r ON r.id = m.room_id
             WHERE m.user_id = ?1 AND m.active = 1 AND r.mls_group IS NOT NULL ORDER BY r.id",
        )?
        .query_map([actor.user.0], |r| Ok(RoomId(r.get(0)?)))?
        .collect::<Result<_, _>>()?;
    let now = unix_ms();
    for room in rooms {
        for chunk in devices.chunks(tidings_proto::limits::MAX_DEVICES) {
            let devices = bounded(chunk.to_vec())?;
            let content = EventContent::DevicesSignedOut { devices };
            let request = RequestId(rand::random());
            let (event, _) = roomlog::append(tx, room, actor, request, now, content)?;
            fan_out(tx, shared, conn_id, event, Vec::new())?;
        }
    }
    Ok(())
}

/// A link offer's id must be a SHA-256.
fn link_id(id: &LinkId) -> Result<(), OpError> {
    if id.as_bytes().len() != tidings_proto::limits::LINK_ID_BYTES {
        return Err(OpError::invalid("a link id is 32 bytes"));
    }
    Ok(())
}

/// Refuses a new device when `user` already has `cap` signed in.
fn check_device_cap(
    tx: &rusqlite::Connection,
    user: UserId,
    now: i64,
    cap: usize,
) -> Result<(), OpError> {
    let live: i64 = tx
        .prepare_cached(
            "SELECT COUNT(*) FROM sessions
             WHERE user_id = ?1 AND revoked_ms IS NULL AND expires_ms > ?2",
        )?
        .query_row(params![user.0, now], |r| r.get(0))?;
    if live as u64 >= cap as u64 {
        return Err(OpError::new(
            ErrorCode::TooManyDevices,
            format!(
                "this account has {live} devices signed in, the most it may: sign one out first"
            ),
        ));
    }
    Ok(())
}

/// A new device session for `user`, unless the account has `cap` devices signed in already.
fn new_session(
    tx: &rusqlite::Connection,
    user: UserRef,
    device_name: &str,
    ttl: std::time::Duration,
    cap: usize,
) -> Result<Reply, OpError> {
    let now = unix_ms();
    check_device_cap(tx, user.id, now, cap)?;
    let secret = auth::new_secret();
    tx.prepare_cached(
        "INSERT INTO sessions (user_id, secret_hash, name, created_ms, last_seen_ms, expires_ms)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
    )?
    .execute(params![
        user.id.0,
        &secret.hash[..],
        device_name,
        now,
        now + ttl.as_millis() as i64
    ])?;
    let device = DeviceId(tx.last_insert_rowid());
    let token = tidings_proto::bounded::Text::new(auth::token(device, &secret.secret))
        .map_err(OpError::internal)?;
    Ok(Reply::Session { user, device, token: Token(token) })
}

/// Sends a committed room event to the room's members (and to `also`: who just left or was
/// removed) after the commit, on every connection but `conn_id`'s, which has its reply.
pub(crate) fn fan_out(
    tx: &mut crate::store::Tx<'_>,
    shared: &Arc<crate::Shared>,
    conn_id: crate::switchboard::ConnId,
    event: tidings_proto::RoomEvent,
    also: Vec<UserId>,
) -> Result<(), OpError> {
    let mut recipients = roomlog::members(tx, event.room)?;
    recipients.extend(also);
    let frame = encode_frame(&ServerFrame::Event { event })?;
    let shared = shared.clone();
    tx.after_commit(move || {
        shared.switchboard.deliver(&recipients, Some(conn_id), &frame, &shared.metrics);
    });
    Ok(())
}

/// Encodes a frame once for every connection it goes to.
pub(crate) fn encode_frame(frame: &ServerFrame) -> Result<Bytes, OpError> {
    codec::encode_server(frame).map(Bytes::from).map_err(OpError::internal)
}
