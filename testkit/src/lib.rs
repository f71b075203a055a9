//! Test and benchmark support: the real server in-process on a loopback port, a small
//! client that speaks tidings-proto over a real websocket, and a real TURN server.
//!
//! The client is deliberately plain: it sends a request, buffers any pushes that arrive
//! before the matching reply, and hands them out in order with [`Client::next_push`]. Tests
//! see exactly the frames the server sent.

mod ca;
mod coturn;

use std::{collections::VecDeque, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use tidings_proto::{
    bounded::{List, Text},
    codec, ClientFrame, Credentials, DeviceId, ErrorInfo, Password, Reply, Request, RequestId,
    RoomCursor, RoomEvent, RoomId, ServerFrame, Token, UserRef,
};
use tidings_server::{Config, Server};
use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle};
use tokio_tungstenite::{
    tungstenite::{client::IntoClientRequest, protocol::WebSocketConfig, Message},
    MaybeTlsStream, WebSocketStream,
};

pub use ca::{CertFiles, TestCa};
pub use coturn::Coturn;
pub use tidings_server::config::Secret;

/// What `wss://` connections of this process trust ([`trust`]).
static TRUSTED: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> =
    std::sync::OnceLock::new();

/// Makes every `wss://` [`Client`] of this process trust `tls` (e.g. [`TestCa::client_config`]);
/// the first call wins.
pub fn trust(tls: std::sync::Arc<rustls::ClientConfig>) {
    let _ = TRUSTED.set(tls);
}

/// How long a test waits for a frame before calling it missing.
pub const WAIT: Duration = Duration::from_secs(10);

/// The real server, running in this process on 127.0.0.1 with its data in a temp dir.
#[derive(Debug)]
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    data: PathBuf,
    _dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    tls: Option<std::sync::Arc<tidings_server::tls::Tls>>,
}

impl TestServer {
    /// Starts a server with default settings and a fresh data directory.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Starts a server with settings adjusted by `tune`, in a fresh data directory.
    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let data = dir.path().to_owned();
        let mut server = Self::start_in(data, tune).await?;
        server._dir = Some(dir);
        Ok(server)
    }

    /// Starts a server on an existing data directory (to test restarts).
    pub async fn start_in(data: PathBuf, tune: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let mut config = Config::new(([127, 0, 0, 1], 0).into(), data.clone());
        tune(&mut config);
        let server = Server::bind(config).await?;
        let addr = server.local_addr()?;
        let tls = server.tls();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Ok(Self { addr, data, _dir: None, stop: Some(stop), task: Some(task), tls })
    }

    /// The base URL clients use: `https://127.0.0.1:…` with TLS on, else `http://…`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The server's TLS (its fingerprint; reloading its certificate), if on.
    pub fn tls(&self) -> Option<&tidings_server::tls::Tls> {
        self.tls.as_deref()
    }

    /// `ws://…/v1/ws`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// `http://…`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests of `kind` (`hello`, `catch_up`, …) the server has handled, from
    /// its `/metrics` (plain HTTP on its own address: only for servers without TLS).
    pub async fn handled(&self, kind: &str) -> anyhow::Result<u64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(self.addr).await?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: test\r\n\r\n").await?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await?;
        let series = format!("tidings_request_duration_seconds_count{{kind=\"{kind}\"}} ");
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(&series))
            .map(|n| n.trim().parse())
            .transpose()?
            .unwrap_or(0))
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data
    }

    /// Shuts down gracefully and waits for it. Keeps the data directory alive.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

/// A signed-up account's session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user.
    pub user: UserRef,
    /// The device.
    pub device: DeviceId,
    /// The token.
    pub token: Token,
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A protocol client over one websocket.
#[derive(Debug)]
pub struct Client {
    ws: Ws,
    next_id: u32,
    pushes: VecDeque<ServerFrame>,
    /// The session this client joined with, if any.
    pub session: Option<Session>,
}

/// shared/testdata/images, the real camera photos of the media tests and benchmarks:
/// `TIDINGS_TESTDATA` if set, else the `shared/` next to the checkout or the workspace's
/// usual place.
pub fn test_images() -> anyhow::Result<PathBuf> {
    let beside_checkout = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    [
        std::env::var_os("TIDINGS_TESTDATA").map(PathBuf::from),
        Some(beside_checkout.join("shared/testdata")),
        Some(PathBuf::from("/work/shared/testdata")),
    ]
    .into_iter()
    .flatten()
    .map(|d| d.join("images"))
    .find(|d| d.join("README.md").exists())
    .context("shared/testdata/images not found; set TIDINGS_TESTDATA")
}

/// Makes a fresh request id.
pub fn request_id() -> RequestId {
    RequestId(*uuid::Uuid::new_v4().as_bytes())
}

/// Wraps a string for the wire, panicking on over-long test input.
pub fn text<const N: usize>(s: &str) -> Text<N> {
    Text::new(s).unwrap_or_else(|e| panic!("test string too long: {e}"))
}

impl Client {
    /// Opens a websocket (nothing sent yet); `wss://` trusts what [`trust`] was given.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        if url.starts_with("wss://") {
            let tls = TRUSTED.get().context("wss:// without tidings_testkit::trust(…)")?;
            return Self::connect_tls(url, tls.clone()).await;
        }
        Self::connect_request(url.into_client_request()?).await
    }

    /// Opens a websocket saying it is forwarded for `client` (`X-Forwarded-For`), as a
    /// reverse proxy would: a server that trusts the proxy counts its limits by `client`.
    pub async fn connect_from(url: &str, client: std::net::IpAddr) -> anyhow::Result<Self> {
        let mut request = url.into_client_request()?;
        request.headers_mut().insert("x-forwarded-for", client.to_string().parse()?);
        Self::connect_request(request).await
    }

    /// Opens a websocket over TLS (`wss://…`), trusting what `tls` trusts.
    pub async fn connect_tls(
        url: &str,
        tls: std::sync::Arc<rustls::ClientConfig>,
    ) -> anyhow::Result<Self> {
        let request = url.into_client_request()?;
        let config = WebSocketConfig::default().max_message_size(Some(1 << 24));
        let connector = tokio_tungstenite::Connector::Rustls(tls);
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(config),
            true,
            Some(connector),
        )
        .await
        .with_context(|| format!("Cannot connect to {url}"))?;
        Ok(Self { ws, next_id: 1, pushes: VecDeque::new(), session: None })
    }

    async fn connect_request(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> anyhow::Result<Self> {
        let url = request.uri().to_string();
        let config = WebSocketConfig::default().max_message_size(Some(1 << 24));
        let (ws, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
            .await
            .with_context(|| format!("Cannot connect to {url}"))?;
        Ok(Self { ws, next_id: 1, pushes: VecDeque::new(), session: None })
    }

    /// Opens a websocket and says hello with this build's protocol version.
    pub async fn connect_hello(url: &str) -> anyhow::Result<Self> {
        let mut c = Self::connect(url).await?;
        c.hello().await?;
        Ok(c)
    }

    /// Says hello.
    pub async fn hello(&mut self) -> anyhow::Result<Reply> {
        let v = tidings_proto::PROTOCOL_VERSION;
        Ok(self
            .request(Request::Hello { min_version: v, max_version: v, client: text("testkit") })
            .await??)
    }

    /// Signs up `username` (password "password-<username>") and joins, on a new connection.
    pub async fn sign_up(url: &str, username: &str) -> anyhow::Result<Self> {
        Self::open_session(url, Request::SignUp(credentials(username))).await
    }

    /// Signs in to an existing account with a new device, on a new connection, and joins.
    pub async fn sign_in(url: &str, username: &str) -> anyhow::Result<Self> {
        Self::open_session(url, Request::SignIn(credentials(username))).await
    }

    /// Sends SignUp or SignIn on a new connection and joins with the new session.
    async fn open_session(url: &str, request: Request) -> anyhow::Result<Self> {
        let mut c = Self::connect_hello(url).await?;
        let reply = c.request(request).await??;
        let Reply::Session { user, device, token } = reply else { bail!("unexpected {reply:?}") };
        let session = Session { user, device, token };
        c.join(&session, &[], &[]).await??;
        c.session = Some(session);
        Ok(c)
    }

    /// The whole log of `room`, fetched page by page.
    pub async fn room_log(&mut self, room: RoomId) -> anyhow::Result<Vec<RoomEvent>> {
        let mut log: Vec<RoomEvent> = Vec::new();
        loop {
            let after = log.last().map_or(0, |e| e.seq);
            let page = self.request(Request::CatchUp { room, after, limit: 500 }).await??;
            let Reply::Page { events, last_seq, .. } = page else { bail!("unexpected {page:?}") };
            let got_any = !events.is_empty();
            log.extend(events.into_vec());
            if !got_any || log.last().is_some_and(|e| e.seq >= last_seq) {
                return Ok(log);
            }
        }
    }

    /// Opens a new connection for an existing session and joins with the given cursors.
    pub async fn resume(
        url: &str,
        session: &Session,
        rooms: &[RoomCursor],
        unconfirmed: &[RequestId],
    ) -> anyhow::Result<(Self, Result<Reply, ErrorInfo>)> {
        let mut c = Self::connect_hello(url).await?;
        let joined = c.join(session, rooms, unconfirmed).await?;
        if joined.is_ok() {
            c.session = Some(session.clone());
        }
        Ok((c, joined))
    }

    /// Sends Join.
    pub async fn join(
        &mut self,
        session: &Session,
        rooms: &[RoomCursor],
        unconfirmed: &[RequestId],
    ) -> anyhow::Result<Result<Reply, ErrorInfo>> {
        self.request(Request::Join {
            token: session.token.clone(),
            protocol_version: tidings_proto::PROTOCOL_VERSION,
            rooms: List::new(rooms.to_vec())?,
            unconfirmed: List::new(unconfirmed.to_vec())?,
        })
        .await
    }

    /// The session (panics if not joined: test helper).
    pub fn me(&self) -> &Session {
        self.session.as_ref().unwrap_or_else(|| panic!("client has not joined"))
    }

    /// Sends a request and waits for its reply; pushes that arrive meanwhile are kept.
    pub async fn request(&mut self, request: Request) -> anyhow::Result<Result<Reply, ErrorInfo>> {
        let id = self.next_id;
        self.next_id += 1;
        let bytes = codec::encode_client(&ClientFrame { id, request })?;
        self.send_raw(bytes).await?;
        self.reply_to(id).await
    }

    /// Sends a request without waiting for a reply (typing and call signals get none unless
    /// they fail); returns its frame id.
    pub async fn send(&mut self, request: Request) -> anyhow::Result<u32> {
        let id = self.next_id;
        self.next_id += 1;
        self.send_raw(codec::encode_client(&ClientFrame { id, request })?).await?;
        Ok(id)
    }

    /// Sends a request that is answered only on failure, then a Ping; returns the failure
    /// if the request failed. The ping's reply comes after any answer to the request, so
    /// no answer before the pong means the request was accepted.
    pub async fn unanswered(&mut self, request: Request) -> anyhow::Result<Result<(), ErrorInfo>> {
        let id = self.send(request).await?;
        let ping = self.send(Request::Ping { nonce: u64::from(id) }).await?;
        loop {
            match self.recv().await? {
                ServerFrame::Reply { id: got, result: Err(e) } if got == id => {
                    self.reply_to(ping).await??;
                    return Ok(Err(e));
                }
                ServerFrame::Reply { id: got, .. } if got == ping => return Ok(Ok(())),
                ServerFrame::Reply { id: got, result } => {
                    bail!("unexpected reply {got}: {result:?}")
                }
                ServerFrame::Closing { error } => bail!("server closed the connection: {error}"),
                push => self.pushes.push_back(push),
            }
        }
    }

    /// Waits for the reply to frame `id`, keeping pushes.
    pub async fn reply_to(&mut self, id: u32) -> anyhow::Result<Result<Reply, ErrorInfo>> {
        loop {
            match self.recv().await? {
                ServerFrame::Reply { id: got, result } if got == id => return Ok(result),
                ServerFrame::Reply { id: got, .. } => {
                    bail!("reply to {got} while waiting for {id}")
                }
                ServerFrame::Closing { error } => bail!("server closed the connection: {error}"),
                push => self.pushes.push_back(push),
            }
        }
    }

    /// Sends raw bytes as one binary message.
    pub async fn send_raw(&mut self, bytes: Vec<u8>) -> anyhow::Result<()> {
        self.ws.send(Message::Binary(bytes.into())).await?;
        Ok(())
    }

    /// Sends a text message (not part of the protocol).
    pub async fn send_text(&mut self, text: &str) -> anyhow::Result<()> {
        self.ws.send(Message::Text(text.into())).await?;
        Ok(())
    }

    /// The next server frame (waits up to [`WAIT`]); errors when the connection closes.
    pub async fn recv(&mut self) -> anyhow::Result<ServerFrame> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .map_err(|_| anyhow!("no frame within {WAIT:?}"))?
                .ok_or_else(|| anyhow!("connection closed"))??;
            match msg {
                Message::Binary(b) => return Ok(codec::decode_server(&b)?),
                Message::Close(_) => bail!("connection closed"),
                _ => continue,
            }
        }
    }

    /// The next push (buffered or new), waiting up to `wait`; `None` if none came.
    pub async fn next_push_within(
        &mut self,
        wait: Duration,
    ) -> anyhow::Result<Option<ServerFrame>> {
        if let Some(p) = self.pushes.pop_front() {
            return Ok(Some(p));
        }
        match tokio::time::timeout(wait, self.recv()).await {
            Ok(frame) => Ok(Some(frame?)),
            Err(_) => Ok(None),
        }
    }

    /// The next push, waiting up to [`WAIT`].
    pub async fn next_push(&mut self) -> anyhow::Result<ServerFrame> {
        self.next_push_within(WAIT).await?.ok_or_else(|| anyhow!("no push within {WAIT:?}"))
    }

    /// Reads frames until the server closes the connection; returns the `Closing` error if
    /// one was sent.
    pub async fn closed(&mut self) -> anyhow::Result<Option<ErrorInfo>> {
        let mut reason = None;
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .map_err(|_| anyhow!("connection still open after {WAIT:?}"))?;
            match next {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(reason),
                Some(Ok(Message::Binary(b))) => {
                    if let Ok(ServerFrame::Closing { error }) = codec::decode_server(&b) {
                        reason = Some(error);
                    }
                }
                Some(Ok(_)) => {}
            }
        }
    }
}

/// Test credentials for `username`.
pub fn credentials(username: &str) -> Credentials {
    Credentials {
        username: text(username),
        password: Password(text(&format!("password-{username}"))),
        device_name: text("test device"),
    }
}

impl Client {
    /// The underlying websocket (for load generators that read and write concurrently).
    pub fn into_websocket(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }
}
