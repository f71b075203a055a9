//! `cargo xtask bench core`: the client engine on a large profile.
//!
//! Builds a profile holding 1,000 rooms and 1,000,000 messages (written straight into its
//! SQLite file, as years of use would leave it), then measures through the public API:
//! the room list, a room's newest 50 messages, applying catch-up pages (500 events per
//! transaction, as sync does), the local echo of `send_text` (call → its event), and the
//! process's peak RSS. It does so on the profile unencrypted and encrypted (SQLCipher, as
//! every profile is), in the same run, and prints what encryption costs.

use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::params;
use tidings_core::{apply, apply::MessageBody, Client, Event};
use tidings_proto::{
    bounded::List, codec, Body, DeviceId, EventContent, RequestId, RoomEvent, RoomId, UserId,
};

const ROOMS: i64 = 1_000;
const PER_ROOM: i64 = 1_000;
const CATCH_UP_EVENTS: u64 = 50_000;

pub fn run(args: &[&str]) -> anyhow::Result<()> {
    if !args.is_empty() {
        anyhow::bail!("bench core takes no flags");
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(measure())
}

fn message(text: &str) -> anyhow::Result<EventContent> {
    let body = Body::new(codec::encode(&MessageBody::text(text))?)?;
    Ok(EventContent::Message { body, attachments: List::empty() })
}

fn request_id(n: u64) -> RequestId {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&n.to_le_bytes());
    b[8] = 0xbe;
    RequestId(b)
}

/// Writes `rooms` rooms of `per_room` messages each into the profile database `conn`
/// (signed in to a server that is not running).
pub(crate) fn populate(
    conn: &mut rusqlite::Connection,
    rooms: i64,
    per_room: i64,
) -> anyhow::Result<()> {
    conn.pragma_update(None, "synchronous", "OFF")?;
    let tx = conn.transaction()?;
    tx.execute(
        "INSERT INTO account (id, server, user_id, username, device_id, token)
         VALUES (1, 'http://127.0.0.1:9', 1, 'me', 1, '1.x')",
        [],
    )?;
    tx.execute("INSERT INTO users (id, username) VALUES (1, 'me')", [])?;
    let content = codec::encode(&message("a message of a typical length, about sixty bytes")?)?;
    {
        let mut user = tx.prepare("INSERT INTO users (id, username) VALUES (?1, ?2)")?;
        let mut room = tx.prepare(
            "INSERT INTO rooms (id, server_id, kind, name, synced_seq, read_seq, unread,
                                last_activity_ms)
             VALUES (?1, ?1, 'group', ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut last = tx.prepare(
            "UPDATE rooms SET last_event_id = ?2, last_preview = 'a message', last_sender = ?3,
                 last_message_seq = ?4, last_request_id = ?5, others = 1,
                 others_delivered_seq = ?4 - 1, others_read_seq = ?4 - 3
             WHERE id = ?1",
        )?;
        let mut member = tx.prepare(
            "INSERT INTO members (room_id, user_id, active, delivered_seq, read_seq)
             VALUES (?1, ?2, 1, ?3, ?4)",
        )?;
        let mut event = tx.prepare(
            "INSERT INTO events (id, room_id, seq, position, request_id, sender, at_ms, content,
                                 is_message)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1)",
        )?;
        let mut id = 0i64;
        for r in 1..=rooms {
            let other = 1 + r;
            user.execute(params![other, format!("user{other}")])?;
            room.execute(params![r, format!("room {r}"), per_room, per_room - 10, 5, r])?;
            for seq in 1..=per_room {
                id += 1;
                let sender = if seq % 2 == 0 { 1 } else { other };
                let rid = request_id(id as u64);
                event.execute(params![
                    id,
                    r,
                    seq,
                    apply::position_of_seq(seq as u64),
                    &rid.0[..],
                    sender,
                    seq,
                    content
                ])?;
            }
            let last_sender = if per_room % 2 == 0 { 1 } else { other };
            last.execute(params![r, id, last_sender, per_room, &request_id(id as u64).0[..]])?;
            member.execute(params![r, 1, per_room, per_room - 10])?;
            member.execute(params![r, other, per_room - 1, per_room - 3])?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What one profile measured.
struct Figures {
    open: Duration,
    room_list: (f64, f64),
    newest: (f64, f64),
    catch_up: f64,
    echo_busy: (f64, f64),
    echo_idle: (f64, f64),
}

/// The same 1 M-message profile twice, unencrypted (the baseline) and encrypted with
/// SQLCipher as every profile is, each measured in turn in this one run; then what
/// encryption costs, as ratios (goal: at most 15 % on the echo and the room list).
async fn measure() -> anyhow::Result<()> {
    let (plain, encrypted) = (tempfile::tempdir()?, tempfile::tempdir()?);
    drop(Client::open_unencrypted(plain.path())?);
    let plain_db = plain.path().join(tidings_core::store::DB_FILE);
    let started = Instant::now();
    {
        let mut conn = tidings_core::store::open(&plain_db, None)?;
        populate(&mut conn, ROOMS, PER_ROOM).context("populate the profile")?;
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    }
    eprintln!(
        "==> profile: {ROOMS} rooms × {PER_ROOM} messages written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // The encrypted one: a copy, encrypted as a profile from before encryption is when
    // first opened.
    std::fs::copy(&plain_db, encrypted.path().join(tidings_core::store::DB_FILE))?;
    let started = Instant::now();
    drop(Client::open(encrypted.path())?);
    println!(
        "encrypting the unencrypted profile at its first open: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let baseline = measure_one("unencrypted", plain.path(), false).await?;
    let sqlcipher = measure_one("encrypted (SQLCipher)", encrypted.path(), true).await?;

    let cost = |plain: f64, encrypted: f64| format!("{:+.0} %", (encrypted / plain - 1.0) * 100.0);
    let both = |what: &str, plain: (f64, f64), encrypted: (f64, f64)| {
        let (median, p99) = (cost(plain.0, encrypted.0), cost(plain.1, encrypted.1));
        println!("  {what}: median {median}, p99 {p99}");
    };
    println!(
        "encryption's cost (encrypted against unencrypted; goal ≤ +15 % on the echo and the room list):"
    );
    both("room list", baseline.room_list, sqlcipher.room_list);
    both("local echo (idle)", baseline.echo_idle, sqlcipher.echo_idle);
    both("local echo (during a checkpoint)", baseline.echo_busy, sqlcipher.echo_busy);
    both("newest 50", baseline.newest, sqlcipher.newest);
    println!(
        "  catch-up apply: {} time per event; open: {}",
        cost(1.0 / baseline.catch_up, 1.0 / sqlcipher.catch_up),
        cost(ms(baseline.open), ms(sqlcipher.open))
    );

    let status = std::fs::read_to_string("/proc/self/status")?;
    let peak =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap_or("?").trim().to_owned();
    println!("peak RSS of the whole benchmark process (both profiles): {peak}");
    Ok(())
}

/// Measures the profile in `dir` through the public API, encrypted or not.
async fn measure_one(
    label: &str,
    dir: &std::path::Path,
    encrypted: bool,
) -> anyhow::Result<Figures> {
    println!("== {label}");
    let opened = Instant::now();
    let client = if encrypted { Client::open(dir)? } else { Client::open_unencrypted(dir)? };
    let open = opened.elapsed();

    let mut times = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let rooms = client.rooms().list().await?;
        times.push(t.elapsed());
        anyhow::ensure!(rooms.len() == ROOMS as usize);
    }
    times.sort();
    let room_list = (ms(percentile(&times, 0.5)), ms(percentile(&times, 0.99)));
    println!(
        "room list ({ROOMS} rooms): median {:.2} ms, p99 {:.2} ms (goal ≤ 2 ms)",
        room_list.0, room_list.1
    );

    let mut times = Vec::new();
    for i in 0..200 {
        let t = Instant::now();
        let page = client.room(1 + (i * 7) % ROOMS).timeline().page(None, 50).await?;
        times.push(t.elapsed());
        anyhow::ensure!(page.len() == 50);
    }
    times.sort();
    let newest = (ms(percentile(&times, 0.5)), ms(percentile(&times, 0.99)));
    println!(
        "newest 50 messages of a room: median {:.3} ms, p99 {:.3} ms (goal ≤ 1 ms)",
        newest.0, newest.1
    );

    // Catch-up: a new room's log applied in pages of 500, one transaction each.
    let content = message("caught up")?;
    let events: Vec<RoomEvent> = (1..=CATCH_UP_EVENTS)
        .map(|seq| RoomEvent {
            room: RoomId(9_999),
            seq,
            sender: UserId(2),
            device: DeviceId(2),
            request: request_id(10_000_000 + seq),
            at_ms: seq as i64,
            content: content.clone(),
        })
        .collect();
    let mut conn = if encrypted {
        tidings_core::store::open_profile(dir)?.0
    } else {
        tidings_core::store::open(&dir.join(tidings_core::store::DB_FILE), None)?
    };
    let t = Instant::now();
    let room = apply::local_room(&conn, 9_999)?;
    for page in events.chunks(500) {
        let tx = conn.transaction()?;
        for e in page {
            apply::event(&tx, room, 1, e)?;
        }
        tx.commit()?;
    }
    let elapsed = t.elapsed();
    let catch_up = CATCH_UP_EVENTS as f64 / elapsed.as_secs_f64();
    println!(
        "catch-up apply: {catch_up:.0} events/s ({CATCH_UP_EVENTS} events in pages of 500) (goal ≥ 50,000)"
    );
    drop(conn);

    // Local echo: from the call to send_text to its TimelineChanged event, right after the
    // catch-up (its WAL is being checkpointed meanwhile) and on an idle profile.
    let echo_busy = local_echo(&client).await?;
    println!(
        "local echo (send_text → its event) during the catch-up's checkpoint: median {:.3} ms, p99 {:.3} ms",
        echo_busy.0, echo_busy.1
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let echo_idle = local_echo(&client).await?;
    println!(
        "local echo (send_text → its event) on an idle profile: median {:.3} ms, p99 {:.3} ms (goal p99 ≤ 1 ms)",
        echo_idle.0, echo_idle.1
    );
    println!("open the profile: {:.1} ms", ms(open));
    Ok(Figures { open, room_list, newest, catch_up, echo_busy, echo_idle })
}

/// 1,000 sends, each timed from the call to its `TimelineChanged`: (median, p99) in ms.
async fn local_echo(client: &Client) -> anyhow::Result<(f64, f64)> {
    let mut events = client.subscribe();
    let mut times = Vec::new();
    for i in 0..1_000 {
        let t = Instant::now();
        client.room(1 + i % ROOMS).send_queue().send_text("hello").await?;
        loop {
            match events.recv().await {
                Some(Event::TimelineChanged { .. }) => break,
                Some(_) => continue,
                None => anyhow::bail!("event channel closed"),
            }
        }
        times.push(t.elapsed());
    }
    times.sort();
    Ok((ms(percentile(&times, 0.5)), ms(percentile(&times, 0.99))))
}
