//! The error of a request: either an answer for the client, or a server fault.

use tidings_proto::{ErrorCode, ErrorInfo};

use crate::store::StoreError;

/// Why a request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// A typed answer for the client (forbidden, not found, invalid input, …).
    #[error("{0}")]
    Client(ErrorInfo),
    /// A fault on our side; the client sees `internal` and the log says what happened.
    #[error("{0}")]
    Internal(String),
}

impl OpError {
    /// A typed error for the client.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Client(ErrorInfo::new(code, message))
    }

    /// `forbidden` with a message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// `invalid_input` with a message.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidInput, message)
    }

    /// A server fault from anything displayable.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(e.to_string())
    }

    /// `rate_limited` with the time to wait.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        let mut info = ErrorInfo::new(ErrorCode::RateLimited, "too many requests");
        info.retry_after_ms = Some(u32::try_from(wait.as_millis()).unwrap_or(u32::MAX).max(1));
        Self::Client(info)
    }

    /// What the client is told. Faults are logged here, once, without request content.
    pub fn into_info(self) -> ErrorInfo {
        match self {
            OpError::Client(info) => info,
            OpError::Internal(what) => {
                tracing::error!(error = %what, "Request failed on the server.");
                ErrorInfo::new(ErrorCode::Internal, "internal server error")
            }
        }
    }
}

impl From<StoreError> for OpError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => OpError::new(ErrorCode::ShuttingDown, "the server is stopping"),
            e => OpError::internal(e),
        }
    }
}

impl From<rusqlite::Error> for OpError {
    fn from(e: rusqlite::Error) -> Self {
        OpError::internal(e)
    }
}
