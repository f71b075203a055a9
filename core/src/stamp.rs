//! What a record made on this device is stamped with: a fresh request id and the wall
//! clock. A leaf module (it depends on nothing in core), so that what the client's
//! modules share — apply's notices (crate::verification), the send queue — can stamp
//! without depending on [`crate::client`].

use tidings_proto::RequestId;

/// A fresh request id (a v4 UUID), made before any I/O.
pub fn new_request_id() -> RequestId {
    RequestId(*uuid::Uuid::new_v4().as_bytes())
}

/// Wall-clock Unix ms (only for display and local ordering of pending items).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The request id stored as `bytes`, if they are one (16 bytes).
pub(crate) fn request_id(bytes: &[u8]) -> Option<RequestId> {
    <[u8; 16]>::try_from(bytes).ok().map(RequestId)
}

/// A stored request id as text (empty if the bytes are not one).
pub(crate) fn request_string(bytes: &[u8]) -> String {
    request_id(bytes).map(|r| r.to_string()).unwrap_or_default()
}
