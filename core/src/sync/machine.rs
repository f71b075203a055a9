//! The sync protocol's logic as a sans-IO state machine.
//!
//! The machine decides what to send and applies what arrives; it never touches a socket or a
//! clock. The connection loop in [`super`] (and the deterministic simulation in `sim`) drive
//! it with two calls, each given the profile's database and the time:
//!
//! - [`Machine::poll`] — what to do now: send a frame, wait for the reply in flight, idle
//!   until a time (an outbox item backing off), or stop (a one-shot sync with nothing left);
//! - [`Machine::on_frame`] — apply a frame from the server; returns the events to emit, which
//!   are true already: every change is committed before `on_frame` returns.
//!
//! One request is in flight at a time, so replies never race each other. Work is picked in
//! this order: join; catch up the rooms with news (each page in one transaction, and again
//! while pages remain); close gaps that pushes revealed; send the next due outbox item (the
//! rules are in [`crate::outbox`]) — a message sealed for its room's MLS group first, after
//! whatever that group needs ([`super::group`]); join by external commit the groups of rooms
//! this device is in no group of; send read markers that moved, then delivered watermarks of
//! rooms that received events; once per connection, top up this device's MLS KeyPackages on
//! the server ([`crate::e2ee`]). A push is applied when it arrives, between replies.
//!
//! Reading the database inside the machine keeps the protocol logic in one place; the
//! database is local, its calls short, and the driver runs them off the async runtime.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rusqlite::{params, Connection, OptionalExtension};
use tidings_proto::{
    bounded::{Blob, List, Text},
    codec, ClientFrame, ErrorCode, ErrorInfo, Reply, Request, RequestId, RoomCursor, RoomId,
    ServerFrame, Token,
};

use super::group::{self, Need};
use crate::{
    apply::{self, Applied},
    model::{ConnectionState, Event, RoomKey},
    outbox::{self, Item, Verdict},
    Error,
};

/// Catch-up page size asked of the server.
pub const PAGE: u16 = 500;

/// What the driver should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Poll {
    /// Send this frame.
    Send(ClientFrame),
    /// A reply is due: wait for frames (and give the link up if none comes in time).
    AwaitReply,
    /// Nothing to send: wait for pushes, the user, or until `wake_ms` (an item's retry time).
    Idle {
        /// When an outbox item becomes due, Unix ms.
        wake_ms: Option<i64>,
    },
    /// A one-shot sync is finished: caught up and nothing is left to send.
    Done,
    /// Upload the file at `path` (relative to the profile) for outbox item `item`, then
    /// report with [`Machine::on_uploaded`].
    Upload {
        /// The outbox item.
        item: i64,
        /// The prepared file.
        path: String,
        /// The server's resumable upload already opened for it, to continue.
        session: Option<String>,
        /// The key its message carries, to seal it with as it is uploaded (`None`: in
        /// clear, for an item queued before attachments were sealed).
        sealing: Option<crate::media::Sealing>,
    },
}

/// What an outbox item needs next.
enum Step {
    /// Its file must be uploaded first (continuing the upload session, if any), sealed
    /// with its message's key.
    Upload(String, Option<String>, Option<crate::media::Sealing>),
    /// Its operation, ready to send.
    Send(Request),
    /// Its message, to seal for the room's group first.
    Seal(RoomKey),
}

/// An outbox item waiting on its room's group, with its attempts so far.
type Waiting = Option<(i64, u32)>;

/// A handshake of a room's group this device sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handshake {
    /// The group's setup: merged when logged (the log holds only its Welcome).
    Setup,
    /// Joining by external commit: merged when logged (nothing before it is for me).
    External,
    /// A commit adding or removing members: merged when apply meets it in the log.
    Commit,
}

/// KeyPackages being claimed for a room's group, one user per request, before its setup
/// (`group` none) or a commit adding them.
#[derive(Debug)]
struct Claiming {
    room: RoomKey,
    item: Waiting,
    group: Option<Vec<u8>>,
    users: Vec<i64>,
    packages: Vec<Vec<u8>>,
}

/// The request in flight and what its reply means.
#[derive(Debug, Clone)]
enum Awaiting {
    Join,
    CatchUp {
        room: RoomKey,
        after: u64,
    },
    Outbox {
        id: i64,
        attempts: u32,
        request: Option<RequestId>,
        left: bool,
        apply_own: bool,
    },
    Read {
        room: RoomKey,
        read: i64,
    },
    Delivered,
    /// The server's count of this device's KeyPackages (an empty publish).
    KeyCount,
    /// New KeyPackages published.
    KeysPublished,
    /// A room's GroupInfo, to join its group or learn it has none.
    GroupInfo {
        room: RoomKey,
        item: Waiting,
    },
    /// A user's KeyPackages (for [`Machine::claiming`]).
    Claim {
        user: i64,
    },
    /// A handshake of `room`'s group `group`.
    Handshake {
        room: RoomKey,
        item: Waiting,
        group: Vec<u8>,
        kind: Handshake,
    },
    Ping,
}

/// Where this connection is with the device's KeyPackages.
#[derive(Debug)]
enum Keys {
    /// Not asked yet.
    Unchecked,
    /// New ones made, to publish.
    ToPublish(Request),
    /// Counted (and topped up) for this connection, or the server would not say.
    Done,
}

/// One connection's sync state. A new connection starts a new machine; everything that must
/// outlive it is in the database.
#[derive(Debug)]
pub struct Machine {
    me: i64,
    token: String,
    /// Stay connected (`listen`, the app) rather than stop when idle (`tidings sync`).
    live: bool,
    next_id: u32,
    joined: bool,
    online: bool,
    awaiting: Option<(u32, Awaiting)>,
    /// The outbox item whose upload is running, with its attempts so far.
    uploading: Option<(i64, u32)>,
    /// Rooms to catch up, in order.
    catch_up: VecDeque<RoomKey>,
    /// Rooms with a gap a push revealed.
    gaps: BTreeSet<RoomKey>,
    /// Rooms whose events from others were applied and not yet acknowledged as delivered.
    delivered_dirty: BTreeSet<RoomKey>,
    keys: Keys,
    /// A request a reply decided on, sent next (a handshake built from a GroupInfo).
    next: Option<(Request, Awaiting)>,
    /// KeyPackages being claimed for a room's group.
    claiming: Option<Claiming>,
    /// (room, user) pairs whose KeyPackages were claimed over this connection.
    claimed: BTreeSet<(RoomKey, i64)>,
    /// Rooms whose group this connection tried to join on its own (once each).
    joins_tried: BTreeSet<RoomKey>,
    /// `stale_epoch` answers in a row, per room.
    stale: BTreeMap<RoomKey, u32>,
}

impl Machine {
    /// A machine for a fresh connection (after Hello) of user `me` with session `token`.
    pub fn new(me: i64, token: String, live: bool) -> Self {
        Self {
            me,
            token,
            live,
            next_id: 1,
            joined: false,
            online: false,
            awaiting: None,
            uploading: None,
            catch_up: VecDeque::new(),
            gaps: BTreeSet::new(),
            delivered_dirty: BTreeSet::new(),
            keys: Keys::Unchecked,
            next: None,
            claiming: None,
            claimed: BTreeSet::new(),
            joins_tried: BTreeSet::new(),
            stale: BTreeMap::new(),
        }
    }

    /// Catches `room` up next (a change made over this connection by another part of the
    /// client, which the server does not push back to it).
    pub fn catch_up(&mut self, room: RoomKey) {
        self.gaps.insert(room);
    }

    /// Whether the session is joined and caught up ([`ConnectionState::Online`] was said).
    pub fn is_online(&self) -> bool {
        self.online
    }

    /// Whether a reply is due.
    pub fn awaiting_reply(&self) -> bool {
        self.awaiting.is_some() || self.uploading.is_some()
    }

    /// A liveness check, when the link has been silent; `None` while a reply is due anyway.
    pub fn ping(&mut self, nonce: u64) -> Option<ClientFrame> {
        if self.awaiting.is_some() {
            return None;
        }
        Some(self.request(Request::Ping { nonce }, Awaiting::Ping))
    }

    fn request(&mut self, request: Request, awaiting: Awaiting) -> ClientFrame {
        let id = self.next_id;
        // Ids from 1,000,000 on belong to the link (call signals, one-off requests).
        self.next_id = if self.next_id + 1 >= 1_000_000 { 1 } else { self.next_id + 1 };
        self.awaiting = Some((id, awaiting));
        ClientFrame { id, request }
    }

    /// What to do now.
    pub fn poll(&mut self, c: &mut Connection, now_ms: i64) -> Result<Poll, Error> {
        if self.awaiting_reply() {
            return Ok(Poll::AwaitReply);
        }
        if !self.joined {
            let join = join_request(c, &self.token)?;
            return Ok(Poll::Send(self.request(join, Awaiting::Join)));
        }
        for room in std::mem::take(&mut self.gaps) {
            if !self.catch_up.contains(&room) {
                self.catch_up.push_back(room);
            }
        }
        while let Some(room) = self.catch_up.pop_front() {
            if let Some((server, after)) = cursor(c, room)? {
                let request = Request::CatchUp { room: RoomId(server), after, limit: PAGE };
                return Ok(Poll::Send(self.request(request, Awaiting::CatchUp { room, after })));
            }
        }
        if let Some((request, awaiting)) = self.next.take() {
            // An external join waits for nothing; but a Welcome met while catching up put
            // this device in the group already.
            let joined = match &awaiting {
                Awaiting::Handshake { room, .. } => group::current(c, *room)?.is_some(),
                _ => false,
            };
            if !joined {
                return Ok(Poll::Send(self.request(request, awaiting)));
            }
        }
        if let Some(frame) = self.continue_claiming(c)? {
            return Ok(Poll::Send(frame));
        }
        crate::send_queue::queue_name_tellings(c)?;
        let items = load_items(c)?;
        for id in outbox::due(&items, now_ms) {
            // An item whose room the server has not created yet waits (its CreateRoom is
            // ahead of it in the same room's queue, or failed and must be retried first).
            let Some((mut step, attempts)) = prepared_request(c, id)? else { continue };
            if let Step::Seal(room) = step {
                if let Some(frame) = self.prepare_group(c, room, Some((id, attempts)))? {
                    return Ok(Poll::Send(frame));
                }
                let Some((sealed, _)) = prepared_request(c, id)? else { continue };
                step = sealed;
            }
            let request = match step {
                Step::Upload(path, session, sealing) => {
                    self.uploading = Some((id, attempts));
                    return Ok(Poll::Upload { item: id, path, session, sealing });
                }
                Step::Send(request) => request,
                Step::Seal(_) => continue,
            };
            let awaiting = Awaiting::Outbox {
                id,
                attempts,
                request: request.request_id(),
                left: matches!(request, Request::Leave { .. }),
                // A message's echo already shows it; a membership or name change is applied
                // from the log.
                apply_own: !matches!(request, Request::Send { .. } | Request::RecordCall { .. }),
            };
            return Ok(Poll::Send(self.request(request, awaiting)));
        }
        if let Some((room, server)) = room_to_join(c, &self.joins_tried)? {
            self.joins_tried.insert(room);
            let awaiting = Awaiting::GroupInfo { room, item: None };
            return Ok(Poll::Send(
                self.request(Request::GroupInfo { room: RoomId(server) }, awaiting),
            ));
        }
        if let Some((room, server, read)) = read_to_send(c)? {
            let request =
                Request::Receipt { room: RoomId(server), delivered: None, read: Some(read as u64) };
            return Ok(Poll::Send(self.request(request, Awaiting::Read { room, read })));
        }
        while let Some(room) = self.delivered_dirty.pop_first() {
            if let Some((server, synced)) = cursor(c, room)? {
                let request =
                    Request::Receipt { room: RoomId(server), delivered: Some(synced), read: None };
                return Ok(Poll::Send(self.request(request, Awaiting::Delivered)));
            }
        }
        match std::mem::replace(&mut self.keys, Keys::Done) {
            Keys::Unchecked => {
                let count =
                    Request::PublishKeyPackages { packages: List::empty(), last_resort: None };
                return Ok(Poll::Send(self.request(count, Awaiting::KeyCount)));
            }
            Keys::ToPublish(publish) => {
                return Ok(Poll::Send(self.request(publish, Awaiting::KeysPublished)));
            }
            Keys::Done => {}
        }
        let wake_ms = outbox::next_wake(&items, now_ms);
        if !self.live && wake_ms.is_none() {
            return Ok(Poll::Done);
        }
        Ok(Poll::Idle { wake_ms })
    }

    /// The request `room`'s group needs before outbox item `item` can be sealed for it, if
    /// any ([`group::need`]); `None` when the group is ready: seal now.
    fn prepare_group(
        &mut self,
        c: &mut Connection,
        room: RoomKey,
        item: Waiting,
    ) -> Result<Option<ClientFrame>, Error> {
        let need = match cursor(c, room)? {
            Some((server, _)) => (server, group::need(c, room, self.me, &self.claimed)?),
            None => (0, Need::NotMember),
        };
        match need {
            (_, Need::NotMember) => {
                // Nothing is sealed for a room I left (and nothing goes out in clear): the
                // item fails as the server would fail it.
                fail_waiting(c, item, ErrorCode::Forbidden, "not a member of this room")?;
                Ok(None)
            }
            (_, Need::Ready(group)) => {
                if let Some((id, _)) = item {
                    if !group::seal(c, id, &group)? {
                        let reason = "the message is too long to send encrypted";
                        fail_waiting(c, item, ErrorCode::InvalidInput, reason)?;
                    }
                }
                Ok(None)
            }
            (server, Need::Discover) => {
                let awaiting = Awaiting::GroupInfo { room, item };
                Ok(Some(self.request(Request::GroupInfo { room: RoomId(server) }, awaiting)))
            }
            (_, Need::Add { group, users }) => {
                // `need` names at least one user: the first claim goes out now.
                self.claiming =
                    Some(Claiming { room, item, group: Some(group), users, packages: Vec::new() });
                self.continue_claiming(c)
            }
            (server, Need::Remove { group, leaves }) => {
                let tx = c.transaction()?;
                let device = group::device(&tx)?;
                // A pending commit the log did not take (a lost attempt) gives way.
                device.discard(&tx, &group)?;
                let commit = device.remove(&tx, &group, |leaf| leaves.contains(&leaf))?;
                tx.commit()?;
                let request = group::request(server, &commit)?;
                let awaiting = Awaiting::Handshake { room, item, group, kind: Handshake::Commit };
                Ok(Some(self.request(request, awaiting)))
            }
        }
    }

    /// The next claim of the KeyPackages being gathered, or, when all are in, the setup or
    /// commit they are for; `None` when there is nothing to claim or commit.
    fn continue_claiming(&mut self, c: &mut Connection) -> Result<Option<ClientFrame>, Error> {
        let Some(claiming) = self.claiming.as_mut() else { return Ok(None) };
        if let Some(user) = claiming.users.pop() {
            let request = Request::ClaimKeyPackages { user: tidings_proto::UserId(user) };
            return Ok(Some(self.request(request, Awaiting::Claim { user })));
        }
        let Some(Claiming { room, item, group, packages, .. }) = self.claiming.take() else {
            return Ok(None);
        };
        let Some((server, _)) = cursor(c, room)? else { return Ok(None) };
        if group::current(c, room)? != group {
            // The room's group changed meanwhile (a Welcome arrived): decide again.
            return Ok(None);
        }
        let tx = c.transaction()?;
        let (commit, kind) = match &group {
            None => (group::set_up(&tx, &packages)?, Handshake::Setup),
            Some(_) if packages.is_empty() => return Ok(None),
            Some(group) => {
                let device = group::device(&tx)?;
                device.discard(&tx, group)?;
                (device.add(&tx, group, &packages)?, Handshake::Commit)
            }
        };
        let request = group::request(server, &commit)?;
        if kind == Handshake::Setup {
            group::remember_pending(&tx, room, &commit.group, &request)?;
        }
        tx.commit()?;
        let awaiting = Awaiting::Handshake { room, item, group: commit.group, kind };
        Ok(Some(self.request(request, awaiting)))
    }

    /// The server's answer to a handshake of `room`'s group.
    #[allow(clippy::too_many_arguments)]
    fn on_handshake(
        &mut self,
        c: &mut Connection,
        room: RoomKey,
        item: Waiting,
        group: Vec<u8>,
        kind: Handshake,
        result: Result<Reply, ErrorInfo>,
        now_ms: i64,
        jitter: f64,
    ) -> Result<Vec<Event>, Error> {
        let tx = c.transaction()?;
        match result {
            Ok(_) => {
                // Nothing before a setup or an external join in the log is this device's
                // to open: it takes effect now. A commit waits for its place in the log.
                if kind != Handshake::Commit {
                    group::device(&tx)?.confirm(&tx, &group)?;
                    // Every leaf is new to this device: their keys (crate::verification).
                    if let Some(account) = crate::account::stored(&tx)? {
                        crate::verification::observe(&tx, account.user_id, &group, None)?;
                    }
                    tx.execute(
                        "UPDATE rooms SET mls_group = ?2, mls_absent = 0,
                             mls_pending_group = NULL, mls_pending_request = NULL
                         WHERE id = ?1",
                        params![room, group],
                    )?;
                }
                self.stale.remove(&room);
            }
            Err(error) => {
                tx.execute(
                    "UPDATE rooms SET mls_pending_group = NULL, mls_pending_request = NULL
                     WHERE id = ?1",
                    [room],
                )?;
                match kind {
                    // Unless the group came by another way meanwhile (a Welcome).
                    Handshake::Setup | Handshake::External
                        if group::current(&tx, room)?.as_deref() != Some(&group[..]) =>
                    {
                        crate::e2ee::forget(&tx, &group)?
                    }
                    Handshake::Setup | Handshake::External => {}
                    Handshake::Commit => group::device(&tx)?.discard(&tx, &group)?,
                }
                if error.code == ErrorCode::StaleEpoch {
                    self.on_stale(&tx, room, item, &error, now_ms, jitter)?;
                } else if let Some((id, attempts)) = item {
                    failed(&tx, id, &error, attempts, now_ms, jitter)?;
                }
            }
        }
        tx.commit()?;
        // The room as the log has it now, before anything is built on it again.
        self.gaps.insert(room);
        Ok(vec![Event::OutboxChanged])
    }

    /// Another handshake or message won the epoch: catch up and build again. A room that
    /// keeps losing has a group state the log left behind: after three in a row this device
    /// joins the group again by external commit, after six the item fails.
    fn on_stale(
        &mut self,
        c: &Connection,
        room: RoomKey,
        item: Waiting,
        error: &ErrorInfo,
        now_ms: i64,
        jitter: f64,
    ) -> Result<(), Error> {
        let count = self.stale.entry(room).or_default();
        *count += 1;
        if *count == 3 {
            if let Some(group) = group::current(c, room)? {
                group::leave_group(c, room, &group)?;
            }
        }
        if *count >= 6 {
            self.stale.remove(&room);
            if let Some((id, attempts)) = item {
                failed(c, id, error, attempts, now_ms, jitter)?;
            }
        }
        Ok(())
    }

    /// Records the outcome of the upload [`Poll::Upload`] asked for: the media id (the file
    /// becomes the media's cached copy), or a failure, retried with backoff or final.
    pub fn on_uploaded(
        &mut self,
        c: &mut Connection,
        result: Result<(i64, u64), ErrorInfo>,
        now_ms: i64,
        jitter: f64,
    ) -> Result<Vec<Event>, Error> {
        let Some((id, attempts)) = self.uploading.take() else { return Ok(Vec::new()) };
        match result {
            Ok((media, size)) => {
                let tx = c.transaction()?;
                let path: Option<String> = tx
                    .query_row("SELECT upload_path FROM outbox WHERE id = ?1", [id], |r| r.get(0))
                    .optional()?
                    .flatten();
                tx.execute(
                    "UPDATE outbox SET upload_media = ?2 WHERE id = ?1",
                    params![id, media],
                )?;
                attach_to_echo(&tx, id, media)?;
                if let Some(path) = path {
                    // The sender's copy is the cache's now: opening it needs no download. The
                    // cache never evicts the newest entry, and its limit is far above one photo.
                    crate::media::remember(
                        &tx,
                        media,
                        &path,
                        size,
                        now_ms,
                        crate::media::CACHE_LIMIT_BYTES,
                    )?;
                }
                tx.commit()?;
            }
            Err(error) => failed(c, id, &error, attempts, now_ms, jitter)?,
        }
        Ok(vec![Event::OutboxChanged])
    }

    /// Applies a frame from the server. `jitter` is uniform in `[0, 1)` (for retry delays).
    /// Returns the events to emit, all committed; an error ends the connection.
    pub fn on_frame(
        &mut self,
        c: &mut Connection,
        frame: ServerFrame,
        now_ms: i64,
        jitter: f64,
    ) -> Result<Vec<Event>, Error> {
        match frame {
            ServerFrame::Reply { id, result } => match self.awaiting.take() {
                Some((want, awaiting)) if want == id => {
                    self.on_reply(c, awaiting, result, now_ms, jitter)
                }
                other => {
                    // A late reply to a request this machine did not send: not ours to apply.
                    self.awaiting = other;
                    Ok(Vec::new())
                }
            },
            ServerFrame::Closing { error } => Err(Error::Server(error)),
            push => self.on_push(c, push),
        }
    }

    fn on_reply(
        &mut self,
        c: &mut Connection,
        awaiting: Awaiting,
        result: Result<Reply, ErrorInfo>,
        now_ms: i64,
        jitter: f64,
    ) -> Result<Vec<Event>, Error> {
        match awaiting {
            Awaiting::Join => self.on_joined(c, result.map_err(Error::Server)?),
            Awaiting::CatchUp { room, after } => self.on_page(c, room, after, result),
            Awaiting::Outbox { id, attempts, request, left, apply_own } => {
                let reply = match result {
                    Ok(reply) => reply,
                    Err(error) => {
                        let room: Option<RoomKey> = c
                            .query_row("SELECT room_id FROM outbox WHERE id = ?1", [id], |r| {
                                r.get(0)
                            })
                            .optional()?
                            .flatten();
                        if let (ErrorCode::StaleEpoch, Some(room)) = (error.code, room) {
                            // Sealed for an epoch the room has left: seal again once caught
                            // up.
                            let tx = c.transaction()?;
                            tx.execute("UPDATE outbox SET sealed = NULL WHERE id = ?1", [id])?;
                            self.on_stale(&tx, room, Some((id, attempts)), &error, now_ms, jitter)?;
                            tx.commit()?;
                            self.gaps.insert(room);
                            return Ok(vec![Event::OutboxChanged]);
                        }
                        // The item's echo shows its state (waiting, or failed with Retry):
                        // an open chat reloads.
                        failed(c, id, &error, attempts, now_ms, jitter)?;
                        let timeline = room.map(|room| Event::TimelineChanged { room });
                        return Ok(timeline
                            .into_iter()
                            .chain([Event::OutboxChanged, Event::RoomsChanged])
                            .collect());
                    }
                };
                match (reply, request) {
                    (Reply::Logged { room, seq }, Some(rid)) => {
                        let tx = c.transaction()?;
                        apply::confirmed(&tx, &rid, room.0, seq)?;
                        if let Some(local) = apply::known_room(&tx, room.0)? {
                            self.stale.remove(&local);
                        }
                        if left {
                            tx.execute(
                                "UPDATE rooms SET member = 0, request_from = NULL
                                 WHERE server_id = ?1",
                                [room.0],
                            )?;
                        }
                        let local = apply::local_room(&tx, room.0)?;
                        tx.commit()?;
                        // My own event comes from the log (the server does not echo it to
                        // this connection).
                        if apply_own && !left {
                            self.gaps.insert(local);
                        }
                        // The echo has its seq now (its tick): an open chat reloads.
                        return Ok(vec![
                            Event::TimelineChanged { room: local },
                            Event::OutboxChanged,
                            Event::RoomsChanged,
                        ]);
                    }
                    _ => {
                        c.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
                    }
                }
                Ok(vec![Event::OutboxChanged, Event::RoomsChanged])
            }
            Awaiting::Read { room, read } => match result {
                // A busy server: end this connection and try again after the backoff.
                Err(e) if e.code.is_transient() => Err(Error::Server(e)),
                // Sent, or refused for good (no longer a member): done either way; a later
                // mark-read sends a new one.
                _ => {
                    c.execute(
                        "UPDATE rooms SET read_sent_seq = max(read_sent_seq, ?2) WHERE id = ?1",
                        params![room, read],
                    )?;
                    Ok(Vec::new())
                }
            },
            Awaiting::KeyCount => {
                if let Ok(Reply::KeyPackageCount { count }) = result {
                    self.top_up_keys(c, count as usize)?;
                }
                Ok(Vec::new())
            }
            Awaiting::GroupInfo { room, item } => {
                self.on_group_info(c, room, item, result, now_ms, jitter)
            }
            Awaiting::Claim { user } => {
                let Some(claiming) = self.claiming.as_mut() else { return Ok(Vec::new()) };
                match result {
                    Ok(Reply::KeyPackages { packages }) => {
                        let me = group::device(c)?.id();
                        self.claimed.insert((claiming.room, user));
                        // My own device is in the group already (or setting it up); a
                        // KeyPackage that would not verify (expired, say) leaves its device
                        // out instead of failing the commit for everyone.
                        claiming.packages.extend(
                            packages
                                .into_vec()
                                .into_iter()
                                .filter(|p| (user, p.device.0) != (me.user, me.device))
                                .map(|p| p.package.into_vec())
                                .filter(|p| crate::e2ee::check_key_package(p).is_ok()),
                        );
                        Ok(Vec::new())
                    }
                    Ok(other) => Err(super::unexpected(other)),
                    Err(error) => {
                        let claiming = self.claiming.take();
                        if let Some(Claiming { item: Some((id, attempts)), .. }) = claiming {
                            failed(c, id, &error, attempts, now_ms, jitter)?;
                        }
                        Ok(vec![Event::OutboxChanged])
                    }
                }
            }
            Awaiting::Handshake { room, item, group, kind } => {
                self.on_handshake(c, room, item, group, kind, result, now_ms, jitter)
            }
            // A failure (a server without encryption, a full stock) leaves the KeyPackages
            // for the next connection; nothing else waits on them.
            Awaiting::KeysPublished | Awaiting::Delivered | Awaiting::Ping => Ok(Vec::new()),
        }
    }

    /// The room's GroupInfo: join its group by external commit, or — it has none — claim
    /// the members' KeyPackages to set it up (only for a message waiting to be sealed).
    fn on_group_info(
        &mut self,
        c: &mut Connection,
        room: RoomKey,
        item: Waiting,
        result: Result<Reply, ErrorInfo>,
        now_ms: i64,
        jitter: f64,
    ) -> Result<Vec<Event>, Error> {
        let group_info = match result {
            Ok(Reply::GroupInfo { group_info }) => group_info,
            Ok(other) => return Err(super::unexpected(other)),
            Err(error) => {
                if let Some((id, attempts)) = item {
                    failed(c, id, &error, attempts, now_ms, jitter)?;
                }
                return Ok(vec![Event::OutboxChanged]);
            }
        };
        let Some((server, _)) = cursor(c, room)? else { return Ok(Vec::new()) };
        if group::current(c, room)?.is_some() {
            // A Welcome for this device arrived meanwhile: it is in the group already.
            return Ok(Vec::new());
        }
        match group_info {
            Some(info) => {
                let tx = c.transaction()?;
                let roster = crate::apply::roster(&tx, room)?;
                let joined = group::device(&tx)?.join_external(&tx, info.as_bytes(), &roster);
                let commit = match joined {
                    Ok(commit) => commit,
                    Err(crate::e2ee::E2eeError::Storage(e)) => return Err(e.into()),
                    // A GroupInfo that does not verify: the server's word is not enough.
                    Err(e) => {
                        tracing::warn!(error = %e, "A room's GroupInfo this device cannot join from.");
                        let error = ErrorInfo::new(ErrorCode::InvalidInput, e.to_string());
                        if let Some((id, attempts)) = item {
                            failed(&tx, id, &error, attempts, now_ms, jitter)?;
                        }
                        tx.commit()?;
                        return Ok(vec![Event::OutboxChanged]);
                    }
                };
                let request = group::request(server, &commit)?;
                group::remember_pending(&tx, room, &commit.group, &request)?;
                tx.commit()?;
                let kind = Handshake::External;
                self.next =
                    Some((request, Awaiting::Handshake { room, item, group: commit.group, kind }));
            }
            // Nobody set the group up yet: a message to seal, or a call, does it now.
            None if item.is_some() || group::wanted(c, room)? => {
                let users = group::active_members(c, room)?.into_iter().collect();
                self.claiming =
                    Some(Claiming { room, item, group: None, users, packages: Vec::new() });
            }
            None => {}
        }
        Ok(Vec::new())
    }

    /// Makes new KeyPackages (and a last-resort one) when the server has fewer than
    /// [`crate::e2ee::KEY_PACKAGE_LOW`] left.
    fn top_up_keys(&mut self, c: &mut Connection, count: usize) -> Result<(), Error> {
        if let Some(publish) = key_packages_to_publish(c, count)? {
            self.keys = Keys::ToPublish(publish);
        }
        Ok(())
    }

    fn on_joined(&mut self, c: &mut Connection, reply: Reply) -> Result<Vec<Event>, Error> {
        let Reply::Joined { rooms, left, confirmed, .. } = reply else {
            return Err(Error::Network(format!("unexpected reply to join: {reply:?}")));
        };
        let tx = c.transaction()?;
        for conf in confirmed.iter() {
            apply::confirmed(&tx, &conf.request, conf.room.0, conf.seq)?;
        }
        for room in left.iter() {
            tx.execute(
                "UPDATE rooms SET member = 0, request_from = NULL WHERE server_id = ?1",
                [room.0],
            )?;
        }
        let mut targets = Vec::new();
        for head in rooms.iter() {
            targets.push(apply::local_room(&tx, head.room.0)?);
        }
        tx.commit()?;
        // Receipts move without new events: refresh the watermarks where they matter.
        targets.extend(rooms_awaiting_receipts(c, self.me)?);
        for room in targets {
            if !self.catch_up.contains(&room) {
                self.catch_up.push_back(room);
            }
        }
        self.joined = true;
        let mut events = vec![Event::RoomsChanged, Event::OutboxChanged];
        // The connection banner follows the live session only: a one-off sync beside it
        // (adding a contact, a script's `sync`) must not make it say "syncing" or "offline".
        if self.live {
            events.push(Event::Connection { state: ConnectionState::Syncing });
        }
        self.announce_online(&mut events);
        Ok(events)
    }

    fn announce_online(&mut self, events: &mut Vec<Event>) {
        if self.live && !self.online && self.catch_up.is_empty() {
            self.online = true;
            events.push(Event::Connection { state: ConnectionState::Online });
        }
    }

    fn on_page(
        &mut self,
        c: &mut Connection,
        room: RoomKey,
        after: u64,
        result: Result<Reply, ErrorInfo>,
    ) -> Result<Vec<Event>, Error> {
        let reply = match result {
            Ok(reply) => reply,
            // No longer a member (removed meanwhile): keep what we have, stop syncing it.
            Err(e) if e.code == ErrorCode::Forbidden => {
                c.execute("UPDATE rooms SET member = 0 WHERE id = ?1", [room])?;
                let mut events = vec![Event::RoomsChanged];
                self.announce_online(&mut events);
                return Ok(events);
            }
            Err(e) => return Err(Error::Server(e)),
        };
        let Reply::Page { events, last_seq, members, .. } = reply else {
            return Err(Error::Network("unexpected reply to catch-up".into()));
        };
        let count = events.len();
        let last = events.last().map_or(after, |e| e.seq);
        let tx = c.transaction()?;
        apply::page(&tx, room, self.me, &events)?;
        apply::members(&tx, room, self.me, &members)?;
        tx.commit()?;
        if count > 0 {
            self.delivered_dirty.insert(room);
        }
        if count > 0 && last < last_seq {
            self.catch_up.push_front(room);
        }
        let mut out = vec![
            Event::TimelineChanged { room },
            Event::RoomsChanged,
            Event::SyncProgress { done: last, total: last_seq },
        ];
        self.announce_online(&mut out);
        Ok(out)
    }

    fn on_push(&mut self, c: &mut Connection, frame: ServerFrame) -> Result<Vec<Event>, Error> {
        let me = self.me;
        match frame {
            ServerFrame::Event { event } => {
                let tx = c.transaction()?;
                let room = apply::local_room(&tx, event.room.0)?;
                let applied = apply::event(&tx, room, me, &event)?;
                if applied == Applied::Applied {
                    apply::skip_known(&tx, room)?;
                }
                tx.commit()?;
                match applied {
                    Applied::Applied => {
                        self.delivered_dirty.insert(room);
                        Ok(vec![Event::TimelineChanged { room }, Event::RoomsChanged])
                    }
                    Applied::Gap => {
                        self.gaps.insert(room);
                        Ok(Vec::new())
                    }
                    Applied::Duplicate => Ok(Vec::new()),
                }
            }
            ServerFrame::Receipt { room, user, delivered, read } => {
                let tx = c.transaction()?;
                let room = apply::local_room(&tx, room.0)?;
                apply::watermarks(&tx, room, user.0, delivered, read)?;
                if user.0 == me {
                    apply::my_read_marker(&tx, room, me, read)?;
                } else {
                    apply::refresh_others(&tx, room, me)?;
                }
                tx.commit()?;
                Ok(vec![Event::TimelineChanged { room }, Event::RoomsChanged])
            }
            ServerFrame::Typing { room, user, active } => {
                let room = apply::local_room(c, room.0)?;
                let name: String = c
                    .query_row("SELECT username FROM users WHERE id = ?1", [user.0], |r| r.get(0))
                    .optional()?
                    .unwrap_or_else(|| user.to_string());
                Ok(vec![Event::Typing { room, user: name, active }, Event::RoomsChanged])
            }
            // Calls are handled by the call machine (a later issue); nothing to store here.
            ServerFrame::Signal { .. }
            | ServerFrame::Reply { .. }
            | ServerFrame::Closing { .. } => Ok(Vec::new()),
        }
    }
}

/// The request topping this device's KeyPackages up to [`crate::e2ee::KEY_PACKAGE_STOCK`]
/// (plus a last-resort one) when the server holds `count`, fewer than
/// [`crate::e2ee::KEY_PACKAGE_LOW`]; their private keys are in the profile before the public
/// ones leave it.
pub(super) fn key_packages_to_publish(
    c: &mut Connection,
    count: usize,
) -> Result<Option<Request>, Error> {
    use crate::e2ee::{KEY_PACKAGE_LOW, KEY_PACKAGE_STOCK};
    if count >= KEY_PACKAGE_LOW {
        return Ok(None);
    }
    let internal = |e: &dyn std::fmt::Display| Error::Internal(e.to_string());
    let tx = c.transaction()?;
    let mut packages = group::device(&tx)?.key_packages(&tx, KEY_PACKAGE_STOCK - count, true)?;
    tx.commit()?;
    let last_resort = packages.pop().map(Blob::new).transpose().map_err(|e| internal(&e))?;
    let packages: Vec<_> =
        packages.into_iter().map(Blob::new).collect::<Result<_, _>>().map_err(|e| internal(&e))?;
    let packages = List::new(packages).map_err(|e| internal(&e))?;
    Ok(Some(Request::PublishKeyPackages { packages, last_resort }))
}

/// Gives the local echo of outbox item `id` its uploaded media, so the sender's timeline
/// knows the media id (and opens the cached copy) before the server's event arrives.
fn attach_to_echo(c: &Connection, id: i64, media: i64) -> Result<(), Error> {
    let echo: Option<(i64, Vec<u8>)> = c
        .query_row(
            "SELECT e.id, e.content FROM events e JOIN outbox o ON o.request_id = e.request_id
             WHERE o.id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((event, content)) = echo else { return Ok(()) };
    let internal = |e: &dyn std::fmt::Display| Error::Internal(e.to_string());
    let mut content: tidings_proto::EventContent =
        codec::decode(&content).map_err(|e| internal(&e))?;
    if let tidings_proto::EventContent::Message { attachments, .. } = &mut content {
        *attachments = List::new(vec![tidings_proto::MediaId(media)]).map_err(|e| internal(&e))?;
    }
    let content = codec::encode(&content).map_err(|e| internal(&e))?;
    c.execute("UPDATE events SET content = ?2 WHERE id = ?1", params![event, content])?;
    Ok(())
}

/// Fails the outbox item waiting on a room's group (if one is) for a reason found here,
/// before anything was sent: a permanent failure, like the server's for the same cause.
fn fail_waiting(c: &Connection, item: Waiting, code: ErrorCode, reason: &str) -> Result<(), Error> {
    match item {
        Some((id, attempts)) => failed(c, id, &ErrorInfo::new(code, reason), attempts, 0, 0.0),
        None => Ok(()),
    }
}

/// Records a failed attempt: retry later, or mark the item failed with the server's reason.
fn failed(
    c: &Connection,
    id: i64,
    error: &ErrorInfo,
    attempts: u32,
    now_ms: i64,
    jitter: f64,
) -> Result<(), Error> {
    let (reason, code) = (error.to_string(), error.code.as_str());
    match outbox::after_failure(error.code, attempts, jitter) {
        Verdict::RetryAfter(delay) => c.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_attempt_ms = ?2, error = ?3,
                 error_code = ?4
             WHERE id = ?1",
            params![id, now_ms + delay.as_millis() as i64, reason, code],
        )?,
        Verdict::Fail => c.execute(
            "UPDATE outbox SET attempts = attempts + 1, state = 'failed', error = ?2,
                 error_code = ?3
             WHERE id = ?1",
            params![id, reason, code],
        )?,
    };
    Ok(())
}

/// Join with the store's cursors and the outbox's request ids.
fn join_request(c: &Connection, token: &str) -> Result<Request, Error> {
    let mut st = c.prepare_cached(
        "SELECT server_id, synced_seq FROM rooms WHERE server_id IS NOT NULL AND member = 1",
    )?;
    let cursors: Vec<RoomCursor> = st
        .query_map([], |r| {
            Ok(RoomCursor { room: RoomId(r.get(0)?), last_seq: r.get::<_, i64>(1)? as u64 })
        })?
        .collect::<Result<_, _>>()?;
    let mut st = c.prepare_cached("SELECT request_id FROM outbox ORDER BY id LIMIT ?1")?;
    let unconfirmed: Vec<RequestId> = st
        .query_map([tidings_proto::limits::MAX_JOIN_UNCONFIRMED as i64], |r| {
            r.get::<_, Vec<u8>>(0)
        })?
        .filter_map(|r| r.ok())
        .filter_map(|b| <[u8; 16]>::try_from(b.as_slice()).ok().map(RequestId))
        .collect();
    let internal = |e: tidings_proto::bounded::TooLong| Error::Internal(e.to_string());
    Ok(Request::Join {
        token: Token(Text::new(token.to_owned()).map_err(internal)?),
        protocol_version: tidings_proto::PROTOCOL_VERSION,
        rooms: List::new(cursors).map_err(internal)?,
        unconfirmed: List::new(unconfirmed).map_err(internal)?,
    })
}

/// A member room's server id and synced seq.
fn cursor(c: &Connection, room: RoomKey) -> Result<Option<(i64, u64)>, Error> {
    Ok(c.prepare_cached(
        "SELECT server_id, synced_seq FROM rooms
             WHERE id = ?1 AND member = 1 AND server_id IS NOT NULL",
    )?
    .query_row([room], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
    .optional()?)
}

/// A member room whose group exists without this device in it (apply saw its handshakes), or
/// whose group a call wants, not tried over this connection yet: (local id, server id).
fn room_to_join(
    c: &Connection,
    tried: &BTreeSet<RoomKey>,
) -> Result<Option<(RoomKey, i64)>, Error> {
    let mut st = c.prepare_cached(
        "SELECT id, server_id FROM rooms
         WHERE (mls_absent = 1 OR mls_wanted = 1) AND mls_group IS NULL AND member = 1
           AND server_id IS NOT NULL
         ORDER BY id",
    )?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    for row in rows {
        let (room, server) = row?;
        if !tried.contains(&room) {
            return Ok(Some((room, server)));
        }
    }
    Ok(None)
}

/// A room whose read marker moved since it was last sent.
fn read_to_send(c: &Connection) -> Result<Option<(RoomKey, i64, i64)>, Error> {
    Ok(c.prepare_cached(
        "SELECT id, server_id, read_seq FROM rooms
             WHERE server_id IS NOT NULL AND member = 1 AND read_seq > read_sent_seq
             ORDER BY id LIMIT 1",
    )?
    .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
    .optional()?)
}

/// Rooms whose watermarks may have moved without new events: another member has not read my
/// newest message yet, or I have unread messages (another device of mine may have read them).
fn rooms_awaiting_receipts(c: &Connection, me: i64) -> Result<Vec<RoomKey>, Error> {
    let mut st = c.prepare_cached(
        "SELECT r.id FROM rooms r
         WHERE r.server_id IS NOT NULL AND r.member = 1
           AND (r.unread > 0 OR EXISTS (SELECT 1 FROM members m WHERE m.room_id = r.id AND m.active = 1
                       AND m.user_id != ?1
                       AND m.read_seq < (SELECT coalesce(max(e.seq), 0) FROM events e
                                         WHERE e.room_id = r.id AND e.sender = ?1)))",
    )?;
    let rows = st.query_map([me], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The outbox as the scheduler sees it.
fn load_items(c: &Connection) -> Result<Vec<Item>, Error> {
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
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What outbox item `id` needs next: its upload, or its stored operation with its room's
/// server id (a room made offline gets its id when its CreateRoom is confirmed, earlier in
/// the same queue) and its uploaded media filled in; `None` while that room has no server id.
fn prepared_request(c: &Connection, id: i64) -> Result<Option<(Step, u32)>, Error> {
    type Row =
        (Vec<u8>, Option<i64>, u32, Option<String>, Option<i64>, Option<String>, Option<Vec<u8>>);
    let (op, room, attempts, upload_path, upload_media, session, sealed): Row = c.query_row(
        "SELECT operation, room_id, attempts, upload_path, upload_media, upload_session, sealed
         FROM outbox WHERE id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
    )?;
    let mut request: Request = codec::decode(&op).map_err(|e| Error::Internal(e.to_string()))?;
    if let (Some(path), None) = (upload_path, upload_media) {
        let sealing = match &request {
            Request::Send { body, .. } => crate::media::Sealing::of(body.as_bytes())?,
            _ => None,
        };
        return Ok(Some((Step::Upload(path, session, sealing), attempts)));
    }
    if let (Some(media), Request::Send { attachments, .. }) = (upload_media, &mut request) {
        *attachments = List::new(vec![tidings_proto::MediaId(media)])
            .map_err(|e| Error::Internal(e.to_string()))?;
    }
    let server: Option<i64> = match room {
        Some(room) => {
            c.query_row("SELECT server_id FROM rooms WHERE id = ?1", [room], |r| r.get(0))?
        }
        None => None,
    };
    let target = request.room_mut();
    if let Some(target) = target {
        match server {
            Some(server) => *target = RoomId(server),
            None => return Ok(None),
        }
    }
    // Every message goes out sealed for its room's group, and every resend with the same
    // sealed bytes.
    if let (Request::Send { body, .. }, Some(room)) = (&mut request, room) {
        match sealed {
            Some(sealed) => {
                *body =
                    tidings_proto::Body::new(sealed).map_err(|e| Error::Internal(e.to_string()))?;
            }
            None => return Ok(Some((Step::Seal(room), attempts))),
        }
    }
    Ok(Some((Step::Send(request), attempts)))
}
