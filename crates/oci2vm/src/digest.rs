//! Content digests (`sha256:<64 hex>`, `sha512:<128 hex>`) and verifying readers.
//!
//! A [`Digest`] is validated strictly on parse (lowercase hex of exactly the algorithm's length,
//! no other characters), so its encoded part is always safe to use as a file name: it can never
//! contain `/`, `..` or NUL. [`VerifyingReader`] hashes a stream while it is read, never reads
//! past the declared size, and fails at the end if the size or the digest differ.

use std::fmt;
use std::io::{self, Read};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

use crate::error::{Classify, ErrorKind};

/// A digest algorithm we accept (OCI image-spec "registered algorithms").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the default everywhere.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings and in OCI layout paths (`blobs/<name>/`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// A fresh streaming hasher for this algorithm.
    pub fn hasher(self) -> Hasher {
        match self {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }
}

/// Errors about digests and verified content.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// The string is not a valid digest.
    #[error("invalid digest {value:?}: {reason}")]
    Invalid {
        /// What was given (truncated to a sane length).
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Content hashed to something else.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Mismatch {
        /// The digest from the descriptor.
        expected: Digest,
        /// What the content hashed to.
        actual: Digest,
    },
    /// Content ended before (or went on after) its declared size.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    Size {
        /// The content's digest.
        digest: Digest,
        /// The declared size.
        expected: u64,
        /// What was seen (for a longer body: at least this many).
        actual: u64,
    },
}

impl Classify for DigestError {
    fn kind(&self) -> ErrorKind {
        match self {
            DigestError::Invalid { .. } => ErrorKind::InvalidInput,
            DigestError::Mismatch { .. } | DigestError::Size { .. } => ErrorKind::DigestMismatch,
        }
    }
}

/// A validated content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: Box<str>,
}

impl Digest {
    /// Parses and validates `algorithm:hex`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let invalid = |reason| DigestError::Invalid {
            value: s.chars().take(200).collect(),
            reason,
        };
        let (alg, hex) = s.split_once(':').ok_or_else(|| invalid("missing ':'"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(invalid("unsupported algorithm (want sha256 or sha512)")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(invalid("wrong length for the algorithm"));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(invalid("encoded part must be lowercase hex"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.into(),
        })
    }

    /// Builds a digest from raw hash output.
    pub fn from_bytes(algorithm: Algorithm, bytes: &[u8]) -> Self {
        Digest {
            algorithm,
            hex: hex::encode(bytes).into(),
        }
    }

    /// SHA-256 of a byte slice.
    pub fn sha256_of(data: &[u8]) -> Self {
        Digest::from_bytes(Algorithm::Sha256, &sha2::Sha256::digest(data))
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded (hex) part; safe as a file name.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The relative path of this blob in an OCI image layout: `blobs/<alg>/<hex>`.
    pub fn layout_path(&self) -> std::path::PathBuf {
        std::path::Path::new("blobs")
            .join(self.algorithm.as_str())
            .join(&*self.hex)
    }

    /// Checks that `data` hashes to this digest.
    pub fn verify(&self, data: &[u8]) -> Result<(), DigestError> {
        let mut h = self.algorithm.hasher();
        h.update(data);
        let actual = h.finish();
        if &actual == self {
            Ok(())
        } else {
            Err(DigestError::Mismatch {
                expected: self.clone(),
                actual,
            })
        }
    }

    /// A short form for humans: `sha256:0123456789ab`.
    pub fn short(&self) -> String {
        format!("{}:{}", self.algorithm.as_str(), &self.hex[..12])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A streaming hasher for one [`Algorithm`].
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-512 state.
    Sha512(sha2::Sha512),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher")
    }
}

impl Hasher {
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// Finishes and returns the digest.
    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_bytes(Algorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Digest::from_bytes(Algorithm::Sha512, &h.finalize()),
        }
    }
}

impl io::Write for Hasher {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that yields exactly `size` bytes of `inner`, hashing them, and fails with
/// [`DigestError`] (wrapped in `io::Error` of kind `InvalidData`) when the stream ends early or
/// the digest differs. It never reads a byte past `size` from `inner`.
#[derive(Debug)]
pub struct VerifyingReader<R> {
    inner: R,
    expected: Digest,
    size: u64,
    read: u64,
    hasher: Option<Hasher>,
}

impl<R: Read> VerifyingReader<R> {
    /// Wraps `inner`, which must produce content of `size` bytes hashing to `expected`.
    pub fn new(inner: R, expected: Digest, size: u64) -> Self {
        let hasher = Some(expected.algorithm().hasher());
        VerifyingReader {
            inner,
            expected,
            size,
            read: 0,
            hasher,
        }
    }

    /// Bytes delivered so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Reads the rest (if any) and checks size and digest; returns the inner reader.
    pub fn finish(mut self) -> io::Result<R> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.inner)
    }

    /// After a successful [`finish`](Self::finish)-style drain, checks that `inner` has no more
    /// bytes (a body longer than its descriptor). Reads at most one byte.
    pub fn ensure_inner_exhausted(inner: &mut R, digest: &Digest, size: u64) -> io::Result<()> {
        let mut one = [0u8; 1];
        loop {
            match inner.read(&mut one) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    return Err(invalid_data(DigestError::Size {
                        digest: digest.clone(),
                        expected: size,
                        actual: size + 1,
                    }));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn complete(&mut self) -> io::Result<()> {
        if let Some(h) = self.hasher.take() {
            let actual = h.finish();
            if actual != self.expected {
                return Err(invalid_data(DigestError::Mismatch {
                    expected: self.expected.clone(),
                    actual,
                }));
            }
        }
        Ok(())
    }
}

fn invalid_data(e: DigestError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.size - self.read;
        if remaining == 0 || buf.is_empty() {
            if remaining == 0 {
                self.complete()?;
            }
            return Ok(0);
        }
        let want = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(invalid_data(DigestError::Size {
                digest: self.expected.clone(),
                expected: self.size,
                actual: self.read,
            }));
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.read += n as u64;
        Ok(n)
    }
}

/// Extracts a [`DigestError`] carried inside an `io::Error` by [`VerifyingReader`].
pub fn digest_error_of(e: &io::Error) -> Option<&DigestError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<DigestError>())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_valid_and_round_trips() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(Digest::sha256_of(b""), d);
        assert_eq!(
            d.layout_path(),
            std::path::Path::new("blobs/sha256").join(d.hex())
        );
    }

    #[test]
    fn rejects_hostile_and_malformed() {
        let bad = [
            "",
            "sha256",
            "sha256:",
            "sha256:../../etc/passwd",
            "sha256:abc/def",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85\0",
            "sha256:..",
        ];
        for b in bad {
            assert!(Digest::parse(b).is_err(), "{b:?} accepted");
        }
    }

    #[test]
    fn verifying_reader_accepts_exact_content() {
        let data = b"hello world";
        let d = Digest::sha256_of(data);
        let mut r = VerifyingReader::new(&data[..], d, data.len() as u64);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn verifying_reader_rejects_wrong_digest_short_and_long() {
        let data = b"hello world";
        let wrong = Digest::sha256_of(b"other");
        let mut out = Vec::new();
        let e = VerifyingReader::new(&data[..], wrong, data.len() as u64)
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(matches!(
            digest_error_of(&e),
            Some(DigestError::Mismatch { .. })
        ));

        let d = Digest::sha256_of(data);
        let e = VerifyingReader::new(&data[..5], d.clone(), data.len() as u64)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(matches!(
            digest_error_of(&e),
            Some(DigestError::Size { .. })
        ));

        // a longer body: the reader stops at `size`; the extra byte is detected separately
        let long = b"hello world!";
        let mut inner = &long[..];
        let mut r = VerifyingReader::new(&mut inner, d.clone(), data.len() as u64);
        r.read_to_end(&mut Vec::new()).unwrap();
        let e = VerifyingReader::ensure_inner_exhausted(&mut inner, &d, 11).unwrap_err();
        assert!(matches!(
            digest_error_of(&e),
            Some(DigestError::Size { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics_and_valid_means_safe(s in ".{0,140}") {
            if let Ok(d) = Digest::parse(&s) {
                proptest::prop_assert!(!d.hex().contains('/') && !d.hex().contains('.'));
            }
        }
    }
}
