//! The connection to the server: sign-up/sign-in, and a sync session that joins, catches up,
//! flushes the outbox and sends receipts.
//!
//! One websocket per session. What to send and how to apply what arrives is decided by the
//! sans-IO [`Machine`] (see its module for the order of work); this module owns the socket
//! and the clocks: it sends what the machine asks, waits for frames with timeouts (a reply
//! that does not come in 15 s means a dead or half-open link), pings a link silent for 20 s,
//! wakes for outbox retries and for the user's new items, and emits the machine's events,
//! which are committed already. The `sim` tests drive the same machine over a simulated
//! network and server for thousands of seeds.
//!
//! [`sync_until_idle`] returns once the outbox has nothing left to send now and every room is
//! caught up: what `tidings sync` does. [`run`] stays connected and reconnects with jittered
//! backoff: what `tidings listen` and the app do.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use tidings_proto::{
    bounded::Text, codec, ClientFrame, Credentials, ErrorInfo, Password, Reply, Request, RoomId,
    ServerFrame,
};
use tokio_tungstenite::{tungstenite::Message, WebSocketStream};

use crate::{
    client::{now_ms, Account},
    endpoint::{Endpoint, Io},
    model::{ConnectionState, Event, RoomKey},
    outbox, Client, Error,
};

mod machine;
#[cfg(test)]
mod sim;

pub use machine::{Machine, Poll};

type Ws = WebSocketStream<Box<dyn Io>>;

/// Longest wait for any frame while a reply is due.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// A link silent this long gets a ping.
const PING_AFTER: Duration = Duration::from_secs(20);
/// A live session looks at the outbox at least this often: another process on the same
/// profile (a `tidings send` next to `tidings listen`) cannot wake it.
const OUTBOX_POLL: Duration = Duration::from_secs(1);

/// Frame ids from here on are the link's own (one-off requests and call signals), so they
/// never collide with a [`Machine`]'s.
const OWN_IDS: u32 = 1_000_000;

/// One websocket to the server, after Hello: frames out, frames in.
struct Link {
    ws: Ws,
    next_id: u32,
}

impl Link {
    /// Connects (TLS unless the address is local: [`Endpoint`]) and says Hello.
    async fn connect(server: &Endpoint) -> Result<Self, Error> {
        let handshake = async {
            let stream = server.connect().await?;
            tokio_tungstenite::client_async(server.ws_url(), stream)
                .await
                .map(|(ws, _)| ws)
                .map_err(|e| Error::Network(e.to_string()))
        };
        let ws = tokio::time::timeout(REPLY_TIMEOUT, handshake)
            .await
            .map_err(|_| Error::Network("the server did not answer".into()))??;
        let mut link = Self { ws, next_id: OWN_IDS };
        let v = tidings_proto::PROTOCOL_VERSION;
        let client_name = Text::new(concat!("tidings-core/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| Error::Internal(e.to_string()))?;
        link.request(Request::Hello { min_version: v, max_version: v, client: client_name })
            .await?
            .map_err(Error::Server)?;
        Ok(link)
    }

    /// Sends a request with one of the link's own ids, expecting no reply (call signals).
    async fn send_own(&mut self, request: Request) -> Result<(), Error> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(OWN_IDS);
        self.send(&ClientFrame { id, request }).await
    }

    async fn send(&mut self, frame: &ClientFrame) -> Result<(), Error> {
        let bytes = codec::encode_client(frame).map_err(|e| Error::Internal(e.to_string()))?;
        self.ws.send(Message::Binary(bytes.into())).await.map_err(|e| Error::Network(e.to_string()))
    }

    /// The next frame from the server, waiting at most `timeout`. Frames of kinds a newer
    /// server knows and this build does not are skipped.
    async fn next(&mut self, timeout: Duration) -> Result<ServerFrame, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // A link that stays silent this long is dead (or half-open): give up on it and
            // let the caller reconnect; request ids make resends safe.
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| Error::Network("no answer from the server".into()))?
                .ok_or_else(|| Error::Network("connection closed".into()))?
                .map_err(|e| Error::Network(e.to_string()))?;
            let Message::Binary(bytes) = msg else { continue };
            match codec::decode_server(&bytes) {
                Ok(frame) => return Ok(frame),
                Err(tidings_proto::DecodeError::UnknownKind(_)) => continue,
                Err(e) => return Err(Error::Network(format!("bad frame from server: {e}"))),
            }
        }
    }

    /// Sends a one-off request and waits for its reply. Pushes meanwhile are left to the
    /// sync session (it catches up what this connection skips).
    async fn request(&mut self, request: Request) -> Result<Result<Reply, ErrorInfo>, Error> {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&ClientFrame { id, request }).await?;
        loop {
            match self.next(REPLY_TIMEOUT).await? {
                ServerFrame::Reply { id: got, result } if got == id => return Ok(result),
                ServerFrame::Closing { error } => return Err(Error::Server(error)),
                _ => continue,
            }
        }
    }

    /// Connects and joins with the session only (no cursors): for one-off requests.
    async fn joined(account: &Account) -> Result<Self, Error> {
        let mut link = Self::connect(&account.endpoint()?).await?;
        let token = tidings_proto::Token(
            Text::new(account.token.clone()).map_err(|e| Error::Internal(e.to_string()))?,
        );
        link.request(Request::Join {
            token,
            protocol_version: tidings_proto::PROTOCOL_VERSION,
            rooms: tidings_proto::bounded::List::empty(),
            unconfirmed: tidings_proto::bounded::List::empty(),
        })
        .await?
        .map_err(Error::Server)?;
        Ok(link)
    }
}

/// Connects, catches up, flushes the outbox and sends receipts; returns when nothing is left
/// to do now (items backing off are waited for).
/// It does not touch the connection state (that is the live session's, [`run`]).
pub async fn sync_until_idle(client: &Client) -> Result<(), Error> {
    session(client, false).await
}

/// Stays connected: syncs, then applies pushes as they come and sends what the user does,
/// reconnecting with jittered exponential backoff (0.5 s up to 60 s) whenever the link
/// breaks. Returns only if the session is no longer valid (signed out or revoked).
pub async fn run(client: &Client) -> Error {
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
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
        // A connection that held for a while starts the backoff over.
        if started.elapsed() > Duration::from_secs(60) {
            failures = 0;
        }
        let delay = outbox::backoff(failures, rand::rng().random());
        failures = failures.saturating_add(1);
        tokio::time::sleep(delay).await;
    }
}

/// One connection's work, driving a [`Machine`]; with `live`, stays on it until it breaks.
async fn session(client: &Client, live: bool) -> Result<(), Error> {
    let account = client.require_account().await?;
    if live {
        client.emit([Event::Connection { state: ConnectionState::Connecting }]);
    }
    let server = account.endpoint()?;
    let mut link = Link::connect(&server).await?;
    let machine = Arc::new(Mutex::new(Machine::new(account.user_id, account.token.clone(), live)));
    let mut heard = Instant::now();
    // A session carries the call driver's signals (one session at a time does); a
    // non-live one sends those already queued before it ends (a hang-up on the way out).
    let mut calls = client.calls.outgoing_rx.try_lock().ok();
    loop {
        if calls.is_none() && live {
            // A one-off sync held the queue when this session began; take it when free.
            calls = client.calls.outgoing_rx.try_lock().ok();
        }
        let m = machine.clone();
        let poll = client.db(move |c| lock(&m)?.poll(c, now_ms())).await?;
        let frame = match poll {
            Poll::Send(frame) => {
                link.send(&frame).await?;
                continue;
            }
            Poll::Done => {
                let mut sent = false;
                while let Some(signal) = calls.as_mut().and_then(|rx| rx.try_recv().ok()) {
                    link.send_own(signal).await?;
                    sent = true;
                }
                if sent {
                    // The answer to a ping comes after the server has relayed what was sent
                    // before it; the sync itself is done whatever it says.
                    let _ = link.request(Request::Ping { nonce: 0 }).await;
                }
                return Ok(());
            }
            Poll::Upload { item, path, session } => {
                tracing::debug!(item, "Uploading.");
                let file = client.dir().join(path);
                let remember = |id: &str| {
                    client.db_blocking(|c| crate::media::set_upload_session(c, item, id))
                };
                let result =
                    crate::media::upload(&server, &account.token, &file, session, remember).await;
                let m = machine.clone();
                let jitter: f64 = rand::rng().random();
                let events =
                    client.db(move |c| lock(&m)?.on_uploaded(c, result, now_ms(), jitter)).await?;
                client.emit(events);
                continue;
            }
            Poll::AwaitReply => tokio::select! {
                frame = link.next(REPLY_TIMEOUT) => frame?,
                Some(signal) = next_signal(&mut calls) => {
                    link.send_own(signal).await?;
                    continue;
                }
            },
            Poll::Idle { wake_ms } => {
                let until_wake =
                    wake_ms.map(|w| Duration::from_millis((w - now_ms()).max(0) as u64));
                let wait = if live {
                    if heard.elapsed() >= PING_AFTER {
                        let ping = lock(&machine)?.ping(rand::rng().random());
                        if let Some(ping) = ping {
                            link.send(&ping).await?;
                        }
                        heard = Instant::now();
                        continue;
                    }
                    until_wake.unwrap_or(OUTBOX_POLL).min(OUTBOX_POLL)
                } else {
                    until_wake.unwrap_or(REPLY_TIMEOUT)
                };
                tokio::select! {
                    _ = client.outbox_ready.notified(), if live => continue,
                    Some(signal) = next_signal(&mut calls) => {
                        link.send_own(signal).await?;
                        continue;
                    }
                    _ = tokio::time::sleep(wait) => continue,
                    frame = link.next(PING_AFTER * 2) => frame?,
                }
            }
        };
        heard = Instant::now();
        let frame = match frame {
            ServerFrame::Signal { room, from_user, from_device, call, signal } => {
                client.deliver_signal(room, from_user, from_device.0, call, signal).await;
                continue;
            }
            // A call signal failed (they are answered only then): the call's timeouts
            // settle it; nothing for the sync machine.
            ServerFrame::Reply { id, result: Err(e) } if id >= OWN_IDS => {
                tracing::debug!(code = ?e.code, "A call signal was refused.");
                continue;
            }
            frame => frame,
        };
        let m = machine.clone();
        let jitter: f64 = rand::rng().random();
        let events = client.db(move |c| lock(&m)?.on_frame(c, frame, now_ms(), jitter)).await?;
        for event in &events {
            if let Event::Typing { room, user, active } = event {
                if let Ok(mut typing) = client.typing.lock() {
                    typing.set(*room, user, *active, Instant::now());
                }
            }
        }
        client.emit(events);
    }
}

async fn next_signal(
    calls: &mut Option<tokio::sync::MutexGuard<'_, tokio::sync::mpsc::UnboundedReceiver<Request>>>,
) -> Option<Request> {
    match calls {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn lock(m: &Mutex<Machine>) -> Result<std::sync::MutexGuard<'_, Machine>, Error> {
    m.lock().map_err(|_| Error::Internal("sync state lock poisoned".into()))
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
    server: &Endpoint,
    username: &str,
    password: &str,
) -> Result<Account, Error> {
    let request = Request::SignUp(credentials(username, password, &device_name())?);
    open_session(client, server, request).await
}

/// Signs this profile in to an existing account (a new device session).
pub async fn sign_in(
    client: &Client,
    server: &Endpoint,
    username: &str,
    password: &str,
) -> Result<Account, Error> {
    let request = Request::SignIn(credentials(username, password, &device_name())?);
    open_session(client, server, request).await
}

fn device_name() -> String {
    format!("tidings on {}", std::env::consts::OS)
}

async fn open_session(
    client: &Client,
    server: &Endpoint,
    request: Request,
) -> Result<Account, Error> {
    // A profile that used TLS never falls back to plain text (no one in between can talk
    // it into sending the password in the clear).
    if !server.is_encrypted() && client.used_tls().await? {
        return Err(crate::endpoint::AddressError::Downgrade.into());
    }
    let mut link = Link::connect(server).await?;
    let reply = link.request(request).await?.map_err(Error::Server)?;
    let Reply::Session { user, device, token } = reply else {
        return Err(Error::Network(format!("unexpected reply: {reply:?}")));
    };
    let account = Account {
        server: server.base(),
        pin: server.pin(),
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
    let mut link = Link::joined(&account).await?;
    let username = Text::new(username).map_err(|e| Error::Invalid(e.to_string()))?;
    match link.request(Request::LookupUser { username }).await?.map_err(Error::Server)? {
        Reply::User { user } => Ok(user.id.0),
        other => Err(Error::Network(format!("unexpected reply: {other:?}"))),
    }
}

/// Tells the room's other members I am (or stopped) typing.
pub async fn typing(client: &Client, room: RoomKey, active: bool) -> Result<(), Error> {
    let account = client.require_account().await?;
    let server = client.server_room_id(room).await?.ok_or(Error::NoSuchRoom(room))?;
    let mut link = Link::joined(&account).await?;
    let id = link.next_id;
    link.next_id += 1;
    let typing = Request::Typing { room: RoomId(server), active };
    link.send(&ClientFrame { id, request: typing }).await?;
    // Typing gets no reply unless it fails; a ping's reply comes after any failure.
    let result = link.request(Request::Ping { nonce: u64::from(id) }).await?;
    result.map(|_| ()).map_err(Error::Server)
}

/// My contact code (what my QR code shows): the server's current contact key for me, made
/// if I have none; `reset` replaces it (the old code stops working), `ttl` makes the new one
/// expire.
pub async fn contact_code(
    client: &Client,
    reset: bool,
    ttl: Option<Duration>,
) -> Result<crate::contact::ContactCode, Error> {
    let account = client.require_account().await?;
    let ttl_s = ttl.map(|t| t.as_secs().clamp(1, u64::from(u32::MAX)) as u32);
    match one_request(&account, Request::ContactKey { reset, ttl_s }).await? {
        Reply::ContactKey { key, .. } => {
            let code = crate::contact::ContactCode {
                server: account.server,
                user: account.username,
                key: key.0.into_string(),
                // Whoever scans it can then trust my server the way I do.
                pin: account.pin.map(|p| p.to_string()),
            };
            // A server address a scanner would refuse (a path, say) makes no usable code.
            crate::contact::ContactCode::parse(&code.to_uri())?;
            Ok(code)
        }
        other => Err(Error::Network(format!("unexpected reply: {other:?}"))),
    }
}

/// Redeems a contact code: we become contacts and share a direct room (made now, or the one
/// we had). Returns their user id and the room's local key (after a sync brought it here).
pub async fn add_contact(
    client: &Client,
    code: &crate::contact::ContactCode,
) -> Result<(i64, RoomKey), Error> {
    let account = client.require_account().await?;
    if code.server.trim_end_matches('/') != account.server.trim_end_matches('/') {
        return Err(Error::ForeignServer { server: code.server.clone() });
    }
    let user = Text::new(code.user.clone()).map_err(|e| Error::Invalid(e.to_string()))?;
    let key = tidings_proto::ContactKeyText(
        Text::new(code.key.clone()).map_err(|e| Error::Invalid(e.to_string()))?,
    );
    let contact = match one_request(&account, Request::AddContact { user, key }).await? {
        Reply::Contact { contact } => contact,
        other => return Err(Error::Network(format!("unexpected reply: {other:?}"))),
    };
    sync_until_idle(client).await?;
    let server_room = contact.room.0;
    let room = client
        .db(move |c| crate::apply::known_room(c, server_room))
        .await?
        .ok_or(Error::NoSuchRoom(server_room))?;
    Ok((contact.user.id.0, room))
}

/// My contacts (kept on the server, the same on every device): username, user id and the
/// server id of our direct room.
pub async fn contacts(client: &Client) -> Result<Vec<(String, i64, i64)>, Error> {
    let account = client.require_account().await?;
    match one_request(&account, Request::Contacts {}).await? {
        Reply::Contacts { contacts } => Ok(contacts
            .into_vec()
            .into_iter()
            .map(|c| (c.user.username.into_string(), c.user.id.0, c.room.0))
            .collect()),
        other => Err(Error::Network(format!("unexpected reply: {other:?}"))),
    }
}

/// Blocks a user (needs the network): they can no longer put me in a room, invite me, call
/// me or write to me in our direct room. Every request they hold open with me is declined
/// (queued like any leave).
pub async fn block(client: &Client, user: i64) -> Result<(), Error> {
    let account = client.require_account().await?;
    one_request(&account, Request::Block { user: tidings_proto::UserId(user) }).await?;
    let requests = client
        .db(move |c| {
            let mut st = c.prepare_cached("SELECT id FROM rooms WHERE request_from = ?1")?;
            let rows = st.query_map([user], |r| r.get::<_, RoomKey>(0))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await?;
    for room in requests {
        client.decline(room).await?;
    }
    Ok(())
}

/// Unblocks a user (needs the network).
pub async fn unblock(client: &Client, user: i64) -> Result<(), Error> {
    let account = client.require_account().await?;
    one_request(&account, Request::Unblock { user: tidings_proto::UserId(user) }).await.map(|_| ())
}

/// The users I block (kept on the server, the same on every device): username and user id.
pub async fn blocked(client: &Client) -> Result<Vec<(String, i64)>, Error> {
    let account = client.require_account().await?;
    match one_request(&account, Request::Blocked {}).await? {
        Reply::Blocked { users } => {
            Ok(users.into_vec().into_iter().map(|u| (u.username.into_string(), u.id.0)).collect())
        }
        other => Err(Error::Network(format!("unexpected reply: {other:?}"))),
    }
}

/// Becomes visible to people nearby for `ttl` (at most an hour) in the ~1 km cell around
/// `lat`, `lon`. Only the cell (a 6-character geohash, computed here) is sent: the exact
/// position never leaves the device.
pub async fn nearby_on(client: &Client, lat: f64, lon: f64, ttl: Duration) -> Result<(), Error> {
    let valid = lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0;
    if !valid {
        return Err(Error::Invalid("latitude is -90…90 and longitude -180…180".into()));
    }
    let cell = geohash::encode(geohash::Coord { x: lon, y: lat }, NEARBY_CELL_CHARS)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let ttl_s = ttl.as_secs().clamp(1, u64::from(tidings_proto::limits::MAX_NEARBY_TTL_S)) as u32;
    let cell = Text::new(cell).map_err(|e| Error::Internal(e.to_string()))?;
    let account = client.require_account().await?;
    one_request(&account, Request::NearbyOn { cell, ttl_s }).await.map(|_| ())
}

/// Stops being visible to people nearby, at once.
pub async fn nearby_off(client: &Client) -> Result<(), Error> {
    let account = client.require_account().await?;
    one_request(&account, Request::NearbyOff {}).await.map(|_| ())
}

/// Who is visible nearby (I must be visible too), nearest first.
pub async fn nearby_list(client: &Client) -> Result<Vec<tidings_proto::NearbyPerson>, Error> {
    let account = client.require_account().await?;
    match one_request(&account, Request::NearbyList {}).await? {
        Reply::Nearby { people } => Ok(people.into_vec()),
        other => Err(Error::Network(format!("unexpected reply: {other:?}"))),
    }
}

/// Geohash cells for people nearby: 6 characters, ~1.2 × 0.6 km.
const NEARBY_CELL_CHARS: usize = 6;

/// Sends one request on a fresh signed-in connection and returns its reply.
async fn one_request(account: &Account, request: Request) -> Result<Reply, Error> {
    let mut link = Link::joined(account).await?;
    link.request(request).await?.map_err(Error::Server)
}

/// The STUN/TURN servers for calls and how long their credentials last (needs the
/// network).
pub(crate) async fn ice_servers(
    client: &Client,
) -> Result<(Vec<crate::call::media::IceServer>, Duration), Error> {
    let account = client.require_account().await?;
    match one_request(&account, Request::IceServers {}).await? {
        Reply::IceServers { servers, ttl_s } => Ok((
            crate::call::driver::ice_from_reply(servers.into_vec()),
            Duration::from_secs(u64::from(ttl_s)),
        )),
        other => Err(Error::Network(format!("unexpected reply: {other:?}"))),
    }
}

/// Changes my password (needs the network). Every other device of mine is signed out; this
/// one stays signed in.
pub async fn change_password(client: &Client, old: &str, new: &str) -> Result<(), Error> {
    let account = client.require_account().await?;
    let invalid = |e: tidings_proto::bounded::TooLong| Error::Invalid(e.to_string());
    let request = Request::ChangePassword {
        old: Password(Text::new(old).map_err(invalid)?),
        new: Password(Text::new(new).map_err(invalid)?),
    };
    one_request(&account, request).await.map(|_| ())
}

/// Signs every device of mine out, this one too, and forgets the session here: what to do
/// when a device is lost or the password may have leaked.
pub async fn sign_out_everywhere(client: &Client) -> Result<(), Error> {
    let account = client.require_account().await?;
    one_request(&account, Request::SignOutEverywhere {}).await?;
    client.forget_account().await
}

/// My signed-in devices, every page of them (needs the network).
pub async fn devices(client: &Client) -> Result<Vec<crate::model::Device>, Error> {
    let account = client.require_account().await?;
    let mut link = Link::joined(&account).await?;
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = link.request(Request::ListDevices { after }).await?.map_err(Error::Server)?;
        let Reply::Devices { devices, next } = page else {
            return Err(Error::Network(format!("unexpected reply: {page:?}")));
        };
        all.extend(devices.into_vec().into_iter().map(|d| crate::model::Device {
            id: d.id.0,
            name: crate::model::neutral_name(d.name.into_string()),
            created_ms: d.created_ms,
            last_seen_ms: d.last_seen_ms,
            current: d.current,
        }));
        // Pages move forward by id; a server that does not is not followed round in circles.
        match next {
            Some(n) if after.is_none_or(|a: tidings_proto::DeviceId| n.0 > a.0) => after = Some(n),
            _ => return Ok(all),
        }
    }
}

/// Signs one of my other devices out (its connections close; it must sign in again).
pub async fn revoke_device(client: &Client, device: i64) -> Result<(), Error> {
    let account = client.require_account().await?;
    let request = Request::RevokeDevice { device: tidings_proto::DeviceId(device) };
    one_request(&account, request).await.map(|_| ())
}

/// Signs this device out on the server and forgets the session here.
/// A session the server no longer knows (revoked from another device) is simply forgotten.
pub async fn sign_out(client: &Client) -> Result<(), Error> {
    let account = client.require_account().await?;
    let signed_out = async {
        let mut link = Link::joined(&account).await?;
        link.request(Request::SignOut {}).await?.map_err(Error::Server)
    };
    match signed_out.await {
        Ok(_) => {}
        Err(Error::Server(e)) if e.code == tidings_proto::ErrorCode::Unauthenticated => {}
        Err(e) => return Err(e),
    }
    client.forget_account().await
}
