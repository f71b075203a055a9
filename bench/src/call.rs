//! `cargo xtask bench call [--calls N]`: call setup time, from the caller pressing "call" (the
//! Inquire) to media connected on the caller's side, over the real server on loopback.
//!
//! Two profiles, each with its live sync session and call driver, as the app runs them; the
//! callee accepts as soon as it rings. Measured twice: direct (host candidates on
//! 127.0.0.1) and relay-only through a real coturn with credentials issued by the server.
//! Each call is hung up once connected, and the next starts when both sides are idle again.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use tidings_core::{
    call::{
        audio::{Silence, Tone},
        media::MediaConfig,
        CallEvent, CallOptions, Timeouts,
    },
    sync, Client, ConnectionState, Event, Subscription,
};
use tidings_proto::RoomKind;
use tidings_testkit::{Coturn, TestServer};

const SECRET: &str = "bench turn secret";

pub fn run(args: &[&str]) -> anyhow::Result<()> {
    let calls = match args {
        [] => 20,
        ["--calls", n] => n.parse().context("--calls N")?,
        _ => bail!("usage: cargo xtask bench call [--calls N]"),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let server = TestServer::start().await?;
        let direct = setup_times(&server.http_url(), false, calls).await?;
        report("direct (host candidates, loopback)", &direct);
        let turn = Coturn::start(SECRET)?;
        let server = TestServer::start_with(|c| {
            c.turn_urls = vec![turn.url()];
            c.turn_secret = Some(tidings_testkit::Secret(SECRET.into()));
        })
        .await?;
        let relayed = setup_times(&server.http_url(), true, calls).await?;
        report("relay-only through coturn", &relayed);
        Ok(())
    })
}

fn report(what: &str, times: &[Duration]) {
    if times.is_empty() {
        println!("{what}: no call connected");
        return;
    }
    let mut ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what}: {} calls, setup median {:.0} ms, p95 {:.0} ms, min {:.0} ms, max {:.0} ms",
        ms.len(),
        at(0.5),
        at(0.95),
        ms[0],
        ms[ms.len() - 1]
    );
}

async fn wait_for(
    events: &mut Subscription,
    what: &str,
    mut found: impl FnMut(&Event) -> bool,
) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(e) = events.recv().await {
            if found(&e) {
                return Ok(());
            }
        }
        bail!("the client stopped")
    })
    .await
    .with_context(|| format!("waiting for {what}"))?
}

async fn profile(dir: &std::path::Path, server: &str, name: &str) -> anyhow::Result<Client> {
    let client = Client::open(&dir.join(name))?;
    let server = tidings_core::endpoint::Endpoint::parse(server)?;
    client.sessions().sign_up(&server, name, "correct horse battery").await?;
    Ok(client)
}

async fn setup_times(
    server: &str,
    relay_only: bool,
    calls: usize,
) -> anyhow::Result<Vec<Duration>> {
    let dir = tempfile::tempdir()?;
    let caller = profile(dir.path(), server, "caller").await?;
    let callee = profile(dir.path(), server, "callee").await?;
    let callee_id = caller.contacts().lookup("callee").await?;
    let room = caller.rooms().create(RoomKind::Direct, None, vec![callee_id]).await?;
    sync::sync_until_idle(&caller).await?;
    sync::sync_until_idle(&callee).await?;
    // The callee accepts the caller's room (a request until then: it would not ring).
    let request =
        callee.rooms().list().await?.first().map(|r| r.room).context("the callee's room")?;
    callee.room(request).accept().await?;
    sync::sync_until_idle(&callee).await?;

    let media =
        MediaConfig { relay_only, udp_addrs: vec!["127.0.0.1:0".into()], ..Default::default() };
    for client in [&caller, &callee] {
        let mut events = client.subscribe();
        let c = client.clone();
        tokio::spawn(async move { sync::run(&c).await });
        let online = |e: &Event| matches!(e, Event::Connection { state: ConnectionState::Online });
        wait_for(&mut events, "online", online).await?;
        let options = CallOptions {
            media: media.clone(),
            audio: Arc::new(|| (Box::new(Tone::new(440.0)) as _, Box::new(Silence) as _)),
            timeouts: Timeouts::default(),
        };
        client.calls().start(options).await?;
    }
    // The callee answers whatever rings.
    let mut ringing = callee.subscribe();
    let answerer = callee.clone();
    tokio::spawn(async move {
        while let Some(e) = ringing.recv().await {
            if matches!(e, Event::Call(CallEvent::Ringing { .. })) {
                let _ = answerer.calls().accept();
            }
        }
    });

    let mut times = Vec::with_capacity(calls);
    let mut failed = Vec::new();
    for _ in 0..calls {
        let mut events = caller.subscribe();
        let mut callee_events = callee.subscribe();
        let started = Instant::now();
        caller.calls().call(room, Some(callee_id)).await?;
        let mut ended_early = None;
        let settled = |e: &Event| match e {
            Event::Call(CallEvent::Connected { .. }) => true,
            Event::Call(CallEvent::Ended { reason, .. }) => {
                ended_early = Some(*reason);
                true
            }
            _ => false,
        };
        wait_for(&mut events, "connected", settled).await?;
        let ended = |e: &Event| matches!(e, Event::Call(CallEvent::Ended { .. }));
        match ended_early {
            Some(reason) => {
                failed.push(reason);
                // The callee may never have rung; give it a moment either way.
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    wait_for(&mut callee_events, "the callee's end", ended),
                )
                .await;
            }
            None => {
                times.push(started.elapsed());
                caller.calls().hang_up()?;
                wait_for(&mut events, "the caller's end", ended).await?;
                wait_for(&mut callee_events, "the callee's end", ended).await?;
            }
        }
    }
    if !failed.is_empty() {
        println!("  {} of {calls} calls did not connect: {failed:?}", failed.len());
    }
    Ok(times)
}
