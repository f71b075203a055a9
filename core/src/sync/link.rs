//! One websocket to the server, after Hello: frames out, frames in, and one-off requests.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tidings_proto::{bounded::Text, codec, ClientFrame, ErrorInfo, Reply, Request, ServerFrame};
use tokio_tungstenite::{tungstenite::Message, WebSocketStream};

use crate::{
    account::Account,
    endpoint::{Endpoint, Io},
    Error,
};

/// Longest wait for any frame while a reply is due.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// Frame ids from here on are the link's own (relayed requests and call signals), so they
/// never collide with a [`super::Machine`]'s.
pub(crate) const OWN_IDS: u32 = 1_000_000;

/// One websocket to the server, after Hello.
pub(crate) struct Link {
    ws: WebSocketStream<Box<dyn Io>>,
    next_id: u32,
}

impl Link {
    /// Connects (TLS unless the address is local: [`Endpoint`]) and says Hello.
    pub async fn connect(server: &Endpoint) -> Result<Self, Error> {
        let handshake = async {
            let stream = server.connect().await?;
            tokio_tungstenite::client_async(server.ws_url(), stream)
                .await
                .map(|(ws, _)| ws)
                .map_err(|e| Error::Network(e.to_string()))
        };
        let ws = tokio::time::timeout(REPLY_TIMEOUT, handshake)
            .await
            .map_err(|_| Error::Network("the server did not answer".into()))??;
        let mut link = Self { ws, next_id: OWN_IDS };
        let v = tidings_proto::PROTOCOL_VERSION;
        let client_name = Text::new(concat!("tidings-core/", env!("CARGO_PKG_VERSION")))
            .map_err(|e| Error::Internal(e.to_string()))?;
        link.request(Request::Hello { min_version: v, max_version: v, client: client_name })
            .await?
            .map_err(Error::Server)?;
        Ok(link)
    }

    /// Connects and joins with the session only (no cursors): for one-off requests.
    pub async fn joined(account: &Account) -> Result<Self, Error> {
        let mut link = Self::connect(&account.endpoint()?).await?;
        let token = tidings_proto::Token(
            Text::new(account.token.clone()).map_err(|e| Error::Internal(e.to_string()))?,
        );
        link.request(Request::Join {
            token,
            protocol_version: tidings_proto::PROTOCOL_VERSION,
            rooms: tidings_proto::bounded::List::empty(),
            unconfirmed: tidings_proto::bounded::List::empty(),
        })
        .await?
        .map_err(Error::Server)?;
        Ok(link)
    }

    /// Sends a request with one of the link's own ids; returns the id.
    pub async fn send_own(&mut self, request: Request) -> Result<u32, Error> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(OWN_IDS);
        self.send(&ClientFrame { id, request }).await?;
        Ok(id)
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), Error> {
        let bytes = codec::encode_client(frame).map_err(|e| Error::Internal(e.to_string()))?;
        self.ws.send(Message::Binary(bytes.into())).await.map_err(|e| Error::Network(e.to_string()))
    }

    /// The next frame from the server, waiting at most `timeout`. Frames of kinds a newer
    /// server knows and this build does not are skipped.
    pub async fn next(&mut self, timeout: Duration) -> Result<ServerFrame, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // A link that stays silent this long is dead (or half-open): give up on it and
            // let the caller reconnect; request ids make resends safe.
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| Error::Network("no answer from the server".into()))?
                .ok_or_else(|| Error::Network("connection closed".into()))?
                .map_err(|e| Error::Network(e.to_string()))?;
            let Message::Binary(bytes) = msg else { continue };
            match codec::decode_server(&bytes) {
                Ok(frame) => return Ok(frame),
                Err(tidings_proto::DecodeError::UnknownKind(_)) => continue,
                Err(e) => return Err(Error::Network(format!("bad frame from server: {e}"))),
            }
        }
    }

    /// Sends a one-off request and waits for its reply. Pushes meanwhile are left to the
    /// sync session (it catches up what this connection skips).
    pub async fn request(&mut self, request: Request) -> Result<Result<Reply, ErrorInfo>, Error> {
        let id = self.send_own(request).await?;
        loop {
            match self.next(REPLY_TIMEOUT).await? {
                ServerFrame::Reply { id: got, result } if got == id => return Ok(result),
                ServerFrame::Closing { error } => return Err(Error::Server(error)),
                _ => continue,
            }
        }
    }
}
