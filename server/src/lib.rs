//! tidings-server: the relay and durable room logs of Tidings (shared/DESIGN.md §2, §5).
//!
//! One process, one data directory (mode 0700): an embedded SQLite database
//! (`tidings.sqlite`) and a `media/` folder. Clients speak tidings-proto over a websocket at
//! `/v1/ws`; media goes over HTTP (`/v1/media`); both over TLS when it is on. The modules, in
//! the order a request meets them:
//!
//! - [`listener`] — the accept loop: TLS handshakes ([`tls`]), header deadlines, the
//!   peer's address, graceful shutdown;
//! - [`connection`] — the websocket read loop, write task and dispatch;
//! - [`ops`] — what each request does — authentication, authorization, idempotent room-log
//!   mutations and fan-out;
//! - [`roomlog`] — SQL over the room logs (gap-free seq, membership, receipts, request ids);
//! - [`store`] — the database — one writer thread with group commit, post-commit hooks,
//!   readers, migrations;
//! - [`switchboard`] — connected devices and bounded, non-blocking delivery to them;
//! - [`auth`], [`media`], [`metrics`], [`ratelimit`], [`config`], [`turn`] (STUN/TURN for
//!   calls), `contacts` (contact keys and redeeming them), `nearby` (people nearby:
//!   opt-in, expiring, coarse).
//!
//! Nothing here logs a token, a password or a message body: requests are logged by kind.

pub mod auth;
pub mod config;
mod connection;
mod contacts;
pub mod error;
mod listener;
mod media;
pub mod metrics;
mod nearby;
mod ops;
pub mod ratelimit;
pub mod roomlog;
pub mod store;
pub mod switchboard;
pub mod tls;
pub mod turn;

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc};

use anyhow::Context;
use axum::{
    extract::{State, WebSocketUpgrade},
    response::IntoResponse,
    routing::{get, post},
    Router,
};
pub use config::Config;
use tidings_proto::limits::MAX_FRAME_BYTES;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{metrics::Metrics, ratelimit::KeyedBuckets, store::Store, switchboard::Switchboard};

/// State shared by every connection and request handler.
#[derive(Debug)]
pub(crate) struct Shared {
    config: Config,
    store: Store,
    switchboard: Switchboard,
    metrics: Metrics,
    sign_ins: std::sync::Mutex<KeyedBuckets<String>>,
    /// People-nearby lookups per user id.
    nearby_lookups: std::sync::Mutex<KeyedBuckets<i64>>,
    shutdown: CancellationToken,
    connections: TaskTracker,
    connection_slots: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    fn media_dir(&self) -> PathBuf {
        self.config.data_dir.join("media")
    }
}

/// Milliseconds since the Unix epoch (server time of commits and sessions).
pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A bound, ready-to-run server.
#[derive(Debug)]
pub struct Server {
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<Arc<tls::Tls>>,
}

/// Creates `dir` (and its parents) and makes it readable by its owner only.
pub(crate) fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    restrict(dir, 0o700)
}

/// Writes `bytes` to a new file at `path` readable by its owner only (atomically: through a
/// temporary file renamed into place).
pub(crate) fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let part = path.with_extension("part");
    std::fs::write(&part, bytes)?;
    restrict(&part, 0o600)?;
    std::fs::rename(&part, path)
}

/// Sets a path's Unix mode (nothing elsewhere: other systems' per-user folders are private).
pub(crate) fn restrict(path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

impl Server {
    /// Creates the data directory and database if needed, migrates it, and binds the listener.
    pub async fn bind(config: Config) -> anyhow::Result<Self> {
        // The data directory holds password hashes, session hashes and everyone's media:
        // nobody but the server's user reads it.
        private_dir(&config.data_dir).with_context(|| {
            format!("Cannot create data directory {}", config.data_dir.display())
        })?;
        let media = config.data_dir.join("media");
        std::fs::create_dir_all(&media)
            .with_context(|| format!("Cannot create data directory {}", media.display()))?;
        let db = config.data_dir.join("tidings.sqlite");
        let store =
            Store::open(&db).with_context(|| format!("Cannot open database {}", db.display()))?;
        restrict(&db, 0o600).with_context(|| format!("Cannot restrict {}", db.display()))?;
        let tls = match &config.tls {
            Some(source) => Some(Arc::new(
                tls::Tls::load(source.clone(), &config.data_dir).context("Cannot set up TLS")?,
            )),
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("Cannot listen on {}", config.listen))?;
        let shared = Arc::new(Shared {
            sign_ins: std::sync::Mutex::new(KeyedBuckets::new(config.sign_in_rate, 100_000)),
            nearby_lookups: std::sync::Mutex::new(KeyedBuckets::new(config.nearby_rate, 100_000)),
            connection_slots: Arc::new(tokio::sync::Semaphore::new(config.max_connections)),
            config,
            store,
            switchboard: Switchboard::default(),
            metrics: Metrics::default(),
            shutdown: CancellationToken::new(),
            connections: TaskTracker::new(),
        });
        Ok(Self { listener, shared, tls })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The server's TLS (to print its fingerprint, to reload its certificate), if it is on.
    pub fn tls(&self) -> Option<Arc<tls::Tls>> {
        self.tls.clone()
    }

    /// The base URL clients use: `https://` with TLS, else `http://`.
    pub fn url(&self) -> anyhow::Result<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        Ok(format!("{scheme}://{}", self.local_addr()?))
    }

    /// Serves until `shutdown` completes, then closes every connection with a
    /// `shutting_down` frame, waits for them, and lets the database commit what it holds.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shared = self.shared;
        let app = Router::new()
            .route("/v1/ws", get(websocket))
            .route("/v1/media", post(media::upload))
            .route("/v1/media/{id}", get(media::download))
            .route("/v1/uploads", post(media::start_upload))
            .route("/v1/uploads/{id}", get(media::upload_state).patch(media::append_upload))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/metrics", get(metrics_text))
            .with_state(shared.clone());
        let stop = shared.shutdown.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("Shutting down.");
            stop.cancel();
        };
        tokio::spawn(signal);
        listener::Front {
            listener: self.listener,
            tls: self.tls,
            app,
            header_timeout: shared.config.header_timeout,
            shutdown: shared.shutdown.clone(),
        }
        .run()
        .await;
        shared.connections.close();
        shared.connections.wait().await;
        let store = shared.store.clone();
        drop(shared);
        store.close();
        tracing::info!("Stopped.");
        Ok(())
    }
}

async fn websocket(
    ws: WebSocketUpgrade,
    State(shared): State<Arc<Shared>>,
) -> axum::response::Response {
    let Ok(slot) = shared.connection_slots.clone().try_acquire_owned() else {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "too many connections\n")
            .into_response();
    };
    let tracker = shared.connections.clone();
    ws.max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            tracker.track_future(async move {
                connection::serve(socket, shared).await;
                drop(slot);
            })
        })
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], shared.metrics.render())
}
