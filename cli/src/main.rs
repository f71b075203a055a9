//! The `tidings` binary: `tidings serve` runs the server; client commands follow with the
//! client core.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "tidings", version, about = "Tidings: an offline-first messenger")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server on an embedded SQLite database (no other process needed).
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7878", env = "TIDINGS_LISTEN")]
        listen: SocketAddr,
        /// Data directory (database and media). Default: the user's data directory.
        #[arg(long, env = "TIDINGS_DATA")]
        data: Option<PathBuf>,
        /// Largest media upload in bytes.
        #[arg(long, default_value_t = 100 * 1024 * 1024)]
        max_upload_bytes: u64,
    },
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    let dirs = directories::ProjectDirs::from("", "", "tidings")
        .context("Cannot find the user's data directory; pass --data")?;
    Ok(dirs.data_dir().join("server"))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("Cannot start the async runtime")?;
    match cli.command {
        Command::Serve { listen, data, max_upload_bytes } => {
            let data = match data {
                Some(d) => d,
                None => default_data_dir()?,
            };
            runtime.block_on(serve(listen, data, max_upload_bytes))
        }
    }
}

async fn serve(listen: SocketAddr, data: PathBuf, max_upload_bytes: u64) -> anyhow::Result<()> {
    // Every connection is a file descriptor: take the hard limit rather than the shell's
    // usual soft limit of 1024.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "Cannot raise the open-files limit.");
    }
    let mut config = tidings_server::Config::new(listen, data.clone());
    config.max_upload_bytes = max_upload_bytes;
    let server = tidings_server::Server::bind(config).await?;
    let addr = server.local_addr()?;
    tracing::info!(data = %data.display(), "Data directory.");
    // The first stdout line is the URL, for people and for scripts that start a server.
    println!("Tidings server listening on http://{addr}");
    server.run(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
