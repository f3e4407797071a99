//! A Distribution API v2 client: manifests and verified blobs from OCI/Docker registries.
//!
//! ```text
//! RegistryClient (blocking; owns a tokio runtime)
//!   fetch_manifest ─┐                 ┌─ auth.rs: 401 challenge -> basic | bearer token (oci-client)
//!   fetch_blob ─────┼─> transport.rs ─┤     docker_config.rs: creds > authfile > $DOCKER_CONFIG > ~/.docker
//!                   │   send + retry  └─ retry.rs: backoff + jitter, Retry-After, what is retryable
//!   manifest.rs: Accept all 4 types, 4 MiB cap, digest check, schema 1 refused
//!   blob.rs: tempfile download, Range resume, size + digest verified before the sink sees a byte
//!   target.rs: registry/repository/reference validated; docker.io -> registry-1.docker.io; scheme
//! ```
//!
//! Spec: <https://github.com/opencontainers/distribution-spec/blob/main/spec.md>.
//!
//! **oci-client and reqwest.** The bearer-token handshake goes through `oci_client::Client::auth`
//! (see [`auth`]). Manifest and blob requests use the same `reqwest` directly, because
//! oci-client 0.18's API cannot meet these requirements: its manifest pull returns no
//! `Content-Type` and reads the body without a size cap; its errors drop the response headers,
//! so `Retry-After` on a `429` is lost; its partial blob pull does not expose `Content-Range`,
//! which we must check before appending a `206` body to what we already have.
//!
//! Transport: HTTPS, except plain HTTP for loopback registries (`localhost`, `127.0.0.0/8`,
//! `::1`, as Docker does) or when `tls_verify` is `Some(false)`; `Some(true)` forces HTTPS even
//! for loopback. Docker Hub (`docker.io`) is served at `registry-1.docker.io`. Redirects (blob
//! storage) are followed, up to 10; reqwest drops `Authorization` when a redirect changes host.

mod auth;
mod blob;
mod docker_config;
mod manifest;
mod retry;
mod target;
mod transport;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::digest::{Digest, DigestError};
use crate::error::{Classify, ErrorKind};

pub use manifest::{MANIFEST_MEDIA_TYPES, MAX_MANIFEST_BYTES};
pub(crate) use target::Target;
use target::parse_reference;

/// How to reach registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `user`, `password` for every registry (highest precedence).
    pub creds: Option<(String, String)>,
    /// A Docker-format config (`auth.json`) searched before the default locations.
    pub authfile: Option<PathBuf>,
    /// `None`: HTTPS with verification, plain HTTP for loopback. `Some(false)`: plain HTTP.
    /// `Some(true)`: HTTPS with verification everywhere.
    pub tls_verify: Option<bool>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Retries after a failed attempt (5xx, 429, 408, connection errors, cut-off bodies).
    pub max_retries: u32,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            creds: None,
            authfile: None,
            tls_verify: None,
            user_agent: concat!("oci2vm/", env!("CARGO_PKG_VERSION")).to_string(),
            max_retries: 5,
        }
    }
}

/// A manifest (or index) as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedManifest {
    /// The exact bytes (what the digest covers).
    pub bytes: Vec<u8>,
    /// One of [`MANIFEST_MEDIA_TYPES`].
    pub media_type: String,
    /// The digest of `bytes` (verified against the reference when fetched by digest).
    pub digest: Digest,
}

/// Errors talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A registry, repository or reference that is not well formed.
    #[error("invalid {what} {value:?}")]
    InvalidName {
        /// `registry`, `repository` or `reference`.
        what: &'static str,
        /// The offending value.
        value: String,
    },
    /// The registry refused us.
    #[error("unauthorized: {registry}/{repository} ({with}): {reason}")]
    Unauthorized {
        /// The registry as given.
        registry: String,
        /// The repository.
        repository: String,
        /// `anonymous` or `with credentials`.
        with: &'static str,
        /// What the registry or token service said.
        reason: String,
    },
    /// 404 for a manifest or blob.
    #[error("not found: {url}: {message}")]
    NotFound {
        /// The request URL.
        url: String,
        /// The registry's error message.
        message: String,
    },
    /// Any other unsuccessful status (after retries, when retryable).
    #[error("registry answered {status} for {url}: {message}")]
    Status {
        /// The request URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The registry's error message.
        message: String,
    },
    /// Connection, TLS or protocol failure (after retries).
    #[error("request to {url} failed")]
    Http {
        /// The request URL.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A blob body ended early on every attempt.
    #[error("blob {digest} truncated: got {got} of {expected} bytes after {attempts} attempts")]
    Truncated {
        /// The blob.
        digest: Digest,
        /// Its declared size.
        expected: u64,
        /// Bytes received on the last attempt's end.
        got: u64,
        /// How many attempts were made.
        attempts: u32,
    },
    /// A blob body longer than its descriptor's size.
    #[error("blob {digest} is longer than its declared size {size}")]
    TooLong {
        /// The blob.
        digest: Digest,
        /// Its declared size.
        size: u64,
    },
    /// A blob or manifest whose content does not match its digest.
    #[error("content of {url} does not match")]
    Digest {
        /// The request URL.
        url: String,
        /// The mismatch.
        #[source]
        source: DigestError,
    },
    /// A manifest larger than [`MAX_MANIFEST_BYTES`].
    #[error("manifest at {url} exceeds {limit} bytes")]
    ManifestTooLarge {
        /// The request URL.
        url: String,
        /// The cap.
        limit: usize,
    },
    /// A Docker schema 1 manifest (the registry had nothing newer, or converted on the fly).
    #[error(
        "{url} is a Docker schema 1 manifest ({media_type}), which is not supported; re-push the image with a current tool"
    )]
    Schema1 {
        /// The request URL.
        url: String,
        /// The Content-Type served.
        media_type: String,
    },
    /// A manifest of a type we did not ask for.
    #[error("unsupported manifest media type {media_type:?} at {url}")]
    MediaType {
        /// The request URL.
        url: String,
        /// What was served.
        media_type: String,
    },
    /// A malformed answer (bad `Content-Range` after retries, unexpected status class).
    #[error("protocol error from {url}: {reason}")]
    Protocol {
        /// The request URL.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A Docker config / authfile that cannot be read or parsed.
    #[error("cannot use credentials file {path}: {reason}")]
    DockerConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A credential helper failed.
    #[error("credential helper {helper:?} failed: {reason}")]
    CredentialHelper {
        /// The helper name (`docker-credential-<helper>`).
        helper: String,
        /// Why.
        reason: String,
    },
    /// Local I/O (temp file, sink, runtime).
    #[error("i/o error: {what}")]
    Io {
        /// What we were doing.
        what: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Classify for RegistryError {
    fn kind(&self) -> ErrorKind {
        use RegistryError as E;
        match self {
            E::InvalidName { .. } | E::DockerConfig { .. } => ErrorKind::InvalidInput,
            E::Unauthorized { .. } | E::CredentialHelper { .. } => ErrorKind::Unauthorized,
            E::NotFound { .. } => ErrorKind::NotFound,
            E::Status { status, .. } => match status {
                401 | 403 => ErrorKind::Unauthorized,
                400 => ErrorKind::InvalidInput,
                404 => ErrorKind::NotFound,
                405 | 501 => ErrorKind::Unsupported,
                _ => ErrorKind::Network,
            },
            E::Http { .. } | E::Truncated { .. } | E::Protocol { .. } => ErrorKind::Network,
            E::TooLong { .. } | E::Digest { .. } => ErrorKind::DigestMismatch,
            E::ManifestTooLarge { .. } | E::Schema1 { .. } | E::MediaType { .. } => {
                ErrorKind::Unsupported
            }
            E::Io { .. } => ErrorKind::Io,
        }
    }
}

impl From<RegistryError> for crate::Error {
    fn from(e: RegistryError) -> Self {
        crate::Error::new(Classify::kind(&e), e)
    }
}

/// A blocking registry client. It owns a small tokio runtime; do not call it from inside an
/// async context (block on it from a worker thread instead). Cheap to share between threads.
pub struct RegistryClient {
    /// Always `Some` until drop, which shuts it down in the background (so dropping the client
    /// inside some other async context does not panic).
    runtime: Option<tokio::runtime::Runtime>,
    transport: Arc<transport::Transport>,
    tls_verify: Option<bool>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("tls_verify", &self.tls_verify)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    /// Builds the HTTP clients and the runtime; reads no credentials yet (that happens on the
    /// first `401`).
    pub fn new(opts: RegistryOptions) -> Result<Self, RegistryError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("oci2vm-registry")
            .enable_all()
            .build()
            .map_err(|source| RegistryError::Io {
                what: "starting the http runtime",
                source,
            })?;
        let transport = transport::Transport::new(&opts)?;
        Ok(RegistryClient {
            runtime: Some(runtime),
            transport: Arc::new(transport),
            tls_verify: opts.tls_verify,
        })
    }

    /// Fetches a manifest or index by tag or digest. `registry` is `docker.io`,
    /// `127.0.0.1:5000`, ...; `repository` is `library/busybox`; `reference` a tag or
    /// `sha256:<hex>`.
    pub fn fetch_manifest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        let target = Target::new(registry, repository, self.tls_verify)?;
        let expected = parse_reference(reference)?;
        let t = &self.transport;
        self.runtime()
            .block_on(manifest::fetch(t, &target, reference, expected.as_ref()))
    }

    /// Writes exactly `size` bytes whose digest is verified to `sink`, or errors; the sink sees
    /// nothing unless the whole blob verified (it is downloaded to an anonymous temp file first,
    /// resuming cut-off transfers with `Range` requests).
    pub fn fetch_blob(
        &self,
        registry: &str,
        repository: &str,
        digest: &Digest,
        size: u64,
        sink: &mut dyn std::io::Write,
    ) -> Result<(), RegistryError> {
        let target = Target::new(registry, repository, self.tls_verify)?;
        let mut file = tempfile::tempfile().map_err(|source| RegistryError::Io {
            what: "creating a temp file for a blob",
            source,
        })?;
        self.runtime().block_on(blob::download(
            &self.transport,
            &target,
            digest,
            size,
            &mut file,
        ))?;
        blob::copy_verified(&mut file, size, sink)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime is only taken in drop")
    }
}

impl Drop for RegistryClient {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// How long one connection attempt and one read may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// See [`CONNECT_TIMEOUT`].
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<RegistryClient>();
    }

    #[test]
    fn errors_classify() {
        let t = Target::new("r", "a", None).unwrap();
        assert_eq!(
            t.unauthorized(false, "x".into()).kind(),
            ErrorKind::Unauthorized
        );
        let s = |status| RegistryError::Status {
            url: "u".into(),
            status,
            message: String::new(),
        };
        assert_eq!(s(503).kind(), ErrorKind::Network);
        assert_eq!(s(403).kind(), ErrorKind::Unauthorized);
        let d = Digest::sha256_of(b"");
        assert_eq!(
            RegistryError::TooLong { digest: d, size: 0 }.kind(),
            ErrorKind::DigestMismatch
        );
    }
}
