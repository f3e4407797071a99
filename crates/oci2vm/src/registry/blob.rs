//! `GET /v2/<name>/blobs/<digest>`: download, resume, verify, then hand over.
//!
//! ```text
//!  attempt 1: GET                         200  [0 ............ k)  cut off (reset, timeout, EOF)
//!  attempt 2: GET  Range: bytes=k-        206  Content-Range: bytes k-(size-1)/size  -> append
//!             (200 instead of 206, or a Content-Range that does not start at k: truncate, from 0)
//!  complete:  size bytes, hashed while written -> digest == descriptor -> copy to the sink
//! ```
//!
//! The bytes go to an anonymous temp file that only we can reach (it has no name), hashed as
//! they are written; only after `size` bytes hashed to the right digest are they copied to the
//! caller's sink, so a corrupt, short or long blob never reaches it. A body that runs past
//! `size` fails at once (not retried: the server serves something else); at most one network
//! chunk past `size` is read, and none of it is kept. A body that ends short is resumed up to
//! `max_retries` times. Redirects to blob storage are followed by reqwest (`Range` survives them).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_RANGE, RANGE};

use super::transport::Transport;
use super::{RegistryError, Target};
use crate::digest::{Digest, DigestError, Hasher};

/// Downloads blob `digest` of `size` bytes into `file` (empty, ours) and verifies it.
pub(crate) async fn download(
    transport: &Transport,
    target: &Target,
    digest: &Digest,
    size: u64,
    file: &mut File,
) -> Result<(), RegistryError> {
    let url = target.url("blobs", &digest.to_string());
    let io = |what| move |source| RegistryError::Io { what, source };
    let mut have = 0u64;
    let mut hasher = digest.algorithm().hasher();
    let mut ranges_work = true;
    let mut failures = 0u32;
    loop {
        if have > 0 && !ranges_work {
            restart(file, &mut have, &mut hasher, digest)
                .map_err(io("truncating a blob temp file"))?;
        }
        let range = (have > 0).then(|| format!("bytes={have}-"));
        let mut resp = transport
            .send(target, &url, &|c| {
                let r = c.get(&url).header(ACCEPT, "*/*");
                if let Some(range) = &range {
                    r.header(RANGE, range)
                } else {
                    r
                }
            })
            .await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT if range.is_some() => {
                let cr = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok());
                if !content_range_ok(cr, have, size) {
                    tracing::debug!(
                        url,
                        content_range = cr,
                        have,
                        "unusable Content-Range, restarting"
                    );
                    ranges_work = false;
                    failures += 1;
                    if failures > transport.policy.max_retries {
                        let reason = format!("bad Content-Range {cr:?} for a resume at {have}");
                        return Err(RegistryError::Protocol { url, reason });
                    }
                    continue;
                }
            }
            StatusCode::OK => {
                if have > 0 {
                    tracing::debug!(url, have, "server ignored Range, restarting from 0");
                    restart(file, &mut have, &mut hasher, digest)
                        .map_err(io("truncating a blob temp file"))?;
                }
            }
            s => {
                let reason = format!("unexpected status {s} for a blob download");
                return Err(RegistryError::Protocol { url, reason });
            }
        }
        if resp.content_length().is_some_and(|n| n > size - have) {
            return Err(RegistryError::TooLong {
                digest: digest.clone(),
                size,
            });
        }
        let cut = loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => {
                    if chunk.len() as u64 > size - have {
                        return Err(RegistryError::TooLong {
                            digest: digest.clone(),
                            size,
                        });
                    }
                    file.write_all(&chunk)
                        .map_err(io("writing a blob temp file"))?;
                    hasher.update(&chunk);
                    have += chunk.len() as u64;
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        if have == size {
            let actual = std::mem::replace(&mut hasher, digest.algorithm().hasher()).finish();
            if &actual != digest {
                let source = DigestError::Mismatch {
                    expected: digest.clone(),
                    actual,
                };
                return Err(RegistryError::Digest { url, source });
            }
            return Ok(());
        }
        failures += 1;
        tracing::debug!(url, have, size, error = ?cut, failures, "blob body cut off");
        if failures > transport.policy.max_retries {
            return Err(RegistryError::Truncated {
                digest: digest.clone(),
                expected: size,
                got: have,
                attempts: failures,
            });
        }
        tokio::time::sleep(transport.policy.delay(failures - 1, None)).await;
    }
}

/// Drops what we have and starts the hash over.
fn restart(
    file: &mut File,
    have: &mut u64,
    hasher: &mut Hasher,
    digest: &Digest,
) -> std::io::Result<()> {
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    *have = 0;
    *hasher = digest.algorithm().hasher();
    Ok(())
}

/// `bytes <have>-<size-1>/<size or *>`: the rest of our blob, starting where we stopped.
fn content_range_ok(header: Option<&str>, have: u64, size: u64) -> bool {
    let Some(rest) = header.and_then(|h| h.trim().strip_prefix("bytes ")) else {
        return false;
    };
    let Some((span, total)) = rest.split_once('/') else {
        return false;
    };
    let Some((start, end)) = span.split_once('-') else {
        return false;
    };
    let (Ok(start), Ok(end)) = (start.trim().parse::<u64>(), end.trim().parse::<u64>()) else {
        return false;
    };
    let total_ok = total.trim() == "*" || total.trim().parse::<u64>() == Ok(size);
    start == have && end.checked_add(1) == Some(size) && total_ok
}

/// Copies the verified temp file to the caller's sink (exactly `size` bytes).
pub(crate) fn copy_verified(
    file: &mut File,
    size: u64,
    sink: &mut dyn Write,
) -> Result<(), RegistryError> {
    file.seek(SeekFrom::Start(0))
        .map_err(|source| RegistryError::Io {
            what: "rewinding a blob temp file",
            source,
        })?;
    let copied = std::io::copy(&mut file.take(size), sink).map_err(|source| RegistryError::Io {
        what: "writing a blob to its destination",
        source,
    })?;
    if copied != size {
        let source = std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "temp file shorter than the blob",
        );
        return Err(RegistryError::Io {
            what: "reading a blob temp file",
            source,
        });
    }
    sink.flush().map_err(|source| RegistryError::Io {
        what: "flushing a blob destination",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_must_continue_where_we_stopped() {
        assert!(content_range_ok(Some("bytes 10-99/100"), 10, 100));
        assert!(content_range_ok(Some("bytes 10-99/*"), 10, 100));
        for bad in [
            None,
            Some(""),
            Some("bytes 0-99/100"),
            Some("bytes 10-98/100"),
            Some("bytes 10-99/101"),
            Some("bytes 10-/100"),
            Some("items 10-99/100"),
            Some("bytes 10-99"),
            Some("bytes 10-18446744073709551615/100"),
        ] {
            assert!(!content_range_ok(bad, 10, 100), "{bad:?}");
        }
    }

    #[test]
    fn copy_verified_copies_exactly_size() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"hello world").unwrap();
        let mut out = Vec::new();
        copy_verified(&mut f, 5, &mut out).unwrap();
        assert_eq!(out, b"hello");
        assert!(copy_verified(&mut f, 50, &mut Vec::new()).is_err());
    }
}
