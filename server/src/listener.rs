//! The front door: accepts TCP connections, does the TLS handshake when TLS is on, and serves
//! HTTP/1.1 (with websocket upgrades) to the router.
//!
//! Our own accept loop rather than `axum::serve`, for what an open port needs:
//! - a **TLS handshake deadline** and an **HTTP header deadline**: a client that opens a
//!   socket and trickles bytes (slow-loris) holds a file descriptor for seconds, not forever;
//! - **the peer's address** on every request (`ConnectInfo`), for per-address limits, and
//!   [`client_ip`]: behind a trusted reverse proxy, the address it forwarded;
//! - **a cap on connections per address** (IPv4, IPv6 /64; a trusted proxy is not counted),
//!   so one host cannot take every file descriptor;
//! - **graceful shutdown**: on shutdown the loop stops accepting, each HTTP connection
//!   finishes the request it is on and closes; upgraded websockets are closed by their own
//!   loop (connection.rs) with `shutting_down`.
//!
//! Every accepted socket gets `TCP_NODELAY`: frames are small and latency matters.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::ConnectInfo, Router};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use crate::{ratelimit::AddrKey, tls::Tls};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an HTTP connection may keep the server waiting after stopping for shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What the accept loop needs.
pub(crate) struct Front {
    pub(crate) listener: TcpListener,
    pub(crate) tls: Option<Arc<Tls>>,
    pub(crate) app: Router,
    /// Longest wait for a request's head (line and headers), from the connection's start
    /// or from the end of the previous request.
    pub(crate) header_timeout: Duration,
    /// Most open connections from one address.
    pub(crate) max_per_addr: usize,
    /// Proxies whose connections are not counted, and whose `X-Forwarded-For` is believed.
    pub(crate) trusted_proxies: Vec<IpAddr>,
    pub(crate) shutdown: CancellationToken,
}

/// Open connections per address; a [`Slot`] gives its place back when dropped.
type OpenByAddr = Arc<Mutex<HashMap<AddrKey, usize>>>;

/// One counted connection. A request carries its connection's slot ([`HeldSlot`]) so that a
/// websocket upgrade takes it along: the HTTP connection ends at the upgrade, the websocket
/// lives on and stays counted.
pub(crate) struct Slot {
    open: OpenByAddr,
    key: AddrKey,
}

impl Slot {
    /// A place for a connection from `key`, unless `max` are open.
    fn take(open: &OpenByAddr, key: AddrKey, max: usize) -> Option<Self> {
        let mut map = open.lock().ok()?;
        let count = map.entry(key).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Self { open: open.clone(), key })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.open.lock() {
            if let Some(count) = map.get_mut(&self.key) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&self.key);
                }
            }
        }
    }
}

/// The slot of the connection a request came on; taken by a websocket upgrade.
#[derive(Clone, Default)]
pub(crate) struct HeldSlot(Arc<Mutex<Option<Slot>>>);

impl HeldSlot {
    /// The slot, for the upgraded connection to keep (once).
    pub(crate) fn take(&self) -> Option<Slot> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}

/// The client's address: the peer's, or — when the peer is a trusted proxy — the last
/// address in `X-Forwarded-For` (the one the proxy itself added; earlier ones are whatever
/// the client claimed).
pub(crate) fn client_ip(
    peer: SocketAddr,
    headers: &axum::http::HeaderMap,
    trusted_proxies: &[IpAddr],
) -> IpAddr {
    if !trusted_proxies.contains(&peer.ip()) {
        return peer.ip();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
        .unwrap_or(peer.ip())
}

impl Front {
    /// Accepts until shutdown, then waits (bounded) for HTTP connections to finish.
    pub(crate) async fn run(self) {
        let http = TaskTracker::new();
        let open = OpenByAddr::default();
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, most likely: wait a little rather than spin.
                    tracing::warn!(error = %e, "Cannot accept a connection.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let slot = if self.trusted_proxies.contains(&peer.ip()) {
                None
            } else {
                match Slot::take(&open, AddrKey::of(peer.ip()), self.max_per_addr) {
                    Some(slot) => Some(slot),
                    None => {
                        tracing::debug!(%peer, "Too many connections from one address.");
                        drop(tcp);
                        continue;
                    }
                }
            };
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "Cannot set TCP_NODELAY.");
            }
            let connection = Connection {
                tls: self.tls.clone(),
                app: self.app.clone(),
                header_timeout: self.header_timeout,
                shutdown: self.shutdown.clone(),
                slot: HeldSlot(Arc::new(Mutex::new(slot))),
            };
            http.spawn(connection.serve(tcp, peer));
        }
        http.close();
        if tokio::time::timeout(DRAIN_TIMEOUT, http.wait()).await.is_err() {
            tracing::info!("HTTP connections still open after shutdown; leaving them.");
        }
    }
}

/// One accepted socket.
struct Connection {
    tls: Option<Arc<Tls>>,
    app: Router,
    header_timeout: Duration,
    shutdown: CancellationToken,
    slot: HeldSlot,
}

impl Connection {
    async fn serve(self, tcp: TcpStream, peer: SocketAddr) {
        match self.tls.clone() {
            None => self.http(tcp, peer).await,
            Some(tls) => {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor().accept(tcp)).await {
                    Ok(Ok(stream)) => self.http(stream, peer).await,
                    // A failed handshake is the client's business (a scanner, a wrong pin):
                    // not worth more than a debug line.
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed."),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out."),
                }
            }
        }
    }

    async fn http<S>(self, io: S, peer: SocketAddr)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (app, slot) = (self.app, self.slot);
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request.extensions_mut().insert(slot.clone());
            let app = app.clone();
            async move { app.oneshot(request).await }
        });
        let mut builder = http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(self.header_timeout);
        let connection = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
        tokio::pin!(connection);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            _ = self.shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "HTTP connection ended with an error.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::unwrap_used)]
    fn only_a_trusted_proxy_may_name_the_client_and_its_own_entry_counts() {
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut headers = axum::http::HeaderMap::new();
        // What the client claimed, then what the proxy added.
        headers.insert("x-forwarded-for", "10.9.9.9, 203.0.113.5".parse().unwrap());
        let trusted = [proxy.ip()];
        let client: IpAddr = "203.0.113.5".parse().unwrap();
        assert_eq!(client_ip(proxy, &headers, &trusted), client);
        assert_eq!(client_ip(proxy, &headers, &[]), proxy.ip(), "an untrusted peer is itself");
        let bare = axum::http::HeaderMap::new();
        assert_eq!(client_ip(proxy, &bare, &trusted), proxy.ip());
    }
}
