//! `call` and `answer`: voice calls from scripts and demos.
//!
//! Both stay connected (a live sync session carries the signals), print the call's states
//! as lines (JSON with `--json`: the core's call events plus `at_ms` since the command
//! started) and exit with the outcome (docs/cli.md lists the codes). The audio is a
//! synthetic tone; what is heard can be written to a WAV file.

use std::{
    io::BufRead,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use serde_json::json;
use tidings_core::{
    call::{
        audio::{AudioSink, Recording, Silence, Tone},
        media::MediaConfig,
        CallEvent, CallOptions, EndReason, Timeouts,
    },
    sync, Client, ConnectionState, Event,
};

use crate::client::{Failure, Output, EXIT_FAILURE, EXIT_NETWORK, EXIT_USAGE};

/// The call was refused: they are in another call.
pub const EXIT_BUSY: u8 = 4;
/// No device of theirs is online.
pub const EXIT_UNAVAILABLE: u8 = 5;
/// Nobody answered in time.
pub const EXIT_NO_ANSWER: u8 = 6;
/// They declined (or I did).
pub const EXIT_DECLINED: u8 = 7;

/// Audio and network options shared by `call` and `answer`.
#[derive(clap::Args, Debug, Clone)]
pub struct CallArgs {
    /// Send a sine tone of this frequency (Hz) as my voice.
    #[arg(long, default_value_t = 440.0)]
    pub tone: f32,
    /// Write what I hear to this WAV file (48 kHz mono).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Relay media through the server's TURN server only (hides my addresses).
    #[arg(long)]
    pub relay_only: bool,
    /// Local UDP address for media (default: every interface), e.g. 127.0.0.1:0.
    #[arg(long)]
    pub bind: Option<String>,
    /// Seconds a call may ring before it counts as not answered.
    #[arg(long, default_value_t = 45)]
    pub ring_timeout: u64,
}

impl CallArgs {
    fn options(&self) -> Result<CallOptions, Failure> {
        if let Some(path) = &self.record {
            // Fail now, not when the call connects.
            Recording::create(path).map_err(|e| usage(e.to_string()))?;
        }
        let (tone, record) = (self.tone, self.record.clone());
        let audio = Arc::new(move || {
            let sink: Box<dyn AudioSink> = match record.as_deref().map(Recording::create) {
                Some(Ok(r)) => Box::new(r),
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "Not recording.");
                    Box::new(Silence)
                }
                None => Box::new(Silence),
            };
            (Box::new(Tone::new(tone)) as _, sink)
        });
        let media = MediaConfig {
            relay_only: self.relay_only,
            udp_addrs: self.bind.iter().cloned().collect(),
            ..Default::default()
        };
        let timeouts =
            Timeouts { ring: Duration::from_secs(self.ring_timeout), ..Default::default() };
        Ok(CallOptions { media, audio, timeouts })
    }
}

fn usage(message: String) -> Failure {
    Failure { code: EXIT_USAGE, message }
}

/// `call USERNAME`: calls them in our direct room (made if there is none), talks for
/// `seconds` once connected, hangs up.
pub async fn call(
    client: &Client,
    out: Output,
    username: &str,
    seconds: u64,
    args: &CallArgs,
) -> Result<(), Failure> {
    let options = args.options()?;
    let started = Instant::now();
    let room = client.rooms().open_direct(username).await?;
    // A room made just now must be on the server before anyone can be called in it.
    if client.room(room).server_id().await?.is_none() {
        crate::client::sync_now(client, 30).await?;
    }
    let mut events = client.subscribe();
    let talk = async {
        wait_online(&mut events).await?;
        client.calls().start(options).await?;
        client.calls().call(room, None).await?;
        let mut hang_up_at: Option<tokio::time::Instant> = None;
        let mut talked = false;
        loop {
            let event = tokio::select! {
                e = events.recv() => e,
                _ = sleep_until(hang_up_at) => {
                    client.calls().hang_up()?;
                    hang_up_at = None;
                    continue;
                }
            };
            let Some(Event::Call(event)) = event else { continue };
            print(out, &event, started);
            match event {
                CallEvent::Connected { .. } => {
                    talked = true;
                    hang_up_at = Some(tokio::time::Instant::now() + Duration::from_secs(seconds));
                }
                CallEvent::Ended { reason, .. } => return outcome(talked, reason),
                _ => {}
            }
        }
    };
    tokio::select! {
        r = talk => {
            // The hang-up and the call's record reach the server before the process exits.
            let _ = tokio::time::timeout(Duration::from_secs(5), sync::sync_until_idle(client)).await;
            r
        }
        e = sync::run(client) => Err(e.into()),
    }
}

/// `answer`: waits for a call; accepts it (at once with `auto`, else when stdin says
/// `y`), stays until it ends.
pub async fn answer(
    client: &Client,
    out: Output,
    auto: bool,
    args: &CallArgs,
) -> Result<(), Failure> {
    let options = args.options()?;
    let started = Instant::now();
    let mut events = client.subscribe();
    let talk = async {
        wait_online(&mut events).await?;
        client.calls().start(options).await?;
        out.line(
            json!({"state": "waiting", "at_ms": started.elapsed().as_millis() as u64}),
            || "waiting for a call".into(),
        );
        let mut talked = false;
        let mut decision: Option<tokio::sync::oneshot::Receiver<bool>> = None;
        loop {
            let event = tokio::select! {
                e = events.recv() => e,
                yes = next_decision(&mut decision) => {
                    decision = None;
                    if yes { client.calls().accept()? } else { client.calls().decline()? }
                    continue;
                }
            };
            let Some(event) = event else { break };
            let Event::Call(event) = event else { continue };
            print(out, &event, started);
            match event {
                CallEvent::Ringing { .. } if auto => client.calls().accept()?,
                CallEvent::Ringing { .. } => {
                    // A plain thread: the process must not wait for a read that never ends.
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    std::thread::spawn(move || {
                        eprint!("Accept the call? [y/N] ");
                        let mut line = String::new();
                        let read = std::io::stdin().lock().read_line(&mut line);
                        let _ = tx.send(read.is_ok() && line.trim().eq_ignore_ascii_case("y"));
                    });
                    decision = Some(rx);
                }
                CallEvent::Connected { .. } => talked = true,
                CallEvent::Ended { reason, .. } => return outcome(talked, reason),
                _ => {}
            }
        }
        Err(Failure { code: EXIT_FAILURE, message: "the client stopped".into() })
    };
    tokio::select! {
        r = talk => {
            let _ = tokio::time::timeout(Duration::from_secs(5), sync::sync_until_idle(client)).await;
            r
        }
        e = sync::run(client) => Err(e.into()),
    }
}

async fn next_decision(decision: &mut Option<tokio::sync::oneshot::Receiver<bool>>) -> bool {
    match decision {
        Some(rx) => rx.await.unwrap_or(false),
        None => std::future::pending().await,
    }
}

async fn wait_online(events: &mut tidings_core::Subscription) -> Result<(), Failure> {
    let online = async {
        while let Some(e) = events.recv().await {
            if matches!(e, Event::Connection { state: ConnectionState::Online }) {
                return true;
            }
        }
        false
    };
    match tokio::time::timeout(Duration::from_secs(30), online).await {
        Ok(true) => Ok(()),
        _ => Err(Failure { code: EXIT_NETWORK, message: "could not connect to the server".into() }),
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn print(out: Output, event: &CallEvent, started: Instant) {
    let mut value = serde_json::to_value(event).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("at_ms".into(), json!(started.elapsed().as_millis() as u64));
    }
    out.line(value, || match event {
        CallEvent::Ended { reason, .. } => format!("ended: {reason:?}"),
        other => format!("{other:?}"),
    });
}

/// Exit status: success only for a call that connected.
fn outcome(talked: bool, reason: EndReason) -> Result<(), Failure> {
    let (code, message) = match reason {
        _ if talked && !matches!(reason, EndReason::Failed) => return Ok(()),
        // Taken on another of my devices: this one did its part.
        EndReason::AnsweredElsewhere => return Ok(()),
        EndReason::Busy => (EXIT_BUSY, "they are in another call"),
        EndReason::Unavailable => (EXIT_UNAVAILABLE, "they are not online"),
        EndReason::NoAnswer | EndReason::ReservationExpired => (EXIT_NO_ANSWER, "no answer"),
        EndReason::Declined | EndReason::RemoteDeclined | EndReason::DeclinedElsewhere => {
            (EXIT_DECLINED, "the call was declined")
        }
        EndReason::Failed => (EXIT_FAILURE, "the call's media failed"),
        EndReason::NotEncrypted => {
            (EXIT_FAILURE, "the room's encryption was not ready in time: try again")
        }
        _ => (EXIT_FAILURE, "the call ended before it connected"),
    };
    Err(Failure { code, message: message.into() })
}
