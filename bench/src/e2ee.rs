//! `cargo xtask bench e2ee`: MLS through core's e2ee module on real SQLite profiles.
//!
//! Every figure goes through `tidings_core::e2ee` on a profile database opened by
//! `tidings_core::store::open` (WAL, the pragmas the app uses), each step in its own
//! transaction as sync would run it:
//! - sealing one message and opening it (p50, p99);
//! - catch-up: opening a sender's messages in 500-message transactions (messages/s);
//! - adding one device to a group of 10, 100 and 256 leaves: the committer's add (commit,
//!   Welcome, GroupInfo, merge), a member processing that commit, and the new device joining
//!   from the Welcome.

use std::time::{Duration, Instant};

use rusqlite::Connection;
use tidings_core::e2ee::{Device, LeafId, Processed};

const GROUP: &[u8; 16] = b"bench-group-0001";
const MESSAGES: usize = 2_000;
const CATCH_UP: usize = 10_000;
const PAGE: usize = 500;

pub fn run(args: &[&str]) -> anyhow::Result<()> {
    if !args.is_empty() {
        anyhow::bail!("bench e2ee takes no flags");
    }
    messages()?;
    for leaves in [10, 100, 256] {
        add_one(leaves)?;
    }
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
        let db = tidings_core::store::open(&dir.path().join("profile.sqlite"))?;
        let device = Device::create(&db, LeafId { user, device: user })?;
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
    bob.tx(|_, c| tidings_core::e2ee::join(c, &welcome))?;
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
        let opened = bob.tx(|_, c| tidings_core::e2ee::process(c, GROUP, &sealed))?;
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

    let sealed: Vec<Vec<u8>> = (0..CATCH_UP)
        .map(|_| alice.tx(|d, c| d.encrypt(c, GROUP, text)))
        .collect::<Result<_, _>>()?;
    let t = Instant::now();
    for page in sealed.chunks(PAGE) {
        bob.tx(|_, c| {
            for message in page {
                tidings_core::e2ee::process(c, GROUP, message)?;
            }
            Ok(())
        })?;
    }
    let rate = CATCH_UP as f64 / t.elapsed().as_secs_f64();
    println!("e2ee catch-up, {CATCH_UP} messages in pages of {PAGE}: {rate:.0} messages/s");
    Ok(())
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
        let device = Device::create(&scratch.db, LeafId { user, device: user })?;
        packages.push(device.key_packages(&scratch.db, 1, false)?.remove(0));
    }
    let setup = alice.tx(|d, c| d.create_group(c, GROUP, &packages))?;
    alice.tx(|d, c| d.confirm(c, GROUP))?;
    let welcome = setup.welcome.ok_or_else(|| anyhow::anyhow!("no welcome"))?;
    bob.tx(|_, c| tidings_core::e2ee::join(c, &welcome))?;

    let mut newcomer = Profile::new(leaves + 1)?;
    let kp = newcomer.key_package()?;
    let t = Instant::now();
    let commit = alice.tx(|d, c| d.add(c, GROUP, std::slice::from_ref(&kp)))?;
    alice.tx(|d, c| d.confirm(c, GROUP))?;
    let add = t.elapsed();
    let t = Instant::now();
    bob.tx(|_, c| tidings_core::e2ee::process(c, GROUP, &commit.commit))?;
    let process = t.elapsed();
    let welcome = commit.welcome.ok_or_else(|| anyhow::anyhow!("no welcome"))?;
    let t = Instant::now();
    newcomer.tx(|_, c| tidings_core::e2ee::join(c, &welcome))?;
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
