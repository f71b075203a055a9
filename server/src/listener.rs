//! The front door: accepts TCP connections, does the TLS handshake when TLS is on, and serves
//! HTTP/1.1 (with websocket upgrades) to the router.
//!
//! Our own accept loop rather than `axum::serve`, for what an open port needs:
//! - a **TLS handshake deadline** and an **HTTP header deadline**: a client that opens a
//!   socket and trickles bytes (slow-loris) holds a file descriptor for seconds, not forever;
//! - **the peer's address** on every request (`ConnectInfo`), for per-address limits;
//! - **graceful shutdown**: on shutdown the loop stops accepting, each HTTP connection
//!   finishes the request it is on and closes; upgraded websockets are closed by their own
//!   loop (connection.rs) with `shutting_down`.
//!
//! Every accepted socket gets `TCP_NODELAY`: frames are small and latency matters.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{extract::ConnectInfo, Router};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use crate::tls::Tls;

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
    pub(crate) shutdown: CancellationToken,
}

impl Front {
    /// Accepts until shutdown, then waits (bounded) for HTTP connections to finish.
    pub(crate) async fn run(self) {
        let http = TaskTracker::new();
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
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "Cannot set TCP_NODELAY.");
            }
            let connection = Connection {
                tls: self.tls.clone(),
                app: self.app.clone(),
                header_timeout: self.header_timeout,
                shutdown: self.shutdown.clone(),
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
        let app = self.app;
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
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
