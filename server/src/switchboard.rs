//! Who is connected, and delivery of pushes to them.
//!
//! Every joined connection registers a [`Peer`]: its user, device and a [`Queue`] of encoded
//! frames that the connection's writer task drains into the socket, bounded both in frames
//! and in bytes (a few pipelined CatchUps of large pages would otherwise hold a gigabyte).
//! Delivery never waits: a frame is put in the queue or, if the queue is full, the peer is
//! kicked with `too_slow`, because a reader that cannot keep up must not make the server
//! buffer without bound or slow down everybody else. The client reconnects and catches up
//! by seq.
//!
//! The map is behind a `std::sync::RwLock`: every critical section is a lookup or an insert
//! and never spans an `.await`.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, OnceLock, RwLock,
    },
};

use bytes::Bytes;
use tidings_proto::{DeviceId, ErrorInfo, UserId};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// Identifies one connection for the lifetime of the process.
pub type ConnId = u64;

/// The sending side of a connection's outbound frames: at most `frames` frames and
/// `max_bytes` bytes waiting (one frame larger than that may wait alone).
#[derive(Debug, Clone)]
pub struct Queue {
    tx: mpsc::Sender<Bytes>,
    bytes: Arc<AtomicUsize>,
    max_bytes: usize,
}

/// The writer's side of a [`Queue`].
#[derive(Debug)]
pub struct QueueReader {
    rx: mpsc::Receiver<Bytes>,
    bytes: Arc<AtomicUsize>,
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The reader is behind by the queue's bound.
    Full,
    /// The connection is gone.
    Closed,
}

/// A new queue bounded by `frames` and `max_bytes`.
pub fn queue(frames: usize, max_bytes: usize) -> (Queue, QueueReader) {
    let (tx, rx) = mpsc::channel(frames.max(1));
    let bytes = Arc::new(AtomicUsize::new(0));
    (Queue { tx, bytes: bytes.clone(), max_bytes }, QueueReader { rx, bytes })
}

impl Queue {
    /// Queues a frame without waiting.
    pub fn try_push(&self, frame: Bytes) -> Result<(), Refused> {
        let len = frame.len();
        let before = self.bytes.fetch_add(len, Ordering::AcqRel);
        if before > 0 && before + len > self.max_bytes {
            self.bytes.fetch_sub(len, Ordering::AcqRel);
            return Err(Refused::Full);
        }
        self.tx.try_send(frame).map_err(|e| {
            self.bytes.fetch_sub(len, Ordering::AcqRel);
            match e {
                mpsc::error::TrySendError::Full(_) => Refused::Full,
                mpsc::error::TrySendError::Closed(_) => Refused::Closed,
            }
        })
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.bytes.load(Ordering::Acquire)
    }
}

impl QueueReader {
    /// The next frame; `None` when every [`Queue`] is dropped and nothing is left.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let frame = self.rx.recv().await?;
        self.bytes.fetch_sub(frame.len(), Ordering::AcqRel);
        Some(frame)
    }

    /// The next frame if one is waiting.
    pub fn try_recv(&mut self) -> Option<Bytes> {
        let frame = self.rx.try_recv().ok()?;
        self.bytes.fetch_sub(frame.len(), Ordering::AcqRel);
        Some(frame)
    }
}

/// One joined connection.
#[derive(Debug)]
pub struct Peer {
    /// The connection.
    pub conn: ConnId,
    /// Its user.
    pub user: UserId,
    /// Its device (session).
    pub device: DeviceId,
    queue: Queue,
    kicked: CancellationToken,
    kick_reason: OnceLock<ErrorInfo>,
}

impl Peer {
    /// A peer whose frames go to `queue`; `kicked` is cancelled when it must close.
    pub fn new(
        conn: ConnId,
        user: UserId,
        device: DeviceId,
        queue: Queue,
        kicked: CancellationToken,
    ) -> Self {
        Self { conn, user, device, queue, kicked, kick_reason: OnceLock::new() }
    }

    /// Queues a frame; kicks the peer if its queue is full. Returns whether it was queued.
    pub fn push(&self, frame: Bytes, metrics: &Metrics) -> bool {
        match self.queue.try_push(frame) {
            Ok(()) => true,
            Err(Refused::Full) => {
                metrics.slow_disconnects.inc();
                self.kick(ErrorInfo::new(
                    tidings_proto::ErrorCode::TooSlow,
                    "the connection did not read its frames fast enough",
                ));
                false
            }
            Err(Refused::Closed) => false,
        }
    }

    /// Asks the connection to close with `reason` (the first reason wins).
    pub fn kick(&self, reason: ErrorInfo) {
        let _ = self.kick_reason.set(reason);
        self.kicked.cancel();
    }

    /// Why the peer was kicked, if it was.
    pub fn kick_reason(&self) -> Option<&ErrorInfo> {
        self.kick_reason.get()
    }
}

/// The registry of joined connections by user.
#[derive(Debug, Default)]
pub struct Switchboard {
    peers: RwLock<HashMap<UserId, Vec<Arc<Peer>>>>,
    next_conn: AtomicU64,
}

impl Switchboard {
    /// A fresh connection id.
    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Registers a joined connection.
    pub fn add(&self, peer: Arc<Peer>) {
        if let Ok(mut peers) = self.peers.write() {
            peers.entry(peer.user).or_default().push(peer);
        }
    }

    /// Removes a connection (when it closes).
    pub fn remove(&self, user: UserId, conn: ConnId) {
        if let Ok(mut peers) = self.peers.write() {
            if let Some(list) = peers.get_mut(&user) {
                list.retain(|p| p.conn != conn);
                if list.is_empty() {
                    peers.remove(&user);
                }
            }
        }
    }

    /// The connected peers of `user`.
    pub fn peers_of(&self, user: UserId) -> Vec<Arc<Peer>> {
        self.peers.read().map(|p| p.get(&user).cloned().unwrap_or_default()).unwrap_or_default()
    }

    /// Pushes `frame` to every connection of every user in `users`, except connection
    /// `except`. Returns how many connections it was queued for.
    pub fn deliver(
        &self,
        users: &[UserId],
        except: Option<ConnId>,
        frame: &Bytes,
        metrics: &Metrics,
    ) -> u64 {
        let Ok(peers) = self.peers.read() else {
            return 0;
        };
        let mut delivered = 0;
        for user in users {
            for peer in peers.get(user).into_iter().flatten() {
                if Some(peer.conn) != except && peer.push(frame.clone(), metrics) {
                    delivered += 1;
                }
            }
        }
        metrics.deliveries.inc_by(delivered);
        delivered
    }

    /// Kicks every connection of `device` (after it was signed out).
    /// Kicks every connection of `user` except those of device `keep`.
    pub fn kick_user(&self, user: UserId, keep: Option<DeviceId>, reason: &ErrorInfo) {
        for peer in self.peers_of(user) {
            if Some(peer.device) != keep {
                peer.kick(reason.clone());
            }
        }
    }

    /// Kicks every connection of one device of `user`.
    pub fn kick_device(&self, user: UserId, device: DeviceId, reason: &ErrorInfo) {
        for peer in self.peers_of(user) {
            if peer.device == device {
                peer.kick(reason.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_queue_is_bounded_in_bytes_as_well_as_frames() {
        let (queue, mut reader) = queue(100, 1000);
        // One frame larger than the bound may wait alone (a big page must still go out).
        assert_eq!(queue.try_push(Bytes::from(vec![0; 1500])), Ok(()));
        assert_eq!(queue.try_push(Bytes::from(vec![0; 10])), Err(Refused::Full));
        assert_eq!(reader.recv().await.map(|f| f.len()), Some(1500));
        assert_eq!(queue.queued_bytes(), 0);
        for _ in 0..4 {
            assert_eq!(queue.try_push(Bytes::from(vec![0; 250])), Ok(()));
        }
        assert_eq!(queue.try_push(Bytes::from(vec![0; 1])), Err(Refused::Full), "1000 bytes wait");
        assert_eq!(reader.try_recv().map(|f| f.len()), Some(250));
        assert_eq!(queue.try_push(Bytes::from(vec![0; 250])), Ok(()), "room again");
        let (gone, reader) = super::queue(1, 10);
        drop(reader);
        assert_eq!(gone.try_push(Bytes::from(vec![0; 1])), Err(Refused::Closed));
    }
}
