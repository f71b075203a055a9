//! `cargo xtask bench app`: the app's start to an interactive chat list on a profile of
//! 1,000 rooms, the whole app's idle memory, and the UI bundle's size.
//!
//! The profile is written straight into SQLite (as `bench core` does) with 1,000 rooms of
//! 20 messages, signed in to a server that is not there (the app starts offline, as it
//! must be able to). The release app runs under Xvfb; the UI calls `ready` once it has
//! painted the chat list, and the app prints the time since it started
//! (`TIDINGS_PRINT_READY`). The wall time from spawning the process to that line is the
//! figure. Memory is the proportional set size (PSS: shared pages split between the
//! processes that share them) summed over the app and its WebKit processes after 10 s
//! idle, split into the processes' own memory (anonymous and shared) and mapped files
//! (library code and data, shared and reclaimable), with the plain RSS sum beside it.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;

const ROOMS: i64 = 1_000;
const PER_ROOM: i64 = 20;
const RUNS: usize = 6;
const DISPLAY: &str = ":97";

pub fn run(args: &[&str]) -> anyhow::Result<()> {
    if !args.is_empty() {
        anyhow::bail!("bench app takes no flags");
    }
    let app = super::release_dir()?.join("tidings-app");

    let profile = tempfile::tempdir()?;
    drop(tidings_core::Client::open(profile.path())?);
    let rooms =
        std::env::var("TIDINGS_BENCH_ROOMS").ok().and_then(|r| r.parse().ok()).unwrap_or(ROOMS);
    let mut db = tidings_core::store::open_profile(profile.path())?.0;
    super::client::populate(&mut db, rooms, PER_ROOM)?;
    drop(db);
    eprintln!("==> profile: {ROOMS} rooms × {PER_ROOM} messages");

    let mut xvfb = Command::new("Xvfb")
        .args([DISPLAY, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
        .stderr(Stdio::null())
        .spawn()
        .context("Xvfb")?;
    let socket = format!("/tmp/.X11-unix/X{}", &DISPLAY[1..]);
    let waited = Instant::now();
    while !Path::new(&socket).exists() && waited.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }

    let dropped = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    let mut starts = Vec::new();
    let mut memory = None;
    for run in 0..RUNS {
        let spawned = Instant::now();
        let mut child = Command::new(&app)
            .arg("--profile-dir")
            .arg(profile.path())
            .env("DISPLAY", DISPLAY)
            .env("TIDINGS_PRINT_READY", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("start the app")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let line = lines
            .find(|l| l.as_ref().is_ok_and(|l| l.starts_with("ready")))
            .context("the app ended before its chat list was shown")??;
        let wall = spawned.elapsed();
        eprintln!("    run {}: {:.0} ms to the chat list ({line})", run + 1, ms(wall));
        starts.push(wall);
        if run == RUNS - 1 {
            std::thread::sleep(Duration::from_secs(10));
            memory = Some(tree_memory(child.id())?);
        }
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(300));
    }
    let _ = xvfb.kill();
    let _ = xvfb.wait();

    let first = starts[0];
    let mut warm: Vec<Duration> = starts[1..].to_vec();
    warm.sort();
    let memory = memory.context("no memory sample")?;
    println!("\napp start to an interactive chat list ({ROOMS} rooms), release build, Xvfb:");
    println!(
        "  first run {:.0} ms ({}), then median {:.0} ms, max {:.0} ms over {} runs",
        ms(first),
        if dropped { "page cache dropped" } else { "page cache NOT dropped: warm" },
        ms(warm[warm.len() / 2]),
        ms(warm[warm.len() - 1]),
        warm.len()
    );
    println!(
        "idle memory after 10 s, whole app ({} processes): PSS {:.0} MB = {:.0} MB its own \
         (anonymous and shared memory) + {:.0} MB mapped files (libraries); RSS sum {:.0} MB",
        memory.processes,
        mb(memory.pss),
        mb(memory.own),
        mb(memory.files),
        mb(memory.rss)
    );
    let (raw, gz) = bundle_size(&super::root()?.join("ui/dist"))?;
    println!("UI bundle (ui/dist): {:.1} kB, {:.1} kB gzipped", raw as f64 / 1e3, gz as f64 / 1e3);
    println!("app binary: {:.1} MB", std::fs::metadata(&app)?.len() as f64 / 1e6);
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Memory summed over `pid` and its descendants.
fn tree_memory(pid: u32) -> anyhow::Result<Memory> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // pid (comm) state ppid …: comm may hold spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((child, ppid));
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    let field = |text: &str, name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    let mut total = Memory { processes: tree.len(), ..Memory::default() };
    for p in &tree {
        let rollup = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).unwrap_or_default();
        let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
        let one = Memory {
            pss: field(&rollup, "Pss:"),
            rss: field(&rollup, "Rss:"),
            own: field(&rollup, "Pss_Anon:") + field(&rollup, "Pss_Shmem:"),
            files: field(&rollup, "Pss_File:"),
            processes: 1,
        };
        eprintln!(
            "    {:<20} PSS {:>6.1} MB (own {:>5.1}, mapped files {:>5.1})  RSS {:>6.1} MB",
            comm.trim(),
            mb(one.pss),
            mb(one.own),
            mb(one.files),
            mb(one.rss)
        );
        total.pss += one.pss;
        total.rss += one.rss;
        total.own += one.own;
        total.files += one.files;
    }
    Ok(total)
}

/// Memory of a process tree, in bytes.
#[derive(Default)]
struct Memory {
    /// Proportional set size: shared pages split between the processes sharing them.
    pss: u64,
    rss: u64,
    /// The part of PSS in anonymous and shared memory: heaps, stacks, relocated library
    /// data — what the app itself costs.
    own: u64,
    /// The part of PSS in mapped files: library code and read-only data, clean pages that
    /// other programs using the same libraries share and the kernel can drop and reread.
    files: u64,
    processes: usize,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

/// Total and gzipped size of the built UI.
fn bundle_size(dist: &Path) -> anyhow::Result<(u64, u64)> {
    let (mut raw, mut gz) = (0, 0);
    let mut dirs = vec![dist.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            raw += entry.metadata()?.len();
            let out = Command::new("gzip").args(["-9", "-c"]).arg(&path).output()?;
            gz += out.stdout.len() as u64;
        }
    }
    Ok((raw, gz))
}
