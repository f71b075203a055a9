//! `cargo xtask bench server`: load on a real `tidings serve` (release build) over loopback.
//!
//! Two measurements, each against a fresh server process with its own data dir:
//!
//! 1. **Delivery**: clients in group rooms of 2–50 members (by default 20×2, 20×5, 10×10,
//!    8×25 and 4×50: 640 clients). Every client sends on a fixed schedule (open loop, so a
//!    slow server cannot hide latency by slowing the senders), each message carrying its send
//!    instant; every receiving connection records the end-to-end latency of each event it
//!    gets. Reported: delivered messages/s (one message reaching one other member's
//!    connection), and latency p50/p99.
//! 2. **Idle connections**: N connections that say hello and join, then stay idle.
//!    Reported: the server's RSS growth divided by N.
//!
//! 3. With `--tls`: the delivery run again against a server with TLS on (a certificate from
//!    a test CA, clients trusting it), in the same run, reported beside the plain figures as
//!    a ratio; then a **reconnect storm** against each: N clients connecting at once (TCP,
//!    TLS handshake, websocket upgrade, Hello, Join), reported as joined connections/s.
//!
//! 4. With `--encrypted`: the delivery run with plain bodies, then again with every room's
//!    MLS group set up (by its creator, through core's e2ee module) and every body a sealed
//!    application message at the room's epoch (what the server then parses and checks for
//!    each message: server/src/mls.rs), in the same run, reported as a ratio.
//!
//! Latency is carried in each message's request id (its first 8 bytes: the send instant),
//! so plain and sealed bodies are timed alike.
//!
//! Flags: `--rate R` messages per client per second (default 3.2, which offers about 51,000
//! deliveries/s with the default rooms), `--seconds S` measured time (default 10),
//! `--idle N` idle connections (default 10,000; 0 skips), `--tls` (the TLS comparison),
//! `--storm N` clients in the reconnect storm (default 2,000), `--encrypted` (the
//! encrypted-bodies comparison).

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use tidings_proto::{
    bounded::List, codec, Body, ClientFrame, EventContent, Reply, Request, RoomId, RoomKind,
    ServerFrame, UserId,
};
use tidings_testkit::{request_id, CertFiles, Client, TestCa};
use tokio_tungstenite::tungstenite::Message;

const ROOMS: &[(usize, usize)] = &[(20, 2), (20, 5), (10, 10), (8, 25), (4, 50)];

struct Options {
    rate: f64,
    seconds: u64,
    idle: usize,
    tls: bool,
    storm: usize,
    encrypted: bool,
}

fn parse(args: &[&str]) -> anyhow::Result<Options> {
    let mut o = Options {
        rate: 3.2,
        seconds: 10,
        idle: 10_000,
        tls: false,
        storm: 2_000,
        encrypted: false,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        if *flag == "--tls" {
            o.tls = true;
            continue;
        }
        if *flag == "--encrypted" {
            o.encrypted = true;
            continue;
        }
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match *flag {
            "--rate" => o.rate = value.parse()?,
            "--seconds" => o.seconds = value.parse()?,
            "--idle" => o.idle = value.parse()?,
            "--storm" => o.storm = value.parse()?,
            _ => bail!(
                "unknown flag {flag}; flags: --rate R --seconds S --idle N --tls --storm N \
                 --encrypted"
            ),
        }
    }
    Ok(o)
}

/// A `tidings serve` child process on a free port.
struct ServerProcess {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl ServerProcess {
    /// `tidings serve`, with TLS from `cert` if given.
    fn start(cert: Option<&CertFiles>) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let mut serve = Command::new(super::release_dir()?.join("tidings"));
        // Every simulated user and connection comes from this one machine.
        serve.args(["serve", "--listen", "127.0.0.1:0", "--sign-ups-per-addr", "1000000"]);
        serve.args(["--max-connections-per-addr", "1000000"]);
        serve.args(["--max-connections-per-device", "1000000"]);
        if let Some(cert) = cert {
            serve.arg("--tls-cert").arg(&cert.cert).arg("--tls-key").arg(&cert.key);
        }
        let mut child = serve
            .arg("--data")
            .arg(data.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .context("Cannot start tidings serve")?;
        let mut out = BufReader::new(child.stdout.take().context("stdout")?);
        let mut line = String::new();
        out.read_line(&mut line)?;
        let http = line.trim().rsplit(' ').next().context("no URL printed")?.to_owned();
        // Keep reading what it prints (the fingerprint line with TLS).
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let url = http.replace("https://", "wss://").replace("http://", "ws://") + "/v1/ws";
        Ok(Self { child, url, _data: data })
    }

    fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .context("VmRSS")?;
        Ok(kb * 1024)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn run(args: &[&str]) -> anyhow::Result<()> {
    let options = parse(args)?;
    rlimit::increase_nofile_limit(u64::MAX).context("Cannot raise the open-files limit")?;
    // One thread for the load generator leaves the other core to the server.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        if options.tls {
            return tls_comparison(&options).await;
        }
        if options.encrypted {
            let plain = delivery(&options, &ServerProcess::start(None)?, false).await?;
            let sealed = delivery(&options, &ServerProcess::start(None)?, true).await?;
            println!(
                "encrypted/plain: deliveries {:.1} %, p99 {:.2} ms vs {:.2} ms",
                100.0 * sealed.per_second / plain.per_second,
                sealed.p99_ms,
                plain.p99_ms
            );
            return Ok(());
        }
        delivery(&options, &ServerProcess::start(None)?, false).await?;
        if options.idle > 0 {
            idle(options.idle).await?;
        }
        Ok(())
    })
}

/// Delivery and a reconnect storm, plain and with TLS, in one run.
async fn tls_comparison(o: &Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("bench CA")?;
    let cert = ca.leaf(dir.path(), "server", &["127.0.0.1"], (-1, 30))?;
    tidings_testkit::trust(ca.client_config()?);
    let plain = delivery(o, &ServerProcess::start(None)?, false).await?;
    let tls = delivery(o, &ServerProcess::start(Some(&cert))?, false).await?;
    println!(
        "tls/plain: deliveries {:.1} %, p99 {:.2} ms vs {:.2} ms",
        100.0 * tls.per_second / plain.per_second,
        tls.p99_ms,
        plain.p99_ms
    );
    let plain_storm = storm(o.storm, &ServerProcess::start(None)?).await?;
    let tls_storm = storm(o.storm, &ServerProcess::start(Some(&cert))?).await?;
    println!(
        "reconnect storm of {}: plain {plain_storm:.0} joins/s, TLS {tls_storm:.0} joins/s \
         (handshake included), {:.1} %",
        o.storm,
        100.0 * tls_storm / plain_storm
    );
    Ok(())
}

/// `n` clients of one account connect, say hello and join at once (64 in flight); returns
/// joined connections per second.
async fn storm(n: usize, server: &ServerProcess) -> anyhow::Result<f64> {
    let first = Client::sign_up(&server.url, "storm").await?;
    let session = first.me().clone();
    let started = Instant::now();
    let mut joined = Vec::with_capacity(n);
    let mut pending = futures_util::stream::FuturesUnordered::new();
    let mut launched = 0;
    while joined.len() < n {
        while launched < n && pending.len() < 64 {
            let (url, session) = (server.url.clone(), session.clone());
            pending.push(async move { Client::resume(&url, &session, &[], &[]).await });
            launched += 1;
        }
        let Some(done) = pending.next().await else { break };
        let (client, reply) = done?;
        reply.map_err(|e| anyhow::anyhow!("join failed: {e}"))?;
        joined.push(client);
    }
    let rate = joined.len() as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "storm: {} joined in {:.2} s ({})",
        joined.len(),
        started.elapsed().as_secs_f64(),
        server.url
    );
    Ok(rate)
}

/// Per-receiver latency samples in microseconds, merged at the end.
type Samples = Arc<Mutex<Vec<u32>>>;

/// What a delivery run measured.
struct Delivered {
    per_second: f64,
    p99_ms: f64,
}

async fn delivery(
    o: &Options,
    server: &ServerProcess,
    encrypted: bool,
) -> anyhow::Result<Delivered> {
    let clients: usize = ROOMS.iter().map(|(n, size)| n * size).sum();
    let offered: f64 = ROOMS.iter().map(|(n, s)| (n * s * (s - 1)) as f64).sum::<f64>() * o.rate;
    eprintln!(
        "\n==> delivery: {clients} clients in rooms {ROOMS:?} (count, members), {} msg/s each, \
         offered {offered:.0} deliveries/s ({}){}",
        o.rate,
        server.url,
        if encrypted { ", sealed bodies" } else { "" }
    );
    // Sign everybody up (a few at a time: argon2 is deliberately slow) and make the rooms.
    let mut members: Vec<Vec<Client>> = Vec::new();
    let mut n = 0;
    for (count, size) in ROOMS {
        for _ in 0..*count {
            let mut room = Vec::new();
            for _ in 0..*size {
                room.push(Client::sign_up(&server.url, &format!("user{n}")).await?);
                n += 1;
            }
            members.push(room);
        }
    }
    let mut rooms = Vec::new();
    for room in &mut members {
        let ids: Vec<UserId> = room[1..].iter().map(|c| c.me().user.id).collect();
        let create = Request::CreateRoom {
            request: request_id(),
            kind: RoomKind::Group,
            name: None,
            members: List::new(ids)?,
        };
        let Reply::Logged { room: id, .. } = room[0].request(create).await?? else {
            bail!("room not created")
        };
        // The others accept: a room from someone who is not a contact is a request.
        for member in &mut room[1..] {
            member.request(Request::Accept { request: request_id(), room: id }).await??;
        }
        let body = match encrypted {
            true => sealed_body(&mut room[0], id).await?,
            false => {
                let mut body = b"a message of a typical length, about sixty bytes".to_vec();
                body.resize(100, b'.');
                body
            }
        };
        rooms.push((id, body));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let start = Instant::now();
    let warmup = Duration::from_secs(2);
    let measure = Duration::from_secs(o.seconds);
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let samples: Samples = Arc::default();
    let mut tasks = Vec::new();
    for ((room, body), clients) in rooms.into_iter().zip(members) {
        for (i, client) in clients.into_iter().enumerate() {
            let ws = client.into_websocket();
            let ctx = Load {
                room,
                body: body.clone(),
                rate: o.rate,
                start,
                warmup,
                until: warmup + measure,
                stop: stop.clone(),
                delivered: delivered.clone(),
                samples: samples.clone(),
                // Spread the send schedules over the first period.
                offset: Duration::from_secs_f64((i as f64 * 0.618).fract() / o.rate),
            };
            tasks.push(tokio::spawn(ctx.run(ws)));
        }
    }
    eprintln!("load running: {}s warm-up, {}s measured", warmup.as_secs(), o.seconds);
    tokio::time::sleep(warmup).await;
    let counted_from = delivered.load(Ordering::Relaxed);
    tokio::time::sleep(measure).await;
    let counted = delivered.load(Ordering::Relaxed) - counted_from;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut lat = std::mem::take(&mut *samples.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    lat.sort_unstable();
    let pct = |p: f64| lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)));
    let ms = |v: Option<&u32>| v.map_or(f64::NAN, |v| f64::from(*v) / 1000.0);
    let per_second = counted as f64 / measure.as_secs_f64();
    println!(
        "delivered{}: {per_second:.0} messages/s over {} s ({} deliveries); latency p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms",
        if server.url.starts_with("wss") { " (TLS)" } else { "" },
        o.seconds,
        counted,
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(lat.last()),
    );
    Ok(Delivered { per_second, p99_ms: ms(pct(0.99)) })
}

/// Sets up server room `room`'s MLS group as its creator `creator` (a group of one: the
/// server cannot tell, and checks every message's epoch all the same) and seals one message
/// for it: the body every member then sends.
async fn sealed_body(creator: &mut Client, room: RoomId) -> anyhow::Result<Vec<u8>> {
    use tidings_core::e2ee::{Device, LeafId};
    let dir = tempfile::tempdir()?;
    let db = tidings_core::store::open(&dir.path().join("profile.sqlite"), None)?;
    let me = creator.me();
    let device = Device::for_session(&db, LeafId { user: me.user.id.0, device: me.device.0 })?;
    let group: [u8; tidings_core::e2ee::GROUP_ID_LEN] = rand::random();
    let setup = device.create_group(&db, &group, &[])?;
    let mls = Request::Mls {
        request: request_id(),
        room,
        commit: None,
        welcome: None,
        group_info: tidings_proto::MlsBlob::new(setup.group_info)?,
    };
    creator.request(mls).await??;
    device.confirm(&db, &group)?;
    Ok(device.encrypt(&db, &group, b"a message of a typical length, about sixty bytes")?)
}

/// A request id carrying its send instant (µs since the run's start) in its first 8 bytes,
/// random after them: how receivers time a message whatever its body.
fn timed_request(sent_us: u64) -> tidings_proto::RequestId {
    let mut id = request_id();
    id.0[..8].copy_from_slice(&sent_us.to_le_bytes());
    id
}

struct Load {
    room: RoomId,
    body: Vec<u8>,
    rate: f64,
    start: Instant,
    warmup: Duration,
    until: Duration,
    stop: Arc<AtomicBool>,
    delivered: Arc<AtomicU64>,
    samples: Samples,
    offset: Duration,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Load {
    async fn run(self, ws: Ws) {
        let (mut sink, mut stream) = ws.split();
        let (room, rate, start, stop) = (self.room, self.rate, self.start, self.stop.clone());
        let template = self.body.clone();
        let period = Duration::from_secs_f64(1.0 / rate);
        let offset = self.offset;
        let sender = tokio::spawn(async move {
            let mut next = tokio::time::Instant::from_std(start) + offset;
            let mut id = 1_000_000u32;
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep_until(next).await;
                next += period;
                let sent_us = start.elapsed().as_micros() as u64;
                let Ok(body) = Body::new(template.clone()) else { break };
                let frame = ClientFrame {
                    id,
                    request: Request::Send {
                        request: timed_request(sent_us),
                        room,
                        body,
                        attachments: List::empty(),
                        redacts: None,
                    },
                };
                id += 1;
                let Ok(bytes) = codec::encode_client(&frame) else {
                    break;
                };
                if sink.send(Message::Binary(bytes.into())).await.is_err() {
                    break;
                }
            }
            let _ = sink.send(Message::Close(None)).await;
        });
        let mut local = Vec::new();
        let mut counted = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            // The stream ends when the server closes it after the sender's Close below.
            let Some(next) = stream.next().await else {
                break;
            };
            let Ok(Message::Binary(bytes)) = next else {
                continue;
            };
            let Ok(ServerFrame::Event { event }) = codec::decode_server(&bytes) else {
                continue;
            };
            let EventContent::Message { .. } = event.content else {
                continue;
            };
            let Ok(sent) = <[u8; 8]>::try_from(&event.request.0[..8]) else {
                continue;
            };
            let now_us = start.elapsed().as_micros() as u64;
            let now = Duration::from_micros(now_us);
            if now < self.warmup || now > self.until {
                continue;
            }
            counted += 1;
            self.delivered.fetch_add(1, Ordering::Relaxed);
            let latency = now_us.saturating_sub(u64::from_le_bytes(sent));
            local.push(u32::try_from(latency).unwrap_or(u32::MAX));
        }
        let _ = sender.await;
        if counted > 0 {
            if let Ok(mut s) = self.samples.lock() {
                s.extend(local);
            }
        }
    }
}

async fn idle(n: usize) -> anyhow::Result<()> {
    let server = ServerProcess::start(None)?;
    eprintln!("\n==> idle: {n} joined connections");
    let first = Client::sign_up(&server.url, "idle").await?;
    let session = first.me().clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_bytes()?;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        let (c, joined) = Client::resume(&server.url, &session, &[], &[]).await?;
        joined.map_err(|e| anyhow::anyhow!("join failed: {e}"))?;
        conns.push(c);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.rss_bytes()?;
    let per = after.saturating_sub(before) as f64 / n as f64;
    println!(
        "idle: {n} connections, server RSS {:.1} MiB → {:.1} MiB, {:.1} KiB per connection",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        per / 1024.0
    );
    drop(conns);
    Ok(())
}
