//! The connection to the server: a sync session that joins, catches up, flushes the outbox
//! and sends receipts, and carries the [`Relay`]'s requests and call signals.
//!
//! One websocket per session ([`link`]). What to send and how to apply what arrives is
//! decided by the sans-IO [`Machine`] (see its module for the order of work); this module
//! owns the socket and the clocks: it sends what the machine asks, waits for frames with
//! timeouts (a reply that does not come in 15 s means a dead or half-open link), pings a
//! link silent for 20 s, wakes for outbox retries and for the user's new items, and emits the
//! machine's events, which are committed already. The `sim` tests drive the same machine over
//! a simulated network and server for thousands of seeds.
//!
//! [`sync_until_idle`] returns once the outbox has nothing left to send now and every room is
//! caught up: what `tidings sync` does. [`run`] stays connected and reconnects with jittered
//! backoff: what `tidings listen` and the app do. Once it has joined and caught up, every
//! other request goes over its websocket ([`request`]) — but while it uploads a file, and
//! for signing in and out; only then, or with no live session, does a request open a
//! connection of its own.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rand::Rng;
use tidings_proto::{ErrorInfo, Reply, Request, ServerFrame};
use tokio::sync::oneshot;

use crate::{
    client::now_ms,
    model::{ConnectionState, Event},
    outbox,
    relay::{Attached, Outgoing, Signal},
    Client, Error,
};

pub(crate) mod group;
pub(crate) mod link;
mod machine;
#[cfg(test)]
mod sim;

use link::{Link, OWN_IDS, REPLY_TIMEOUT};
pub use machine::{Machine, Poll};

/// A link silent this long gets a ping.
const PING_AFTER: Duration = Duration::from_secs(20);
/// A live session looks at the outbox at least this often: another process on the same
/// profile (a `tidings send` next to `tidings listen`) cannot wake it.
const OUTBOX_POLL: Duration = Duration::from_secs(1);

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

/// Sends one request and returns its reply: over the live session when one is joined, else
/// on a connection of its own.
pub(crate) async fn request(client: &Client, request: Request) -> Result<Reply, Error> {
    if client.relay.is_live() {
        let reply = client.relay.ask(request);
        return match tokio::time::timeout(REPLY_TIMEOUT, reply).await {
            Ok(Ok(result)) => result.map_err(Error::Server),
            Ok(Err(_)) => Err(Error::Network("connection closed".into())),
            Err(_) => Err(Error::Network("no answer from the server".into())),
        };
    }
    alone(client, request).await
}

/// Publishes this device's first KeyPackages right after it signs up or in, so that a room
/// set up before its first sync has a Welcome for it. The first sync tops the stock up
/// anyway, so a failure here costs only that.
pub(crate) async fn publish_first_key_packages(client: &Client) -> Result<(), Error> {
    let publish = client.db(|c| machine::key_packages_to_publish(c, 0)).await?;
    if let Some(publish) = publish {
        alone(client, publish).await?;
    }
    Ok(())
}

/// Sends one request on a connection of its own, whatever the live session does: for
/// signing out, which ends the sessions it would go over.
pub(crate) async fn alone(client: &Client, request: Request) -> Result<Reply, Error> {
    let account = client.require_account().await?;
    let mut link = Link::joined(&account).await?;
    link.request(request).await?.map_err(Error::Server)
}

/// Sends a request the server answers only if it fails (typing): queued on the live
/// session, or sent on a connection of its own, whose failure is then returned.
pub(crate) async fn notify(client: &Client, request: Request) -> Result<(), Error> {
    if client.relay.is_live() {
        client.relay.send(request);
        return Ok(());
    }
    let account = client.require_account().await?;
    let mut link = Link::joined(&account).await?;
    let sent = link.send_own(request).await?;
    // The reply to a ping comes after any failure of what was sent before it.
    let ping = link.send_own(Request::Ping { nonce: 0 }).await?;
    loop {
        match link.next(REPLY_TIMEOUT).await? {
            ServerFrame::Reply { id, result: Err(e) } if id == sent => {
                return Err(Error::Server(e))
            }
            ServerFrame::Reply { id, .. } if id == ping => return Ok(()),
            ServerFrame::Closing { error } => return Err(Error::Server(error)),
            _ => continue,
        }
    }
}

/// A reply of a kind the request does not have (named by its kind only: a reply may carry
/// a token).
pub(crate) fn unexpected(reply: Reply) -> Error {
    Error::Network(format!("unexpected reply: {}", reply.kind()))
}

/// The relayed requests a session sent, waiting for their replies.
type Pending = HashMap<u32, oneshot::Sender<Result<Reply, ErrorInfo>>>;

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
    // A session carries the relay's queue (one session at a time does); a non-live one
    // sends what is queued already before it ends (a hang-up on the way out).
    let mut relay = client.relay.attach();
    let mut pending = Pending::new();
    loop {
        if relay.is_none() && live {
            // A one-off sync held the queue when this session began; take it when free.
            relay = client.relay.attach();
            if let Some(relay) = &relay {
                relay.set_live(lock(&machine)?.is_online());
            }
        }
        for room in client.relay.take_catch_ups() {
            lock(&machine)?.catch_up(room);
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
                while let Some(out) = relay.as_mut().and_then(Attached::try_next) {
                    relay_out(&mut link, &mut pending, out).await?;
                    sent = true;
                }
                if sent {
                    // The answer to a ping comes after the server has answered and relayed
                    // what was sent before it; the sync itself is done whatever it says.
                    let _ = drain(client, &mut link, &mut pending).await;
                }
                return Ok(());
            }
            Poll::Upload { item, path, session, sealing } => {
                tracing::debug!(item, "Uploading.");
                let file = client.dir().join(path);
                let remember = |id: &str| {
                    client.db_blocking(|c| crate::media::set_upload_session(c, item, id))
                };
                // An upload holds this loop (a large file for minutes): requests meanwhile
                // take connections of their own rather than wait for it.
                let online = live && lock(&machine)?.is_online();
                if let Some(relay) = &relay {
                    relay.set_live(false);
                }
                let result = crate::media::upload(
                    &server,
                    &account.token,
                    &file,
                    sealing,
                    session,
                    remember,
                )
                .await;
                if let Some(relay) = &relay {
                    relay.set_live(online);
                }
                let m = machine.clone();
                let jitter: f64 = rand::rng().random();
                let events =
                    client.db(move |c| lock(&m)?.on_uploaded(c, result, now_ms(), jitter)).await?;
                client.emit(events);
                continue;
            }
            Poll::AwaitReply => tokio::select! {
                frame = link.next(REPLY_TIMEOUT) => frame?,
                Some(out) = next_out(&mut relay) => {
                    relay_out(&mut link, &mut pending, out).await?;
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
                    Some(out) = next_out(&mut relay) => {
                        relay_out(&mut link, &mut pending, out).await?;
                        continue;
                    }
                    _ = tokio::time::sleep(wait) => continue,
                    frame = link.next(PING_AFTER * 2) => frame?,
                }
            }
        };
        heard = Instant::now();
        let Some(frame) = relayed(client, &mut pending, frame) else { continue };
        let m = machine.clone();
        let jitter: f64 = rand::rng().random();
        let events = client.db(move |c| lock(&m)?.on_frame(c, frame, now_ms(), jitter)).await?;
        for event in &events {
            match event {
                Event::Typing { room, user, active } => {
                    if let Ok(mut typing) = client.typing.lock() {
                        typing.set(*room, user, *active, Instant::now());
                    }
                }
                // Joined: requests may come this way now. Caught up: a history archive that
                // came with this device's link can fill in what it could not open.
                Event::Connection { state: ConnectionState::Online } if live => {
                    if let Some(relay) = &relay {
                        relay.set_live(true);
                    }
                    crate::history::import_later(client);
                }
                _ => {}
            }
        }
        client.emit(events);
    }
}

/// Hands a frame that is the relay's to it — a `Signal` push, a relayed request's reply (or
/// the failure of one that has no other reply: a call signal or typing, whose call's
/// timeouts settle it) — and returns the rest, for the machine.
fn relayed(client: &Client, pending: &mut Pending, frame: ServerFrame) -> Option<ServerFrame> {
    match frame {
        ServerFrame::Signal { room, from_user, from_device, call, signal } => {
            client.relay.deliver(Signal { room, from_user, from_device, call, signal });
            None
        }
        ServerFrame::Reply { id, result } if id >= OWN_IDS => {
            match pending.remove(&id) {
                Some(waiter) => {
                    let _ = waiter.send(result);
                }
                None => {
                    if let Err(e) = result {
                        tracing::debug!(code = ?e.code, "A relayed request was refused.");
                    }
                }
            }
            None
        }
        frame => Some(frame),
    }
}

/// Pings and reads until the answer, handing the relay's frames on meanwhile (a one-off
/// sync's last step: what it carried is answered and relayed before it hangs up).
async fn drain(client: &Client, link: &mut Link, pending: &mut Pending) -> Result<(), Error> {
    let ping = link.send_own(Request::Ping { nonce: 0 }).await?;
    loop {
        match link.next(REPLY_TIMEOUT).await? {
            ServerFrame::Reply { id, .. } if id == ping => return Ok(()),
            frame => {
                let _ = relayed(client, pending, frame);
            }
        }
    }
}

/// Sends a relayed request on the session's link, remembering who waits for its reply.
async fn relay_out(link: &mut Link, pending: &mut Pending, out: Outgoing) -> Result<(), Error> {
    let id = link.send_own(out.request).await?;
    if let Some(waiter) = out.reply {
        pending.insert(id, waiter);
    }
    Ok(())
}

async fn next_out(relay: &mut Option<Attached<'_>>) -> Option<Outgoing> {
    match relay {
        Some(relay) => relay.next().await,
        None => std::future::pending().await,
    }
}

fn lock(m: &Mutex<Machine>) -> Result<std::sync::MutexGuard<'_, Machine>, Error> {
    m.lock().map_err(|_| Error::Internal("sync state lock poisoned".into()))
}
