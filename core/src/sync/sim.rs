//! Deterministic simulation of sync and the outbox.
//!
//! Real [`Machine`]s over real profile databases (SQLite files, opened, crashed and reopened
//! as the app does), driven like the connection loop drives them, talking through a simulated
//! network to a model of the server's room log. One seeded RNG decides everything: what users
//! do (send; edit, delete for everyone or react to a message, crate::relations; read; leave a
//! room on one device while the other device keeps sending to it),
//! when frames move, and the faults — links cut with frames in flight, half-open links that
//! swallow frames until a reply times out or a ping goes unanswered, devices killed (memory
//! gone, the database as last committed) and time jumping past retries. Then the network
//! heals, and the run must converge:
//!
//! - every message sent is in its room's log exactly once, or failed with a stored reason (it
//!   was sent to a room its user had left); none lost, none twice;
//! - every device holds exactly its rooms' logs, in the server's order, with no echo left
//!   but the failed ones;
//! - a message's tick never moves backwards on its sender's device;
//! - every device of a member shows each message the same: its last edit, its reactions,
//!   erased where its sender deleted it.
//!
//! The server here is a model that follows docs/protocol.md (a gap-free seq per room, one
//! answer per (device, request id), watermarks that only rise, pushes to the user's other
//! connections), so a seed runs in milliseconds and replays exactly; the real server is held
//! to the same invariants over real sockets by the crash and fault tests in cli/tests.
//!
//! `SIM_SEEDS=N` runs N seeds (default 1,000); a failure prints `SIM_SEED=…`, which replays
//! that seed alone (`SIM_TRACE=1` prints every frame as it moves):
//!
//! ```text
//! SIM_SEED=42 SIM_TRACE=1 cargo test -p tidings-core --lib sim -- --nocapture
//! ```

#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    path::{Path, PathBuf},
};

use rand::{rngs::StdRng, Rng, SeedableRng};
use rusqlite::OptionalExtension;
use tidings_proto::{
    bounded::{List, Text},
    ClientFrame, Confirmed, DeviceId, ErrorCode, ErrorInfo, EventContent, Member, Reply, Request,
    RoomEvent, RoomHead, RoomId, ServerFrame, UserId, UserRef,
};

use super::{Machine, Poll};
use crate::{account::Account, client::request_string, Client, Event, MessageState, RoomKey};

const USERS: [(i64, &str); 3] = [(1, "ann"), (2, "bob"), (3, "cy")];
/// (device id, user): ann has two devices.
const DEVICES: [(i64, i64); 4] = [(11, 1), (12, 2), (13, 3), (14, 1)];
/// Members of server rooms 1, 2, 3.
const ROOMS: [&[i64]; 3] = [&[1, 2], &[1, 2, 3], &[2, 3]];
/// Ann's second device leaves room 2 at some point, while her first may still send to it.
const LEAVER: usize = 3;
const LEFT_ROOM: i64 = 2;

const STEPS: usize = 300;
const REPLY_TIMEOUT_MS: i64 = 15_000;
const PING_AFTER_MS: i64 = 20_000;
const START_MS: i64 = 1_800_000_000_000;

// ---- the model server -------------------------------------------------------------------

struct ServerRoom {
    /// Active members and their (delivered, read) watermarks.
    members: BTreeMap<i64, (u64, u64)>,
    log: Vec<RoomEvent>,
    /// The room's MLS group once set up: its epoch and latest GroupInfo.
    group: Option<(u64, Vec<u8>)>,
}

struct Model {
    rooms: Vec<ServerRoom>,
    answers: HashMap<(i64, [u8; 16]), (i64, u64)>,
    /// Per device: one-time KeyPackages, and the last-resort one.
    key_packages: HashMap<i64, Stock>,
}

/// A device's KeyPackages on the model server: one-time ones, and the last-resort one.
type Stock = (VecDeque<Vec<u8>>, Option<Vec<u8>>);

/// A frame for every connection of `user`, except the one that caused it.
struct Push {
    user: i64,
    frame: ServerFrame,
}

fn info(code: ErrorCode, message: &str) -> ErrorInfo {
    ErrorInfo { code, message: Text::new(message).unwrap(), retry_after_ms: None }
}

fn stale() -> ErrorInfo {
    info(ErrorCode::StaleEpoch, "the room's group moved on: catch up and rebuild")
}

fn user_ref(id: i64) -> UserRef {
    let name = USERS.iter().find(|u| u.0 == id).unwrap().1;
    UserRef { id: UserId(id), username: Text::new(name).unwrap() }
}

impl Model {
    fn new() -> Self {
        let rooms = ROOMS
            .iter()
            .enumerate()
            .map(|(i, m)| ServerRoom {
                members: m.iter().map(|u| (*u, (0, 0))).collect(),
                // As on the real server, a room's log starts with its creation.
                log: vec![RoomEvent {
                    room: RoomId(i as i64 + 1),
                    seq: 1,
                    sender: UserId(m[0]),
                    device: DeviceId(DEVICES.iter().find(|d| d.1 == m[0]).unwrap().0),
                    request: tidings_proto::RequestId([i as u8 + 1; 16]),
                    at_ms: START_MS,
                    content: EventContent::Created {
                        kind: tidings_proto::RoomKind::Group,
                        name: None,
                        members: List::new(m.iter().map(|u| user_ref(*u)).collect()).unwrap(),
                        requested: List::empty(),
                    },
                }],
                group: None,
            })
            .collect();
        Self { rooms, answers: HashMap::new(), key_packages: HashMap::new() }
    }

    fn room(&mut self, id: RoomId) -> Option<&mut ServerRoom> {
        let i = usize::try_from(id.0).ok()?.checked_sub(1)?;
        self.rooms.get_mut(i)
    }

    /// Handles one request of `device` (of `user`) at `now`.
    fn handle(
        &mut self,
        device: i64,
        user: i64,
        request: Request,
        now: i64,
    ) -> (Result<Reply, ErrorInfo>, Vec<Push>) {
        let forbidden = || info(ErrorCode::Forbidden, "not a member of this room");
        let mut pushes = Vec::new();
        let result = match request {
            Request::Join { rooms, unconfirmed, .. } => {
                let known: BTreeMap<i64, u64> =
                    rooms.iter().map(|c| (c.room.0, c.last_seq)).collect();
                let mut heads = Vec::new();
                for (i, r) in self.rooms.iter().enumerate() {
                    let id = i as i64 + 1;
                    let last = r.log.len() as u64;
                    if r.members.contains_key(&user) && known.get(&id).is_none_or(|k| *k < last) {
                        heads.push(RoomHead { room: RoomId(id), last_seq: last });
                    }
                }
                let left: Vec<RoomId> = known
                    .keys()
                    .filter(|id| !self.rooms[**id as usize - 1].members.contains_key(&user))
                    .map(|id| RoomId(*id))
                    .collect();
                let confirmed: Vec<Confirmed> = unconfirmed
                    .iter()
                    .filter_map(|rid| {
                        self.answers.get(&(device, rid.0)).map(|(room, seq)| Confirmed {
                            request: *rid,
                            room: RoomId(*room),
                            seq: *seq,
                        })
                    })
                    .collect();
                Ok(Reply::Joined {
                    user: user_ref(user),
                    device: DeviceId(device),
                    rooms: List::new(heads).unwrap(),
                    left: List::new(left).unwrap(),
                    confirmed: List::new(confirmed).unwrap(),
                })
            }
            Request::CatchUp { room, after, limit } => match self.room(room) {
                Some(r) if r.members.contains_key(&user) => {
                    let events: Vec<RoomEvent> =
                        r.log.iter().skip(after as usize).take(limit as usize).cloned().collect();
                    let members = r
                        .members
                        .iter()
                        .map(|(u, (d, rd))| Member { user: user_ref(*u), delivered: *d, read: *rd })
                        .collect();
                    Ok(Reply::Page {
                        room,
                        events: List::new(events).unwrap(),
                        last_seq: r.log.len() as u64,
                        members: List::new(members).unwrap(),
                    })
                }
                _ => Err(forbidden()),
            },
            Request::Send { request, room, body, attachments, .. } => {
                // The epoch rule, after idempotency: a resend is answered as the first time.
                let answered = self.answers.contains_key(&(device, request.0));
                match self.room(room).map(|r| &r.group) {
                    Some(Some((epoch, _))) if !answered => {
                        match crate::e2ee::header(body.as_bytes()) {
                            Ok((_, at, false)) if at == *epoch => None,
                            Ok((_, _, false)) => Some(stale()),
                            _ => Some(info(ErrorCode::InvalidInput, "not an MLS message")),
                        }
                    }
                    _ => None,
                }
                .map_or_else(
                    || {
                        let content = EventContent::Message { body, attachments };
                        self.mutate(device, user, request.0, room, content, now, &mut pushes)
                    },
                    Err,
                )
            }
            Request::Mls { request, room, commit, welcome, group_info } => {
                let answered = self.answers.contains_key(&(device, request.0));
                let (_, info_epoch) =
                    crate::e2ee::group_info_header(group_info.as_bytes()).unwrap();
                let check = match (self.room(room).map(|r| &r.group), &commit) {
                    _ if answered => Ok(()),
                    (Some(None), None) => Ok(()),
                    (Some(Some((epoch, _))), Some(commit)) => {
                        match crate::e2ee::header(commit.as_bytes()).unwrap() {
                            (_, at, true) if at == *epoch => Ok(()),
                            _ => Err(stale()),
                        }
                    }
                    (Some(Some(_)), None) => Err(stale()),
                    (Some(None), Some(_)) => {
                        Err(info(ErrorCode::InvalidInput, "the room's group is not set up yet"))
                    }
                    (None, _) => Err(forbidden()),
                };
                match check {
                    Ok(()) => {
                        let content = EventContent::Mls { commit, welcome };
                        let logged =
                            self.mutate(device, user, request.0, room, content, now, &mut pushes);
                        if logged.is_ok() && !answered {
                            let r = self.room(room).unwrap();
                            r.group = Some((info_epoch, group_info.into_vec()));
                        }
                        logged
                    }
                    Err(e) => Err(e),
                }
            }
            Request::GroupInfo { room } => match self.room(room) {
                Some(r) if r.members.contains_key(&user) => {
                    let group_info = r
                        .group
                        .as_ref()
                        .map(|(_, info)| tidings_proto::MlsBlob::new(info.clone()).unwrap());
                    Ok(Reply::GroupInfo { group_info })
                }
                _ => Err(forbidden()),
            },
            Request::PublishKeyPackages { packages, last_resort } => {
                let stock = self.key_packages.entry(device).or_default();
                stock.0.extend(packages.into_vec().into_iter().map(|p| p.into_vec()));
                if let Some(last) = last_resort {
                    stock.1 = Some(last.into_vec());
                }
                Ok(Reply::KeyPackageCount { count: stock.0.len() as u32 })
            }
            Request::ClaimKeyPackages { user: claimed } => {
                let mut packages = Vec::new();
                for (id, _) in DEVICES.iter().filter(|(_, u)| *u == claimed.0) {
                    let Some(stock) = self.key_packages.get_mut(id) else { continue };
                    let Some(package) = stock.0.pop_front().or_else(|| stock.1.clone()) else {
                        continue;
                    };
                    packages.push(tidings_proto::DeviceKeyPackage {
                        device: DeviceId(*id),
                        package: tidings_proto::KeyPackageBlob::new(package).unwrap(),
                    });
                }
                Ok(Reply::KeyPackages { packages: List::new(packages).unwrap() })
            }
            Request::Leave { request, room } => {
                let content = EventContent::Left { user: UserId(user) };
                self.mutate(device, user, request.0, room, content, now, &mut pushes)
            }
            Request::Receipt { room, delivered, read } => match self.room(room) {
                Some(r) if r.members.contains_key(&user) => {
                    let head = r.log.len() as u64;
                    let (old_d, old_r) = r.members[&user];
                    let new_r = read.unwrap_or(0).min(head).max(old_r);
                    let new_d = delivered.unwrap_or(0).min(head).max(old_d).max(new_r);
                    if (new_d, new_r) != (old_d, old_r) {
                        r.members.insert(user, (new_d, new_r));
                        for u in r.members.keys() {
                            let frame = ServerFrame::Receipt {
                                room,
                                user: UserId(user),
                                delivered: new_d,
                                read: new_r,
                            };
                            pushes.push(Push { user: *u, frame });
                        }
                    }
                    Ok(Reply::Done {})
                }
                _ => Err(forbidden()),
            },
            Request::Ping { nonce } => Ok(Reply::Pong { nonce }),
            other => Err(info(
                ErrorCode::InvalidInput,
                &format!("the simulation does not model {}", other.kind()),
            )),
        };
        (result, pushes)
    }

    /// A room-log mutation with idempotency: a resend gets the recorded answer.
    #[allow(clippy::too_many_arguments)]
    fn mutate(
        &mut self,
        device: i64,
        user: i64,
        request: [u8; 16],
        room: RoomId,
        content: EventContent,
        now: i64,
        pushes: &mut Vec<Push>,
    ) -> Result<Reply, ErrorInfo> {
        if let Some((room, seq)) = self.answers.get(&(device, request)) {
            return Ok(Reply::Logged { room: RoomId(*room), seq: *seq });
        }
        let r = match self.room(room) {
            Some(r) if r.members.contains_key(&user) => r,
            _ => return Err(info(ErrorCode::Forbidden, "not a member of this room")),
        };
        let seq = r.log.len() as u64 + 1;
        let leaving = matches!(content, EventContent::Left { .. });
        let event = RoomEvent {
            room,
            seq,
            sender: UserId(user),
            device: DeviceId(device),
            request: tidings_proto::RequestId(request),
            at_ms: now,
            content,
        };
        r.log.push(event.clone());
        for u in r.members.keys() {
            pushes.push(Push { user: *u, frame: ServerFrame::Event { event: event.clone() } });
        }
        if leaving {
            r.members.remove(&user);
        }
        self.answers.insert((device, request), (room.0, seq));
        Ok(Reply::Logged { room, seq })
    }
}

// ---- devices and links --------------------------------------------------------------------

struct Link {
    to_server: VecDeque<ClientFrame>,
    to_client: VecDeque<ServerFrame>,
    /// Joined on the server side: pushes reach it.
    joined: bool,
    /// Half-open: frames go in and nothing comes out.
    black_hole: bool,
    /// Last time a frame arrived from the server (or the link opened).
    heard_ms: i64,
    /// When the request in flight was sent.
    sent_ms: i64,
}

struct Device {
    id: i64,
    user: i64,
    dir: PathBuf,
    client: Client,
    machine: Option<Machine>,
    link: Option<Link>,
    reconnect_ms: i64,
    failures: u32,
    /// Best tick seen per request id of my own messages.
    ticks: HashMap<String, MessageState>,
}

/// A message a user sent: the device, its request id and its text.
struct Sent {
    device: usize,
    request_id: String,
    text: String,
}

fn rank(state: MessageState) -> u8 {
    match state {
        MessageState::Pending | MessageState::Failed => 0,
        MessageState::Sent => 1,
        MessageState::Delivered => 2,
        MessageState::Read => 3,
    }
}

struct World {
    rng: StdRng,
    rt: tokio::runtime::Runtime,
    now: i64,
    model: Model,
    devices: Vec<Device>,
    sent: Vec<Sent>,
    /// Edits, deletions and reactions sent (`text`: what they did, for messages).
    related: Vec<Sent>,
    left: bool,
}

type Check = Result<(), String>;

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

impl World {
    fn new(seed: u64, root: &Path) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let devices: Vec<Device> = DEVICES
            .iter()
            .map(|(id, user)| {
                let dir = root.join(format!("device-{id}"));
                let client = Client::open(&dir).unwrap();
                let account = Account {
                    server: "sim://".into(),
                    pin: None,
                    user_id: *user,
                    username: user_ref(*user).username.into_string(),
                    device_id: *id,
                    token: format!("{id}.secret"),
                };
                rt.block_on(client.save_account(account)).unwrap();
                Device {
                    id: *id,
                    user: *user,
                    dir,
                    client,
                    machine: None,
                    link: None,
                    reconnect_ms: START_MS,
                    failures: 0,
                    ticks: HashMap::new(),
                }
            })
            .collect();
        let mut model = Model::new();
        // Each device published KeyPackages when it signed in (core/src/sessions.rs).
        for dev in &devices {
            let publish = dev
                .client
                .db_blocking(|c| super::machine::key_packages_to_publish(c, 0))
                .unwrap()
                .unwrap();
            let (reply, _) = model.handle(dev.id, dev.user, publish, START_MS);
            assert!(reply.is_ok());
        }
        Self {
            rng: StdRng::seed_from_u64(seed),
            rt,
            now: START_MS,
            model,
            devices,
            sent: Vec::new(),
            related: Vec::new(),
            left: false,
        }
    }

    /// Ends a device's connection (both ends) and schedules the reconnect with backoff.
    fn disconnect(&mut self, d: usize) {
        let dev = &mut self.devices[d];
        if dev.link.take().is_some() {
            dev.machine = None;
            let jitter: f64 = self.rng.random();
            dev.reconnect_ms =
                self.now + crate::outbox::backoff(dev.failures, jitter).as_millis() as i64;
            dev.failures = dev.failures.saturating_add(1);
        }
    }

    /// Kill -9: memory gone, the database as last committed.
    fn crash(&mut self, d: usize) {
        self.disconnect(d);
        let dev = &mut self.devices[d];
        dev.client = Client::open(&dev.dir).unwrap();
    }

    /// What the connection loop does between frames: connect when due, send what the machine
    /// asks, ping a silent link, give up on a reply that does not come.
    fn service(&mut self, d: usize) -> Check {
        let now = self.now;
        let dev = &mut self.devices[d];
        if dev.link.is_none() {
            if now < dev.reconnect_ms {
                return Ok(());
            }
            dev.link = Some(Link {
                to_server: VecDeque::new(),
                to_client: VecDeque::new(),
                joined: false,
                black_hole: false,
                heard_ms: now,
                sent_ms: now,
            });
            dev.machine = Some(Machine::new(dev.user, format!("{}.secret", dev.id), true));
        }
        let (Some(link), Some(machine)) = (dev.link.as_mut(), dev.machine.as_mut()) else {
            return Ok(());
        };
        if machine.awaiting_reply() && now - link.sent_ms > REPLY_TIMEOUT_MS {
            self.disconnect(d);
            return Ok(());
        }
        let poll =
            dev.client.db_blocking(|c| machine.poll(c, now)).map_err(|e| format!("poll: {e}"))?;
        match poll {
            Poll::Send(frame) => {
                link.sent_ms = now;
                link.to_server.push_back(frame);
            }
            Poll::Idle { .. } if now - link.heard_ms >= PING_AFTER_MS => {
                if let Some(ping) = machine.ping(now as u64) {
                    link.sent_ms = now;
                    link.heard_ms = now;
                    link.to_server.push_back(ping);
                }
            }
            Poll::Idle { .. } | Poll::AwaitReply => {}
            Poll::Done => return Err("a live machine said done".into()),
            Poll::Upload { .. } => return Err("nothing in the simulation uploads".into()),
        }
        Ok(())
    }

    /// Moves one frame from device `d` to the server and queues the answers.
    fn deliver_up(&mut self, d: usize) {
        let (device, user) = (self.devices[d].id, self.devices[d].user);
        let Some(link) = self.devices[d].link.as_mut() else { return };
        let Some(frame) = link.to_server.pop_front() else { return };
        if link.black_hole {
            return;
        }
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!("{} device {device} ->: {frame:?}", self.now);
        }
        let joining = matches!(frame.request, Request::Join { .. });
        let (result, pushes) = self.model.handle(device, user, frame.request, self.now);
        if joining && result.is_ok() {
            link.joined = true;
        }
        link.to_client.push_back(ServerFrame::Reply { id: frame.id, result });
        for push in pushes {
            for (i, other) in self.devices.iter_mut().enumerate() {
                if i == d || other.user != push.user {
                    continue;
                }
                if let Some(l) = other.link.as_mut().filter(|l| l.joined && !l.black_hole) {
                    l.to_client.push_back(push.frame.clone());
                }
            }
        }
    }

    /// Moves one frame from the server to device `d` and applies it.
    fn deliver_down(&mut self, d: usize) -> Check {
        let now = self.now;
        let jitter: f64 = self.rng.random();
        let dev = &mut self.devices[d];
        let (Some(link), Some(machine)) = (dev.link.as_mut(), dev.machine.as_mut()) else {
            return Ok(());
        };
        if link.black_hole {
            return Ok(());
        }
        let Some(frame) = link.to_client.pop_front() else { return Ok(()) };
        link.heard_ms = now;
        if std::env::var_os("SIM_TRACE").is_some() {
            eprintln!("{now} -> device {}: {frame:?}", dev.id);
        }
        let result = dev.client.db_blocking(|c| machine.on_frame(c, frame, now, jitter));
        match result {
            Ok(events) => {
                let rooms: Vec<RoomKey> = events
                    .iter()
                    .filter_map(|e| match e {
                        Event::TimelineChanged { room } => Some(*room),
                        _ => None,
                    })
                    .collect();
                if !rooms.is_empty() {
                    self.check_ticks(d, Some(rooms), 8)?;
                }
            }
            Err(crate::Error::Server(_)) => self.disconnect(d),
            Err(e) => return Err(format!("device {d} failed to apply a frame: {e}")),
        }
        Ok(())
    }

    fn member_rooms(&self, d: usize) -> Vec<i64> {
        self.devices[d]
            .client
            .db_blocking(|c| {
                let mut st = c.prepare("SELECT id FROM rooms WHERE member = 1 AND server_id IS NOT NULL ORDER BY id").unwrap();
                let rooms: Vec<i64> = st.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect();
                Ok(rooms)
            })
            .unwrap()
    }

    /// No message of mine shows a lower tick than it has shown before.
    /// `rooms` (all when `None`), newest `limit` messages of each.
    fn check_ticks(&mut self, d: usize, rooms: Option<Vec<RoomKey>>, limit: usize) -> Check {
        let dev = &mut self.devices[d];
        let client = dev.client.clone();
        let rooms = match rooms {
            Some(rooms) => rooms,
            None => self
                .rt
                .block_on(client.rooms().list())
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|r| r.room)
                .collect(),
        };
        let me = user_ref(dev.user).username.into_string();
        for room in rooms {
            let messages = self
                .rt
                .block_on(client.room(room).timeline().page(None, limit))
                .map_err(|e| e.to_string())?;
            for m in messages.into_iter().filter(|m| m.sender == me) {
                let best = dev.ticks.entry(m.request_id.clone()).or_insert(m.state);
                ensure!(
                    rank(m.state) >= rank(*best),
                    "device {} saw message {} go back from {:?} to {:?}",
                    dev.id,
                    m.text,
                    best,
                    m.state
                );
                *best = m.state;
            }
        }
        Ok(())
    }

    /// A user does something on a random device; returns the device.
    fn user_action(&mut self) -> Result<usize, String> {
        let d = self.rng.random_range(0..self.devices.len());
        let rooms = self.member_rooms(d);
        if rooms.is_empty() {
            return Ok(d);
        }
        let room = rooms[self.rng.random_range(0..rooms.len())];
        let client = self.devices[d].client.clone();
        match self.rng.random_range(0..12) {
            0..=6 => {
                let text = format!("m{}-{}", self.devices[d].id, self.sent.len());
                match self.rt.block_on(client.room(room).send_queue().send_text(&text)) {
                    Ok(rid) => {
                        self.sent.push(Sent { device: d, request_id: rid.to_string(), text })
                    }
                    Err(crate::Error::NotAMember(_)) => {}
                    Err(e) => return Err(format!("send failed: {e}")),
                }
            }
            7..=8 => self.rt.block_on(client.room(room).mark_read()).map_err(|e| e.to_string())?,
            9..=10 => self.relate(d, room)?,
            _ if d == LEAVER && !self.left => {
                let local = self.local_room(d, LEFT_ROOM);
                if let Some(local) = local {
                    self.rt.block_on(client.room(local).leave()).map_err(|e| e.to_string())?;
                    self.left = true;
                }
            }
            _ => {}
        }
        Ok(d)
    }

    /// Device `d` edits or deletes one of its user's messages in `room`, or reacts to (or
    /// takes back a reaction to) someone's — also one still pending.
    fn relate(&mut self, d: usize, room: RoomKey) -> Check {
        let me = self.devices[d].user;
        let client = self.devices[d].client.clone();
        let messages: Vec<(Vec<u8>, i64)> = client
            .db_blocking(move |c| {
                let mut st = c.prepare(
                    "SELECT request_id, sender FROM events
                     WHERE room_id = ?1 AND is_message = 1 AND deleted = 0 ORDER BY position",
                )?;
                let rows = st.query_map([room], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .map_err(|e| e.to_string())?;
        if messages.is_empty() {
            return Ok(());
        }
        let (to, sender) = &messages[self.rng.random_range(0..messages.len())];
        let to = crate::stamp::request_id(to).ok_or("a request id")?;
        let queue = client.room(room).send_queue();
        let n = self.related.len();
        let (done, what) = match self.rng.random_range(0..4) {
            0 if *sender == me => {
                (self.rt.block_on(queue.delete_for_everyone(to)), "delete".into())
            }
            1 | 2 if *sender == me => {
                let text = format!("e{}-{n}", self.devices[d].id);
                (self.rt.block_on(queue.edit(to, &text)), text)
            }
            0 => (self.rt.block_on(queue.unreact(to, "👍")), "unreact".into()),
            _ => (self.rt.block_on(queue.react(to, "👍")), "react".into()),
        };
        match done {
            Ok(rid) => {
                self.related.push(Sent { device: d, request_id: rid.to_string(), text: what })
            }
            Err(crate::Error::NotAMember(_)) => {}
            Err(e) => return Err(format!("{what} failed: {e}")),
        }
        Ok(())
    }

    fn local_room(&self, d: usize, server: i64) -> Option<i64> {
        self.devices[d]
            .client
            .db_blocking(|c| {
                Ok(c.query_row("SELECT id FROM rooms WHERE server_id = ?1", [server], |r| r.get(0))
                    .optional()?)
            })
            .unwrap()
    }

    /// One random move of the faulty phase; only what it touched is serviced, or everything
    /// when time moved.
    fn step(&mut self) -> Check {
        let n = self.devices.len();
        let d = self.rng.random_range(0..n);
        match self.rng.random_range(0..100) {
            0..=19 => {
                let d = self.user_action()?;
                self.service(d)
            }
            20..=49 => {
                self.deliver_up(d);
                Ok(())
            }
            50..=84 => {
                self.deliver_down(d)?;
                self.service(d)
            }
            85..=89 => {
                let ms = self.rng.random_range(0..3_000);
                self.advance(ms)
            }
            90..=92 => {
                self.disconnect(d);
                Ok(())
            }
            93 => {
                if let Some(l) = self.devices[d].link.as_mut() {
                    l.black_hole = true;
                }
                Ok(())
            }
            94..=95 => {
                self.crash(d);
                Ok(())
            }
            _ => {
                let ms = self.rng.random_range(0..200);
                self.advance(ms)
            }
        }
    }

    fn advance(&mut self, ms: i64) -> Check {
        self.now += ms;
        for d in 0..self.devices.len() {
            self.service(d)?;
        }
        Ok(())
    }

    fn quiet(&self) -> bool {
        self.devices.iter().all(|dev| {
            let link_quiet = dev
                .link
                .as_ref()
                .is_some_and(|l| l.to_server.is_empty() && l.to_client.is_empty() && !l.black_hole);
            let machine_idle = dev.machine.as_ref().is_some_and(|m| !m.awaiting_reply());
            let outbox_done = dev
                .client
                .db_blocking(|c| {
                    Ok(c.query_row(
                        "SELECT count(*) FROM outbox WHERE state = 'pending'",
                        [],
                        |r| r.get::<_, i64>(0),
                    )?)
                })
                .unwrap()
                == 0;
            link_quiet && machine_idle && outbox_done
        })
    }

    /// Stops the faults and runs until nothing moves.
    fn converge(&mut self) -> Check {
        // Half-open links stay dead: a reply timeout or an unanswered ping ends them.
        for _ in 0..100_000 {
            let mut moves = Vec::new();
            for (d, dev) in self.devices.iter().enumerate() {
                if let Some(l) = &dev.link {
                    if !l.to_server.is_empty() {
                        moves.push((d, true));
                    }
                    if !l.to_client.is_empty() && !l.black_hole {
                        moves.push((d, false));
                    }
                }
            }
            if moves.is_empty() {
                if self.quiet() {
                    return Ok(());
                }
                self.advance(2_000)?;
                continue;
            }
            match moves[self.rng.random_range(0..moves.len())] {
                (d, true) => self.deliver_up(d),
                (d, false) => {
                    self.deliver_down(d)?;
                    self.service(d)?;
                }
            }
        }
        Err("did not converge after the faults stopped".into())
    }

    fn check(&mut self) -> Check {
        // Server side: each message at most once; every one present unless it failed.
        let mut on_server: HashMap<String, usize> = HashMap::new();
        for r in &self.model.rooms {
            for e in &r.log {
                if let EventContent::Message { .. } = &e.content {
                    *on_server.entry(e.request.to_string()).or_default() += 1;
                }
            }
        }
        for s in self.sent.iter().chain(&self.related) {
            let client = self.devices[s.device].client.clone();
            let outbox =
                self.rt.block_on(client.send_queue().items()).map_err(|e| e.to_string())?;
            let failed =
                outbox.iter().find(|o| o.request_id == s.request_id && o.state == "failed");
            let count = on_server.get(&s.request_id).copied().unwrap_or(0);
            match failed {
                Some(item) => {
                    ensure!(
                        count == 0,
                        "{} failed on device {} yet reached the server",
                        s.text,
                        s.device
                    );
                    ensure!(
                        item.error.as_deref().is_some_and(|e| !e.is_empty()),
                        "{} failed with no reason",
                        s.text
                    );
                }
                None => ensure!(count == 1, "{} is on the server {count} times", s.text),
            }
        }
        // Relations are messages of the log that the timeline shows with their message.
        let relations: std::collections::HashSet<String> =
            self.related.iter().map(|r| r.request_id.clone()).collect();
        // Every device of a member reads every message as it was written: sealed for the
        // room's group at flush, opened on the other devices, kept as written on the sender's
        // — unless its sender deleted it for everyone (then erased everywhere).
        // (Where a device's user is still a member: a deletion sent after leaving fails, and
        // only its own device erased the message.)
        let mut deleted = std::collections::HashSet::new();
        for dev in &self.devices {
            let erased: Vec<(i64, String)> = dev
                .client
                .db_blocking(|c| {
                    let mut st = c.prepare(
                        "SELECT r.server_id, e.request_id FROM events e
                         JOIN rooms r ON r.id = e.room_id WHERE e.deleted = 1",
                    )?;
                    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, Vec<u8>>(1)?)))?;
                    Ok(rows
                        .map(|r| r.map(|(room, id)| (room, request_string(&id))))
                        .collect::<Result<_, _>>()?)
                })
                .map_err(|e| e.to_string())?;
            for (room, request) in erased {
                if self.model.rooms[room as usize - 1].members.contains_key(&dev.user) {
                    deleted.insert(request);
                }
            }
        }
        for dev in &self.devices {
            let texts: HashMap<String, String> = dev
                .client
                .db_blocking(|c| {
                    let mut st = c.prepare("SELECT request_id, content FROM events")?;
                    let rows = st.query_map([], |r| {
                        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
                    })?;
                    let mut texts = HashMap::new();
                    for row in rows {
                        let (request, content) = row?;
                        if let Ok(EventContent::Message { body, .. }) =
                            tidings_proto::codec::decode::<EventContent>(&content)
                        {
                            texts.insert(
                                request_string(&request),
                                crate::apply::body_text(body.as_bytes()),
                            );
                        }
                    }
                    Ok(texts)
                })
                .map_err(|e| e.to_string())?;
            for s in &self.sent {
                let room = self
                    .model
                    .rooms
                    .iter()
                    .find(|r| r.log.iter().any(|e| e.request.to_string() == s.request_id));
                if deleted.contains(&s.request_id) {
                    continue;
                }
                if room.is_some_and(|r| r.members.contains_key(&dev.user)) {
                    let text = texts.get(&s.request_id);
                    ensure!(
                        text == Some(&s.text),
                        "device {} reads {} as {text:?}",
                        dev.id,
                        s.text
                    );
                }
            }
        }
        // Every device: exactly its rooms' logs, in order.
        for d in 0..self.devices.len() {
            let user = self.devices[d].user;
            for (i, r) in self.model.rooms.iter().enumerate() {
                let server_id = i as i64 + 1;
                let ever_member = ROOMS[i].contains(&user);
                if !ever_member {
                    continue;
                }
                let local: Vec<(u64, String)> = self.devices[d]
                    .client
                    .db_blocking(|c| {
                        let mut st = c.prepare(
                            "SELECT e.seq, e.request_id FROM events e JOIN rooms r ON r.id = e.room_id
                             WHERE r.server_id = ?1 AND e.seq IS NOT NULL ORDER BY e.position",
                        )?;
                        let rows = st.query_map([server_id], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?)))?;
                        Ok(rows
                            .map(|r| r.map(|(s, id)| (s, request_string(&id))))
                            .collect::<Result<Vec<_>, _>>()?)
                    })
                    .map_err(|e| e.to_string())?;
                // Handshakes of the room's group are part of the log, not of the timeline.
                let expected: Vec<(u64, String)> = r
                    .log
                    .iter()
                    .filter(|e| !matches!(e.content, EventContent::Mls { .. }))
                    .filter(|e| !relations.contains(&e.request.to_string()))
                    .map(|e| (e.seq, e.request.to_string()))
                    .collect();
                if r.members.contains_key(&user) {
                    let extra: Vec<String> = local
                        .iter()
                        .filter(|l| !expected.contains(l))
                        .map(|(seq, id)| {
                            let what = self.related.iter().find(|s| &s.request_id == id);
                            let what = what.map(|s| (self.devices[s.device].id, s.text.as_str()));
                            format!("#{seq} {what:?}")
                        })
                        .collect();
                    ensure!(
                        local == expected,
                        "device {} has room {server_id} as {:?}, the server {:?} ({extra:?})",
                        self.devices[d].id,
                        seqs(&local),
                        seqs(&expected)
                    );
                } else {
                    // A room left: what it has is the server's (a prefix, and my own
                    // messages confirmed past it), each at its seq.
                    ensure!(
                        local.iter().all(|(seq, id)| r
                            .log
                            .get(*seq as usize - 1)
                            .is_some_and(|e| &e.request.to_string() == id)),
                        "device {} has room {server_id} as {:?}, the server {:?}",
                        self.devices[d].id,
                        seqs(&local),
                        seqs(&expected)
                    );
                }
            }
            let echoes: i64 = self.devices[d]
                .client
                .db_blocking(|c| {
                    Ok(c.query_row(
                        "SELECT count(*) FROM events WHERE seq IS NULL AND security IS NULL",
                        [],
                        |r| r.get(0),
                    )?)
                })
                .unwrap();
            let failed: i64 = self.devices[d]
                .client
                .db_blocking(|c| {
                    Ok(c.query_row(
                        "SELECT count(*) FROM outbox WHERE state = 'failed'",
                        [],
                        |r| r.get(0),
                    )?)
                })
                .unwrap();
            ensure!(
                echoes <= failed,
                "device {} has {echoes} echoes left and {failed} failed items",
                self.devices[d].id
            );
            self.check_ticks(d, None, 100_000)?;
        }
        self.check_relations(&deleted)
    }

    /// Every device of a current member shows each message alike: the same last edit and
    /// reactions; a deleted one erased everywhere (only by its sender).
    fn check_relations(&self, deleted: &std::collections::HashSet<String>) -> Check {
        type Shown = (bool, Option<String>, Vec<(String, Vec<String>)>);
        let mut first: HashMap<String, (i64, Shown)> = HashMap::new();
        for dev in &self.devices {
            let me = dev.user;
            let shown: Vec<(i64, String, i64, Shown)> = dev
                .client
                .db_blocking(move |c| {
                    let mut st = c.prepare(
                        "SELECT e.room_id, r.server_id, e.request_id, e.deleted, e.sender
                         FROM events e JOIN rooms r ON r.id = e.room_id
                         WHERE e.is_message = 1 AND e.seq IS NOT NULL",
                    )?;
                    let rows = st.query_map([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get::<_, Vec<u8>>(2)?, r.get(3)?, r.get(4)?))
                    })?;
                    let mut out = Vec::new();
                    for row in rows {
                        let (room, server, request, erased, sender): (i64, i64, _, bool, i64) =
                            row?;
                        let edit = crate::relations::last_edit(c, &request)?;
                        let reactions = crate::relations::reactions(c, room, &request, me)?
                            .into_iter()
                            .map(|r| (r.emoji, r.users))
                            .collect();
                        out.push((
                            server,
                            request_string(&request),
                            sender,
                            (erased, edit, reactions),
                        ));
                    }
                    Ok(out)
                })
                .map_err(|e| e.to_string())?;
            for (server, request, sender, view) in shown {
                let room = &self.model.rooms[server as usize - 1];
                if !room.members.contains_key(&dev.user) {
                    continue;
                }
                if view.0 {
                    let by_sender = self
                        .related
                        .iter()
                        .any(|r| r.text == "delete" && self.devices[r.device].user == sender);
                    ensure!(
                        by_sender,
                        "device {} erased {request}, never deleted by its sender",
                        dev.id
                    );
                }
                ensure!(
                    view.0 == deleted.contains(&request),
                    "device {} shows {request} {}",
                    dev.id,
                    if view.0 { "erased" } else { "not erased" }
                );
                match first.get(&request) {
                    None => {
                        first.insert(request, (dev.id, view));
                    }
                    Some((other, seen)) => ensure!(
                        seen == &view,
                        "device {} shows {request} as {view:?}, device {other} as {seen:?}",
                        dev.id
                    ),
                }
            }
        }
        Ok(())
    }
}

fn seqs(events: &[(u64, String)]) -> Vec<u64> {
    events.iter().map(|e| e.0).collect()
}

/// One seed: a faulty run, then healing, then the invariants.
fn run_seed(seed: u64) -> Check {
    let root = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut world = World::new(seed, root.path());
    for _ in 0..STEPS {
        world.step()?;
    }
    world.converge()?;
    world.check()?;
    ensure!(!world.model.rooms.iter().all(|r| r.log.len() == 1), "nothing was sent");
    Ok(())
}

fn run_and_report(seed: u64) -> Option<String> {
    match std::panic::catch_unwind(|| run_seed(seed)) {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("SIM_SEED={seed}: {e}")),
        Err(_) => Some(format!("SIM_SEED={seed}: panicked")),
    }
}

#[test]
fn sync_and_outbox_converge_under_faults_for_every_seed() {
    if let Some(seed) = std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        if let Some(failure) = run_and_report(seed) {
            panic!("{failure}");
        }
        return;
    }
    let seeds: u64 = std::env::var("SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let failures: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..seeds)
                        .step_by(threads as usize)
                        .filter_map(run_and_report)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {seeds} seeds failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
