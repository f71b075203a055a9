//! The call driver: runs one device's [`CallMachine`] on the runtime.
//!
//! The machine decides; this task does the I/O it asks for and feeds back what happens:
//!
//! - **signals** out go to the client's [`crate::relay`], which the live sync session
//!   carries (one websocket for everything); the session hands every `Signal` push it
//!   receives to the relay, which hands it here;
//! - **media** commands go to a [`MediaSession`] (one per call, made when the machine asks
//!   for the offer or the answer, so nothing touches the network before Grant and Accept);
//!   its candidates, "connected" and "failed" come back as machine inputs;
//! - **timers**: the machine's next deadline is a branch of the task's `select!`;
//! - **UI** events become [`Event::Call`] on the client's event stream;
//! - **records** are queued in the outbox as `RecordCall` with a local echo, so a call's
//!   outcome reaches the room log exactly once even if the network is gone when it ends.
//!
//! - **sealing**: SDP and candidates go out sealed for the room's MLS group and signed by
//!   this device's leaf (`e2ee::signal`); what comes in is opened and checked against the
//!   device the server says sent it, or dropped. Nothing with SDP or a candidate goes in
//!   clear, nor is taken in clear: a room nobody has written in gets its group set up at the
//!   call's Inquire, and if it is not there in time the call ends as
//!   [`super::EndReason::NotEncrypted`].
//!
//! STUN/TURN servers come from the server (`IceServers`: TURN credentials in coturn's REST
//! scheme), fetched when calls start and again when the credentials near their expiry.
//! The machine works with local room keys and server user ids; this task translates rooms
//! at the edge.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use tidings_proto::{
    bounded::Text, CallId, CallOutcome, CallRecord, CallSignal, EventContent, Reply, Request,
    RoomId, SignalBlob, UserId,
};
use tokio::sync::mpsc;

use super::{
    audio::{AudioSink, AudioSource},
    media::{IceServer, MediaConfig, MediaError, MediaSession},
    CallEvent, CallMachine, Command, Input, Local, Media, MediaCommand, Output, Remote, Timeouts,
};
use crate::{
    e2ee::{self, LeafId},
    model::{Event, RoomKey},
    relay::Signal,
    send_queue::Target,
    Client, Error,
};

/// The tags sealed signals are bound to (e2ee::signal): an offer cannot be replayed as an
/// answer.
const OFFER: u8 = 1;
const ANSWER: u8 = 2;
const CANDIDATE: u8 = 3;

/// The blob a signal carries (SDP, a candidate) and its tag; `None` for signals without one.
fn blob_of(signal: &CallSignal) -> Option<(u8, &[u8])> {
    match signal {
        CallSignal::Offer { sdp } => Some((OFFER, sdp.as_bytes())),
        CallSignal::Answer { sdp } => Some((ANSWER, sdp.as_bytes())),
        CallSignal::Candidate { candidate } => Some((CANDIDATE, candidate.as_bytes())),
        _ => None,
    }
}

/// `signal` carrying `blob` instead of its own.
fn with_blob(signal: CallSignal, blob: SignalBlob) -> CallSignal {
    match signal {
        CallSignal::Offer { .. } => CallSignal::Offer { sdp: blob },
        CallSignal::Answer { .. } => CallSignal::Answer { sdp: blob },
        CallSignal::Candidate { .. } => CallSignal::Candidate { candidate: blob },
        other => other,
    }
}

/// How long a hung-up call's media stays open (silent) so the Hangup signal arrives first.
const MEDIA_LINGER: Duration = Duration::from_millis(1500);
/// Longest a media step (making the connection, an offer, an answer) may take.
const MEDIA_STEP: Duration = Duration::from_secs(5);
/// Longest a call's first sealed signal waits for its room's group to be set up.
const GROUP_WAIT: Duration = Duration::from_secs(5);
/// Longest a call waits for STUN/TURN servers that were not fetched yet.
const ICE_FETCH_WAIT: Duration = Duration::from_secs(3);

/// Makes a call's audio source and sink (the front end's choice: devices, a tone, a file).
pub type AudioFactory =
    Arc<dyn Fn() -> (Box<dyn AudioSource>, Box<dyn AudioSink>) + Send + Sync + 'static>;

/// How this device takes part in calls.
#[derive(Clone)]
pub struct CallOptions {
    /// Media settings. With no `ice_servers`, the server's are used.
    pub media: MediaConfig,
    /// Each call's audio.
    pub audio: AudioFactory,
    /// Phase timeouts.
    pub timeouts: Timeouts,
}

impl std::fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallOptions")
            .field("media", &self.media)
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Calls: taking part, calling, answering, hanging up.
    pub fn calls(&self) -> Calls<'_> {
        Calls { client: self }
    }
}

/// See [`Client::calls`].
#[derive(Debug, Clone, Copy)]
pub struct Calls<'a> {
    client: &'a Client,
}

impl Calls<'_> {
    /// Starts taking part in calls (needs a live sync session, [`crate::sync::run`], to
    /// carry the signals). Until this is called, calls to this device go unanswered.
    pub async fn start(&self, options: CallOptions) -> Result<(), Error> {
        let account = self.client.require_account().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        {
            let mut commands = self.slot()?;
            if commands.as_ref().is_some_and(|c| !c.is_closed()) {
                return Err(Error::Invalid("calls are already started".into()));
            }
            *commands = Some(tx);
        }
        let signals = self.client.relay.listen();
        tokio::spawn(drive(self.client.clone(), options, account.user_id, rx, signals));
        Ok(())
    }

    /// Stops taking part in calls: the current call's media closes and the driver ends.
    pub fn stop(&self) -> Result<(), Error> {
        *self.slot()? = None;
        Ok(())
    }

    fn slot(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, Option<mpsc::UnboundedSender<Command>>>, Error> {
        self.client.calls.lock().map_err(|_| Error::Internal("calls lock".into()))
    }

    fn command(&self, command: Command) -> Result<(), Error> {
        let commands = self.slot()?;
        let tx = commands.as_ref().ok_or_else(|| Error::Invalid("calls are not started".into()))?;
        tx.send(command).map_err(|_| Error::Internal("the call driver stopped".into()))
    }

    /// Calls `user` in `room` (in a direct room, `None` means the other member). The call's
    /// progress arrives as [`Event::Call`]; returns its id.
    pub async fn call(&self, room: RoomKey, user: Option<i64>) -> Result<CallId, Error> {
        let me = self.client.require_account().await?.user_id;
        let user = match user {
            Some(u) => u,
            None => {
                self.client
                    .db(move |c| {
                        let mut others = c
                            .prepare(
                                "SELECT user_id FROM members WHERE room_id = ?1 AND user_id != ?2",
                            )?
                            .query_map([room, me], |r| r.get::<_, i64>(0))?
                            .collect::<Result<Vec<_>, _>>()?;
                        match (others.pop(), others.is_empty()) {
                            (Some(u), true) => Ok(u),
                            _ => Err(Error::Invalid("say whom to call in a group".into())),
                        }
                    })
                    .await?
            }
        };
        if self.client.room(room).server_id().await?.is_none() {
            return Err(Error::Invalid("the room is not on the server yet; sync first".into()));
        }
        let call: CallId = rand::random::<u64>() >> 11; // exact in JSON numbers
        let local = Local::Call { call, room, user, video: false };
        self.command(Command::Local(local))?;
        Ok(call)
    }

    /// Answers the ringing call.
    pub fn accept(&self) -> Result<(), Error> {
        self.command(Command::Local(Local::Accept))
    }

    /// Declines the ringing call.
    pub fn decline(&self) -> Result<(), Error> {
        self.command(Command::Local(Local::Decline))
    }

    /// Hangs up (or cancels) the current call.
    pub fn hang_up(&self) -> Result<(), Error> {
        self.command(Command::Local(Local::Hangup))
    }

    /// Mutes or unmutes my microphone in the current call.
    pub fn set_muted(&self, muted: bool) -> Result<(), Error> {
        self.command(Command::Mute(muted))
    }
}

struct Driver {
    client: Client,
    options: CallOptions,
    me: i64,
    machine: CallMachine,
    media: Option<Arc<MediaSession>>,
    media_events: Option<mpsc::UnboundedReceiver<Media>>,
    /// The server's STUN/TURN servers and until when to use them.
    ice: Ice,
    /// Mute asked for in this call (kept across its media session being made).
    muted: bool,
    /// Server ids of the rooms calls were in (a room's server id never changes).
    server_rooms: std::collections::HashMap<RoomKey, i64>,
}

type Ice = Arc<Mutex<Option<(Vec<IceServer>, Instant)>>>;

async fn drive(
    client: Client,
    options: CallOptions,
    me: i64,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut signals: mpsc::UnboundedReceiver<Signal>,
) {
    let machine = CallMachine::new(me, options.timeouts);
    // The server issues TURN credentials only around a call, so they are asked for when
    // media opens (after the Inquire), not ahead.
    let ice: Ice = Arc::default();
    let mut d = Driver {
        client,
        options,
        me,
        machine,
        media: None,
        media_events: None,
        ice,
        muted: false,
        server_rooms: Default::default(),
    };
    loop {
        let deadline = d.machine.poll_timeout().map(tokio::time::Instant::from_std);
        let input = tokio::select! {
            command = commands.recv() => match command {
                None => break,
                Some(Command::Local(local)) => Input::Local(local),
                Some(Command::Mute(muted)) => {
                    d.muted = muted;
                    if let Some(m) = &d.media { m.set_muted(muted); }
                    continue;
                }
            },
            Some(signal) = signals.recv() => match d.remote(signal).await {
                Some(remote) => Input::Remote(remote),
                None => continue,
            },
            Some(media) = next_media(&mut d.media_events) => Input::Media(media),
            _ = sleep_until(deadline) => Input::Timer,
        };
        d.machine.handle(Instant::now(), input);
        // UI events go out once this input's outputs are all done (the record queued, the
        // signals handed to the session), so whoever reacts to them sees the effects.
        let mut ui = Vec::new();
        while let Some(output) = d.machine.poll_output() {
            if let Some(feedback) = d.perform(output, &mut ui).await {
                d.machine.handle(Instant::now(), feedback);
            }
        }
        d.client.emit(ui);
    }
    if let Some(m) = d.media.take() {
        m.close().await;
    }
}

async fn next_media(rx: &mut Option<mpsc::UnboundedReceiver<Media>>) -> Option<Media> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Runs one media step in a task of its own with a time limit: a step that panics (on a
/// peer's malformed description, say) or hangs fails the call, never the driver.
async fn guarded<T: Send + 'static>(
    step: impl std::future::Future<Output = Result<T, MediaError>> + Send + 'static,
) -> Result<T, MediaError> {
    match tokio::time::timeout(MEDIA_STEP, tokio::spawn(step)).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(MediaError::Setup(format!("the media step failed: {e}"))),
        Err(_) => Err(MediaError::Setup("the media step did not finish in time".into())),
    }
}

/// Asks the server for its STUN/TURN servers and keeps them until shortly before the
/// credentials expire; an answer without credentials (`ttl` 0) serves this call only.
/// Without an answer, calls go on with host candidates only.
async fn fetch_ice(client: &Client, ice: &Ice) {
    let fetched = match crate::sync::request(client, Request::IceServers {}).await {
        Ok(Reply::IceServers { servers, ttl_s }) => {
            Ok((ice_from_reply(servers.into_vec()), Duration::from_secs(u64::from(ttl_s))))
        }
        Ok(other) => Err(crate::sync::unexpected(other)),
        Err(e) => Err(e),
    };
    match fetched {
        Ok((servers, ttl)) => {
            let keep = ttl.saturating_sub(ttl / 4);
            if let Ok(mut ice) = ice.lock() {
                *ice = Some((servers, Instant::now() + keep));
            }
        }
        Err(e) => tracing::warn!(error = %e, "No STUN/TURN servers from the server."),
    }
}

impl Driver {
    /// Does what the machine asked (UI events are collected in `ui`, to be emitted after
    /// the rest); returns the media's answer to feed back, if any.
    async fn perform(&mut self, output: Output, ui: &mut Vec<Event>) -> Option<Input> {
        match output {
            Output::Signal { room, to_user, to_device, call, signal } => {
                match self.server_room(room).await {
                    Some(server) => {
                        let signal = match self.seal(room, call, signal).await {
                            Ok(Some(signal)) => signal,
                            Ok(None) => return Some(Input::Media(Media::NotEncrypted)),
                            Err(e) => {
                                tracing::warn!(error = %e, call, "A call signal could not be sealed.");
                                return None;
                            }
                        };
                        let request = Request::Signal {
                            room: RoomId(server),
                            to_user: UserId(to_user),
                            to_device: to_device.map(tidings_proto::DeviceId),
                            call,
                            signal,
                        };
                        self.client.relay.send(request);
                    }
                    _ => tracing::warn!(call, "No server room for a call signal."),
                }
                None
            }
            Output::Ui(event) => {
                if matches!(event, CallEvent::Ended { .. }) {
                    self.muted = false;
                }
                ui.push(Event::Call(event));
                None
            }
            Output::Media(command) => self.media_command(command).await,
            Output::Record { room, call, outcome, duration, video } => {
                let record = CallRecord {
                    call,
                    caller: UserId(self.me),
                    outcome,
                    duration_ms: if outcome == CallOutcome::Completed {
                        duration.as_millis() as u64
                    } else {
                        0
                    },
                    video,
                };
                if let Err(e) = self.record(room, record).await {
                    tracing::warn!(error = %e, call, "The call's record could not be queued.");
                }
                None
            }
        }
    }

    async fn media_command(&mut self, command: MediaCommand) -> Option<Input> {
        let failed = |e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, "Call media failed.");
            Some(Input::Media(Media::Failed))
        };
        match command {
            MediaCommand::CreateOffer { .. } => {
                let session = match self.open_media().await {
                    Ok(s) => s,
                    Err(e) => return failed(&e),
                };
                match guarded(async move { session.create_offer().await }).await {
                    Ok(sdp) => Some(Input::Media(Media::OfferCreated(sdp))),
                    Err(e) => failed(&e),
                }
            }
            MediaCommand::CreateAnswer { offer } => {
                let session = match self.open_media().await {
                    Ok(s) => s,
                    Err(e) => return failed(&e),
                };
                match guarded(async move { session.create_answer(&offer).await }).await {
                    Ok(sdp) => Some(Input::Media(Media::AnswerCreated(sdp))),
                    Err(e) => failed(&e),
                }
            }
            MediaCommand::ApplyAnswer { answer } => {
                let session = self.media.clone()?;
                match guarded(async move { session.apply_answer(&answer).await }).await {
                    Ok(()) => None,
                    Err(e) => failed(&e),
                }
            }
            MediaCommand::AddCandidate { candidate } => {
                let session = self.media.clone()?;
                // One bad candidate does not end a call: the others may connect.
                if let Err(e) =
                    guarded(async move { session.add_candidate(&candidate).await }).await
                {
                    tracing::debug!(error = %e, "Remote candidate skipped.");
                }
                None
            }
            MediaCommand::Stop => {
                self.media_events = None;
                if let Some(m) = self.media.take() {
                    // Silent at once, closed a moment later: the Hangup signal (sent just
                    // before, through the server) should reach the peer before its media
                    // sees the connection close, or it would end the call as failed.
                    m.stop_audio();
                    tokio::spawn(async move {
                        tokio::time::sleep(MEDIA_LINGER).await;
                        m.close().await;
                    });
                }
                None
            }
        }
    }

    /// The server id of a local room, looked up once per room (every candidate is a signal).
    async fn server_room(&mut self, room: RoomKey) -> Option<i64> {
        if let Some(server) = self.server_rooms.get(&room) {
            return Some(*server);
        }
        let server = self.client.room(room).server_id().await.ok().flatten()?;
        self.server_rooms.insert(room, server);
        Some(server)
    }

    /// A signal push as the machine's input, its room translated to the local one; `None`
    /// for a room this profile does not know.
    async fn remote(&self, s: Signal) -> Option<Remote> {
        let server = s.room.0;
        let local = self.client.db(move |c| crate::apply::known_room(c, server)).await;
        let Ok(Some(room)) = local else {
            tracing::debug!(call = s.call, "Signal for an unknown room dropped.");
            return None;
        };
        let (from_user, from_device) = (s.from_user.0, s.from_device.0);
        let from = LeafId { user: from_user, device: from_device };
        let signal = self.open(room, s.call, from, s.signal).await?;
        Some(Remote { room, from_user, from_device, call: s.call, signal })
    }

    /// `signal` as it goes to the server: its SDP or candidate sealed for the room's group
    /// (e2ee::signal). An offer or answer whose room has no group (in time) is `None`: it
    /// cannot go, and the call ends. A candidate then is an error, dropped like any signal
    /// that does not seal: a call that is talking is not ended for it.
    async fn seal(
        &self,
        room: RoomKey,
        call: CallId,
        signal: CallSignal,
    ) -> Result<Option<CallSignal>, Error> {
        let Some((kind, blob)) = blob_of(&signal) else {
            if matches!(signal, CallSignal::Inquire { .. }) {
                // The offer that follows is sealed with the room's group: have it ready.
                self.want_group(room).await;
            }
            return Ok(Some(signal));
        };
        // The offer (or answer) waits for a group being set up; the candidates that follow
        // it find the group there, or the call has ended.
        if !self.want_group(room).await && kind != CANDIDATE {
            self.wait_for_group(room).await;
        }
        let blob = blob.to_vec();
        let sealed = self
            .client
            .db(move |c| {
                let Some(group) = crate::sync::group::current(c, room)? else {
                    return Ok::<_, Error>(None);
                };
                let device = crate::sync::group::device(c)?;
                Ok(Some(device.seal_signal(c, &group, call, kind, &blob)?))
            })
            .await?;
        match sealed {
            Some(sealed) => Ok(Some(with_blob(
                signal,
                SignalBlob::new(sealed).map_err(|e| Error::Invalid(e.to_string()))?,
            ))),
            None if kind == CANDIDATE => {
                Err(Error::Internal("no encryption group for a call's candidate".into()))
            }
            None => Ok(None),
        }
    }

    /// Whether `room` has a group; if not, asks the sync session to set one up.
    async fn want_group(&self, room: RoomKey) -> bool {
        let has = self
            .client
            .db(move |c| {
                let has = crate::sync::group::current(c, room)?.is_some();
                if !has {
                    crate::sync::group::want(c, room)?;
                }
                Ok::<_, Error>(has)
            })
            .await
            .unwrap_or(false);
        if !has {
            self.client.outbox_ready.notify_one();
        }
        has
    }

    /// Waits up to [`GROUP_WAIT`] for the group [`Driver::want_group`] asked for (a room
    /// nobody has written in: its first call sets it up).
    async fn wait_for_group(&self, room: RoomKey) {
        let until = tokio::time::Instant::now() + GROUP_WAIT;
        while tokio::time::Instant::now() < until {
            let has = self.client.db(move |c| crate::sync::group::current(c, room)).await;
            if !matches!(has, Ok(None)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::warn!("No encryption group for the call's room in time: the call ends.");
    }

    /// `signal` as the machine takes it: opened if sealed for the room's group by the device
    /// the server says sent it; `None` (dropped) if it does not open, or comes in clear
    /// (whoever sent it, it was not a member's device, or not one of this version).
    async fn open(
        &self,
        room: RoomKey,
        call: CallId,
        from: LeafId,
        signal: CallSignal,
    ) -> Option<CallSignal> {
        let Some((kind, blob)) = blob_of(&signal) else { return Some(signal) };
        let sealed = e2ee::signal::is_sealed(blob);
        let blob = blob.to_vec();
        let opened = self
            .client
            .db(move |c| match (crate::sync::group::current(c, room)?, sealed) {
                (Some(group), true) => {
                    Ok(Some(e2ee::signal::open_signal(c, &group, call, kind, from, &blob)?))
                }
                _ => Ok::<_, Error>(None),
            })
            .await;
        match opened {
            Ok(Some(blob)) => Some(with_blob(signal, SignalBlob::new(blob).ok()?)),
            Ok(None) => {
                tracing::warn!(
                    call,
                    sealed,
                    "A call signal sealed otherwise than its room dropped."
                );
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, call, "A call signal that does not open dropped.");
                None
            }
        }
    }

    /// Queues a call's outcome for the room log, with its local echo.
    async fn record(&self, room: RoomKey, record: CallRecord) -> Result<(), Error> {
        let queue = self.client.send_queue();
        queue
            .enqueue(Target::Room(room), None, move |request, server| {
                let echo = EventContent::Call(record.clone());
                (Request::RecordCall { request, room: server, record }, Some(echo.into()))
            })
            .await
            .map(|_| ())
    }

    /// A fresh media session for the current call (closing any left over, beside).
    async fn open_media(&mut self) -> Result<Arc<MediaSession>, MediaError> {
        if let Some(old) = self.media.take() {
            tokio::spawn(async move { old.close().await });
        }
        let mut config = self.options.media.clone();
        if config.ice_servers.is_empty() {
            let cached = |ice: &Ice| {
                ice.lock().ok().and_then(|i| i.clone()).filter(|(_, until)| *until > Instant::now())
            };
            config.ice_servers = match cached(&self.ice) {
                Some((servers, _)) => servers,
                None => {
                    // Not fetched yet (or expired): ask now, but not for long.
                    let fetch = fetch_ice(&self.client, &self.ice);
                    let _ = tokio::time::timeout(ICE_FETCH_WAIT, fetch).await;
                    // What just came is for this call, even if it is not to be kept.
                    self.ice.lock().ok().and_then(|i| i.clone()).map(|(s, _)| s).unwrap_or_default()
                }
            };
        }
        let audio = self.options.audio.clone();
        // The factory may open devices, which blocks.
        let (source, sink) = tokio::task::spawn_blocking(move || audio())
            .await
            .map_err(|e| MediaError::Setup(format!("audio: {e}")))?;
        let (tx, rx) = mpsc::unbounded_channel();
        let session = Arc::new(
            guarded(async move { MediaSession::new(&config, source, sink, tx).await }).await?,
        );
        session.set_muted(self.muted);
        self.media_events = Some(rx);
        self.media = Some(session.clone());
        Ok(session)
    }
}

/// Converts the server's ICE servers.
fn ice_from_reply(servers: Vec<tidings_proto::IceServer>) -> Vec<IceServer> {
    servers
        .into_iter()
        .map(|s| IceServer {
            urls: s.urls.into_vec().into_iter().map(Text::into_string).collect(),
            username: s.username.into_string(),
            credential: s.credential.into_string(),
        })
        .collect()
}
