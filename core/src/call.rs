//! The call machine: one device's calls, sans-IO (shared/DESIGN.md §4).
//!
//! A plain struct driven by [`CallMachine::handle`] with the time passed in, drained with
//! [`CallMachine::poll_output`]; the driver arms a timer for [`CallMachine::poll_timeout`].
//! No tokio, no clock, no randomness (call ids come from the caller of `handle`), nothing
//! persisted here: records come out as outputs for the driver to store.
//!
//! **Inputs, by source.**
//! - Local user: [`Local::Call`], [`Local::Accept`], [`Local::Decline`], [`Local::Hangup`].
//! - Remote signal ([`Remote`]): `Inquire`, `Grant`, `Refuse`, `Offer`, `Answer`,
//!   `Candidate`, `Hangup`, `Cancel` from the other party — or from another device of mine
//!   (`Hangup{answered_elsewhere | declined_elsewhere}`).
//! - Timer: the deadline of the current phase passed ([`Input::Timer`]).
//! - Media engine ([`Media`]): offer/answer created, a local candidate, connected, failed.
//!
//! **Phases.** Caller: `Inquiring` (Inquire sent; nothing rings anywhere) → `Offering`
//! (Granted: only now is the offer made and sent; the callee rings) → `Connecting` (answer
//! applied) → `Connected`. Callee: `Reserved` (Granted: the call id is held, every signal
//! of another call id is dropped, a reservation timeout runs) → `Ringing` (offer arrived) →
//! `Answering` (accepted: only now does media start) → `Connected`. Any phase can end; an
//! ended call's id is remembered so its late signals (a stale Inquire too) are dropped.
//!
//! **Busy and glare** are decided at the Inquire, before any media: an Inquire while a call
//! is active is refused `busy` (the callee gets a "called while busy" event) — unless it
//! comes from the very peer I am inquiring, which is glare: the larger call id wins and
//! continues, the smaller is abandoned by its caller, equal ids end both; so exactly one call
//! survives. **Candidates** that arrive before the remote description are buffered per call
//! (at most [`MAX_EARLY_CANDIDATES`]) and handed to media after it; candidates of other call
//! ids are dropped. **Records** (missed, declined, busy, cancelled, completed with its
//! duration) are emitted by the caller's device only, so a call is recorded once.

pub mod audio;
pub mod driver;
pub mod media;

pub use driver::{AudioFactory, CallOptions};

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use tidings_proto::{
    bounded::Blob, CallId, CallOutcome, CallSignal, HangupReason, RefuseReason, SignalBlob,
};

/// Candidates kept for a call before its remote description is known.
pub const MAX_EARLY_CANDIDATES: usize = 64;
/// Ended call ids remembered to drop their late signals.
const REMEMBERED_CALLS: usize = 64;

/// How long each waiting phase may last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Caller: for a Grant or Refuse after the Inquire.
    pub grant: Duration,
    /// Callee: for the offer after granting.
    pub reservation: Duration,
    /// Both: for an answer while it rings.
    pub ring: Duration,
    /// Both: from answer to media connected.
    pub connect: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            grant: Duration::from_secs(10),
            reservation: Duration::from_secs(10),
            ring: Duration::from_secs(45),
            connect: Duration::from_secs(20),
        }
    }
}

/// The other party of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Peer {
    /// The room the call belongs to.
    pub room: i64,
    /// The other user.
    pub user: i64,
    /// Their device, once known (from their first signal).
    pub device: Option<i64>,
}

/// What the machine is fed.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The user did something.
    Local(Local),
    /// A signal arrived.
    Remote(Remote),
    /// The deadline from [`CallMachine::poll_timeout`] passed.
    Timer,
    /// The media engine reports.
    Media(Media),
}

/// What a front end asks of the call driver ([`driver`]).
#[derive(Debug)]
pub(crate) enum Command {
    /// A user action for the machine.
    Local(Local),
    /// Mute or unmute the microphone (media only; the machine does not care).
    Mute(bool),
}

/// The call driver's command channel, once calls are started; held by the client.
pub(crate) type CommandSlot = std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedSender<Command>>>;

/// The local user's actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// Call `user` in `room` with the new id `call`.
    Call {
        /// A fresh call id (random, from the driver).
        call: CallId,
        /// The room.
        room: i64,
        /// Whom.
        user: i64,
        /// With video.
        video: bool,
    },
    /// Answer the ringing call.
    Accept,
    /// Decline the ringing call.
    Decline,
    /// End or cancel the current call.
    Hangup,
}

/// A signal from another device (of the peer, or of mine).
#[derive(Debug, Clone, PartialEq)]
pub struct Remote {
    /// The room.
    pub room: i64,
    /// Sender.
    pub from_user: i64,
    /// Sender's device.
    pub from_device: i64,
    /// The call.
    pub call: CallId,
    /// The signal.
    pub signal: CallSignal,
}

/// What the media engine reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Media {
    /// The offer asked for is ready.
    OfferCreated(SignalBlob),
    /// The answer asked for is ready.
    AnswerCreated(SignalBlob),
    /// A local ICE candidate to send.
    LocalCandidate(SignalBlob),
    /// Media flows.
    Connected,
    /// Media could not be established or was lost.
    Failed,
    /// The room's encryption group was not ready in time, so the SDP and candidates could
    /// not be sealed (they never go in clear).
    NotEncrypted,
}

/// What the machine asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send a signal: to one device, or to all devices of `to_user` when `to_device` is
    /// `None`.
    Signal {
        /// Room.
        room: i64,
        /// Recipient.
        to_user: i64,
        /// One of their devices, or all.
        to_device: Option<i64>,
        /// The call.
        call: CallId,
        /// The signal.
        signal: CallSignal,
    },
    /// Tell the UI.
    Ui(CallEvent),
    /// Drive the media engine.
    Media(MediaCommand),
    /// Store this call's record in its room (caller's device only).
    Record {
        /// The room.
        room: i64,
        /// The call.
        call: CallId,
        /// How it ended.
        outcome: CallOutcome,
        /// Talk time (0 unless completed).
        duration: Duration,
        /// Video call.
        video: bool,
    },
}

/// Commands for the media engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaCommand {
    /// Caller, after Grant: create the offer (report [`Media::OfferCreated`]).
    CreateOffer {
        /// With video.
        video: bool,
    },
    /// Callee, after Accept: apply the offer and create the answer.
    CreateAnswer {
        /// The offer.
        offer: SignalBlob,
    },
    /// Caller: apply the answer.
    ApplyAnswer {
        /// The answer.
        answer: SignalBlob,
    },
    /// Add a remote candidate (only after the remote description).
    AddCandidate {
        /// The candidate.
        candidate: SignalBlob,
    },
    /// Tear media down.
    Stop,
}

/// What the UI shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum CallEvent {
    /// Outgoing: asking whether they are free ("requesting…").
    Requesting {
        /// The call.
        call: CallId,
        /// Whom.
        peer: Peer,
    },
    /// Outgoing: their device rings.
    RingingRemote {
        /// The call.
        call: CallId,
    },
    /// Incoming: ring.
    Ringing {
        /// The call.
        call: CallId,
        /// Who calls.
        peer: Peer,
        /// With video.
        video: bool,
    },
    /// Answered; media is being set up.
    Connecting {
        /// The call.
        call: CallId,
    },
    /// Talking.
    Connected {
        /// The call.
        call: CallId,
    },
    /// Over.
    Ended {
        /// The call.
        call: CallId,
        /// Why.
        reason: EndReason,
    },
    /// Someone called while I was in another call.
    CalledWhileBusy {
        /// Their call.
        call: CallId,
        /// Who.
        peer: Peer,
    },
}

/// Why a call ended, as the UI says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum EndReason {
    /// I hung up (or cancelled).
    HungUp,
    /// They hung up.
    RemoteHungUp,
    /// They cancelled before I answered.
    Cancelled,
    /// I declined.
    Declined,
    /// They declined.
    RemoteDeclined,
    /// They are in another call.
    Busy,
    /// No device of theirs answered the Inquire.
    Unavailable,
    /// Nobody answered in time.
    NoAnswer,
    /// Another device of mine answered.
    AnsweredElsewhere,
    /// Another device of mine declined.
    DeclinedElsewhere,
    /// Media failed.
    Failed,
    /// Both called each other; the other call won (or a tie ended both).
    Glare,
    /// Granted, but no offer came.
    ReservationExpired,
    /// The room's encryption was not ready in time: nothing of the call went unsealed.
    NotEncrypted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Caller,
    Callee,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Inquiring,
    Offering { offer_sent: bool },
    Connecting,
    Reserved,
    Ringing { offer: SignalBlob },
    Answering,
    Connected { since: Instant },
}

impl Phase {
    /// Whether media has the remote description, so candidates may go to it: the callee
    /// hands it the offer at Accept, the caller the answer when it arrives.
    fn remote_described(&self) -> bool {
        match self {
            Phase::Connecting | Phase::Answering | Phase::Connected { .. } => true,
            Phase::Inquiring | Phase::Offering { .. } | Phase::Reserved | Phase::Ringing { .. } => {
                false
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Active {
    call: CallId,
    peer: Peer,
    role: Role,
    video: bool,
    phase: Phase,
    deadline: Option<Instant>,
    early_candidates: Vec<SignalBlob>,
}

/// The call machine of one device.
#[derive(Debug)]
pub struct CallMachine {
    me: i64,
    timeouts: Timeouts,
    active: Option<Active>,
    /// Ended (or refused, or abandoned) call ids, newest last.
    ended: VecDeque<CallId>,
    out: VecDeque<Output>,
}

impl CallMachine {
    /// The machine of a device of user `me`.
    pub fn new(me: i64, timeouts: Timeouts) -> Self {
        Self { me, timeouts, active: None, ended: VecDeque::new(), out: VecDeque::new() }
    }

    /// Whether a call is active (any phase from Inquiring or Reserved on).
    pub fn is_busy(&self) -> bool {
        self.active.is_some()
    }

    /// The active call id, if any.
    pub fn active_call(&self) -> Option<CallId> {
        self.active.as_ref().map(|a| a.call)
    }

    /// The next output to act on.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to feed [`Input::Timer`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.active.as_ref().and_then(|a| a.deadline)
    }

    /// Feeds one input at time `now`.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match input {
            Input::Local(local) => self.on_local(now, local),
            Input::Remote(remote) => self.on_remote(now, remote),
            Input::Timer => self.on_timer(now),
            Input::Media(media) => self.on_media(now, media),
        }
    }

    fn emit(&mut self, output: Output) {
        self.out.push_back(output);
    }

    fn signal(&mut self, peer: Peer, call: CallId, signal: CallSignal) {
        self.emit(Output::Signal {
            room: peer.room,
            to_user: peer.user,
            to_device: peer.device,
            call,
            signal,
        });
    }

    fn remember(&mut self, call: CallId) {
        if !self.ended.contains(&call) {
            self.ended.push_back(call);
            if self.ended.len() > REMEMBERED_CALLS {
                self.ended.pop_front();
            }
        }
    }

    /// Ends the active call: stops media if it may run, tells the UI, records it (caller).
    fn end(&mut self, now: Instant, reason: EndReason, outcome: Option<CallOutcome>) {
        let Some(active) = self.active.take() else { return };
        let media_ran = matches!(
            active.phase,
            Phase::Offering { .. } | Phase::Connecting | Phase::Answering | Phase::Connected { .. }
        );
        if media_ran {
            self.emit(Output::Media(MediaCommand::Stop));
        }
        self.emit(Output::Ui(CallEvent::Ended { call: active.call, reason }));
        if let (Role::Caller, Some(outcome)) = (active.role, outcome) {
            let duration = match active.phase {
                Phase::Connected { since } => now.saturating_duration_since(since),
                Phase::Inquiring
                | Phase::Offering { .. }
                | Phase::Connecting
                | Phase::Reserved
                | Phase::Ringing { .. }
                | Phase::Answering => Duration::ZERO,
            };
            let outcome = if duration > Duration::ZERO { CallOutcome::Completed } else { outcome };
            self.emit(Output::Record {
                room: active.peer.room,
                call: active.call,
                outcome,
                duration,
                video: active.video,
            });
        }
        self.remember(active.call);
    }

    fn on_local(&mut self, now: Instant, local: Local) {
        let phase = self.active.as_ref().map(|a| (a.role, a.phase.clone(), a.peer, a.call));
        match (phase, local) {
            (None, Local::Call { call, room, user, video }) => {
                let peer = Peer { room, user, device: None };
                self.active = Some(Active {
                    call,
                    peer,
                    role: Role::Caller,
                    video,
                    phase: Phase::Inquiring,
                    deadline: Some(now + self.timeouts.grant),
                    early_candidates: Vec::new(),
                });
                self.signal(peer, call, CallSignal::Inquire { video });
                self.emit(Output::Ui(CallEvent::Requesting { call, peer }));
            }
            // One call at a time: a second Call while active does nothing.
            (Some(_), Local::Call { .. }) => {}
            (Some((Role::Callee, Phase::Ringing { offer }, peer, call)), Local::Accept) => {
                if let Some(a) = self.active.as_mut() {
                    a.phase = Phase::Answering;
                    a.deadline = Some(now + self.timeouts.connect);
                }
                self.emit(Output::Media(MediaCommand::CreateAnswer { offer }));
                self.flush_candidates();
                // My other devices stop ringing.
                let mine = Peer { room: peer.room, user: self.me, device: None };
                let elsewhere = CallSignal::Hangup { reason: HangupReason::AnsweredElsewhere };
                self.signal(mine, call, elsewhere);
                self.emit(Output::Ui(CallEvent::Connecting { call }));
            }
            (Some(_), Local::Accept) | (None, Local::Accept) | (None, Local::Decline) => {}
            (
                Some((Role::Callee, Phase::Ringing { .. } | Phase::Reserved, peer, call)),
                Local::Decline,
            ) => {
                self.signal(peer, call, CallSignal::Hangup { reason: HangupReason::Declined });
                let mine = Peer { room: peer.room, user: self.me, device: None };
                let elsewhere = CallSignal::Hangup { reason: HangupReason::DeclinedElsewhere };
                self.signal(mine, call, elsewhere);
                self.end(now, EndReason::Declined, None);
            }
            (Some(_), Local::Decline) => {}
            (
                Some((Role::Caller, Phase::Inquiring | Phase::Offering { .. }, peer, call)),
                Local::Hangup,
            ) => {
                self.signal(peer, call, CallSignal::Cancel {});
                self.end(now, EndReason::HungUp, Some(CallOutcome::Cancelled));
            }
            (
                Some((
                    _,
                    Phase::Connecting | Phase::Answering | Phase::Connected { .. },
                    peer,
                    call,
                )),
                Local::Hangup,
            ) => {
                self.signal(peer, call, CallSignal::Hangup { reason: HangupReason::Normal });
                self.end(now, EndReason::HungUp, Some(CallOutcome::Cancelled));
            }
            (
                Some((Role::Callee, Phase::Reserved | Phase::Ringing { .. }, peer, call)),
                Local::Hangup,
            ) => {
                self.signal(peer, call, CallSignal::Hangup { reason: HangupReason::Declined });
                self.end(now, EndReason::Declined, None);
            }
            (Some((Role::Caller, Phase::Reserved | Phase::Ringing { .. }, ..)), Local::Hangup)
            | (
                Some((Role::Callee, Phase::Inquiring | Phase::Offering { .. }, ..)),
                Local::Hangup,
            ) => {
                // Phases a role never has.
                self.end(now, EndReason::HungUp, None);
            }
            (None, Local::Hangup) => {}
        }
    }

    fn flush_candidates(&mut self) {
        let candidates = self.active.as_mut().map(|a| std::mem::take(&mut a.early_candidates));
        for candidate in candidates.into_iter().flatten() {
            self.emit(Output::Media(MediaCommand::AddCandidate { candidate }));
        }
    }

    fn on_remote(&mut self, now: Instant, r: Remote) {
        if self.ended.contains(&r.call) {
            tracing::debug!(call = r.call, "Dropped a signal of an ended call.");
            return;
        }
        let from_me = r.from_user == self.me;
        let active = self.active.as_ref().map(|a| (a.role, a.phase.clone(), a.peer, a.call));
        match (active, r.signal.clone()) {
            (None, CallSignal::Inquire { video }) if !from_me => {
                self.reserve(now, &r, video);
            }
            (Some((role, phase, peer, call)), CallSignal::Inquire { video }) if !from_me => {
                if role == Role::Callee && r.call == call {
                    return; // A duplicate of the Inquire being handled.
                }
                let glare =
                    role == Role::Caller && phase == Phase::Inquiring && peer.user == r.from_user;
                if !glare {
                    // Busy: refuse, and tell the user someone tried.
                    let caller =
                        Peer { room: r.room, user: r.from_user, device: Some(r.from_device) };
                    self.signal(caller, r.call, CallSignal::Refuse { reason: RefuseReason::Busy });
                    self.emit(Output::Ui(CallEvent::CalledWhileBusy {
                        call: r.call,
                        peer: caller,
                    }));
                    self.remember(r.call);
                } else if call > r.call {
                    // Glare, and mine wins: their Inquire is dropped; they will drop theirs.
                    self.remember(r.call);
                } else if call < r.call {
                    // Glare, theirs wins: abandon mine and take theirs as if free.
                    self.abandon(EndReason::Glare);
                    self.reserve(now, &r, video);
                } else {
                    self.abandon(EndReason::Glare);
                }
            }
            (_, CallSignal::Inquire { .. }) => {}
            (Some((_, _, _, call)), _) if call != r.call => {
                tracing::debug!(call = r.call, "Dropped a signal of another call.");
            }
            (None, _) => tracing::debug!(call = r.call, "Dropped a signal of an unknown call."),
            (Some((role, phase, peer, call)), signal) => {
                self.on_signal(now, role, phase, peer, call, from_me, r.from_device, signal);
            }
        }
    }

    /// Abandons the active call without a record (glare), telling the UI.
    fn abandon(&mut self, reason: EndReason) {
        if let Some(a) = self.active.take() {
            self.emit(Output::Ui(CallEvent::Ended { call: a.call, reason }));
            self.remember(a.call);
        }
    }

    /// Free: reserve the call id and grant (nothing rings until the offer).
    fn reserve(&mut self, now: Instant, r: &Remote, video: bool) {
        let peer = Peer { room: r.room, user: r.from_user, device: Some(r.from_device) };
        self.active = Some(Active {
            call: r.call,
            peer,
            role: Role::Callee,
            video,
            phase: Phase::Reserved,
            deadline: Some(now + self.timeouts.reservation),
            early_candidates: Vec::new(),
        });
        self.signal(peer, r.call, CallSignal::Grant {});
    }

    #[allow(clippy::too_many_arguments)]
    fn on_signal(
        &mut self,
        now: Instant,
        role: Role,
        phase: Phase,
        peer: Peer,
        call: CallId,
        from_me: bool,
        from_device: i64,
        signal: CallSignal,
    ) {
        // Another device of mine answered or declined: stop ringing here.
        if from_me {
            if let (Role::Callee, CallSignal::Hangup { reason }) = (role, &signal) {
                let why = match reason {
                    HangupReason::DeclinedElsewhere => EndReason::DeclinedElsewhere,
                    // My other device took the call (and may have ended it since).
                    HangupReason::AnsweredElsewhere
                    | HangupReason::Normal
                    | HangupReason::Declined
                    | HangupReason::NoAnswer
                    | HangupReason::Failed
                    | HangupReason::Other => EndReason::AnsweredElsewhere,
                };
                self.end(now, why, None);
            }
            return;
        }
        // Only the peer's device that took part may speak for the call (after the first).
        let from_peer_device = peer.device.is_none_or(|d| d == from_device);
        match (role, phase.clone(), signal) {
            (Role::Caller, Phase::Inquiring, CallSignal::Grant {}) => {
                if let Some(a) = self.active.as_mut() {
                    a.phase = Phase::Offering { offer_sent: false };
                    a.deadline = Some(now + self.timeouts.ring);
                }
                let video = self.active.as_ref().is_some_and(|a| a.video);
                self.emit(Output::Media(MediaCommand::CreateOffer { video }));
                self.emit(Output::Ui(CallEvent::RingingRemote { call }));
            }
            (Role::Caller, Phase::Inquiring, CallSignal::Refuse { reason }) => {
                let (why, outcome) = match reason {
                    RefuseReason::Busy => (EndReason::Busy, CallOutcome::Busy),
                    RefuseReason::Declined => (EndReason::RemoteDeclined, CallOutcome::Declined),
                    RefuseReason::Unavailable | RefuseReason::Other => {
                        (EndReason::Unavailable, CallOutcome::Missed)
                    }
                };
                self.end(now, why, Some(outcome));
            }
            // More Grants (their other devices) or Refusals after the first Grant: the offer
            // goes to all their devices; a device that refused simply will not ring.
            (
                Role::Caller,
                Phase::Offering { .. },
                CallSignal::Grant {} | CallSignal::Refuse { .. },
            ) => {}
            (Role::Caller, Phase::Offering { .. }, CallSignal::Answer { sdp }) => {
                if let Some(a) = self.active.as_mut() {
                    a.phase = Phase::Connecting;
                    a.deadline = Some(now + self.timeouts.connect);
                    a.peer.device = Some(from_device);
                }
                self.emit(Output::Media(MediaCommand::ApplyAnswer { answer: sdp }));
                self.flush_candidates();
                self.emit(Output::Ui(CallEvent::Connecting { call }));
            }
            (Role::Callee, Phase::Reserved, CallSignal::Offer { sdp }) => {
                if let Some(a) = self.active.as_mut() {
                    a.phase = Phase::Ringing { offer: sdp };
                    a.deadline = Some(now + self.timeouts.ring);
                }
                let video = self.active.as_ref().is_some_and(|a| a.video);
                self.emit(Output::Ui(CallEvent::Ringing { call, peer, video }));
            }
            (_, _, CallSignal::Candidate { candidate })
                if from_peer_device || role == Role::Caller =>
            {
                let Some(a) = self.active.as_mut() else { return };
                if a.phase.remote_described() {
                    self.emit(Output::Media(MediaCommand::AddCandidate { candidate }));
                } else if a.early_candidates.len() < MAX_EARLY_CANDIDATES {
                    a.early_candidates.push(candidate);
                }
            }
            (_, _, CallSignal::Candidate { .. }) => {}
            (
                Role::Callee,
                Phase::Reserved | Phase::Ringing { .. } | Phase::Answering,
                CallSignal::Cancel {},
            ) => {
                self.end(now, EndReason::Cancelled, None);
            }
            (_, _, CallSignal::Hangup { reason }) if from_peer_device => {
                let (why, outcome) = match reason {
                    HangupReason::Declined | HangupReason::DeclinedElsewhere => {
                        (EndReason::RemoteDeclined, CallOutcome::Declined)
                    }
                    HangupReason::NoAnswer => (EndReason::NoAnswer, CallOutcome::Missed),
                    HangupReason::Failed => (EndReason::Failed, CallOutcome::Missed),
                    HangupReason::Normal
                    | HangupReason::AnsweredElsewhere
                    | HangupReason::Other => (EndReason::RemoteHungUp, CallOutcome::Cancelled),
                };
                // A decline from one of their devices while others may still ring: the
                // caller ends only when it is not talking to another device already.
                if role == Role::Caller
                    && matches!(phase, Phase::Connecting | Phase::Connected { .. })
                    && why == EndReason::RemoteDeclined
                {
                    return;
                }
                self.end(now, why, Some(outcome));
            }
            (Role::Caller, _, CallSignal::Cancel {}) => {}
            (_, _, CallSignal::Hangup { .. }) => {}
            // Everything else is out of order for its phase: drop it.
            (
                Role::Caller,
                _,
                CallSignal::Inquire { .. }
                | CallSignal::Grant {}
                | CallSignal::Refuse { .. }
                | CallSignal::Offer { .. }
                | CallSignal::Answer { .. },
            )
            | (
                Role::Callee,
                _,
                CallSignal::Inquire { .. }
                | CallSignal::Grant {}
                | CallSignal::Refuse { .. }
                | CallSignal::Offer { .. }
                | CallSignal::Answer { .. }
                | CallSignal::Cancel {},
            ) => {
                tracing::debug!(call, "Dropped a signal out of order.");
            }
        }
    }

    fn on_timer(&mut self, now: Instant) {
        let Some(a) = self.active.as_ref() else { return };
        if a.deadline.is_none_or(|d| now < d) {
            return;
        }
        let (role, phase, peer, call) = (a.role, a.phase.clone(), a.peer, a.call);
        match (role, phase) {
            (Role::Caller, Phase::Inquiring) => {
                self.signal(peer, call, CallSignal::Cancel {});
                self.end(now, EndReason::Unavailable, Some(CallOutcome::Missed));
            }
            (Role::Caller, Phase::Offering { .. }) => {
                self.signal(peer, call, CallSignal::Hangup { reason: HangupReason::NoAnswer });
                self.end(now, EndReason::NoAnswer, Some(CallOutcome::Missed));
            }
            (Role::Callee, Phase::Reserved) => {
                // Granted, and no offer came: release the reservation quietly.
                let _ = self.active.take();
                self.remember(call);
                self.emit(Output::Ui(CallEvent::Ended {
                    call,
                    reason: EndReason::ReservationExpired,
                }));
            }
            (Role::Callee, Phase::Ringing { .. }) => {
                self.end(now, EndReason::NoAnswer, None);
            }
            (_, Phase::Connecting | Phase::Answering) => {
                self.signal(peer, call, CallSignal::Hangup { reason: HangupReason::Failed });
                self.end(now, EndReason::Failed, Some(CallOutcome::Missed));
            }
            (_, Phase::Connected { .. }) => {
                if let Some(a) = self.active.as_mut() {
                    a.deadline = None;
                }
            }
            (Role::Caller, Phase::Reserved | Phase::Ringing { .. })
            | (Role::Callee, Phase::Inquiring | Phase::Offering { .. }) => {
                self.end(now, EndReason::Failed, None);
            }
        }
    }

    fn on_media(&mut self, now: Instant, media: Media) {
        let Some(a) = self.active.as_ref() else { return };
        let (role, phase, peer, call) = (a.role, a.phase.clone(), a.peer, a.call);
        match (role, phase, media) {
            (Role::Caller, Phase::Offering { offer_sent: false }, Media::OfferCreated(sdp)) => {
                if let Some(a) = self.active.as_mut() {
                    a.phase = Phase::Offering { offer_sent: true };
                }
                // To every device of theirs: each granted device rings.
                let all = Peer { device: None, ..peer };
                self.signal(all, call, CallSignal::Offer { sdp });
            }
            (Role::Callee, Phase::Answering, Media::AnswerCreated(sdp)) => {
                self.signal(peer, call, CallSignal::Answer { sdp });
            }
            (
                _,
                Phase::Offering { .. }
                | Phase::Connecting
                | Phase::Answering
                | Phase::Connected { .. },
                Media::LocalCandidate(candidate),
            ) => {
                let to = if role == Role::Caller && peer.device.is_none() {
                    Peer { device: None, ..peer }
                } else {
                    peer
                };
                self.signal(to, call, CallSignal::Candidate { candidate });
            }
            (_, Phase::Connecting | Phase::Answering, Media::Connected) => {
                if let Some(a) = self.active.as_mut() {
                    a.phase = Phase::Connected { since: now };
                    a.deadline = None;
                }
                self.emit(Output::Ui(CallEvent::Connected { call }));
            }
            (_, _, Media::Failed) => {
                self.signal(peer, call, CallSignal::Hangup { reason: HangupReason::Failed });
                self.end(now, EndReason::Failed, Some(CallOutcome::Missed));
            }
            (_, _, Media::NotEncrypted) => {
                self.signal(peer, call, CallSignal::Hangup { reason: HangupReason::Failed });
                self.end(now, EndReason::NotEncrypted, Some(CallOutcome::Missed));
            }
            (
                _,
                _,
                Media::OfferCreated(_)
                | Media::AnswerCreated(_)
                | Media::LocalCandidate(_)
                | Media::Connected,
            ) => {
                tracing::debug!(call, "Dropped a media report out of phase.");
            }
        }
    }
}

/// A signal blob from text (tests and drivers).
pub fn blob(text: &str) -> SignalBlob {
    Blob::new(text.as_bytes().to_vec()).unwrap_or_default()
}

#[cfg(test)]
#[path = "call_tests.rs"]
mod tests;
