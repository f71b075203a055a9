//! One websocket connection: the read loop, the write task and request dispatch.
//!
//! Lifecycle: `Hello` (version negotiation) → optionally `SignUp`/`SignIn` → `Join` (token,
//! once per connection) → requests and live pushes. Requests of one connection are handled
//! one at a time, in order, so a client that pipelines two sends to a room gets their seqs in
//! the order it sent them.
//!
//! Two tasks per connection: this read loop, and a writer that drains the connection's
//! queue (bounded in frames and bytes) into the socket (replies and pushes share the queue,
//! so a reply never overtakes an event committed before it). The writer also pings; a
//! connection that sends nothing for `idle_timeout` is a dead link and is dropped, and one
//! that has not joined within `join_timeout` is closed (automatic pongs do not keep a socket
//! that never signs in). A connection is closed with a `Closing` frame saying why when it is
//! kicked (signed out, too slow), when the server shuts down, after too many malformed
//! frames, or when a frame is over the size limit. When the queue is full (a reader that fell
//! behind), the `Closing` frame goes to the writer on its own channel: the backlog is dropped
//! and the reason is the next thing written.
//!
//! Rate limits per connection (sends, typing, sign-ins, lookups, signals, receipts) and per
//! user (room creation, contact-key resets) are taken before a request runs.

use std::{sync::Arc, time::Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tidings_proto::{
    codec, ClientFrame, DecodeError, ErrorCode, ErrorInfo, Reply, Request, ServerFrame,
};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::{
    error::OpError,
    metrics::{CodeLabel, KindLabel},
    ops::encode_frame,
    ratelimit::{AddrKey, KeyedBuckets, TokenBucket},
    switchboard::{ConnId, Peer, Queue, QueueReader},
    Shared,
};

/// Malformed frames tolerated on one connection before it is closed.
const MAX_MALFORMED: u32 = 8;
/// A write to the socket that takes longer than this means the peer is gone or stuck.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// State of one connection, owned by its read loop.
#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: ConnId,
    pub(crate) queue: Queue,
    /// Where the connection comes from (behind a trusted proxy, what it forwarded).
    pub(crate) from: AddrKey,
    pub(crate) kicked: CancellationToken,
    /// Negotiated protocol version, after Hello.
    pub(crate) version: Option<u16>,
    /// The session, after Join.
    pub(crate) joined: Option<Arc<Peer>>,
    pub(crate) send_bucket: TokenBucket,
    pub(crate) typing_bucket: TokenBucket,
    pub(crate) auth_bucket: TokenBucket,
    lookup_bucket: TokenBucket,
    signal_bucket: TokenBucket,
    receipt_bucket: TokenBucket,
    malformed: u32,
}

/// Why the read loop ended.
enum End {
    /// Close with this error frame.
    Error(ErrorInfo),
    /// The peer closed or the link is dead: nothing more to say.
    Quiet,
}

/// Serves one upgraded websocket from `from` until it closes.
pub(crate) async fn serve(socket: WebSocket, shared: Arc<Shared>, from: AddrKey) {
    shared.metrics.connections.inc();
    let (sink, mut stream) = socket.split();
    let (queue, outbound) =
        crate::switchboard::queue(shared.config.outbound_queue, shared.config.outbound_bytes);
    let (last_word, last) = oneshot::channel();
    let kicked = CancellationToken::new();
    let writer = tokio::spawn(write_loop(sink, outbound, last, kicked.clone(), shared.clone()));
    let now = Instant::now();
    let join_by = tokio::time::Instant::now() + shared.config.join_timeout;
    let config = &shared.config;
    let mut conn = Conn {
        id: shared.switchboard.next_conn_id(),
        queue,
        from,
        kicked: kicked.clone(),
        version: None,
        joined: None,
        send_bucket: TokenBucket::new(shared.config.send_rate, now),
        typing_bucket: TokenBucket::new(shared.config.typing_rate, now),
        auth_bucket: TokenBucket::new(shared.config.sign_in_rate, now),
        lookup_bucket: TokenBucket::new(config.lookup_rate, now),
        signal_bucket: TokenBucket::new(config.signal_rate, now),
        receipt_bucket: TokenBucket::new(config.receipt_rate, now),
        malformed: 0,
        shared: shared.clone(),
    };
    tracing::debug!(conn = conn.id, "Connection opened.");
    let end = loop {
        let next = tokio::select! {
            _ = kicked.cancelled() => break End::Error(conn.kick_reason()),
            _ = shared.shutdown.cancelled() => break End::Error(ErrorInfo::new(
                ErrorCode::ShuttingDown, "the server is shutting down")),
            _ = tokio::time::sleep_until(join_by), if conn.joined.is_none() => {
                let within = shared.config.join_timeout.as_secs();
                break End::Error(ErrorInfo::new(
                    ErrorCode::Unauthenticated,
                    format!("no Join in time: sign in and join within {within} s of connecting"),
                ))
            }
            next = tokio::time::timeout(shared.config.idle_timeout, stream.next()) => next,
        };
        let message = match next {
            Err(_elapsed) => break End::Quiet,
            Ok(None) => break End::Quiet,
            Ok(Some(Err(e))) => {
                // tungstenite enforces the frame size limit before buffering a frame.
                if too_large(e) {
                    break End::Error(ErrorInfo::new(ErrorCode::TooLarge, "frame too large"));
                }
                break End::Quiet;
            }
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Binary(bytes) => {
                if let Some(end) = conn.on_frame(&bytes).await {
                    break end;
                }
            }
            Message::Text(_) => {
                if let Some(end) = conn.malformed(0, "frames are binary MessagePack, not text") {
                    break end;
                }
            }
            Message::Ping(_) | Message::Pong(_) => {}
            Message::Close(_) => break End::Quiet,
        }
    };
    if let Some(peer) = conn.joined.take() {
        shared.switchboard.remove(peer.user, peer.conn);
    }
    let reason = match &end {
        End::Error(e) => e.code.as_str(),
        End::Quiet => "closed",
    };
    tracing::debug!(conn = conn.id, reason, "Connection closed.");
    if let End::Error(error) = end {
        if let Ok(frame) = encode_frame(&ServerFrame::Closing { error }) {
            // After what is queued when there is room; else instead of it: a reader that fell
            // behind is owed the reason, not the backlog (it catches up by seq).
            if let Err(crate::switchboard::Refused::Full) = conn.queue.try_push(frame.clone()) {
                let _ = last_word.send(frame);
            }
        }
    }
    drop(conn);
    let _ = writer.await;
    shared.metrics.connections.dec();
}

impl Conn {
    fn kick_reason(&self) -> ErrorInfo {
        self.joined
            .as_ref()
            .and_then(|p| p.kick_reason().cloned())
            .unwrap_or_else(|| ErrorInfo::new(ErrorCode::TooSlow, "the connection was closed"))
    }

    /// Counts a malformed frame, answers it, and ends the connection after too many.
    fn malformed(&mut self, id: u32, message: &str) -> Option<End> {
        self.malformed += 1;
        let error = ErrorInfo::new(ErrorCode::Malformed, message);
        if self.malformed >= MAX_MALFORMED {
            return Some(End::Error(ErrorInfo::new(ErrorCode::Malformed, "too many bad frames")));
        }
        self.reply(id, Err(error));
        None
    }

    /// Queues a reply.
    fn reply(&self, id: u32, result: Result<Reply, ErrorInfo>) {
        if let Err(e) = &result {
            self.shared.metrics.errors.get_or_create(&CodeLabel { code: e.code.as_str() }).inc();
        }
        let Ok(frame) = encode_frame(&ServerFrame::Reply { id, result }) else {
            return;
        };
        let queued = match &self.joined {
            // A joined connection is kicked if it cannot take its reply.
            Some(peer) => peer.push(frame, &self.shared.metrics),
            None => self.queue.try_push(frame).is_ok(),
        };
        if queued {
            self.shared.metrics.frames_out.inc();
        }
    }

    /// Handles one binary frame. Returns `Some` when the connection must end.
    async fn on_frame(&mut self, bytes: &Bytes) -> Option<End> {
        self.shared.metrics.frames_in.inc();
        let ClientFrame { id, request } = match codec::decode_client(bytes) {
            Ok(frame) => frame,
            Err(DecodeError::UnknownKind(kind)) => {
                let id = codec::peek_client_id(bytes).unwrap_or(0);
                let message = format!("unknown request {kind:?}");
                self.reply(id, Err(ErrorInfo::new(ErrorCode::UnknownRequest, message)));
                return None;
            }
            Err(DecodeError::TooLarge { .. }) => {
                return Some(End::Error(ErrorInfo::new(ErrorCode::TooLarge, "frame too large")))
            }
            Err(e) => {
                let id = codec::peek_client_id(bytes).unwrap_or(0);
                return self.malformed(id, &e.to_string());
            }
        };
        let kind = request.kind();
        let started = Instant::now();
        let result = self.dispatch(id, request).await;
        self.shared
            .metrics
            .latency
            .get_or_create(&KindLabel { kind })
            .observe(started.elapsed().as_secs_f64());
        // Requests are logged by kind and outcome only: never tokens, passwords or bodies.
        let outcome = match &result {
            Ok(_) => "ok",
            Err(OpError::Client(e)) => e.code.as_str(),
            Err(OpError::Internal(_)) => "internal",
        };
        tracing::debug!(conn = self.id, kind, outcome, elapsed = ?started.elapsed(), "Request.");
        match result {
            Ok(Some(reply)) => {
                let close_after = matches!(kind, "sign_out" | "sign_out_everywhere");
                self.reply(id, Ok(reply));
                close_after.then_some(End::Quiet)
            }
            Ok(None) => None,
            Err(e) => {
                let info = e.into_info();
                let fatal = matches!(info.code, ErrorCode::IncompatibleVersion);
                self.reply(id, Err(info.clone()));
                fatal.then_some(End::Quiet)
            }
        }
    }

    /// Runs one request. `Ok(None)` means there is nothing more to send: Join queued its own
    /// reply, and typing and call signals are answered only when they fail.
    async fn dispatch(&mut self, id: u32, request: Request) -> Result<Option<Reply>, OpError> {
        let needs_hello = !matches!(request, Request::Hello { .. });
        if needs_hello && self.version.is_none() {
            return Err(OpError::new(ErrorCode::HelloRequired, "send hello first"));
        }
        self.limit(&request)?;
        let reply = match request {
            Request::Hello { min_version, max_version, .. } => {
                self.hello(min_version, max_version)?
            }
            Request::SignUp(c) => self.sign_up(c).await?,
            Request::SignIn(c) => self.sign_in(c).await?,
            Request::RedeemLink { id, device_name } => self.redeem_link(id, device_name).await?,
            Request::OfferLink { id, sealed } => self.offer_link(id, sealed).await?,
            Request::Join { token, protocol_version, rooms, unconfirmed } => {
                self.join(id, token, protocol_version, rooms.into_vec(), unconfirmed.into_vec())
                    .await?;
                return Ok(None);
            }
            Request::SignOut {} => self.sign_out().await?,
            Request::ChangePassword { old, new } => {
                self.change_password(old.0.into_string(), new.0.into_string()).await?
            }
            Request::SignOutEverywhere {} => self.sign_out_everywhere().await?,
            Request::ListDevices { after } => self.list_devices(after).await?,
            Request::RevokeDevice { device } => {
                let actor = self.actor()?;
                self.revoke(actor, device).await?
            }
            Request::LookupUser { username } => self.lookup_user(username.into_string()).await?,
            r @ (Request::CreateRoom { .. }
            | Request::Invite { .. }
            | Request::Leave { .. }
            | Request::RemoveMember { .. }
            | Request::Rename { .. }
            | Request::Send { .. }
            | Request::RecordCall { .. }
            | Request::Mls { .. }
            | Request::Accept { .. }) => self.room_mutation(r).await?,
            Request::PublishKeyPackages { packages, last_resort } => {
                self.publish_key_packages(packages.into_vec(), last_resort).await?
            }
            Request::ClaimKeyPackages { user } => self.claim_key_packages(user).await?,
            Request::GroupInfo { room } => self.group_info(room).await?,
            Request::Receipt { room, delivered, read } => {
                self.receipt(room, delivered, read).await?
            }
            // Ephemeral signals expect no reply: only a failure is answered.
            Request::Typing { room, active } => {
                self.typing(room, active).await?;
                return Ok(None);
            }
            Request::Signal { room, to_user, to_device, call, signal } => {
                self.signal(room, to_user, to_device, call, signal).await?;
                return Ok(None);
            }
            Request::CatchUp { room, after, limit } => self.catch_up(room, after, limit).await?,
            Request::ContactKey { reset, ttl_s } => self.contact_key(reset, ttl_s).await?,
            Request::AddContact { user, key } => {
                self.add_contact(user.into_string(), key.0.into_string()).await?
            }
            Request::Contacts {} => self.contacts().await?,
            Request::Block { user } => self.block(user, true).await?,
            Request::Unblock { user } => self.block(user, false).await?,
            Request::Blocked {} => self.blocked().await?,
            Request::NearbyOn { cell, ttl_s } => self.nearby_on(cell.into_string(), ttl_s).await?,
            Request::NearbyOff {} => self.nearby_off().await?,
            Request::NearbyList {} => self.nearby_list().await?,
            Request::IceServers {} => {
                let user = self.actor()?.user;
                let in_call = self.shared.calls.is_open(user, Instant::now());
                crate::turn::ice_servers(&self.shared.config, user, in_call)?
            }
            Request::Ping { nonce } => Reply::Pong { nonce },
        };
        Ok(Some(reply))
    }
}

impl Conn {
    /// Takes a token from the request's own rate limit, if it has one (sends, typing,
    /// sign-ins and nearby lookups take theirs where they run).
    fn limit(&mut self, request: &Request) -> Result<(), OpError> {
        let now = Instant::now();
        let per_user = |buckets: &std::sync::Mutex<KeyedBuckets<i64>>, conn: &Conn| {
            // Unjoined, the request fails as unauthenticated anyway.
            let Some(peer) = &conn.joined else { return Ok(()) };
            let mut buckets = buckets.lock().map_err(OpError::internal)?;
            buckets.take(peer.user.0, now).map_err(OpError::rate_limited)
        };
        match request {
            Request::LookupUser { .. }
            | Request::Block { .. }
            | Request::Unblock { .. }
            | Request::Blocked {} => self.lookup_bucket.take(now),
            Request::Signal { .. } => self.signal_bucket.take(now),
            Request::Receipt { .. } => self.receipt_bucket.take(now),
            Request::CreateRoom { .. } => return per_user(&self.shared.room_creations, self),
            Request::ContactKey { reset: true, .. } => {
                return per_user(&self.shared.contact_key_resets, self)
            }
            Request::ClaimKeyPackages { .. } => {
                return per_user(&self.shared.key_package_claims, self)
            }
            _ => Ok(()),
        }
        .map_err(OpError::rate_limited)
    }
}

/// Drains the connection's queue into the socket, batching writes, and pings. `last` brings
/// the `Closing` frame when the queue had no room for it: what is queued is then dropped
/// and that frame written.
async fn write_loop(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut outbound: QueueReader,
    mut last: oneshot::Receiver<Bytes>,
    kicked: CancellationToken,
    shared: Arc<Shared>,
) {
    let mut ping = tokio::time::interval(shared.config.ping_interval);
    ping.tick().await;
    let mut last_open = true;
    loop {
        let first = tokio::select! {
            biased;
            closing = &mut last, if last_open => match closing {
                Ok(frame) => {
                    while outbound.try_recv().is_some() {}
                    let write = sink.send(Message::Binary(frame));
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, write).await;
                    break;
                }
                // The reason went through the queue (or there was none).
                Err(_) => {
                    last_open = false;
                    continue;
                }
            },
            frame = outbound.recv() => frame,
            _ = ping.tick() => {
                let sent = tokio::time::timeout(
                    WRITE_TIMEOUT, sink.send(Message::Ping(Bytes::new()))).await;
                if !matches!(sent, Ok(Ok(()))) { break; }
                continue;
            }
        };
        let Some(first) = first else { break };
        let mut is_closing = is_closing_frame(&first);
        let write = async {
            sink.feed(Message::Binary(first)).await?;
            while let Some(frame) = outbound.try_recv() {
                is_closing |= is_closing_frame(&frame);
                sink.feed(Message::Binary(frame)).await?;
            }
            sink.flush().await
        };
        if !matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(()))) {
            kicked.cancel();
            break;
        }
        if is_closing {
            break;
        }
    }
    let close = CloseFrame { code: axum::extract::ws::close_code::NORMAL, reason: "".into() };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Close(Some(close)))).await;
}

/// Whether a queued frame is the last one (`Closing`). Decoding only the tag is cheap.
fn is_closing_frame(frame: &Bytes) -> bool {
    // `{"Closing": …}`: fixmap(1), fixstr(7) "Closing".
    frame.starts_with(b"\x81\xa7Closing")
}

/// Whether a websocket read failed because a frame or message is over the size limit
/// (axum wraps tungstenite's error; its type, not its wording, says so).
fn too_large(e: axum::Error) -> bool {
    use tungstenite::error::{CapacityError, Error as WsError};
    matches!(
        e.into_inner().downcast_ref::<WsError>(),
        Some(WsError::Capacity(
            CapacityError::MessageTooLong { .. } | CapacityError::TooManyHeaders
        ))
    )
}
