//! `tidings-bench`: the benchmarks behind docs/performance.md.
//!
//! Run them with `cargo xtask bench server|core|e2ee|photo|call|app`: xtask installs what a
//! benchmark needs, builds the release binaries it measures, then runs this program
//! (release build) beside them. They live apart from xtask so that xtask itself builds on a
//! fresh machine with nothing but the Rust toolchain: the client engine needs cmake (Opus is
//! built from source), which xtask installs first.

mod app;
mod call;
mod client;
mod e2ee;
mod photo;
mod server;

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: an unoptimized build measures itself; run `cargo xtask bench …`");
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["server", rest @ ..] => server::run(rest),
        ["core", rest @ ..] => client::run(rest),
        ["e2ee", rest @ ..] => e2ee::run(rest),
        ["photo", rest @ ..] => photo::run(rest),
        ["call", rest @ ..] => call::run(rest),
        ["app", rest @ ..] => app::run(rest),
        ["thumbnail", rest @ ..] => photo::thumbnail(rest),
        _ => {
            eprintln!("usage: cargo xtask bench server|core|e2ee|photo|call|app [flags…]");
            std::process::exit(2);
        }
    }
}

/// The workspace root: xtask runs the benchmark there.
fn root() -> anyhow::Result<PathBuf> {
    Ok(std::env::current_dir()?)
}

/// Where the release binaries being measured are: beside this program.
fn release_dir() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    Ok(me.parent().context("the benchmark's directory")?.to_owned())
}
