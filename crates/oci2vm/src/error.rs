//! The top-level error: every module's error converts into it, and it exposes a closed
//! [`ErrorKind`] that the CLI maps to exit codes.

use std::fmt;

/// What went wrong, coarsely: the CLI maps each kind to its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The user gave something malformed: a reference, a digest, an option.
    InvalidInput,
    /// The image, tag, blob or file does not exist.
    NotFound,
    /// The registry refused our credentials (or we had none).
    Unauthorized,
    /// Content did not match its digest or declared size.
    DigestMismatch,
    /// The image uses something we do not support (schema 1, foreign layers, ...).
    Unsupported,
    /// The image or one of its layers is malformed or hostile.
    InvalidImage,
    /// A network-level failure talking to a registry.
    Network,
    /// Local I/O failed (disk full, permissions, ...).
    Io,
    /// The VMM could not be started.
    VmmUnavailable,
    /// The guest failed to boot or reported an error.
    GuestFailed,
}

impl ErrorKind {
    /// The process exit code the CLI uses for this kind (documented in the README).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::InvalidInput => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::Unauthorized => 4,
            ErrorKind::DigestMismatch => 5,
            ErrorKind::Unsupported => 6,
            ErrorKind::InvalidImage => 7,
            ErrorKind::Network => 8,
            ErrorKind::Io => 9,
            ErrorKind::VmmUnavailable => 10,
            ErrorKind::GuestFailed => 11,
        }
    }

    /// A one-line hint printed after the error chain, when there is a useful one.
    pub fn hint(self) -> Option<&'static str> {
        match self {
            ErrorKind::InvalidInput => Some("check the syntax: oci2vm --help"),
            ErrorKind::Unauthorized => Some(
                "pass --creds USER:PASS or --authfile FILE, or log in so ~/.docker/config.json has credentials",
            ),
            ErrorKind::DigestMismatch => {
                Some("the content was corrupted in transit or at rest; it was not stored")
            }
            ErrorKind::Network => Some(
                "is the registry reachable? plain HTTP is only used for loopback or with --tls-verify=false",
            ),
            ErrorKind::Unsupported => None,
            _ => None,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::NotFound => "not found",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::DigestMismatch => "digest mismatch",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidImage => "invalid image",
            ErrorKind::Network => "network",
            ErrorKind::Io => "i/o",
            ErrorKind::VmmUnavailable => "vmm unavailable",
            ErrorKind::GuestFailed => "guest failed",
        };
        f.write_str(s)
    }
}

/// The library's top-level error: a kind plus the module error that caused it.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct Error {
    kind: ErrorKind,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl Error {
    /// Wraps a module error with its kind.
    pub fn new(
        kind: ErrorKind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error {
            kind,
            source: source.into(),
        }
    }

    /// The coarse kind, for exit codes and hints.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// Implemented by every module error so it can say which [`ErrorKind`] it is.
pub trait Classify {
    /// The kind of this error.
    fn kind(&self) -> ErrorKind;
}

impl From<crate::digest::DigestError> for Error {
    fn from(e: crate::digest::DigestError) -> Self {
        Error::new(Classify::kind(&e), e)
    }
}

/// Result alias for the library's top-level error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_distinct() {
        let kinds = [
            ErrorKind::InvalidInput,
            ErrorKind::NotFound,
            ErrorKind::Unauthorized,
            ErrorKind::DigestMismatch,
            ErrorKind::Unsupported,
            ErrorKind::InvalidImage,
            ErrorKind::Network,
            ErrorKind::Io,
            ErrorKind::VmmUnavailable,
            ErrorKind::GuestFailed,
        ];
        let mut codes: Vec<i32> = kinds.iter().map(|k| k.exit_code()).collect();
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), kinds.len());
        assert!(!codes.contains(&0) && !codes.contains(&1));
    }
}
