//! `cargo xtask …`: the project's own automation.
//!
//! - `run`: build and start the server on its embedded default, print its URL;
//! - `test`: every test — formatting, lints, the workspace's tests, a short fuzz run;
//! - `bench server`, `bench core`, `bench photo`, `bench call`: the benchmarks
//!   (docs/performance.md);
//! - `fuzz [TARGET] [SECONDS]`: run a fuzz target.

mod bench;
mod bench_call;
mod bench_core;
mod bench_photo;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["run", rest @ ..] => run(rest),
        ["test"] => test(),
        ["bench", "server", rest @ ..] => bench::server(rest),
        ["bench", "core", rest @ ..] => bench_core::run(rest),
        ["bench", "photo", rest @ ..] => bench_photo::run(rest),
        ["bench", "call", rest @ ..] => bench_call::run(rest),
        ["thumbnail", rest @ ..] => bench_photo::thumbnail(rest),
        ["fuzz"] => fuzz_all(30),
        ["fuzz", target] => fuzz(target, 60),
        ["fuzz", target, seconds] => fuzz(target, seconds.parse().context("SECONDS")?),
        _ => {
            eprintln!(
                "usage: cargo xtask run [-- serve flags…] | test | bench server|core|photo|call | \
                 fuzz [TARGET [SECONDS]]"
            );
            std::process::exit(2);
        }
    }
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs a command, failing with its description if it fails.
fn step(what: &str, mut command: Command) -> anyhow::Result<()> {
    eprintln!("\n==> {what}");
    let status = command.status().with_context(|| format!("Cannot start: {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn run(extra: &[&str]) -> anyhow::Result<()> {
    // `cargo xtask run -- --listen …`: what follows `--` goes to `tidings serve`.
    let extra = match extra {
        ["--", rest @ ..] => rest,
        rest => rest,
    };
    // Opus (for calls) is built from source with cmake.
    ensure_packages(&[("cmake", "cmake")])?;
    let mut build = cargo();
    build.args(["build", "--release", "--bin", "tidings"]);
    step("build tidings (release)", build)?;
    let mut serve = Command::new(root().join("target/release/tidings"));
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        serve = Command::new(PathBuf::from(dir).join("release/tidings"));
    }
    serve.arg("serve").args(extra);
    eprintln!("\n==> tidings serve (Ctrl-C stops it)");
    let status = serve.status().context("Cannot start tidings serve")?;
    if !status.success() {
        bail!("tidings serve exited with {status}");
    }
    Ok(())
}

fn test() -> anyhow::Result<()> {
    ensure_packages(&[
        // The video tests make and probe real videos.
        ("ffmpeg", "ffmpeg"),
        // Opus is built from source (opusic-sys) with cmake.
        ("cmake", "cmake"),
        // The relay-only call test runs a real TURN server.
        ("turnserver", "coturn"),
        // The browser interop call test runs headless Chromium.
        ("chromium", "chromium"),
        // The contact tests read our QR codes with zbar and read codes made by qrencode.
        ("zbarimg", "zbar-tools"),
        ("qrencode", "qrencode"),
        // The app's microphone and speaker (feature device-audio) build on ALSA.
        ("/usr/include/alsa/asoundlib.h", "libasound2-dev"),
    ])?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    step("format check", fmt)?;
    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    step("clippy", clippy)?;
    // The app's audio backend is behind a feature the tests do not use: keep it compiling.
    let mut device_audio = cargo();
    device_audio.args(["clippy", "-p", "tidings-core", "--features", "device-audio"]);
    device_audio.args(["--", "-D", "warnings"]);
    step("clippy (core with device-audio)", device_audio)?;
    let mut tests = cargo();
    tests.args(["test", "--workspace", "--all-targets"]);
    step("workspace tests", tests)?;
    fuzz_all(30)
}

/// Installs the Debian packages the tests need, for each `(program, package)` whose program
/// is not on the PATH (or, for an absolute path, whose file is missing).
fn ensure_packages(needed: &[(&str, &str)]) -> anyhow::Result<()> {
    let present = |what: &str| {
        if what.starts_with('/') {
            return Path::new(what).is_file();
        }
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(what).is_file()))
    };
    let missing: Vec<&str> =
        needed.iter().filter(|(what, _)| !present(what)).map(|(_, package)| *package).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    step("apt-get update", update)?;
    let mut install = Command::new("apt-get");
    install
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing);
    step(&format!("install {}", missing.join(" ")), install)
}

fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let found = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let mut install = cargo();
        install.args(["install", "cargo-fuzz", "--locked"]);
        step("install cargo-fuzz", install)?;
    }
    Ok(())
}

fn fuzz_all(seconds: u32) -> anyhow::Result<()> {
    for target in ["decode_client", "decode_server", "contact_code"] {
        fuzz(target, seconds)?;
    }
    Ok(())
}

fn fuzz(target: &str, seconds: u32) -> anyhow::Result<()> {
    ensure_cargo_fuzz()?;
    let mut run = cargo();
    run.current_dir(root().join("fuzz"))
        // cargo-fuzz passes unstable flags; the stable toolchain accepts them this way.
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "run", "--sanitizer", "none", target, "--"])
        .arg(format!("-max_total_time={seconds}"))
        .arg("-rss_limit_mb=1024");
    step(&format!("fuzz {target} for {seconds} s"), run)
}
