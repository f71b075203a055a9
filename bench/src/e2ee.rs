//! `cargo xtask bench e2ee`: MLS through core's e2ee module on real SQLite profiles.
//!
//! Every figure goes through `tidings_core::e2ee` on a profile database opened by
//! `tidings_core::store::open` (WAL, the pragmas the app uses), each step in its own
//! transaction as sync would run it:
//! - sealing one message and opening it (p50, p99);
//! - catch-up: opening a sender's messages in 500-message transactions (messages/s), the
//!   group loaded once per page and signatures checked on a second thread as apply does,
//!   beside checking them in line and beside loading the group for every message;
//! - adding one device to a group of 10, 100 and 256 leaves: the committer's add (commit,
//!   Welcome, GroupInfo, merge), a member processing that commit, and the new device joining
//!   from the Welcome;
//! - attachments (core/src/e2ee/file.rs): sealing a 100 MiB file to its digest (what sending
//!   prepares), sealing it in upload chunks, and opening the download, in MB/s beside a plain
//!   SHA-256 pass over the same file in the same run.

use std::time::{Duration, Instant};

use rusqlite::Connection;
use tidings_core::e2ee::{Device, LeafId, Processed};

const GROUP: &[u8; 16] = b"bench-group-0001";
const MESSAGES: usize = 2_000;
const CATCH_UP: usize = 10_000;
const PAGE: usize = 500;

pub fn run(args: &[&str]) -> anyhow::Result<()> {
    match args {
        [] => {}
        // Only sealing, opening and catch-up: what a change to openmls' storage moves.
        ["messages"] => return messages(),
        _ => anyhow::bail!("bench e2ee takes no flags, or `messages` alone"),
    }
    messages()?;
    for leaves in [10, 100, 256] {
        add_one(leaves)?;
    }
    attachments()
}

/// Sealing and opening a 100 MiB attachment, beside a SHA-256 pass over it (best of three).
fn attachments() -> anyhow::Result<()> {
    use std::io::{BufReader, Cursor, Write};
    use tidings_core::e2ee::file::{FileCipher, FileKey};
    const LEN: usize = 100 * 1024 * 1024;
    const UPLOAD_CHUNK: u64 = 4 * 1024 * 1024;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("plain.bin");
    // Any bytes do: ChaCha20-Poly1305 and SHA-256 run at the same speed on all of them.
    let plain: Vec<u8> = (0..LEN).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, &plain)?;
    let key = FileKey::random();
    let cipher = FileCipher::new(&key, LEN as u64);
    let best = |f: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            f()?;
            best = best.min(start.elapsed());
        }
        Ok(LEN as f64 / 1e6 / best.as_secs_f64())
    };
    let sha = best(&mut || {
        let mut hash = sha2::Sha256::default();
        std::io::copy(&mut BufReader::new(std::fs::File::open(&path)?), &mut hash)?;
        Ok(())
    })?;
    let mut digest = [0u8; 32];
    let prepare = best(&mut || {
        digest = cipher.digest(&mut BufReader::new(std::fs::File::open(&path)?))?;
        Ok(())
    })?;
    let mut sealed = Vec::new();
    let upload = best(&mut || {
        sealed.clear();
        let mut file = BufReader::new(std::fs::File::open(&path)?);
        let mut offset = 0;
        while offset < cipher.sealed_len() {
            let chunk = cipher.seal_range(&mut file, offset..offset + UPLOAD_CHUNK)?;
            offset += chunk.len() as u64;
            sealed.extend_from_slice(&chunk);
        }
        Ok(())
    })?;
    let opened_path = dir.path().join("opened.bin");
    let open = best(&mut || {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&opened_path)?);
        cipher.open_all(&digest, &mut Cursor::new(&sealed), &mut out)?;
        out.flush()?;
        Ok(())
    })?;
    anyhow::ensure!(std::fs::read(&opened_path)? == plain, "the attachment did not round-trip");
    println!(
        "e2ee attachment, 100 MiB: SHA-256 pass {sha:.0} MB/s; seal to digest {prepare:.0} MB/s \
         ({:.2}x the SHA-256 pass); seal in upload chunks {upload:.0} MB/s; open download \
         {open:.0} MB/s ({:.2}x); sealed size +{:.2} %",
        prepare / sha,
        open / sha,
        (sealed.len() as f64 / LEN as f64 - 1.0) * 100.0
    );
    Ok(())
}

/// A profile of its own with this device's keys.
struct Profile {
    _dir: tempfile::TempDir,
    db: Connection,
    device: Device,
}

impl Profile {
    fn new(user: i64) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let db = tidings_core::store::open(&dir.path().join("profile.sqlite"), None)?;
        let device = Device::for_session(&db, LeafId { user, device: user })?;
        Ok(Self { _dir: dir, db, device })
    }

    fn key_package(&self) -> anyhow::Result<Vec<u8>> {
        Ok(self.device.key_packages(&self.db, 1, false)?.remove(0))
    }

    /// Runs `f` in one transaction, committed.
    fn tx<T>(
        &mut self,
        f: impl FnOnce(&Device, &Connection) -> Result<T, tidings_core::e2ee::E2eeError>,
    ) -> anyhow::Result<T> {
        let tx = self.db.transaction()?;
        let out = f(&self.device, &tx)?;
        tx.commit()?;
        Ok(out)
    }
}

/// Every user of these benchmarks, members of the room now and before (membership is
/// checked against a roster on every handshake and join, as sync does).
fn roster() -> tidings_core::e2ee::Roster {
    let users: std::collections::BTreeSet<i64> = (0..=300).collect();
    tidings_core::e2ee::Roster { now: users.clone(), ever: users }
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Alice and Bob in one group.
fn pair() -> anyhow::Result<(Profile, Profile)> {
    let mut alice = Profile::new(1)?;
    let mut bob = Profile::new(2)?;
    let kp = bob.key_package()?;
    let setup = alice.tx(|d, c| d.create_group(c, GROUP, &[kp]))?;
    alice.tx(|d, c| d.confirm(c, GROUP))?;
    let welcome = setup.welcome.ok_or_else(|| anyhow::anyhow!("no welcome"))?;
    bob.tx(|_, c| tidings_core::e2ee::join(c, &welcome, &roster()))?;
    Ok((alice, bob))
}

fn messages() -> anyhow::Result<()> {
    let (mut alice, mut bob) = pair()?;
    let text = b"a message of a typical length, about sixty bytes, like this";
    let (mut seal, mut open) = (Vec::new(), Vec::new());
    for _ in 0..MESSAGES {
        let t = Instant::now();
        let sealed = alice.tx(|d, c| d.encrypt(c, GROUP, text))?;
        seal.push(t.elapsed());
        let t = Instant::now();
        let opened = bob.tx(|_, c| tidings_core::e2ee::process(c, GROUP, &sealed, &roster()))?;
        open.push(t.elapsed());
        anyhow::ensure!(matches!(opened, Processed::Application { .. }), "{opened:?}");
    }
    println!(
        "e2ee seal one message (own transaction): p50 {} p99 {}",
        ms(percentile(&mut seal, 0.5)),
        ms(percentile(&mut seal, 0.99))
    );
    println!(
        "e2ee open one message (own transaction): p50 {} p99 {}",
        ms(percentile(&mut open, 0.5)),
        ms(percentile(&mut open, 0.99))
    );

    // Catch-up as apply runs it (the group loaded once per page, signatures checked on a
    // second thread), beside checking them in line and beside loading the group for every
    // message (as before), on the same sender's messages.
    let roster = roster();
    for how in [Catch::Beside, Catch::InLine, Catch::PerMessage] {
        let sealed: Vec<Vec<u8>> = (0..CATCH_UP)
            .map(|_| alice.tx(|d, c| d.encrypt(c, GROUP, text)))
            .collect::<Result<_, _>>()?;
        let (t, mut opened) = (Instant::now(), 0);
        for page in sealed.chunks(PAGE) {
            opened += bob.tx(|_, c| {
                let mut loaded = match how {
                    Catch::Beside => tidings_core::e2ee::Loaded::checking_beside(),
                    _ => tidings_core::e2ee::Loaded::default(),
                };
                let mut opened = 0;
                for message in page {
                    let processed = match how {
                        Catch::PerMessage => {
                            tidings_core::e2ee::process(c, GROUP, message, &roster)?
                        }
                        _ => loaded.open(c, GROUP, message)?,
                    };
                    opened += usize::from(matches!(processed, Processed::Application { .. }));
                }
                loaded.finish()?;
                Ok(opened)
            })?;
        }
        anyhow::ensure!(opened == CATCH_UP, "{opened} of {CATCH_UP} messages opened");
        let rate = CATCH_UP as f64 / t.elapsed().as_secs_f64();
        let how = match how {
            Catch::Beside => "group loaded once per page, signatures checked beside",
            Catch::InLine => "group loaded once per page, signatures checked in line",
            Catch::PerMessage => "loaded per message",
        };
        println!(
            "e2ee catch-up, {CATCH_UP} messages in pages of {PAGE}, {how}: {rate:.0} messages/s"
        );
    }
    Ok(())
}

/// How a catch-up is opened.
#[derive(Clone, Copy)]
enum Catch {
    /// As apply does: the group loaded once per page, signatures checked on a second thread.
    Beside,
    /// The group loaded once per page, signatures checked in line.
    InLine,
    /// The group loaded for every message.
    PerMessage,
}

/// Adds one device to a group of `leaves` leaves.
fn add_one(leaves: i64) -> anyhow::Result<()> {
    let mut alice = Profile::new(1)?;
    let mut bob = Profile::new(2)?;
    // The other leaves' KeyPackages, made in one scratch profile (their secrets are not
    // needed: those members never process anything here).
    let scratch = Profile::new(0)?;
    let mut packages = vec![bob.key_package()?];
    for user in 3..=leaves {
        let device = Device::for_session(&scratch.db, LeafId { user, device: user })?;
        packages.push(device.key_packages(&scratch.db, 1, false)?.remove(0));
    }
    let setup = alice.tx(|d, c| d.create_group(c, GROUP, &packages))?;
    alice.tx(|d, c| d.confirm(c, GROUP))?;
    let welcome = setup.welcome.ok_or_else(|| anyhow::anyhow!("no welcome"))?;
    bob.tx(|_, c| tidings_core::e2ee::join(c, &welcome, &roster()))?;

    let mut newcomer = Profile::new(leaves + 1)?;
    let kp = newcomer.key_package()?;
    let t = Instant::now();
    let commit = alice.tx(|d, c| d.add(c, GROUP, std::slice::from_ref(&kp)))?;
    alice.tx(|d, c| d.confirm(c, GROUP))?;
    let add = t.elapsed();
    let t = Instant::now();
    bob.tx(|_, c| tidings_core::e2ee::process(c, GROUP, &commit.commit, &roster()))?;
    let process = t.elapsed();
    let welcome = commit.welcome.ok_or_else(|| anyhow::anyhow!("no welcome"))?;
    let t = Instant::now();
    newcomer.tx(|_, c| tidings_core::e2ee::join(c, &welcome, &roster()))?;
    let join = t.elapsed();
    println!(
        "e2ee add one device to {leaves} leaves: commit {} (commit {} B, Welcome {} B, \
         GroupInfo {} B), a member processes it {}, the newcomer joins {}",
        ms(add),
        commit.commit.len(),
        welcome.len(),
        commit.group_info.len(),
        ms(process),
        ms(join)
    );
    Ok(())
}
