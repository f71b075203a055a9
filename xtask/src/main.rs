//! `cargo xtask …`: the project's own automation.
//!
//! - `run`: build the UI, the server and the app; start the server on its embedded
//!   default (unless `TIDINGS_SERVER` names one) and open the app connected to it;
//! - `test`: every test — the UI's types and unit tests, formatting, lints, the
//!   workspace's tests, the UI in Chromium, the real app end to end, a short fuzz run;
//! - `bench server`, `bench core`, `bench e2ee`, `bench photo`, `bench call`, `bench app`: the benchmarks
//!   (docs/performance.md; the measuring program is bench/, run as a release build);
//! - `fuzz [TARGET] [SECONDS]`: run a fuzz target.
//!
//! xtask depends on nothing but anyhow, so that it builds on a fresh machine that has only
//! the Rust toolchain: everything that needs a system package (cmake for Opus, WebKitGTK
//! for the app) is built by the commands it runs, after it has installed the packages.

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
        ["bench", which @ ("server" | "core" | "e2ee" | "photo" | "call" | "app"), rest @ ..] => {
            bench(which, rest)
        }
        ["fuzz"] => fuzz_all(30),
        ["fuzz", target] => fuzz(target, 60),
        ["fuzz", target, seconds] => fuzz(target, seconds.parse().context("SECONDS")?),
        _ => {
            eprintln!(
                "usage: cargo xtask run [-- serve flags…] | test | bench server|core|e2ee|photo|call|app | \
                 fuzz [TARGET [SECONDS]]"
            );
            std::process::exit(2);
        }
    }
}

/// The workspace root (xtask lives one level below it). Taken from the `CARGO_MANIFEST_DIR`
/// that `cargo run` sets, not the one compiled in: with a target dir shared between
/// checkouts, cargo reuses an xtask built in another checkout (same sources), and the
/// compiled-in path would point there.
fn root() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("..")
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

/// Where cargo puts what it builds.
pub(crate) fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root().join("target"))
}

/// What building the client engine needs on Debian: cmake (Opus is built from source) and
/// libcrypto's headers (SQLCipher, the profile's encryption at rest, is built from source
/// against it: docs/storage.md).
const CORE_BUILD_PACKAGES: &[(&str, &str)] =
    &[("cmake", "cmake"), ("/usr/include/openssl/evp.h", "libssl-dev")];

/// What building the app needs on Debian: the engine's cmake and libcrypto headers,
/// pkg-config, WebKitGTK (the web view), the tray's indicator library, ALSA (microphone and
/// speaker).
const APP_BUILD_PACKAGES: &[(&str, &str)] = &[
    ("cmake", "cmake"),
    ("/usr/include/openssl/evp.h", "libssl-dev"),
    ("pkg-config", "pkg-config"),
    ("/usr/lib/x86_64-linux-gnu/pkgconfig/webkit2gtk-4.1.pc", "libwebkit2gtk-4.1-dev"),
    (
        "/usr/include/libayatana-appindicator3-0.1/libayatana-appindicator/app-indicator.h",
        "libayatana-appindicator3-dev",
    ),
    ("/usr/include/alsa/asoundlib.h", "libasound2-dev"),
];

/// `npm` in ui/.
fn npm(args: &[&str]) -> Command {
    let mut c = Command::new("npm");
    c.current_dir(root().join("ui")).args(args);
    c
}

/// Installs the UI's npm packages (exactly the lock file's) when they are missing or older
/// than the lock file, then builds the UI into ui/dist (embedded by the app).
fn build_ui() -> anyhow::Result<()> {
    let ui = root().join("ui");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(&ui.join("node_modules/.package-lock.json"));
    if installed.is_none() || installed < modified(&ui.join("package-lock.json")) {
        step("npm ci (ui)", npm(&["ci", "--no-audit", "--no-fund"]))?;
    }
    step("build the UI", npm(&["run", "build"]))
}

fn run(extra: &[&str]) -> anyhow::Result<()> {
    // `cargo xtask run -- --listen …`: what follows `--` goes to `tidings serve`.
    let extra = match extra {
        ["--", rest @ ..] => rest,
        rest => rest,
    };
    ensure_packages(APP_BUILD_PACKAGES)?;
    build_ui()?;
    let mut build = cargo();
    build.args(["build", "--release", "-p", "tidings-cli", "-p", "tidings-app"]);
    step("build tidings and the app (release)", build)?;
    let release = target_dir().join("release");
    let display = ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some());
    // A server named by TIDINGS_SERVER is used as it is; otherwise one runs here on its
    // embedded default (SQLite and a media folder in the user's data directory).
    let configured = std::env::var("TIDINGS_SERVER").ok().filter(|s| !s.is_empty());
    let mut server = None;
    let url = match configured {
        Some(url) => url,
        None => {
            let mut serve = Command::new(release.join("tidings"));
            serve.arg("serve").args(extra).stdout(std::process::Stdio::piped());
            eprintln!("\n==> tidings serve");
            let mut child = serve.spawn().context("Cannot start tidings serve")?;
            let mut line = String::new();
            let stdout = child.stdout.take().context("server stdout")?;
            let mut lines = std::io::BufReader::new(stdout);
            std::io::BufRead::read_line(&mut lines, &mut line)?;
            print!("{line}");
            // Keep echoing what the server prints.
            std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::stdout()));
            server = Some(child);
            line.trim().rsplit(' ').next().context("the server printed no URL")?.to_owned()
        }
    };
    let result = if display {
        eprintln!("\n==> the app, connected to {url} (closing the window keeps it in the tray; Quit there ends it)");
        Command::new(release.join("tidings-app"))
            .args(["--server", &url])
            .status()
            .context("Cannot start the app")
            .map(|_| ())
    } else {
        eprintln!(
            "\nNo display here (DISPLAY is not set): the server runs at {url}; start the app \
             on a desktop with `{} --server {url}`. Ctrl-C stops the server.",
            release.join("tidings-app").display()
        );
        match server.as_mut() {
            Some(child) => child.wait().map(|_| ()).context("server"),
            None => Ok(()),
        }
    };
    if let Some(mut child) = server {
        let _ = child.kill();
        let _ = child.wait();
    }
    result
}

fn test() -> anyhow::Result<()> {
    let test_packages = [
        // The video tests make and probe real videos.
        ("ffmpeg", "ffmpeg"),
        // The relay-only call test runs a real TURN server.
        ("turnserver", "coturn"),
        // The browser interop call test and the fast UI tests run headless Chromium.
        ("chromium", "chromium"),
        // The contact tests read our QR codes with zbar and make codes with qrencode.
        ("zbarimg", "zbar-tools"),
        ("qrencode", "qrencode"),
        // The TLS tests: outside clients of the TLS server, and nginx terminating TLS.
        ("curl", "curl"),
        ("openssl", "openssl"),
        ("nginx", "nginx"),
        // The keychain test: a private session bus with a real Secret Service (GNOME
        // Keyring), and secret-tool to look at what is in it.
        ("dbus-daemon", "dbus-daemon"),
        ("dbus-send", "dbus-bin"),
        ("gnome-keyring-daemon", "gnome-keyring"),
        ("secret-tool", "libsecret-tools"),
        // The app's end-to-end tests: a virtual display and WebKitGTK's WebDriver.
        ("Xvfb", "xvfb"),
        ("WebKitWebDriver", "webkit2gtk-driver"),
    ];
    // One apt-get run for all of them.
    ensure_packages(&[APP_BUILD_PACKAGES, &test_packages].concat())?;
    ensure_tauri_driver()?;
    // The TLS tests' outside websocket client.
    ensure_python_module("websockets", "websockets")?;
    // The UI first: its types, unit tests and build (the app embeds ui/dist).
    build_ui()?;
    step("UI type check", npm(&["run", "check"]))?;
    step("UI unit tests (vitest)", npm(&["test"]))?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    step("format check", fmt)?;
    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    step("clippy", clippy)?;
    let mut tests = cargo();
    tests.args(["test", "--workspace", "--all-targets"]);
    step("workspace tests", tests)?;
    // The end-to-end tests run the binaries: `tidings` is built for the CLI's integration
    // tests, the app (which has none) is built here.
    let mut app = cargo();
    app.args(["build", "-p", "tidings-cli", "-p", "tidings-app"]);
    step("build tidings and the app for the end-to-end tests", app)?;
    step("UI tests in Chromium (mocked IPC)", npm(&["run", "test:ui"]))?;
    let debug = target_dir().join("debug");
    let mut e2e = npm(&["run", "test:e2e"]);
    e2e.env("TIDINGS_BIN", debug.join("tidings"))
        .env("TIDINGS_APP", debug.join("tidings-app"))
        .env("TIDINGS_TESTDATA", test_data()?);
    step("end-to-end tests of the real app (tauri-driver, Xvfb)", e2e)?;
    fuzz_all(30)
}

/// shared/testdata (real camera photos): `TIDINGS_TESTDATA`, else beside the checkout,
/// else the team's shared folder; the Rust tests look in the same places (tidings-testkit's
/// `test_images`).
fn test_data() -> anyhow::Result<PathBuf> {
    [
        std::env::var_os("TIDINGS_TESTDATA").map(PathBuf::from),
        Some(root().join("../shared/testdata")),
        Some(PathBuf::from("/work/shared/testdata")),
    ]
    .into_iter()
    .flatten()
    .find(|d| d.join("images/README.md").exists())
    .context("shared/testdata not found beside the checkout; set TIDINGS_TESTDATA")
}

/// `cargo xtask bench WHICH [flags…]`: installs and builds what the benchmark measures, then
/// runs the release build of bench/ beside the release binaries.
fn bench(which: &str, args: &[&str]) -> anyhow::Result<()> {
    ensure_packages(CORE_BUILD_PACKAGES)?;
    let mut build = cargo();
    build.args(["build", "--release", "-p", "tidings-bench"]);
    match which {
        "server" => {
            build.args(["-p", "tidings-cli"]);
        }
        "photo" => {
            ensure_packages(&[("vipsthumbnail", "libvips-tools"), ("/usr/bin/time", "time")])?
        }
        "call" => ensure_packages(&[("turnserver", "coturn")])?,
        "app" => {
            ensure_packages(APP_BUILD_PACKAGES)?;
            ensure_packages(&[("Xvfb", "xvfb")])?;
            build_ui()?;
            build.args(["-p", "tidings-app"]);
        }
        _ => {}
    }
    step("build the benchmark and what it measures (release)", build)?;
    let mut run = Command::new(target_dir().join("release/tidings-bench"));
    run.current_dir(root()).arg(which).args(args);
    step(&format!("bench {which}"), run)
}

/// Installs a PyPI package (for this user) when `python3` cannot import `module`.
fn ensure_python_module(module: &str, package: &str) -> anyhow::Result<()> {
    let found = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let mut install = Command::new("python3");
        install.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", package]);
        step(&format!("pip install {package}"), install)?;
    }
    Ok(())
}

/// tauri-driver (the WebDriver bridge for the app), pinned to 2.x: crates.io's newest is a
/// 3.0 alpha.
fn ensure_tauri_driver() -> anyhow::Result<()> {
    let found = Command::new("tauri-driver").arg("--help").output().is_ok();
    if !found {
        let mut install = cargo();
        install.args(["install", "tauri-driver", "--version", "^2", "--locked"]);
        step("install tauri-driver", install)?;
    }
    Ok(())
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
    for target in [
        "decode_client",
        "decode_server",
        "contact_code",
        "verify_code",
        "link_code",
        "mls_group",
        "mls_join",
        "sealed_file",
        "message_body",
    ] {
        fuzz(target, seconds)?;
    }
    Ok(())
}

fn fuzz(target: &str, seconds: u32) -> anyhow::Result<()> {
    ensure_cargo_fuzz()?;
    // The e2ee targets build tidings-core (its Opus wants cmake).
    ensure_packages(CORE_BUILD_PACKAGES)?;
    let mut run = cargo();
    run.current_dir(root().join("fuzz"))
        // cargo-fuzz passes unstable flags; the stable toolchain accepts them this way.
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["fuzz", "run", "--sanitizer", "none", target, "--"])
        .arg(format!("-max_total_time={seconds}"))
        .arg("-rss_limit_mb=1024");
    step(&format!("fuzz {target} for {seconds} s"), run)
}
