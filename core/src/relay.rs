//! The client's line to the server for everything beside the sync protocol: one-off
//! requests (lookups, contacts, devices, contact codes, ICE servers), typing notices, and
//! call signals both ways. It is owned by the [`crate::Client`] and knows neither the sync
//! session nor the call driver: each of them holds one end.
//!
//! - **Out.** A request is queued here. The live sync session holds the queue
//!   ([`Relay::attach`]) for as long as it runs, sends what arrives on its own websocket and
//!   hands each reply back through the request's [`oneshot`]. What is queued while no session
//!   holds the queue waits for the next one (a one-off `sync` sends it before it ends: a
//!   hang-up on the way out). Whether to queue a request or open a one-off connection is
//!   [`crate::sync::request`]'s decision, by [`Relay::is_live`].
//!   A request whose caller stopped waiting (its reply timed out) is dropped, never sent
//!   late.
//! - **In.** The session hands every `Signal` push to [`Relay::deliver`]; the call driver,
//!   once started, [`Relay::listen`]s for them.
//! - **Catch-ups.** The server does not push a change to the connection that made it, so a
//!   request that changes a room over the live session (adding a contact) asks the session
//!   to catch that room up ([`Relay::catch_up`]).

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Mutex,
};

use tidings_proto::{CallId, CallSignal, DeviceId, ErrorInfo, Reply, Request, RoomId, UserId};
use tokio::sync::{mpsc, oneshot};

use crate::model::RoomKey;

/// A request for the session to send; `reply` is `None` for those the server answers only
/// when they fail (typing, call signals).
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub request: Request,
    pub reply: Option<oneshot::Sender<Result<Reply, ErrorInfo>>>,
}

impl Outgoing {
    /// Whether to send it: one nobody waits for any more (its caller timed out, or its
    /// session ended before it went) is not sent late.
    fn wanted(&self) -> bool {
        self.reply.as_ref().is_none_or(|r| !r.is_closed())
    }
}

/// A call signal from another device.
#[derive(Debug, Clone)]
pub(crate) struct Signal {
    pub room: RoomId,
    pub from_user: UserId,
    pub from_device: DeviceId,
    pub call: CallId,
    pub signal: CallSignal,
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Relay {
    queue: mpsc::UnboundedSender<Outgoing>,
    /// The queue's receiving end while no session holds it.
    waiting: Mutex<Option<mpsc::UnboundedReceiver<Outgoing>>>,
    /// A live session holds the queue and has joined.
    live: AtomicBool,
    /// Where signals go: the call driver, once started.
    signals: Mutex<Option<mpsc::UnboundedSender<Signal>>>,
    /// Rooms the session should catch up.
    catch_ups: Mutex<Vec<RoomKey>>,
}

impl Default for Relay {
    fn default() -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        Self {
            queue,
            waiting: Mutex::new(Some(rx)),
            live: AtomicBool::new(false),
            signals: Mutex::new(None),
            catch_ups: Mutex::new(Vec::new()),
        }
    }
}

impl Relay {
    /// Queues a request that gets no reply unless it fails.
    pub fn send(&self, request: Request) {
        let _ = self.queue.send(Outgoing { request, reply: None });
    }

    /// Queues a request; its reply comes through the receiver (which errs if the session
    /// carrying it ends first).
    pub fn ask(&self, request: Request) -> oneshot::Receiver<Result<Reply, ErrorInfo>> {
        let (tx, rx) = oneshot::channel();
        let _ = self.queue.send(Outgoing { request, reply: Some(tx) });
        rx
    }

    /// Whether a live session is joined and carrying the queue now.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Takes the queue for a session, unless another session holds it. It goes back when
    /// the [`Attached`] is dropped, with whatever is still queued.
    pub fn attach(&self) -> Option<Attached<'_>> {
        let rx = self.waiting.lock().ok()?.take()?;
        Some(Attached { relay: self, rx: Some(rx) })
    }

    /// Asks the live session to catch `room` up (it is woken by the caller).
    pub fn catch_up(&self, room: RoomKey) {
        if let Ok(mut rooms) = self.catch_ups.lock() {
            rooms.push(room);
        }
    }

    /// The rooms asked to be caught up since the last call.
    pub fn take_catch_ups(&self) -> Vec<RoomKey> {
        self.catch_ups.lock().map(|mut r| std::mem::take(&mut *r)).unwrap_or_default()
    }

    /// A signal push for the call driver (dropped when calls are not started).
    pub fn deliver(&self, signal: Signal) {
        if let Ok(slot) = self.signals.lock() {
            if let Some(tx) = slot.as_ref() {
                let _ = tx.send(signal);
            }
        }
    }

    /// Starts receiving signal pushes (the call driver; a second listener replaces the
    /// first).
    pub fn listen(&self) -> mpsc::UnboundedReceiver<Signal> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut slot) = self.signals.lock() {
            *slot = Some(tx);
        }
        rx
    }
}

/// A session's hold on the queue.
#[derive(Debug)]
pub(crate) struct Attached<'a> {
    relay: &'a Relay,
    rx: Option<mpsc::UnboundedReceiver<Outgoing>>,
}

impl Attached<'_> {
    /// The next queued request still wanted, waiting for one.
    pub async fn next(&mut self) -> Option<Outgoing> {
        let rx = match self.rx.as_mut() {
            Some(rx) => rx,
            None => return std::future::pending().await,
        };
        loop {
            let out = rx.recv().await?;
            if out.wanted() {
                return Some(out);
            }
        }
    }

    /// The next queued request still wanted, if one is there now.
    pub fn try_next(&mut self) -> Option<Outgoing> {
        let rx = self.rx.as_mut()?;
        loop {
            let out = rx.try_recv().ok()?;
            if out.wanted() {
                return Some(out);
            }
        }
    }

    /// Says whether this session is joined and live (requests come here rather than open
    /// connections of their own).
    pub fn set_live(&self, live: bool) {
        self.relay.live.store(live, Ordering::Release);
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        self.relay.live.store(false, Ordering::Release);
        if let (Ok(mut waiting), Some(rx)) = (self.relay.waiting.lock(), self.rx.take()) {
            *waiting = Some(rx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_session_holds_the_queue_and_what_it_left_waits_for_the_next() {
        let relay = Relay::default();
        let mut first = relay.attach().expect("free");
        assert!(relay.attach().is_none(), "one holder at a time");
        first.set_live(true);
        assert!(relay.is_live());
        relay.send(Request::Ping { nonce: 1 });
        relay.send(Request::Ping { nonce: 2 });
        assert!(matches!(
            first.try_next(),
            Some(Outgoing { request: Request::Ping { nonce: 1 }, .. })
        ));
        drop(first);
        assert!(!relay.is_live(), "a session that ends is not live");
        let mut second = relay.attach().expect("given back");
        assert!(matches!(
            second.try_next(),
            Some(Outgoing { request: Request::Ping { nonce: 2 }, .. })
        ));
        assert!(second.try_next().is_none());
    }

    #[test]
    fn a_request_nobody_waits_for_is_not_sent_late() {
        let relay = Relay::default();
        drop(relay.ask(Request::Ping { nonce: 4 }));
        relay.send(Request::Ping { nonce: 5 });
        let mut session = relay.attach().expect("free");
        let next = session.try_next().expect("the signal-like one is still sent");
        assert!(matches!(next.request, Request::Ping { nonce: 5 }));
        assert!(session.try_next().is_none());
    }

    #[test]
    fn a_reply_waiter_learns_when_its_session_ended() {
        let relay = Relay::default();
        let mut rx = relay.ask(Request::Ping { nonce: 3 });
        let mut session = relay.attach().expect("free");
        let taken = session.try_next().expect("queued");
        drop(taken);
        assert!(rx.try_recv().is_err(), "the request's sender is gone with its session");
    }
}
