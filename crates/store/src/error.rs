use thingsafe_vault::VaultError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    /// Absent, or outside the caller's scope: the two are deliberately indistinguishable.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("storage backend: {0}")]
    Backend(String),
    /// The disk (or the database's size limit) is full: nothing was stored.
    #[error("storage is full: {0}")]
    Full(String),
    #[error("storage backend is shutting down")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return StoreError::Full(e.to_string());
        }
        StoreError::Backend(e.to_string())
    }
}
