use std::time::Duration;

use rmqtt_codec::error::{DecodeError, EncodeError};
use thingsafe_store::StoreError;
use thiserror::Error;

use crate::codes::{ConnectRefusal, PublishRefusal, Violation};

/// Why a connection ended other than by the client's DISCONNECT.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error("the client closed the connection")]
    Closed,
    #[error("no CONNECT within {0:?}")]
    ConnectTimeout(Duration),
    #[error("malformed packet ({violation}): {source}", violation = .violation.label())]
    Decode {
        violation: Violation,
        source: DecodeError,
    },
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("connection refused: {}", .0.label())]
    Refused(ConnectRefusal),
    #[error("message refused ({}): {message}", .refusal.label())]
    PublishRefused {
        refusal: PublishRefusal,
        message: String,
    },
    #[error("no packet within 1.5 times the keep-alive of {0} s")]
    KeepAlive(u16),
    #[error("the client did not read what we sent within {0:?}")]
    WriteTimeout(Duration),
    #[error("cannot send: {0}")]
    Encode(EncodeError),
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    #[error("the server is shutting down")]
    Shutdown,
    #[error("the device was suspended by an administrator")]
    Suspended,
    #[error("another connection with the same client id took the session over")]
    TakenOver,
}

impl From<DecodeError> for SessionError {
    fn from(source: DecodeError) -> Self {
        let violation = Violation::from(&source);
        if violation == Violation::Io {
            // Also how tokio-util reports bytes left over when the peer closes.
            return SessionError::Closed;
        }
        SessionError::Decode { violation, source }
    }
}

impl SessionError {
    /// Whether the connection ended in a way worth an operator's attention at `info`.
    pub(crate) fn is_quiet(&self) -> bool {
        matches!(
            self,
            SessionError::Closed | SessionError::Shutdown | SessionError::TakenOver
        )
    }
}
