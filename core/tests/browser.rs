//! Interop: the core's media engine calls a real browser. Headless Chromium (Debian's, with
//! a fake microphone playing a WAV file we made) answers; the test bridges the SDP and the
//! trickled candidates through the DevTools protocol, then checks that each side hears the
//! other: the core hears the browser's 660 Hz file, the browser hears the core's 440 Hz tone
//! (found with a Web Audio analyser on the remote track).

#![allow(clippy::unwrap_used)] // tests may unwrap: a panic is a failed test

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tidings_core::call::{
    audio::{analyze, AudioSink, AudioSource, Capture, Recording, Tone, FRAME_SAMPLES},
    blob,
    media::{MediaConfig, MediaSession},
    Media,
};
use tokio::{io::AsyncWriteExt, net::TcpListener, sync::mpsc};
use tokio_tungstenite::tungstenite::Message;

const PAGE: &str = r#"<!doctype html><meta charset="utf-8"><title>peer</title>
<script>
window.candidates = [];
window.answer = async (offer) => {
  const pc = new RTCPeerConnection({ iceServers: [] });
  window.pc = pc;
  pc.onicecandidate = (e) => { if (e.candidate) window.candidates.push(JSON.stringify(e.candidate.toJSON())); };
  pc.ontrack = (e) => {
    const stream = new MediaStream([e.track]);
    // Chromium pulls remote audio into Web Audio only while an element plays it.
    const el = new Audio(); el.srcObject = stream; el.muted = true; el.play().catch(() => {});
    const ctx = new AudioContext({ sampleRate: 48000 });
    const an = ctx.createAnalyser(); an.fftSize = 8192;
    ctx.createMediaStreamSource(stream).connect(an);
    window.analyser = an; window.ctx = ctx;
  };
  await pc.setRemoteDescription(JSON.parse(offer));
  const mic = await navigator.mediaDevices.getUserMedia({ audio: true });
  mic.getTracks().forEach((t) => pc.addTrack(t, mic));
  const answer = await pc.createAnswer();
  await pc.setLocalDescription(answer);
  return JSON.stringify(pc.localDescription);
};
window.addCandidate = async (c) => { await window.pc.addIceCandidate(JSON.parse(c)); return "ok"; };
window.takeCandidates = () => JSON.stringify(window.candidates.splice(0));
window.heard = async () => {
  const stats = await window.pc.getStats();
  let inbound = null;
  stats.forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") inbound = s; });
  let peakHz = 0, peakDb = -Infinity;
  if (window.analyser) {
    await window.ctx.resume();
    const bins = new Float32Array(window.analyser.frequencyBinCount);
    window.analyser.getFloatFrequencyData(bins);
    const hzPerBin = window.ctx.sampleRate / window.analyser.fftSize;
    for (let i = 2; i < bins.length; i++) if (bins[i] > peakDb) { peakDb = bins[i]; peakHz = i * hzPerBin; }
  }
  return JSON.stringify({ state: window.pc.connectionState,
    packets: inbound ? inbound.packetsReceived : 0, peakHz, peakDb });
};
</script>"#;

/// Serves the page on a loopback port (a secure context, so getUserMedia works).
async fn serve_page() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buf).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{PAGE}",
                    PAGE.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts headless Chromium on `url`; returns it and its DevTools browser endpoint.
fn chromium(url: &str, microphone: &std::path::Path) -> (Browser, String) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new("chromium")
        .args(["--headless=new", "--no-sandbox", "--disable-gpu"])
        .args(["--disable-background-networking", "--no-first-run", "--mute-audio"])
        .args(["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"])
        .arg(format!("--use-file-for-fake-audio-capture={}", microphone.display()))
        .arg("--autoplay-policy=no-user-gesture-required")
        .arg("--remote-debugging-port=0")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium is installed (cargo xtask test installs it)");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("ws://") {
                let _ = tx.send(line[at..].trim().to_owned());
            }
        }
    });
    let endpoint = rx.recv_timeout(Duration::from_secs(30)).expect("chromium starts DevTools");
    (Browser { child, _profile: profile }, endpoint)
}

/// A DevTools connection to the page: evaluates JavaScript and returns its string result.
struct Page {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

impl Page {
    async fn open(browser_endpoint: &str) -> Self {
        // http://host:port/json/list names the page's own endpoint.
        let host = browser_endpoint.trim_start_matches("ws://").split('/').next().unwrap();
        let list_url = format!("http://{host}/json/list");
        let page_ws = loop {
            let body = reqwest::get(&list_url).await.unwrap().bytes().await.unwrap();
            let list: Vec<Value> = serde_json::from_slice(&body).unwrap();
            if let Some(p) = list.iter().find(|t| t["type"] == "page") {
                break p["webSocketDebuggerUrl"].as_str().unwrap().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (ws, _) = tokio_tungstenite::connect_async(page_ws).await.unwrap();
        let mut page = Self { ws, next_id: 1 };
        // Wait for the page's script.
        for _ in 0..100 {
            if page.eval("typeof window.answer").await == "function" {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page did not load");
    }

    async fn eval(&mut self, expression: &str) -> String {
        let id = self.next_id;
        self.next_id += 1;
        let call = json!({"id": id, "method": "Runtime.evaluate", "params": {
            "expression": expression, "awaitPromise": true, "returnByValue": true}});
        self.ws.send(Message::Text(call.to_string().into())).await.unwrap();
        loop {
            let Some(Ok(Message::Text(text))) = self.ws.next().await else { continue };
            let reply: Value = serde_json::from_str(&text).unwrap();
            if reply["id"] == id {
                assert!(reply["result"]["exceptionDetails"].is_null(), "{expression}: {reply}");
                let value = &reply["result"]["result"]["value"];
                return value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
            }
        }
    }
}

/// Writes `seconds` of a `hz` tone to a WAV file (the browser's microphone).
fn tone_file(path: &std::path::Path, hz: f32, seconds: usize) {
    let mut wav = Recording::create(path).unwrap();
    let mut tone = Tone::new(hz);
    let mut frame = [0i16; FRAME_SAMPLES];
    for _ in 0..seconds * 50 {
        tone.read(&mut frame);
        wav.write(&frame);
    }
    wav.finish().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_calls_chromium_and_audio_flows_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let microphone = dir.path().join("browser-mic.wav");
    tone_file(&microphone, 660.0, 20);
    let port = serve_page().await;
    let (_browser, endpoint) = chromium(&format!("http://127.0.0.1:{port}/"), &microphone);
    let mut page = Page::open(&endpoint).await;

    // The core calls: its offer, the browser's answer, candidates both ways.
    let heard_by_core = Capture::default();
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let config = MediaConfig { udp_addrs: vec!["127.0.0.1:0".into()], ..Default::default() };
    let core = MediaSession::new(
        &config,
        Box::new(Tone::new(440.0)),
        Box::new(heard_by_core.clone()),
        events_tx,
    )
    .await
    .unwrap();
    let offer = core.create_offer().await.unwrap();
    let offer = String::from_utf8(offer.as_bytes().to_vec()).unwrap();
    let answer = page.eval(&format!("window.answer({})", json!(offer))).await;
    core.apply_answer(&blob(&answer)).await.unwrap();

    let connected = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            while let Ok(event) = events.try_recv() {
                match event {
                    Media::LocalCandidate(c) => {
                        let c = String::from_utf8(c.as_bytes().to_vec()).unwrap();
                        page.eval(&format!("window.addCandidate({})", json!(c))).await;
                    }
                    Media::Connected => return,
                    Media::Failed => panic!("media failed"),
                    _ => {}
                }
            }
            let theirs: Vec<String> =
                serde_json::from_str(&page.eval("window.takeCandidates()").await).unwrap();
            for c in theirs {
                core.add_candidate(&blob(&c)).await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(connected.is_ok(), "the core and Chromium connect");
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The core hears the browser's microphone file.
    let samples = heard_by_core.samples();
    assert!(samples.len() >= 96_000, "the core heard {} samples", samples.len());
    let at_core = analyze(&samples[samples.len() - 48_000..]);
    assert!((at_core.dominant_hz - 660.0).abs() <= 10.0 && at_core.rms > 0.005, "{at_core:?}");

    // The browser hears the core's tone.
    let heard: Value = serde_json::from_str(&page.eval("window.heard()").await).unwrap();
    assert_eq!(heard["state"], "connected", "{heard}");
    assert!(heard["packets"].as_u64().unwrap() > 100, "{heard}");
    // (totalAudioEnergy stays 0 headless: it counts played-out audio.) The analyser's
    // loudest bin is the tone, far above silence (-100 dB and below).
    assert!(heard["peakDb"].as_f64().unwrap() > -60.0, "{heard}");
    let peak = heard["peakHz"].as_f64().unwrap();
    assert!((peak - 440.0).abs() <= 15.0, "the browser's loudest frequency: {heard}");
    core.close().await;
}
