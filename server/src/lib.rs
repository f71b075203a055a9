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
//! - [`auth`], [`media`] (with quotas and sweeping), [`metrics`], [`ratelimit`], [`config`],
//!   [`turn`] (STUN/TURN for calls), `contacts` (contact keys and redeeming them), `nearby`
//!   (people nearby: opt-in, expiring, coarse), `disk` (refusing writes, not reads, when the
//!   disk is nearly full).
//!
//! Nothing here logs a token, a password or a message body: requests are logged by kind.

pub mod auth;
pub mod config;
mod connection;
mod contacts;
mod disk;
pub mod error;
mod listener;
mod media;
pub mod metrics;
mod mls;
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

use crate::{
    config::MetricsAt,
    metrics::Metrics,
    ratelimit::{AddrKey, KeyedBuckets},
    store::Store,
    switchboard::Switchboard,
};

/// State shared by every connection and request handler.
#[derive(Debug)]
pub(crate) struct Shared {
    config: Config,
    store: Store,
    switchboard: Switchboard,
    metrics: Metrics,
    /// Sign-ins per (username, address).
    sign_ins: std::sync::Mutex<KeyedBuckets<(String, AddrKey)>>,
    sign_ins_by_addr: std::sync::Mutex<KeyedBuckets<AddrKey>>,
    sign_ups_by_addr: std::sync::Mutex<KeyedBuckets<AddrKey>>,
    /// People-nearby lookups per user id.
    nearby_lookups: std::sync::Mutex<KeyedBuckets<i64>>,
    /// Rooms created, per user id.
    room_creations: std::sync::Mutex<KeyedBuckets<i64>>,
    /// Contact-key resets, per user id.
    contact_key_resets: std::sync::Mutex<KeyedBuckets<i64>>,
    key_package_claims: std::sync::Mutex<KeyedBuckets<i64>>,
    password_work: auth::PasswordWork,
    /// Who is setting up or in a call, for TURN credentials.
    calls: turn::CallWindows,
    disk: disk::DiskWatch,
    shutdown: CancellationToken,
    connections: TaskTracker,
    connection_slots: Arc<tokio::sync::Semaphore>,
}

impl Shared {
    fn media_dir(&self) -> PathBuf {
        self.config.data_dir.join("media")
    }
}

/// Buckets by key at `rate`, for at most 100,000 busy keys.
fn buckets<K: std::hash::Hash + Eq>(rate: ratelimit::Rate) -> std::sync::Mutex<KeyedBuckets<K>> {
    std::sync::Mutex::new(KeyedBuckets::new(rate, 100_000))
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
    /// `/metrics` on its own address (`MetricsAt::Separate`).
    metrics_listener: Option<tokio::net::TcpListener>,
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
    pub async fn bind(mut config: Config) -> anyhow::Result<Self> {
        // A user in more rooms than a Join can list could never sync again.
        config.max_rooms_per_user =
            config.max_rooms_per_user.min(tidings_proto::limits::MAX_ROOMS_PER_USER);
        config.max_requests_per_user =
            config.max_requests_per_user.min(tidings_proto::limits::MAX_REQUESTS_PER_USER);
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
        let metrics_listener = match config.metrics {
            MetricsAt::Separate(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("Cannot listen on {addr} for metrics"))?,
            ),
            MetricsAt::Main | MetricsAt::Off => None,
        };
        let shared = Arc::new(Shared {
            sign_ins: buckets(config.sign_in_rate),
            sign_ins_by_addr: buckets(config.sign_in_rate_per_addr),
            sign_ups_by_addr: buckets(config.sign_up_rate_per_addr),
            nearby_lookups: buckets(config.nearby_rate),
            room_creations: buckets(config.create_room_rate),
            contact_key_resets: buckets(config.contact_key_reset_rate),
            key_package_claims: buckets(config.key_package_claim_rate),
            password_work: auth::PasswordWork::new(config.password_hashers, config.password_queue),
            calls: turn::CallWindows::new(config.turn_window),
            disk: disk::DiskWatch::new(config.data_dir.clone(), config.min_free_disk),
            connection_slots: Arc::new(tokio::sync::Semaphore::new(config.max_connections)),
            config,
            store,
            switchboard: Switchboard::default(),
            metrics: Metrics::default(),
            shutdown: CancellationToken::new(),
            connections: TaskTracker::new(),
        });
        Ok(Self { listener, metrics_listener, shared, tls })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The address `/metrics` is served on when it has its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
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
        let mut app = Router::new()
            .route("/v1/ws", get(websocket))
            .route("/v1/media", post(media::upload))
            .route("/v1/media/{id}", get(media::download))
            .route("/v1/uploads", post(media::start_upload))
            .route("/v1/uploads/{id}", get(media::upload_state).patch(media::append_upload))
            .route("/healthz", get(|| async { "ok\n" }));
        if shared.config.metrics == MetricsAt::Main {
            app = app.route("/metrics", get(metrics_text));
        }
        let app = app.with_state(shared.clone());
        let front = |listener, tls, app| listener::Front {
            listener,
            tls,
            app,
            header_timeout: shared.config.header_timeout,
            max_per_addr: shared.config.max_connections_per_addr,
            trusted_proxies: shared.config.trusted_proxies.clone(),
            shutdown: shared.shutdown.clone(),
        };
        let metrics = self.metrics_listener.map(|listener| {
            let app = Router::new()
                .route("/metrics", get(metrics_text))
                .route("/healthz", get(|| async { "ok\n" }))
                .with_state(shared.clone());
            tokio::spawn(front(listener, None, app).run())
        });
        let stop = shared.shutdown.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("Shutting down.");
            stop.cancel();
        };
        tokio::spawn(signal);
        // Media no message lists, and abandoned uploads, are deleted now and then.
        let sweeper = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(shared.config.sweep_interval);
                loop {
                    tokio::select! {
                        _ = shared.shutdown.cancelled() => break,
                        _ = every.tick() => {}
                    }
                    if let Err(e) = media::sweep(&shared).await {
                        // (A fault is logged by into_info itself.)
                        let code = e.into_info().code.as_str();
                        tracing::warn!(code, "Media sweep failed.");
                    }
                }
            })
        };
        let disk_watch = {
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(disk::CHECK_EVERY);
                loop {
                    tokio::select! {
                        _ = shared.shutdown.cancelled() => break,
                        _ = every.tick() => {}
                    }
                    // statvfs may block on a sick filesystem: off the runtime.
                    let s = shared.clone();
                    let _ = tokio::task::spawn_blocking(move || s.disk.refresh()).await;
                }
            })
        };
        front(self.listener, self.tls, app).run().await;
        let _ = tokio::join!(sweeper, disk_watch);
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
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
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    held: Option<axum::Extension<listener::HeldSlot>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    // The connection's place in the per-address count goes with the websocket.
    let addr_slot = held.and_then(|h| h.take());
    let from = AddrKey::of(listener::client_ip(peer, &headers, &shared.config.trusted_proxies));
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
                connection::serve(socket, shared, from).await;
                drop((slot, addr_slot));
            })
        })
}

async fn metrics_text(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], shared.metrics.render())
}
