//! Layer decompression: gzip (multi-member), zstd (multi-frame, bounded window), plain tar.
//!
//! The media type says what a layer should be; the first bytes say what it is. We trust the
//! bytes (Docker and containerd `DecompressStream` sniff too) and warn on a mismatch (T74, B42;
//! the `busybox-mislabeled` fixture is a plain tar labelled `+gzip`).
//!
//! ```text
//! gzip  1f 8b                 flate2 MultiGzDecoder (zlib-rs): every member; garbage after
//!                             the last member is an error (B41)
//! zstd  28 b5 2f fd           libzstd: every frame, skippable frames; window <= 2^27 (B39)
//! xz    fd 37 7a 58 5a 00     refused (B43)
//! bzip2 42 5a 68              refused (B43)
//! else  plain tar
//! ```

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::error::LayerError;
use crate::digest::{Digest, Hasher};

/// A compression format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// What a layer media type declares, or `None` if it is not a layer media type.
pub fn declared(media_type: &str) -> Option<Compression> {
    const BASES: [&str; 4] = [
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.foreign.diff.tar",
    ];
    for base in BASES {
        if let Some(rest) = media_type.strip_prefix(base) {
            return match rest {
                "" => Some(Compression::None),
                "+gzip" | ".gzip" => Some(Compression::Gzip),
                "+zstd" | ".zstd" => Some(Compression::Zstd),
                _ => None,
            };
        }
    }
    None
}

/// What the first bytes look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A format we read.
    Known(Compression),
    /// A format we refuse, by name.
    Refused(&'static str),
}

/// Classifies the first bytes of a blob.
pub fn sniff(prefix: &[u8]) -> Sniffed {
    if prefix.starts_with(&[0x1f, 0x8b]) {
        Sniffed::Known(Compression::Gzip)
    } else if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (prefix.len() >= 4 && prefix[0] & 0xf0 == 0x50 && prefix[1..4] == [0x2a, 0x4d, 0x18])
    {
        Sniffed::Known(Compression::Zstd)
    } else if prefix.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Sniffed::Refused("xz")
    } else if prefix.starts_with(b"BZh") {
        Sniffed::Refused("bzip2")
    } else {
        Sniffed::Known(Compression::None)
    }
}

/// A decompressed stream and what was found out opening it.
pub struct Opened {
    /// The uncompressed tar stream.
    pub reader: Box<dyn Read + Send>,
    /// The format actually used.
    pub compression: Compression,
    /// Set when the media type disagreed with the content.
    pub warning: Option<String>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

/// Opens a layer blob: checks the media type, sniffs the content, wraps the decoder.
pub fn open(
    layer: &Digest,
    media_type: &str,
    mut blob: Box<dyn Read + Send>,
    zstd_window_log_max: u32,
) -> Result<Opened, LayerError> {
    let declared = declared(media_type).ok_or_else(|| LayerError::MediaType {
        layer: layer.clone(),
        media_type: media_type.to_owned(),
    })?;
    let mut prefix = Vec::with_capacity(8);
    let mut buf = [0u8; 8];
    while prefix.len() < 6 {
        match blob.read(&mut buf[..6 - prefix.len()]) {
            Ok(0) => break,
            Ok(n) => prefix.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(LayerError::Decompress {
                    layer: layer.clone(),
                    source: e,
                });
            }
        }
    }
    let found = match sniff(&prefix) {
        Sniffed::Known(c) => c,
        Sniffed::Refused(format) => {
            return Err(LayerError::Compression {
                layer: layer.clone(),
                format,
            });
        }
    };
    // An empty blob sniffs as plain; that is only a mismatch for a non-empty one.
    let warning = (found != declared && !prefix.is_empty()).then(|| {
        format!("layer {layer}: media type {media_type} but content is {found:?}; using {found:?}")
    });
    let whole: Box<dyn Read + Send> = Box::new(io::Cursor::new(prefix).chain(blob));
    let reader: Box<dyn Read + Send> = match found {
        Compression::None => whole,
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Compression::Zstd => {
            let mut d =
                zstd::stream::read::Decoder::new(whole).map_err(|e| LayerError::Decompress {
                    layer: layer.clone(),
                    source: e,
                })?;
            d.window_log_max(zstd_window_log_max)
                .map_err(|e| LayerError::Decompress {
                    layer: layer.clone(),
                    source: e,
                })?;
            Box::new(d)
        }
    };
    Ok(Opened {
        reader,
        compression: found,
        warning,
    })
}

/// Hashes everything read through it; the digest is collected with [`HashedSource::digest`].
#[derive(Debug)]
pub struct HashingReader<R> {
    inner: R,
    state: Arc<Mutex<Option<Hasher>>>,
}

/// The other end of a [`HashingReader`].
#[derive(Debug, Clone)]
pub struct HashedSource {
    state: Arc<Mutex<Option<Hasher>>>,
}

impl HashedSource {
    /// The digest of everything read so far (call after the stream was drained).
    pub fn digest(&self) -> Option<Digest> {
        let mut g = self.state.lock().ok()?;
        g.take().map(Hasher::finish)
    }
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`, hashing with the algorithm of `like`.
    pub fn new(inner: R, like: &Digest) -> (Self, HashedSource) {
        let state = Arc::new(Mutex::new(Some(like.algorithm().hasher())));
        (
            HashingReader {
                inner,
                state: state.clone(),
            },
            HashedSource { state },
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Ok(mut g) = self.state.lock()
            && let Some(h) = g.as_mut()
        {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// The error payload of a [`BudgetReader`] over its limit.
#[derive(Debug, thiserror::Error)]
#[error("uncompressed byte budget of {limit} exceeded")]
pub struct BudgetExceeded {
    /// The limit.
    pub limit: u64,
}

/// Counts bytes into a budget shared by all layers; fails once it is exceeded (B38).
#[derive(Debug)]
pub struct BudgetReader<R> {
    inner: R,
    used: Arc<AtomicU64>,
    limit: u64,
}

impl<R> BudgetReader<R> {
    /// Wraps `inner`, charging `used` against `limit`.
    pub fn new(inner: R, used: Arc<AtomicU64>, limit: u64) -> Self {
        BudgetReader { inner, used, limit }
    }

    /// The wrapped reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for BudgetReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.used.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if total > self.limit {
            return Err(io::Error::other(BudgetExceeded { limit: self.limit }));
        }
        Ok(n)
    }
}

/// Is this I/O error a [`BudgetExceeded`]?
pub fn budget_exceeded(e: &io::Error) -> Option<u64> {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<BudgetExceeded>())
        .map(|b| b.limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn d() -> Digest {
        Digest::sha256_of(b"x")
    }

    fn read_all(mt: &str, blob: Vec<u8>) -> Result<(Vec<u8>, Option<String>), String> {
        let o = open(&d(), mt, Box::new(io::Cursor::new(blob)), 27).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let mut r = o.reader;
        r.read_to_end(&mut out).map_err(|e| e.to_string())?;
        Ok((out, o.warning))
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    #[test]
    fn multi_member_gzip_and_multi_frame_zstd() {
        let mut blob = gz(b"hello ");
        blob.extend(gz(b"world"));
        assert_eq!(read_all(GZ, blob).unwrap().0, b"hello world");
        let mut z = zstd::encode_all(&b"abc"[..], 3).unwrap();
        z.extend(zstd::encode_all(&b"def"[..], 3).unwrap());
        // a skippable frame at the end (zstd:chunked)
        z.extend([0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9]);
        assert_eq!(
            read_all("application/vnd.oci.image.layer.v1.tar+zstd", z)
                .unwrap()
                .0,
            b"abcdef"
        );
    }

    #[test]
    fn garbage_after_gzip_is_an_error() {
        let mut blob = gz(b"hello");
        blob.extend_from_slice(b"garbage!");
        assert!(read_all(GZ, blob).is_err());
    }

    #[test]
    fn mislabeled_plain_tar_is_sniffed_with_a_warning() {
        let (out, warn) = read_all(GZ, b"plain bytes".to_vec()).unwrap();
        assert_eq!(out, b"plain bytes");
        assert!(warn.unwrap().contains("content is None"));
        assert!(
            read_all("application/vnd.oci.image.layer.v1.tar", vec![])
                .unwrap()
                .1
                .is_none()
        );
    }

    #[test]
    fn refused_formats_and_media_types() {
        assert!(
            read_all(GZ, vec![0xfd, b'7', b'z', b'X', b'Z', 0, 1])
                .unwrap_err()
                .contains("xz")
        );
        assert!(
            read_all(GZ, b"BZh91AY".to_vec())
                .unwrap_err()
                .contains("bzip2")
        );
        assert!(
            read_all("application/json", vec![])
                .unwrap_err()
                .contains("media type")
        );
    }

    #[test]
    fn budget_reader_stops_bombs() {
        let used = Arc::new(AtomicU64::new(0));
        let zeros = io::repeat(0).take(10_000);
        let mut r = BudgetReader::new(zeros, used, 4096);
        let e = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert_eq!(budget_exceeded(&e), Some(4096));
    }
}
