//! The connection to the server: sign-up/sign-in, and a sync session that joins, catches up,
//! flushes the outbox and sends receipts.
//!
//! One websocket per session. After `Join` (token, last seq per room, the outbox's request
//! ids), the session applies `confirmed` ids, catches up every room with news page by page
//! (each page in one transaction), then sends due outbox items in order per room (the rules
//! are in [`crate::outbox`]) and the read/delivered watermarks. Pushes that arrive meanwhile
//! are applied as they come; a push that reveals a gap triggers a catch-up of that room.
//! Events are emitted after each commit.
//!
//! [`sync_until_idle`] returns once the outbox has nothing left to send now and every room is
//! caught up: what `tidings sync` does. Reconnecting with backoff around it is the caller's
//! loop for now.

use std::collections::BTreeSet;

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use rusqlite::params;
use tidings_proto::{
    bounded::{List, Text},
    codec, ClientFrame, Credentials, ErrorInfo, Password, Reply, Request, RequestId, RoomCursor,
    RoomId, ServerFrame, Token,
};
use tokio::net::TcpStream;
use tokio_tungstenite::{tungstenite::Message, MaybeTlsStream, WebSocketStream};

use crate::{
    apply::{self, Applied},
    client::{now_ms, Account},
    model::{ConnectionState, Event, RoomKey},
    outbox::{self, Item, Verdict},
    Client, Error,
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for any frame while a reply is due.
const REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// One websocket to the server, speaking request/reply; pushes go to the client's store.
struct Session {
    ws: Ws,
    next_id: u32,
    client: Client,
    me: i64,
    /// Rooms (local ids) whose events from others were applied and not yet acknowledged.
    delivered_dirty: BTreeSet<RoomKey>,
    /// Rooms (local ids) with a gap to close.
    gaps: BTreeSet<RoomKey>,
}

fn ws_url(server: &str) -> String {
    let base = server.trim_end_matches('/');
    let base = base
        .strip_prefix("https://")
        .map(|r| format!("wss://{r}"))
        .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")))
        .unwrap_or_else(|| base.to_owned());
    format!("{base}/v1/ws")
}

impl Session {
    async fn connect(client: &Client, server: &str, me: i64) -> Result<Self, Error> {
        let (ws, _) =
            tokio::time::timeout(REPLY_TIMEOUT, tokio_tungstenite::connect_async(ws_url(server)))
                .await
                .map_err(|_| Error::Network("the server did not answer".into()))?
                .map_err(|e| Error::Network(e.to_string()))?;
        let mut s = Self {
            ws,
            next_id: 1,
            client: client.clone(),
            me,
            delivered_dirty: BTreeSet::new(),
            gaps: BTreeSet::new(),
        };
        let v = tidings_proto::PROTOCOL_VERSION;
        let client_name = Text::new(concat!("tidings-core/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| Error::Internal(e.to_string()))?;
        s.request(Request::Hello { min_version: v, max_version: v, client: client_name })
            .await?
            .map_err(Error::Server)?;
        Ok(s)
    }

    /// Sends a request without waiting for its reply; returns its frame id.
    async fn send(&mut self, request: Request) -> Result<u32, Error> {
        let id = self.next_id;
        self.next_id += 1;
        let bytes = codec::encode_client(&ClientFrame { id, request })
            .map_err(|e| Error::Internal(e.to_string()))?;
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .map_err(|e| Error::Network(e.to_string()))?;
        Ok(id)
    }

    /// Sends a request and waits for its reply, applying pushes that arrive meanwhile.
    async fn request(&mut self, request: Request) -> Result<Result<Reply, ErrorInfo>, Error> {
        let id = self.send(request).await?;
        loop {
            // A link that stays silent this long is dead (or half-open): give up on it and
            // let the caller reconnect; the request id makes the resend safe.
            let msg = tokio::time::timeout(REPLY_TIMEOUT, self.ws.next())
                .await
                .map_err(|_| Error::Network("no answer from the server".into()))?
                .ok_or_else(|| Error::Network("connection closed".into()))?
                .map_err(|e| Error::Network(e.to_string()))?;
            let Message::Binary(bytes) = msg else { continue };
            let frame = match codec::decode_server(&bytes) {
                Ok(frame) => frame,
                // A frame kind from a newer server: skip it.
                Err(tidings_proto::DecodeError::UnknownKind(_)) => continue,
                Err(e) => return Err(Error::Network(format!("bad frame from server: {e}"))),
            };
            match frame {
                ServerFrame::Reply { id: got, result } if got == id => return Ok(result),
                ServerFrame::Reply { .. } => continue,
                ServerFrame::Closing { error } => return Err(Error::Server(error)),
                push => self.on_push(push).await?,
            }
        }
    }

    /// Waits for the next push (and applies it), the outbox waking us, or a ping interval;
    /// a server that stays silent past two intervals is a dead link.
    async fn idle(&mut self, wake: &tokio::sync::Notify) -> Result<(), Error> {
        let ping = std::time::Duration::from_secs(20);
        tokio::select! {
            _ = wake.notified() => Ok(()),
            next = tokio::time::timeout(ping, self.ws.next()) => match next {
                Err(_) => {
                    let nonce = rand::rng().random();
                    tokio::time::timeout(ping, self.request(Request::Ping { nonce }))
                        .await
                        .map_err(|_| Error::Network("the server stopped answering".into()))??
                        .map_err(Error::Server)?;
                    Ok(())
                }
                Ok(None) => Err(Error::Network("connection closed".into())),
                Ok(Some(Err(e))) => Err(Error::Network(e.to_string())),
                Ok(Some(Ok(Message::Binary(bytes)))) => match codec::decode_server(&bytes) {
                    Ok(ServerFrame::Closing { error }) => Err(Error::Server(error)),
                    Ok(frame) => self.on_push(frame).await,
                    Err(tidings_proto::DecodeError::UnknownKind(_)) => Ok(()),
                    Err(e) => Err(Error::Network(format!("bad frame from server: {e}"))),
                },
                Ok(Some(Ok(_))) => Ok(()),
            }
        }
    }

    async fn on_push(&mut self, frame: ServerFrame) -> Result<(), Error> {
        let me = self.me;
        match frame {
            ServerFrame::Event { event } => {
                let (room, applied) = self
                    .client
                    .db(move |c| {
                        let tx = c.transaction()?;
                        let room = apply::local_room(&tx, event.room.0)?;
                        let applied = apply::event(&tx, room, me, &event)?;
                        tx.commit()?;
                        Ok((room, applied))
                    })
                    .await?;
                match applied {
                    Applied::Applied => {
                        self.delivered_dirty.insert(room);
                        self.client.emit([Event::TimelineChanged { room }, Event::RoomsChanged]);
                    }
                    Applied::Gap => {
                        self.gaps.insert(room);
                    }
                    Applied::Duplicate => {}
                }
            }
            ServerFrame::Receipt { room, user, delivered, read } => {
                let room = self
                    .client
                    .db(move |c| {
                        let room = apply::local_room(c, room.0)?;
                        apply::watermarks(c, room, user.0, delivered, read)?;
                        if user.0 == me {
                            apply::my_read_marker(c, room, me, read)?;
                        } else {
                            apply::refresh_others(c, room, me)?;
                        }
                        Ok(room)
                    })
                    .await?;
                self.client.emit([Event::TimelineChanged { room }, Event::RoomsChanged]);
            }
            ServerFrame::Typing { room, user, active } => {
                let (room, user) = self
                    .client
                    .db(move |c| {
                        let room = apply::local_room(c, room.0)?;
                        let name: String = c
                            .query_row("SELECT username FROM users WHERE id = ?1", [user.0], |r| {
                                r.get(0)
                            })
                            .unwrap_or_else(|_| user.to_string());
                        Ok((room, name))
                    })
                    .await?;
                if let Ok(mut typing) = self.client.typing.lock() {
                    typing.set(room, &user, active, std::time::Instant::now());
                }
                self.client.emit([Event::Typing { room, user, active }, Event::RoomsChanged]);
            }
            // Calls are handled by the call machine (a later issue); nothing to store here.
            ServerFrame::Signal { .. } => {}
            ServerFrame::Reply { .. } | ServerFrame::Closing { .. } => {}
        }
        Ok(())
    }

    /// Joins with the store's cursors and outbox ids; returns the rooms to catch up.
    async fn join(&mut self, account: &Account) -> Result<Vec<(RoomKey, i64)>, Error> {
        let (cursors, unconfirmed) = self
            .client
            .db(|c| {
                let mut st = c.prepare(
                    "SELECT server_id, synced_seq FROM rooms WHERE server_id IS NOT NULL AND member = 1",
                )?;
                let cursors: Vec<RoomCursor> = st
                    .query_map([], |r| {
                        Ok(RoomCursor { room: RoomId(r.get(0)?), last_seq: r.get::<_, i64>(1)? as u64 })
                    })?
                    .collect::<Result<_, _>>()?;
                let mut st = c.prepare("SELECT request_id FROM outbox ORDER BY id LIMIT 1000")?;
                let ids: Vec<RequestId> = st
                    .query_map([], |r| r.get::<_, Vec<u8>>(0))?
                    .filter_map(|r| r.ok())
                    .filter_map(|b| <[u8; 16]>::try_from(b.as_slice()).ok().map(RequestId))
                    .collect();
                Ok((cursors, ids))
            })
            .await?;
        let token =
            Token(Text::new(account.token.clone()).map_err(|e| Error::Internal(e.to_string()))?);
        let cursors = List::new(cursors).map_err(|e| Error::Internal(e.to_string()))?;
        let unconfirmed = List::new(unconfirmed).map_err(|e| Error::Internal(e.to_string()))?;
        let reply = self
            .request(Request::Join {
                token,
                protocol_version: tidings_proto::PROTOCOL_VERSION,
                rooms: cursors,
                unconfirmed,
            })
            .await?
            .map_err(Error::Server)?;
        let Reply::Joined { rooms, left, confirmed, .. } = reply else {
            return Err(Error::Network(format!("unexpected reply to join: {reply:?}")));
        };
        let targets = self
            .client
            .db(move |c| {
                let tx = c.transaction()?;
                for conf in confirmed.iter() {
                    apply::confirmed(&tx, &conf.request, conf.room.0, conf.seq)?;
                }
                for room in left.iter() {
                    tx.execute("UPDATE rooms SET member = 0 WHERE server_id = ?1", [room.0])?;
                }
                let mut targets = Vec::new();
                for head in rooms.iter() {
                    targets.push((apply::local_room(&tx, head.room.0)?, head.room.0));
                }
                tx.commit()?;
                Ok(targets)
            })
            .await?;
        self.client.emit([Event::RoomsChanged, Event::OutboxChanged]);
        Ok(targets)
    }

    /// Fetches and applies a room's events until it is caught up.
    async fn catch_up(&mut self, room: RoomKey, server_room: i64) -> Result<(), Error> {
        loop {
            let after = self
                .client
                .db(move |c| {
                    Ok(c.query_row("SELECT synced_seq FROM rooms WHERE id = ?1", [room], |r| {
                        r.get::<_, i64>(0)
                    })?)
                })
                .await? as u64;
            let reply = match self
                .request(Request::CatchUp { room: RoomId(server_room), after, limit: 500 })
                .await?
            {
                Ok(reply) => reply,
                // No longer a member (removed meanwhile): keep what we have, stop syncing it.
                Err(e) if e.code == tidings_proto::ErrorCode::Forbidden => {
                    self.client
                        .db(move |c| {
                            c.execute("UPDATE rooms SET member = 0 WHERE id = ?1", [room])?;
                            Ok(())
                        })
                        .await?;
                    self.client.emit([Event::RoomsChanged]);
                    return Ok(());
                }
                Err(e) => return Err(Error::Server(e)),
            };
            let Reply::Page { events, last_seq, members, .. } = reply else {
                return Err(Error::Network("unexpected reply to catch-up".into()));
            };
            let me = self.me;
            let count = events.len() as u64;
            let last = events.last().map_or(after, |e| e.seq);
            self.client
                .db(move |c| {
                    let tx = c.transaction()?;
                    for e in events.iter() {
                        apply::event(&tx, room, me, e)?;
                    }
                    apply::members(&tx, room, me, &members)?;
                    tx.commit()?;
                    Ok(())
                })
                .await?;
            self.delivered_dirty.insert(room);
            self.client.emit([
                Event::TimelineChanged { room },
                Event::RoomsChanged,
                Event::SyncProgress { done: last, total: last_seq },
            ]);
            if count == 0 || last >= last_seq {
                return Ok(());
            }
        }
    }

    async fn close_gaps(&mut self) -> Result<(), Error> {
        while let Some(room) = self.gaps.pop_first() {
            let server: Option<i64> = self
                .client
                .db(move |c| {
                    Ok(c.query_row("SELECT server_id FROM rooms WHERE id = ?1", [room], |r| {
                        r.get(0)
                    })?)
                })
                .await?;
            if let Some(server) = server {
                self.catch_up(room, server).await?;
            }
        }
        Ok(())
    }

    /// Sends every due outbox item once. Returns whether any item is still waiting.
    async fn flush_outbox(&mut self) -> Result<bool, Error> {
        loop {
            let items = self.client.db(load_items).await?;
            let now = now_ms();
            let due = outbox::due(&items, now);
            let Some(&id) = due.first() else {
                return Ok(outbox::next_wake(&items, now).is_some());
            };
            let (request, attempts) = self.client.db(move |c| prepared_request(c, id)).await?;
            let Some(request) = request else { continue };
            let request_id = request.request_id();
            let left = matches!(request, Request::Leave { .. });
            // A message's echo already shows it; a membership or name change is applied from
            // the log (a later push would find the gap anyway).
            let apply_own = !matches!(request, Request::Send { .. } | Request::RecordCall { .. });
            let result = self.request(request).await?;
            let client = self.client.clone();
            match result {
                Ok(Reply::Logged { room, seq }) => {
                    let Some(rid) = request_id else { continue };
                    let local = client
                        .db(move |c| {
                            let tx = c.transaction()?;
                            apply::confirmed(&tx, &rid, room.0, seq)?;
                            if left {
                                tx.execute(
                                    "UPDATE rooms SET member = 0 WHERE server_id = ?1",
                                    [room.0],
                                )?;
                            }
                            let local = apply::local_room(&tx, room.0)?;
                            tx.commit()?;
                            Ok(local)
                        })
                        .await?;
                    // Apply my own event (the server does not echo it to this connection).
                    if apply_own && !left {
                        self.gaps.insert(local);
                    }
                }
                Ok(_) => {
                    client
                        .db(move |c| {
                            Ok(c.execute("DELETE FROM outbox WHERE id = ?1", [id]).map(|_| ())?)
                        })
                        .await?;
                }
                Err(error) => {
                    let jitter: f64 = rand::rng().random();
                    let verdict = outbox::after_failure(error.code, attempts, jitter);
                    let reason = error.to_string();
                    client
                        .db(move |c| {
                            match verdict {
                                Verdict::RetryAfter(delay) => c.execute(
                                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2, error = ?3
                                     WHERE id = ?1",
                                    params![id, now_ms() + delay.as_millis() as i64, reason],
                                )?,
                                Verdict::Fail => c.execute(
                                    "UPDATE outbox SET attempts = attempts + 1, state = 'failed', error = ?2
                                     WHERE id = ?1",
                                    params![id, reason],
                                )?,
                            };
                            Ok(())
                        })
                        .await?;
                }
            }
            self.client.emit([Event::OutboxChanged, Event::RoomsChanged]);
            self.close_gaps().await?;
        }
    }

    /// Sends read markers that moved and delivered watermarks for rooms with new events.
    async fn send_receipts(&mut self) -> Result<(), Error> {
        let reads: Vec<(RoomKey, i64, i64)> = self
            .client
            .db(|c| {
                let mut st = c.prepare(
                    "SELECT id, server_id, read_seq FROM rooms
                     WHERE server_id IS NOT NULL AND member = 1 AND read_seq > read_sent_seq",
                )?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .await?;
        for (room, server, read) in reads {
            let r = self
                .request(Request::Receipt {
                    room: RoomId(server),
                    delivered: None,
                    read: Some(read as u64),
                })
                .await?;
            if r.is_ok() {
                self.client
                    .db(move |c| {
                        c.execute(
                            "UPDATE rooms SET read_sent_seq = max(read_sent_seq, ?2) WHERE id = ?1",
                            params![room, read],
                        )?;
                        Ok(())
                    })
                    .await?;
            }
        }
        while let Some(room) = self.delivered_dirty.pop_first() {
            let row: Option<(i64, i64)> = self
                .client
                .db(move |c| {
                    Ok(c.query_row(
                        "SELECT server_id, synced_seq FROM rooms WHERE id = ?1 AND member = 1 AND server_id IS NOT NULL",
                        [room],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .ok())
                })
                .await?;
            if let Some((server, synced)) = row {
                let _ = self
                    .request(Request::Receipt {
                        room: RoomId(server),
                        delivered: Some(synced as u64),
                        read: None,
                    })
                    .await?;
            }
        }
        Ok(())
    }
}

/// Rooms whose watermarks may have moved without new events: another member has not read my
/// newest message yet, or I have unread messages (another device of mine may have read them).
fn rooms_awaiting_receipts(
    c: &mut rusqlite::Connection,
    me: i64,
) -> Result<Vec<(RoomKey, i64)>, Error> {
    let mut st = c.prepare_cached(
        "SELECT r.id, r.server_id FROM rooms r
         WHERE r.server_id IS NOT NULL AND r.member = 1
           AND (r.unread > 0 OR EXISTS (SELECT 1 FROM members m WHERE m.room_id = r.id AND m.active = 1
                       AND m.user_id != ?1
                       AND m.read_seq < (SELECT coalesce(max(e.seq), 0) FROM events e
                                         WHERE e.room_id = r.id AND e.sender = ?1)))",
    )?;
    let rows = st.query_map([me], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn load_items(c: &mut rusqlite::Connection) -> Result<Vec<Item>, Error> {
    let mut st = c.prepare_cached(
        "SELECT id, room_id, state, attempts, next_attempt_ms FROM outbox ORDER BY id",
    )?;
    let rows = st.query_map([], |r| {
        Ok(Item {
            id: r.get(0)?,
            room: r.get(1)?,
            failed: r.get::<_, String>(2)? == "failed",
            attempts: r.get(3)?,
            next_attempt_ms: r.get(4)?,
            in_flight: false,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The stored operation of outbox item `id`, with its room's server id filled in (a room made
/// offline gets its id when its CreateRoom is confirmed, which is earlier in the same queue).
fn prepared_request(
    c: &mut rusqlite::Connection,
    id: i64,
) -> Result<(Option<Request>, u32), Error> {
    let (op, room, attempts): (Vec<u8>, Option<i64>, u32) =
        c.query_row("SELECT operation, room_id, attempts FROM outbox WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    let mut request: Request = codec::decode(&op).map_err(|e| Error::Internal(e.to_string()))?;
    let server: Option<i64> = match room {
        Some(room) => {
            c.query_row("SELECT server_id FROM rooms WHERE id = ?1", [room], |r| r.get(0))?
        }
        None => None,
    };
    let target = match &mut request {
        Request::Send { room, .. }
        | Request::Invite { room, .. }
        | Request::Leave { room, .. }
        | Request::RemoveMember { room, .. }
        | Request::Rename { room, .. }
        | Request::RecordCall { room, .. } => Some(room),
        _ => None,
    };
    if let Some(target) = target {
        match server {
            Some(server) => *target = RoomId(server),
            // Not created on the server yet: wait.
            None => return Ok((None, attempts)),
        }
    }
    Ok((Some(request), attempts))
}

/// Connects, catches up, flushes the outbox and sends receipts; returns when nothing is left
/// to do now (items backing off are waited for).
pub async fn sync_until_idle(client: &Client) -> Result<(), Error> {
    let result = session(client, false).await;
    client.emit([Event::Connection { state: ConnectionState::Offline }]);
    result
}

/// Stays connected: syncs, then applies pushes as they come and sends what the user does,
/// reconnecting with jittered exponential backoff (0.5 s up to 60 s) whenever the link
/// breaks. Returns only if the session is no longer valid (signed out or revoked).
pub async fn run(client: &Client) -> Error {
    let mut failures = 0u32;
    loop {
        match session(client, true).await {
            Err(Error::Server(e)) if e.code == tidings_proto::ErrorCode::Unauthenticated => {
                client.emit([Event::Connection { state: ConnectionState::Offline }]);
                return Error::Server(e);
            }
            Err(Error::NotSignedIn) => return Error::NotSignedIn,
            Err(e) => tracing::debug!(error = %e, "Sync session ended."),
            Ok(()) => {}
        }
        client.emit([Event::Connection { state: ConnectionState::Offline }]);
        let delay = outbox::backoff(failures, rand::rng().random());
        failures = failures.saturating_add(1);
        tokio::time::sleep(delay).await;
    }
}

/// One connection's work; with `live`, stays on it until it breaks.
async fn session(client: &Client, live: bool) -> Result<(), Error> {
    let account = client.require_account().await?;
    client.emit([Event::Connection { state: ConnectionState::Connecting }]);
    let mut s = Session::connect(client, &account.server, account.user_id).await?;
    let targets = s.join(&account).await?;
    client.emit([Event::Connection { state: ConnectionState::Syncing }]);
    for (room, server) in targets {
        s.catch_up(room, server).await?;
    }
    // Receipts move without new events: refresh the watermarks where they matter.
    let me = account.user_id;
    for (room, server) in client.db(move |c| rooms_awaiting_receipts(c, me)).await? {
        s.catch_up(room, server).await?;
    }
    if live {
        client.emit([Event::Connection { state: ConnectionState::Online }]);
    }
    loop {
        let waiting = s.flush_outbox().await?;
        s.close_gaps().await?;
        s.send_receipts().await?;
        if live {
            let items = client.db(load_items).await?;
            // Wake for the next retry, and at least every second: another process on this
            // profile (a `tidings send` next to `tidings listen`) cannot notify us.
            let until_retry =
                outbox::next_wake(&items, now_ms()).map(|wake| (wake - now_ms()).max(0));
            let wait =
                std::time::Duration::from_millis(until_retry.unwrap_or(1000).min(1000) as u64);
            if let Ok(result) = tokio::time::timeout(wait, s.idle(&client.outbox_ready)).await {
                result?;
            }
            continue;
        }
        if !waiting {
            return Ok(());
        }
        let items = client.db(load_items).await?;
        if let Some(wake) = outbox::next_wake(&items, now_ms()) {
            let wait = (wake - now_ms()).max(0) as u64;
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        }
    }
}

fn credentials(username: &str, password: &str, device: &str) -> Result<Credentials, Error> {
    let invalid = |e: tidings_proto::bounded::TooLong| Error::Invalid(e.to_string());
    Ok(Credentials {
        username: Text::new(username).map_err(invalid)?,
        password: Password(Text::new(password).map_err(invalid)?),
        device_name: Text::new(device).map_err(invalid)?,
    })
}

/// Creates an account on `server` and signs this profile in to it.
pub async fn sign_up(
    client: &Client,
    server: &str,
    username: &str,
    password: &str,
) -> Result<Account, Error> {
    let request = Request::SignUp(credentials(username, password, &device_name())?);
    open_session(client, server, request).await
}

/// Signs this profile in to an existing account (a new device session).
pub async fn sign_in(
    client: &Client,
    server: &str,
    username: &str,
    password: &str,
) -> Result<Account, Error> {
    let request = Request::SignIn(credentials(username, password, &device_name())?);
    open_session(client, server, request).await
}

fn device_name() -> String {
    format!("tidings on {}", std::env::consts::OS)
}

async fn open_session(client: &Client, server: &str, request: Request) -> Result<Account, Error> {
    let mut s = Session::connect(client, server, 0).await?;
    let reply = s.request(request).await?.map_err(Error::Server)?;
    let Reply::Session { user, device, token } = reply else {
        return Err(Error::Network(format!("unexpected reply: {reply:?}")));
    };
    let account = Account {
        server: server.trim_end_matches('/').to_owned(),
        user_id: user.id.0,
        username: user.username.into_string(),
        device_id: device.0,
        token: token.0.into_string(),
    };
    client.save_account(account.clone()).await?;
    Ok(account)
}

/// Looks a user up by exact username (needs the network).
pub async fn lookup_user(client: &Client, username: &str) -> Result<i64, Error> {
    let account = client.require_account().await?;
    let mut s = Session::connect(client, &account.server, account.user_id).await?;
    s.join(&account).await?;
    let username = Text::new(username).map_err(|e| Error::Invalid(e.to_string()))?;
    match s.request(Request::LookupUser { username }).await?.map_err(Error::Server)? {
        Reply::User { user } => Ok(user.id.0),
        other => Err(Error::Network(format!("unexpected reply: {other:?}"))),
    }
}

/// Tells the room's other members I am (or stopped) typing.
pub async fn typing(client: &Client, room: RoomKey, active: bool) -> Result<(), Error> {
    let account = client.require_account().await?;
    let server = client.server_room_id(room).await?.ok_or(Error::NoSuchRoom(room))?;
    let mut s = Session::connect(client, &account.server, account.user_id).await?;
    s.join(&account).await?;
    let id = s.send(Request::Typing { room: RoomId(server), active }).await?;
    // Typing gets no reply unless it fails; a ping's reply comes after any failure.
    let result = s.request(Request::Ping { nonce: u64::from(id) }).await?;
    result.map(|_| ()).map_err(Error::Server)
}

/// Signs this device out on the server and forgets the session here.
pub async fn sign_out(client: &Client) -> Result<(), Error> {
    let account = client.require_account().await?;
    let mut s = Session::connect(client, &account.server, account.user_id).await?;
    s.join(&account).await?;
    s.request(Request::SignOut {}).await?.map_err(Error::Server)?;
    client.forget_account().await
}
