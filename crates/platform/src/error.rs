//! Errors of the platform connector.

/// Everything that can go wrong talking to the platform or keeping the outbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The configured base URL cannot be used.
    #[error("invalid platform base URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as configured.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The HTTP client could not be built (TLS set-up).
    #[error("HTTP client: {0}")]
    Client(String),
    /// The platform refused the request for good (4xx other than 401, 403, 408, 429): do not
    /// retry.
    #[error("refused by the platform: HTTP {status}")]
    Rejected {
        /// The HTTP status.
        status: u16,
    },
    /// The platform refused our credentials (401, 403). Temporary from the outbox's point of
    /// view: wrap-ups stay pending until IT fixes the token.
    #[error("not authorized by the platform: HTTP {status} (check the token)")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
    },
    /// The platform cannot be reached or answered 5xx, 408, 429 or a redirect: retry later.
    #[error("platform unavailable: {0}")]
    Unavailable(String),
    /// The outbox database failed.
    #[error("outbox: {context}: {source}")]
    Outbox {
        /// What was being done.
        context: &'static str,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// A value cannot be stored in, or read back from, the outbox.
    #[error("outbox: {0}")]
    OutboxData(String),
}

impl PlatformError {
    /// `true` when trying again later can succeed (the wrap-up must stay pending).
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            PlatformError::Unavailable(_) | PlatformError::Unauthorized { .. }
        )
    }
}
