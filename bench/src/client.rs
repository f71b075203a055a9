//! `cargo xtask bench core`: the client engine on a large profile.
//!
//! Builds a profile holding 1,000 rooms and 1,000,000 messages (written straight into its
//! SQLite file, as years of use would leave it), then measures through the public API:
//! the room list, a room's newest 50 messages, applying catch-up pages (500 events per
//! transaction, as sync does), the local echo of `send_text` (call → its event), search
//! (words of each frequency, in all rooms and in one), and the process's peak RSS. It does so on the profile unencrypted and encrypted (SQLCipher, as
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

/// Deterministic message texts, as varied as chats: eight words each from a 5,000-word
/// vocabulary, frequent words far more frequent than rare ones (the rank is 5000^u for a
/// uniform u: a log-uniform, Zipf-like spread), so that searches match as in real chats —
/// the most common word in about half the messages, a word of rank 100 in about one in a
/// hundred, one of rank 4,000 in a few hundred of the million.
pub(crate) struct Texts(u64);

impl Texts {
    pub(crate) const VOCABULARY: usize = 5_000;

    pub(crate) fn new() -> Self {
        Self(0x9e37_79b9_7f4a_7c15)
    }

    fn uniform(&mut self) -> f64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Word `rank` of the vocabulary (0 is the most common): two to four syllables.
    pub(crate) fn word(rank: usize) -> String {
        const SYLLABLES: [&str; 20] = [
            "ka", "lo", "mi", "ne", "ra", "to", "su", "vi", "de", "po", "ba", "ze", "ti", "go",
            "fu", "ha", "je", "wy", "qu", "xe",
        ];
        let mut n = rank + 20; // at least two syllables
        let mut out = String::new();
        while n > 0 {
            out.push_str(SYLLABLES[n % 20]);
            n /= 20;
        }
        out
    }

    pub(crate) fn next_text(&mut self) -> String {
        let words: Vec<String> = (0..8)
            .map(|_| {
                let rank = (Self::VOCABULARY as f64).powf(self.uniform()) as usize - 1;
                Self::word(rank.min(Self::VOCABULARY - 1))
            })
            .collect();
        words.join(" ")
    }
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
    let mut texts = Texts::new();
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
        // Indexed for search as the app indexes each message it stores.
        let mut search =
            tx.prepare("INSERT INTO search (rowid, text, room) VALUES (?1, ?2, 'r' || ?3)")?;
        let mut id = 0i64;
        for r in 1..=rooms {
            let other = 1 + r;
            user.execute(params![other, format!("user{other}")])?;
            room.execute(params![r, format!("room {r}"), per_room, per_room - 10, 5, r])?;
            for seq in 1..=per_room {
                id += 1;
                let sender = if seq % 2 == 0 { 1 } else { other };
                let rid = request_id(id as u64);
                let text = texts.next_text();
                let content = codec::encode(&message(&text)?)?;
                search.execute(params![id, text, r])?;
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
    tx.execute("DELETE FROM search_backfill", [])?;
    tx.commit()?;
    Ok(())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// (median, p99) of `times`, in ms.
fn spread(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    (ms(percentile(times, 0.5)), ms(percentile(times, 0.99)))
}

/// Prints a measurement of both profiles and what encryption costs on it.
fn report(what: &str, plain: &mut [Duration], encrypted: &mut [Duration]) {
    let (p, e) = (spread(plain), spread(encrypted));
    let cost = |p: f64, e: f64| (e / p - 1.0) * 100.0;
    println!(
        "{what}: unencrypted median {:.3} ms, p99 {:.3} ms; encrypted median {:.3} ms, p99 {:.3} ms; \
         cost: median {:+.0} %, p99 {:+.0} %",
        p.0,
        p.1,
        e.0,
        e.1,
        cost(p.0, e.0),
        cost(p.1, e.1)
    );
}

/// The same 1 M-message profile twice, unencrypted (the baseline) and encrypted with
/// SQLCipher as every profile is, measured in this one run, alternating between the two in
/// rounds so that both see the same machine (this one is shared); then what encryption
/// costs (goal: at most 15 % on the echo and the room list).
async fn measure() -> anyhow::Result<()> {
    let (plain_dir, encrypted_dir) = (tempfile::tempdir()?, tempfile::tempdir()?);
    drop(Client::open_unencrypted(plain_dir.path())?);
    let plain_db = plain_dir.path().join(tidings_core::store::DB_FILE);
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
    std::fs::copy(&plain_db, encrypted_dir.path().join(tidings_core::store::DB_FILE))?;
    let started = Instant::now();
    drop(Client::open(encrypted_dir.path())?);
    println!(
        "encrypting the unencrypted profile at its first open: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let opened = Instant::now();
    let plain = Client::open_unencrypted(plain_dir.path())?;
    let open_plain = opened.elapsed();
    let opened = Instant::now();
    let encrypted = Client::open(encrypted_dir.path())?;
    let open_encrypted = opened.elapsed();
    println!(
        "open the profile: unencrypted {:.1} ms, encrypted {:.1} ms",
        ms(open_plain),
        ms(open_encrypted)
    );

    let (mut p, mut e) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        p.extend(room_lists(&plain, 10).await?);
        e.extend(room_lists(&encrypted, 10).await?);
    }
    report(&format!("room list ({ROOMS} rooms, goal ≤ 2 ms)"), &mut p, &mut e);

    let (mut p, mut e) = (Vec::new(), Vec::new());
    for round in 0..10 {
        p.extend(newest_pages(&plain, round * 20, 20).await?);
        e.extend(newest_pages(&encrypted, round * 20, 20).await?);
    }
    report("newest 50 messages of a room (goal ≤ 1 ms)", &mut p, &mut e);

    // Catch-up, then the local echo right after it (its WAL being checkpointed meanwhile):
    // one profile after the other.
    let mut busy = Vec::new();
    for (label, client, encrypted) in
        [("unencrypted", &plain, false), ("encrypted", &encrypted, true)]
    {
        let rate = catch_up(client.dir(), encrypted)?;
        println!(
            "catch-up apply, {label}: {rate:.0} events/s ({CATCH_UP_EVENTS} events in pages of \
             500) (goal ≥ 50,000)"
        );
        busy.push(local_echo(client, 1_000).await?);
    }
    let [mut p, mut e] =
        <[Vec<Duration>; 2]>::try_from(busy).map_err(|_| anyhow::anyhow!("two"))?;
    report("local echo (send_text → its event) during the catch-up's checkpoint", &mut p, &mut e);

    // The local echo on idle profiles, alternating.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (mut p, mut e) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        p.extend(local_echo(&plain, 100).await?);
        e.extend(local_echo(&encrypted, 100).await?);
    }
    report("local echo (send_text → its event) on idle profiles (goal p99 ≤ 1 ms)", &mut p, &mut e);

    // Search: words of each frequency, across all rooms and in one; 20 hits, as a screen
    // of results shows.
    let queries: Vec<(&str, String, Option<i64>)> = vec![
        ("the most common word (in about half the messages)", Texts::word(0), None),
        ("a word of rank 100 (about 1 %)", Texts::word(100), None),
        ("a rare word, rank 4,000", Texts::word(4_000), None),
        ("two common words", format!("{} {}", Texts::word(1), Texts::word(2)), None),
        ("a two-letter prefix", Texts::word(0)[..2].to_owned(), None),
        ("a word of rank 100, in one room", Texts::word(100), Some(500)),
        ("the most common word, in the oldest room", Texts::word(0), Some(1)),
    ];
    let (mut all_p, mut all_e) = (Vec::new(), Vec::new());
    for (label, query, room) in &queries {
        let (mut p, mut e) = (Vec::new(), Vec::new());
        for _ in 0..10 {
            p.extend(searches(&plain, query, *room, 5).await?);
            e.extend(searches(&encrypted, query, *room, 5).await?);
        }
        let hits = plain.search(query, *room, 20).await?.len();
        report(&format!("search: {label} ({hits} hits shown)"), &mut p, &mut e);
        all_p.extend(p);
        all_e.extend(e);
    }
    let messages = ROOMS * PER_ROOM;
    let all = format!("search, every query above ({messages} messages; goal p99 ≤ 50 ms)");
    report(&all, &mut all_p, &mut all_e);

    let status = std::fs::read_to_string("/proc/self/status")?;
    let peak =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap_or("?").trim().to_owned();
    println!("peak RSS of the whole benchmark process (both profiles): {peak}");
    Ok(())
}

/// `n` searches for `query` (20 hits).
async fn searches(
    client: &Client,
    query: &str,
    room: Option<i64>,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        std::hint::black_box(client.search(query, room, 20).await?);
        times.push(t.elapsed());
    }
    Ok(times)
}

/// `n` reads of the room list.
async fn room_lists(client: &Client, n: usize) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let rooms = client.rooms().list().await?;
        times.push(t.elapsed());
        anyhow::ensure!(rooms.len() == ROOMS as usize);
    }
    Ok(times)
}

/// The newest 50 messages of `n` rooms, from the `first`-th on.
async fn newest_pages(client: &Client, first: i64, n: i64) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::new();
    for i in first..first + n {
        let t = Instant::now();
        let page = client.room(1 + (i * 7) % ROOMS).timeline().page(None, 50).await?;
        times.push(t.elapsed());
        anyhow::ensure!(page.len() == 50);
    }
    Ok(times)
}

/// Applies a new room's log in pages of 500, one transaction each, to the profile in `dir`:
/// events per second.
fn catch_up(dir: &std::path::Path, encrypted: bool) -> anyhow::Result<f64> {
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
    Ok(CATCH_UP_EVENTS as f64 / t.elapsed().as_secs_f64())
}

/// `n` sends, each timed from the call to its `TimelineChanged`.
async fn local_echo(client: &Client, n: i64) -> anyhow::Result<Vec<Duration>> {
    let mut events = client.subscribe();
    let mut times = Vec::new();
    for i in 0..n {
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
    Ok(times)
}
