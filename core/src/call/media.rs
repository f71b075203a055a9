//! A call's media: one WebRTC peer connection carrying Opus audio both ways.
//!
//! This is the only module that touches the `webrtc` crate (0.21, pre-1.0: its API may
//! still change), so a bump is contained here. The call machine decides *when* (offer only
//! after Grant, answer only after Accept, candidates only after the remote description);
//! this module does *what*: it builds the connection, makes and applies descriptions, adds
//! candidates, and reports local candidates, "connected" and "failed" back as
//! [`Media`](super::Media) inputs for the machine.
//!
//! Signal blobs are JSON in the browser's shapes — `RTCSessionDescriptionInit`
//! (`{"type","sdp"}`) and `RTCIceCandidateInit` — so a browser peer needs no translation.
//!
//! Audio: once connected, a task pulls a 20 ms frame from the [`AudioSource`] on the media
//! clock, encodes it with Opus (48 kHz mono, VoIP mode, in-band FEC) and writes it to the
//! track; each received packet is decoded and handed to the [`AudioSink`].
//!
//! Tuning from shared/anchors/platform-notes.md: peer-reflexive pairs are accepted without
//! the default 1 s wait (with trickle ICE a check often beats the candidate's signal); for
//! relay-only calls the 2 s relay wait is dropped too, since relay is the only path.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use rtc::{
    media::Sample,
    media_stream::MediaStreamTrack,
    peer_connection::configuration::media_engine::MIME_TYPE_OPUS,
    rtp_transceiver::rtp_sender::{
        RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
    },
};
use tidings_proto::{bounded::Blob, SignalBlob};
use tokio::sync::{mpsc, watch};
use webrtc::{
    media_stream::{
        track_local::{static_sample::TrackLocalStaticSample, TrackLocal},
        track_remote::{TrackRemote, TrackRemoteEvent},
    },
    peer_connection::{
        MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
        RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceServer, RTCIceTransportPolicy,
        RTCPeerConnectionIceEvent, RTCPeerConnectionState, RTCSessionDescription,
        SettingEngineBuilder,
    },
};

use super::{
    audio::{AudioSink, AudioSource, FRAME_SAMPLES, SAMPLE_RATE},
    Media,
};

/// A STUN or TURN server (from the server's configuration, with short-lived credentials).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct IceServer {
    /// `stun:` or `turn:` URLs (TURN over UDP only: webrtc 0.21 has no TCP/TLS relay).
    pub urls: Vec<String>,
    /// TURN username.
    pub username: String,
    /// TURN password.
    pub credential: String,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The credential stays out of logs.
        f.debug_struct("IceServer").field("urls", &self.urls).finish_non_exhaustive()
    }
}

/// How a call's media connects.
#[derive(Debug, Clone, Default)]
pub struct MediaConfig {
    /// STUN/TURN servers.
    pub ice_servers: Vec<IceServer>,
    /// Only relayed candidates (hides my addresses from the peer; needs a TURN server).
    pub relay_only: bool,
    /// Local UDP addresses to bind (`127.0.0.1:0` in tests); empty binds every IPv4
    /// interface ([`DEFAULT_BIND`]).
    pub udp_addrs: Vec<String>,
}

/// What a call binds when told nothing: every IPv4 interface, on ports the OS picks.
pub const DEFAULT_BIND: &str = "0.0.0.0:0";

/// What can go wrong with media.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The connection could not be built.
    #[error("media setup: {0}")]
    Setup(String),
    /// A description or candidate from the peer is malformed or was refused.
    #[error("bad signal from the peer: {0}")]
    BadSignal(String),
    /// Opus could not be set up.
    #[error("opus: {0}")]
    Codec(String),
}

type Events = mpsc::UnboundedSender<Media>;

/// Between ICE connectivity checks (webrtc's default is 200 ms).
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(50);
/// The ICE keepalive tick when media may be relayed (webrtc's default is 2 s).
const RELAY_TICK: Duration = Duration::from_millis(20);
type SharedSink = Arc<Mutex<Box<dyn AudioSink>>>;

/// One call's peer connection and audio tasks. Closed with [`MediaSession::close`] (dropping
/// it stops the audio tasks too).
pub struct MediaSession {
    pc: Arc<dyn PeerConnection>,
    sink: SharedSink,
    muted: Arc<AtomicBool>,
    tasks: Tasks,
}

/// The session's audio tasks (sending, and receiving once the track arrives).
type Tasks = Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>;

fn abort_all(tasks: &Tasks) {
    if let Ok(mut tasks) = tasks.lock() {
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

impl std::fmt::Debug for MediaSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSession").field("muted", &self.muted).finish_non_exhaustive()
    }
}

struct Handler {
    events: Events,
    connected: watch::Sender<bool>,
    sink: SharedSink,
    tasks: Tasks,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json().map(|c| serde_json::to_vec(&c)) {
            Ok(Ok(json)) => match Blob::new(json) {
                Ok(blob) => {
                    let _ = self.events.send(Media::LocalCandidate(blob));
                }
                Err(e) => tracing::warn!(error = %e, "Local candidate too long; skipped."),
            },
            Ok(Err(e)) => tracing::warn!(error = %e, "Local candidate not serializable."),
            Err(e) => tracing::warn!(error = %e, "Local candidate not convertible."),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(%state, "Media connection state.");
        match state {
            RTCPeerConnectionState::Connected => {
                let _ = self.connected.send(true);
                let _ = self.events.send(Media::Connected);
            }
            RTCPeerConnectionState::Failed => {
                let _ = self.events.send(Media::Failed);
            }
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        if track.kind().await != RtpCodecKind::Audio {
            return;
        }
        let sink = self.sink.clone();
        let hear = tokio::spawn(async move {
            let mut decoder = match opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "No Opus decoder; the call is silent.");
                    return;
                }
            };
            // Up to 120 ms per packet (the Opus maximum).
            let mut pcm = vec![0i16; FRAME_SAMPLES * 6];
            while let Some(event) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(packet) = event else { continue };
                if packet.payload.is_empty() {
                    continue;
                }
                match decoder.decode(&packet.payload, &mut pcm, false) {
                    Ok(n) => {
                        if let Ok(mut sink) = sink.lock() {
                            sink.write(&pcm[..n]);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "Undecodable audio packet skipped."),
                }
            }
        });
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.push(hear);
        }
    }
}

impl MediaSession {
    /// Builds the connection with an outgoing audio track fed by `source`; what arrives
    /// goes to `sink`; candidates and state changes go to `events`.
    pub async fn new(
        config: &MediaConfig,
        source: Box<dyn AudioSource>,
        sink: Box<dyn AudioSink>,
        events: Events,
    ) -> Result<Self, MediaError> {
        let setup = |e: rtc::shared::error::Error| MediaError::Setup(e.to_string());
        let mut media = MediaEngine::default();
        media.register_default_codecs().map_err(setup)?;
        let mut settings = SettingEngineBuilder::new()
            .with_prflx_acceptance_min_wait(Some(Duration::ZERO))
            // Connectivity checks every 50 ms instead of 200 (for as long in total: 1.4 s
            // per pair), so a pair is found, nominated and secured sooner.
            .with_ice_connection_attempts(Some(ICE_CHECK_INTERVAL), Some(28));
        if config.relay_only {
            settings = settings.with_relay_acceptance_min_wait(Some(Duration::ZERO));
        }
        let may_relay = config.relay_only
            || config.ice_servers.iter().flat_map(|s| &s.urls).any(|u| u.starts_with("turn"));
        if may_relay {
            // webrtc 0.21's driver hands a relayed packet to the TURN client after it has
            // collected the TURN client's output for this turn, so the packet leaves at the
            // driver's next wake-up — 200 ms later once ICE is connected, for every DTLS
            // flight. A short ICE keepalive tick wakes it sooner (keepalives are only sent
            // when nothing else was): relay-only setup went from 1.75 s to a few hundred ms
            // (docs/performance.md).
            settings = settings.with_ice_timeouts(None, None, Some(RELAY_TICK));
        }
        let ice_servers = config
            .ice_servers
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
            .collect();
        let policy = if config.relay_only {
            RTCIceTransportPolicy::Relay
        } else {
            RTCIceTransportPolicy::All
        };
        let configuration = RTCConfigurationBuilder::new()
            .with_ice_servers(ice_servers)
            .with_ice_transport_policy(policy)
            .build();
        let sink: SharedSink = Arc::new(Mutex::new(sink));
        let tasks: Tasks = Arc::default();
        let (connected, on_connected) = watch::channel(false);
        let handler =
            Arc::new(Handler { events, connected, sink: sink.clone(), tasks: tasks.clone() });
        let mut builder = PeerConnectionBuilder::new()
            .with_configuration(configuration)
            .with_media_engine(media)
            .with_setting_engine(settings.build())
            .with_handler(handler);
        // webrtc 0.21 binds nothing unless told: the default is every IPv4 interface (the
        // wildcard expands to one socket per usable interface, loopback left out).
        let addrs = if config.udp_addrs.is_empty() {
            vec![DEFAULT_BIND.to_owned()]
        } else {
            config.udp_addrs.clone()
        };
        builder = builder.with_udp_addrs(addrs);
        let pc: Arc<dyn PeerConnection> = Arc::new(builder.build().await.map_err(setup)?);
        let muted = Arc::new(AtomicBool::new(false));
        match add_voice(&pc, source, on_connected, muted.clone()).await {
            Ok(speak) => {
                if let Ok(mut t) = tasks.lock() {
                    t.push(speak);
                }
                Ok(Self { pc, sink, muted, tasks })
            }
            Err(e) => {
                let _ = pc.close().await;
                Err(e)
            }
        }
    }

    /// Caller: makes the offer and sets it locally.
    pub async fn create_offer(&self) -> Result<SignalBlob, MediaError> {
        let setup = |e: rtc::shared::error::Error| MediaError::Setup(e.to_string());
        let offer = self.pc.create_offer(None).await.map_err(setup)?;
        self.pc.set_local_description(offer.clone()).await.map_err(setup)?;
        description_blob(&offer)
    }

    /// Callee: applies the offer and makes the answer.
    pub async fn create_answer(&self, offer: &SignalBlob) -> Result<SignalBlob, MediaError> {
        let offer = parse_description(offer)?;
        let bad = |e: rtc::shared::error::Error| MediaError::BadSignal(e.to_string());
        self.pc.set_remote_description(offer).await.map_err(bad)?;
        let setup = |e: rtc::shared::error::Error| MediaError::Setup(e.to_string());
        let answer = self.pc.create_answer(None).await.map_err(setup)?;
        self.pc.set_local_description(answer.clone()).await.map_err(setup)?;
        description_blob(&answer)
    }

    /// Caller: applies the answer.
    pub async fn apply_answer(&self, answer: &SignalBlob) -> Result<(), MediaError> {
        let answer = parse_description(answer)?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(|e| MediaError::BadSignal(e.to_string()))
    }

    /// Adds a remote candidate (the machine sends them only after the remote description).
    pub async fn add_candidate(&self, candidate: &SignalBlob) -> Result<(), MediaError> {
        let candidate: RTCIceCandidateInit = serde_json::from_slice(candidate.as_bytes())
            .map_err(|e| MediaError::BadSignal(format!("candidate: {e}")))?;
        self.pc.add_ice_candidate(candidate).await.map_err(|e| MediaError::BadSignal(e.to_string()))
    }

    /// Sends silence instead of the source while muted.
    pub fn set_muted(&self, muted: bool) {
        self.muted.store(muted, Ordering::Relaxed);
    }

    /// Stops the audio both ways (silence out, the sink finished) but keeps the connection.
    pub fn stop_audio(&self) {
        self.set_muted(true);
        self.finish_sink();
    }

    fn finish_sink(&self) {
        if let Ok(mut sink) = self.sink.lock() {
            if let Err(e) = sink.finish() {
                tracing::warn!(error = %e, "Finishing the call's audio failed.");
            }
        }
    }

    /// Ends the media: stops the audio, closes the connection, finishes the sink.
    pub async fn close(&self) {
        abort_all(&self.tasks);
        if let Err(e) = self.pc.close().await {
            tracing::debug!(error = %e, "Closing the peer connection failed.");
        }
        self.finish_sink();
    }
}

impl Drop for MediaSession {
    fn drop(&mut self) {
        abort_all(&self.tasks);
    }
}

/// Adds the outgoing Opus track; returns the task that feeds it once connected.
async fn add_voice(
    pc: &Arc<dyn PeerConnection>,
    source: Box<dyn AudioSource>,
    on_connected: watch::Receiver<bool>,
    muted: Arc<AtomicBool>,
) -> Result<tokio::task::JoinHandle<()>, MediaError> {
    let setup = |e: rtc::shared::error::Error| MediaError::Setup(e.to_string());
    let ssrc: u32 = rand::random();
    let track = Arc::new(
        TrackLocalStaticSample::new(
            Instant::now(),
            MediaStreamTrack::new(
                "tidings".to_owned(),
                "voice".to_owned(),
                "voice".to_owned(),
                RtpCodecKind::Audio,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: RTCRtpCodec {
                        mime_type: MIME_TYPE_OPUS.to_owned(),
                        clock_rate: SAMPLE_RATE,
                        channels: 2,
                        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                        rtcp_feedback: vec![],
                    },
                    ..Default::default()
                }],
            ),
        )
        .map_err(setup)?,
    );
    let sender = pc.add_track(track.clone() as Arc<dyn TrackLocal>).await.map_err(setup)?;
    Ok(tokio::spawn(speak(track, sender, ssrc, source, on_connected, muted)))
}

/// Once connected, sends a frame from `source` every 20 ms until the track refuses.
async fn speak(
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn webrtc::rtp_transceiver::RtpSender>,
    ssrc: u32,
    mut source: Box<dyn AudioSource>,
    mut connected: watch::Receiver<bool>,
    muted: Arc<AtomicBool>,
) {
    if connected.wait_for(|c| *c).await.is_err() {
        return;
    }
    let payload_type = match sender.get_parameters().await {
        Ok(p) => match p.rtp_parameters.codecs.first() {
            Some(codec) => codec.payload_type,
            None => {
                tracing::warn!("No audio codec was negotiated; the call is silent.");
                return;
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "No sender parameters; the call is silent.");
            return;
        }
    };
    let mut encoder =
        match opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "No Opus encoder; the call is silent.");
                return;
            }
        };
    let _ = encoder.set_inband_fec(true);
    let mut frame = [0i16; FRAME_SAMPLES];
    let mut packet = [0u8; 1500];
    let mut clock = tokio::time::interval(Duration::from_millis(20));
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        clock.tick().await;
        if muted.load(Ordering::Relaxed) {
            frame.fill(0);
        } else {
            source.read(&mut frame);
        }
        let len = match encoder.encode(&frame, &mut packet) {
            Ok(len) => len,
            Err(e) => {
                tracing::warn!(error = %e, "Opus encoding failed; the call goes silent.");
                return;
            }
        };
        let sample = Sample {
            data: bytes::Bytes::copy_from_slice(&packet[..len]),
            duration: Duration::from_millis(20),
            ..Sample::new(Instant::now())
        };
        if let Err(e) = track.sample_writer(ssrc, payload_type).write_sample(&sample).await {
            tracing::debug!(error = %e, "The audio track closed.");
            return;
        }
    }
}

fn description_blob(description: &RTCSessionDescription) -> Result<SignalBlob, MediaError> {
    let json = serde_json::to_vec(description).map_err(|e| MediaError::Setup(e.to_string()))?;
    Blob::new(json).map_err(|e| MediaError::Setup(format!("description too long: {e}")))
}

fn parse_description(blob: &SignalBlob) -> Result<RTCSessionDescription, MediaError> {
    serde_json::from_slice(blob.as_bytes())
        .map_err(|e| MediaError::BadSignal(format!("session description: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::call::audio::{analyze, Capture, Tone};

    fn loopback() -> MediaConfig {
        MediaConfig { udp_addrs: vec!["127.0.0.1:0".into()], ..Default::default() }
    }

    /// Forwards one side's candidates to the other after its remote description is set;
    /// returns when the side reports connected.
    async fn relay(mut events: mpsc::UnboundedReceiver<Media>, to: Arc<MediaSession>) {
        while let Some(e) = events.recv().await {
            match e {
                Media::LocalCandidate(c) => to.add_candidate(&c).await.unwrap(),
                Media::Connected => return,
                Media::Failed => panic!("media failed"),
                _ => {}
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_sessions_hear_each_others_tone() {
        let (heard_by_b, heard_by_a) = (Capture::default(), Capture::default());
        let (a_tx, a_rx) = mpsc::unbounded_channel();
        let (b_tx, b_rx) = mpsc::unbounded_channel();
        let a = MediaSession::new(
            &loopback(),
            Box::new(Tone::new(440.0)),
            Box::new(heard_by_a.clone()),
            a_tx,
        )
        .await
        .unwrap();
        let b = MediaSession::new(
            &loopback(),
            Box::new(Tone::new(1000.0)),
            Box::new(heard_by_b.clone()),
            b_tx,
        )
        .await
        .unwrap();
        let offer = a.create_offer().await.unwrap();
        let answer = b.create_answer(&offer).await.unwrap();
        a.apply_answer(&answer).await.unwrap();
        let (a, b) = (Arc::new(a), Arc::new(b));
        let to_b = tokio::spawn(relay(a_rx, b.clone()));
        let to_a = tokio::spawn(relay(b_rx, a.clone()));
        tokio::time::timeout(Duration::from_secs(10), async {
            to_b.await.unwrap();
            to_a.await.unwrap();
        })
        .await
        .expect("both sides connect");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (b_heard, a_heard) = (heard_by_b.samples(), heard_by_a.samples());
        // The first frames carry the codec's start-up; judge the last second.
        let tail = |s: &[i16]| s[s.len().saturating_sub(48_000)..].to_vec();
        let (at_b, at_a) = (analyze(&tail(&b_heard)), analyze(&tail(&a_heard)));
        assert!(b_heard.len() >= 48_000, "B heard {} samples", b_heard.len());
        assert!((at_b.dominant_hz - 440.0).abs() <= 10.0 && at_b.rms > 0.05, "{at_b:?}");
        assert!((at_a.dominant_hz - 1000.0).abs() <= 10.0 && at_a.rms > 0.05, "{at_a:?}");
    }

    #[tokio::test]
    async fn malformed_signals_are_typed_errors() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let s = MediaSession::new(
            &loopback(),
            Box::new(Tone::new(1.0)),
            Box::new(Capture::default()),
            tx,
        )
        .await
        .unwrap();
        let junk = super::super::blob("{not json");
        assert!(matches!(s.create_answer(&junk).await, Err(MediaError::BadSignal(_))));
        assert!(matches!(s.apply_answer(&junk).await, Err(MediaError::BadSignal(_))));
        assert!(matches!(s.add_candidate(&junk).await, Err(MediaError::BadSignal(_))));
        let not_sdp = super::super::blob(r#"{"type":"offer","sdp":"hello"}"#);
        assert!(matches!(s.create_answer(&not_sdp).await, Err(MediaError::BadSignal(_))));
        s.close().await;
    }
}
