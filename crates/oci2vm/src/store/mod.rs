//! The content-addressed store: an OCI image layout that other tools can read.
//!
//! ```text
//! STORE/                       default $XDG_CACHE_HOME/oci2vm (else ~/.cache/oci2vm)
//!   oci-layout                 {"imageLayoutVersion":"1.0.0"}
//!   index.json                 one entry per pulled image, ref.name = full reference
//!   blobs/sha256/<hex>         verified content only
//!   tmp/<hex16>.XXXXXX         in-flight writes, renamed into blobs/ once verified
//!   .lock-gc  .lock-index      flock(2) files (see lock.rs)
//! ```
//!
//! Spec: <https://github.com/opencontainers/image-spec/blob/main/image-layout.md>. Because it is
//! a layout, `skopeo inspect oci:STORE:docker.io/library/busybox:latest` and `umoci` read it,
//! and oci2vm reads pulled images back through the `oci:` source.
//!
//! Invariants: a file under `blobs/` is only ever created by renaming a temp file whose size
//! and digest were checked while it was written and which was fsynced; digests are
//! [`Digest`]s, so a path built from one never leaves `blobs/`; readers re-verify
//! ([`BlobReader`]) and delete a blob that turns out corrupt, so the next pull fetches it again.

mod index;
mod lock;
pub mod prune;

pub use index::StoredImage;
pub use lock::StoreLock;
pub use prune::PruneReport;

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::digest::{Digest, DigestError, Hasher, VerifyingReader, digest_error_of};
use crate::error::{Classify, ErrorKind};

const LAYOUT_FILE: &str = "oci-layout";
const LAYOUT_CONTENT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;
const TMP_DIR: &str = "tmp";
const GC_LOCK: &str = ".lock-gc";
const INDEX_LOCK: &str = ".lock-index";

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("store i/o on {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Content did not match its digest or size.
    #[error("blob {digest} failed verification")]
    Verify {
        /// The expected digest.
        digest: Digest,
        /// What differed.
        #[source]
        source: DigestError,
    },
    /// The blob is not in the store.
    #[error("blob {digest} is not in the store")]
    Missing {
        /// The digest asked for.
        digest: Digest,
    },
    /// `index.json` or `oci-layout` is not what we expect.
    #[error("corrupt store metadata {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No store directory could be determined.
    #[error(
        "cannot determine the store directory: set --store, OCI2VM_STORE, XDG_CACHE_HOME or HOME"
    )]
    NoDefault,
}

impl Classify for StoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Io { .. } => ErrorKind::Io,
            StoreError::Verify { .. } => ErrorKind::DigestMismatch,
            StoreError::Missing { .. } => ErrorKind::NotFound,
            StoreError::Corrupt { .. } => ErrorKind::Io,
            StoreError::NoDefault => ErrorKind::InvalidInput,
        }
    }
}

impl From<StoreError> for crate::Error {
    fn from(e: StoreError) -> Self {
        crate::Error::new(e.kind(), e)
    }
}

/// Maps an I/O error from a verifying stream to a [`StoreError`], keeping digest failures
/// distinct from disk failures.
fn stream_error(e: io::Error, digest: &Digest, path: &Path) -> StoreError {
    match digest_error_of(&e) {
        Some(de) => StoreError::Verify {
            digest: digest.clone(),
            source: de.clone(),
        },
        None => StoreError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// An open store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Blobs this process hashed in full ([`Store::verify_blob`]), with the identity of the
    /// file it hashed: [`Store::open_blob`] does not hash such a blob a second time while the
    /// file is unchanged (same device, inode, size, mtime and ctime, to the nanosecond).
    verified: Arc<Mutex<Vec<(Digest, FileId)>>>,
}

/// What identifies one unchanged version of a blob file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    fn of(m: &fs::Metadata) -> Self {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

impl Store {
    /// The default location: `$XDG_CACHE_HOME/oci2vm`, else `$HOME/.cache/oci2vm`.
    pub fn default_path() -> Result<PathBuf, StoreError> {
        let nonempty = |k| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(x) = nonempty("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
            return Ok(x.join("oci2vm"));
        }
        nonempty("HOME")
            .map(|h| h.join(".cache").join("oci2vm"))
            .ok_or(StoreError::NoDefault)
    }

    /// Opens (creating if needed) a store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        for dir in [
            root.join("blobs").join("sha256"),
            root.join("blobs").join("sha512"),
            root.join(TMP_DIR),
        ] {
            fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let store = Store {
            root,
            verified: Arc::default(),
        };
        let layout = store.root.join(LAYOUT_FILE);
        match fs::read(&layout) {
            Ok(b) => {
                let v: serde_json::Value =
                    serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt {
                        path: layout.clone(),
                        reason: e.to_string(),
                    })?;
                if v.get("imageLayoutVersion")
                    .and_then(|v| v.as_str())
                    .is_none()
                {
                    return Err(StoreError::Corrupt {
                        path: layout,
                        reason: "no imageLayoutVersion".into(),
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                store.write_atomic(&layout, LAYOUT_CONTENT.as_bytes())?;
            }
            Err(e) => return Err(io(&layout)(e)),
        }
        store.init_index()?;
        Ok(store)
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(digest.layout_path())
    }

    /// A shared lock that keeps `prune` away while held: take it for the whole of a pull so
    /// blobs written before the image is recorded in `index.json` are not collected.
    pub fn writer_lock(&self) -> Result<StoreLock, StoreError> {
        StoreLock::shared(&self.root.join(GC_LOCK))
    }

    /// Whether a blob of this size exists (cheap: no hashing; readers still verify).
    pub fn has_blob(&self, digest: &Digest, size: u64) -> bool {
        fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Whether the blob exists and hashes correctly. A corrupt or wrong-sized blob is removed
    /// (so it will be fetched again) and `false` returned.
    pub fn verify_blob(&self, digest: &Digest, size: u64) -> Result<bool, StoreError> {
        let path = self.blob_path(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let meta = file.metadata().map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let ok = meta.len() == size && {
            let mut r = VerifyingReader::new(file, digest.clone(), size);
            match io::copy(&mut r, &mut io::sink()) {
                Ok(_) => true,
                Err(e) if digest_error_of(&e).is_some() => false,
                Err(source) => return Err(StoreError::Io { path, source }),
            }
        };
        if !ok {
            tracing::warn!(%digest, path = %path.display(), "removing corrupt blob from the store");
            self.remove_blob_file(&path)?;
        } else if let Ok(mut v) = self.verified.lock() {
            v.retain(|(d, _)| d != digest);
            v.push((digest.clone(), FileId::of(&meta)));
        }
        Ok(ok)
    }

    fn remove_blob_file(&self, path: &Path) -> Result<(), StoreError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Opens a blob for reading; the reader checks size and digest as it goes and fails at
    /// the end on a mismatch (removing the corrupt blob).
    pub fn open_blob(&self, digest: &Digest, size: u64) -> Result<BlobReader, StoreError> {
        self.open_blob_as(digest, size, true)
    }

    fn open_blob_as(
        &self,
        digest: &Digest,
        size: u64,
        verify: bool,
    ) -> Result<BlobReader, StoreError> {
        let path = self.blob_path(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::Missing {
                    digest: digest.clone(),
                });
            }
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let meta = file.metadata().map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let len = meta.len();
        if len != size {
            self.remove_blob_file(&path)?;
            return Err(StoreError::Verify {
                digest: digest.clone(),
                source: DigestError::Size {
                    digest: digest.clone(),
                    expected: size,
                    actual: len,
                },
            });
        }
        let id = FileId::of(&meta);
        let hashed = !verify
            || self
                .verified
                .lock()
                .is_ok_and(|v| v.iter().any(|(d, f)| d == digest && *f == id));
        let inner = if hashed {
            BlobInner::Hashed(file)
        } else {
            BlobInner::Verifying(Box::new(VerifyingReader::new(file, digest.clone(), size)))
        };
        Ok(BlobReader { inner, path })
    }

    /// Opens a layer blob whose content the caller verifies another way: the layer engine
    /// hashes the uncompressed stream against the image's DiffID, which the verified config
    /// names, so a changed blob cannot go unnoticed and hashing its compressed bytes again would
    /// only cost time. The size is checked here. After a failed read, [`Store::verify_blob`]
    /// tells a corrupt blob (and removes it) from a bad image.
    pub fn open_layer_blob(&self, digest: &Digest, size: u64) -> Result<BlobReader, StoreError> {
        self.open_blob_as(digest, size, false)
    }

    /// A reader over `src` (the blob `digest` of `size` bytes from its source) that writes
    /// what it reads into the store: when `src` ends, size and digest are checked and the blob
    /// is moved into place (a mismatch fails the read with a [`DigestError`]); a reader dropped
    /// before the end leaves nothing in the store. One pass over the source serves both the
    /// store and the caller.
    pub fn storing_reader(
        &self,
        digest: &Digest,
        size: u64,
        src: Box<dyn Read + Send>,
    ) -> Result<StoringReader, StoreError> {
        Ok(StoringReader {
            src,
            writer: Some(self.blob_writer(digest, size)?),
        })
    }

    /// Reads a whole (small) blob, verified.
    pub fn read_blob(&self, digest: &Digest, size: u64) -> Result<Vec<u8>, StoreError> {
        let mut r = self.open_blob(digest, size)?;
        let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 24));
        r.read_to_end(&mut out)
            .map_err(|e| stream_error(e, digest, &self.blob_path(digest)))?;
        Ok(out)
    }

    /// Stores a blob read from `source`, verifying size and digest while streaming; never
    /// reads past `size` except one byte to prove the source has no more. On success the
    /// blob is durable in `blobs/`; on failure nothing is left behind.
    pub fn put_blob(
        &self,
        digest: &Digest,
        size: u64,
        source: &mut dyn Read,
    ) -> Result<(), StoreError> {
        let _gc = self.writer_lock()?;
        let mut tmp = self.temp_file(digest)?;
        let tmp_path = tmp.path().to_path_buf();
        let mut r = VerifyingReader::new(&mut *source, digest.clone(), size);
        io::copy(&mut r, tmp.as_file_mut()).map_err(|e| stream_error(e, digest, &tmp_path))?;
        let mut inner = r.finish().map_err(|e| stream_error(e, digest, &tmp_path))?;
        VerifyingReader::<&mut dyn Read>::ensure_inner_exhausted(&mut inner, digest, size)
            .map_err(|e| stream_error(e, digest, &tmp_path))?;
        self.commit(tmp, digest)
    }

    /// Stores a blob held in memory.
    pub fn put_bytes(&self, digest: &Digest, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_blob(digest, bytes.len() as u64, &mut &bytes[..])
    }

    /// A writer for push-style producers (a registry download): it refuses bytes beyond
    /// `size`, hashes what it gets, and [`BlobWriter::commit`] checks size and digest.
    pub fn blob_writer(&self, digest: &Digest, size: u64) -> Result<BlobWriter, StoreError> {
        let gc = self.writer_lock()?;
        let tmp = self.temp_file(digest)?;
        Ok(BlobWriter {
            store: self.clone(),
            tmp,
            digest: digest.clone(),
            size,
            written: 0,
            hasher: digest.algorithm().hasher(),
            _gc: gc,
        })
    }

    fn temp_file(&self, digest: &Digest) -> Result<tempfile::NamedTempFile, StoreError> {
        let dir = self.root.join(TMP_DIR);
        tempfile::Builder::new()
            .prefix(&format!("{}.", &digest.hex()[..16]))
            .tempfile_in(&dir)
            .map_err(|source| StoreError::Io { path: dir, source })
    }

    /// fsync, make readable, rename into `blobs/`, fsync the directory.
    fn commit(&self, tmp: tempfile::NamedTempFile, digest: &Digest) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt as _;
        let tmp_path = tmp.path().to_path_buf();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        tmp.as_file().sync_all().map_err(io(&tmp_path))?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(io(&tmp_path))?;
        let dest = self.blob_path(digest);
        tmp.persist(&dest).map_err(|e| StoreError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        if let Some(parent) = dest.parent() {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io(parent))?;
        }
        tracing::debug!(%digest, "stored blob");
        Ok(())
    }

    /// Writes a small metadata file atomically (temp file, fsync, rename, fsync directory).
    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<(), StoreError> {
        use std::os::unix::fs::PermissionsExt as _;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        let dir = path.parent().unwrap_or(&self.root);
        let _gc = self.writer_lock()?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".meta.")
            .tempfile_in(self.root.join(TMP_DIR))
            .map_err(io(dir))?;
        tmp.write_all(data).map_err(io(tmp.path()))?;
        tmp.as_file().sync_all().map_err(io(tmp.path()))?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(io(path))?;
        tmp.persist(path).map_err(|e| StoreError::Io {
            path: path.to_path_buf(),
            source: e.error,
        })?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
        Ok(())
    }
}

/// A verified reader over a stored blob. At the end of the stream it checks the digest; on
/// a mismatch it removes the blob from the store and fails with a digest error.
#[derive(Debug)]
pub struct BlobReader {
    inner: BlobInner,
    path: PathBuf,
}

#[derive(Debug)]
enum BlobInner {
    Verifying(Box<VerifyingReader<File>>),
    /// Hashed in full by [`Store::verify_blob`] in this process, file unchanged since, or
    /// verified by the reader's caller ([`Store::open_layer_blob`]).
    Hashed(File),
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = match &mut self.inner {
            BlobInner::Verifying(v) => v.read(buf),
            BlobInner::Hashed(f) => f.read(buf),
        };
        if let Err(e) = &r {
            if digest_error_of(e).is_some() {
                tracing::warn!(path = %self.path.display(), "corrupt blob in the store: removing it");
                let _ = fs::remove_file(&self.path);
            }
        }
        r
    }
}

/// Reads a blob from its source and stores it on the way (see [`Store::storing_reader`]).
pub struct StoringReader {
    src: Box<dyn Read + Send>,
    writer: Option<BlobWriter>,
}

impl std::fmt::Debug for StoringReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoringReader")
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

impl Read for StoringReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = loop {
            match self.src.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        if n == 0 {
            // the end: size and digest decide whether the blob goes into the store
            if let Some(w) = self.writer.take() {
                w.commit().map_err(|e| match e {
                    StoreError::Verify { source, .. } => {
                        io::Error::new(io::ErrorKind::InvalidData, source)
                    }
                    other => io::Error::other(other),
                })?;
            }
            return Ok(0);
        }
        match self.writer.as_mut() {
            Some(w) => w.write_all(&buf[..n])?,
            None => {
                return Err(io::Error::other("read past the end of a stored blob"));
            }
        }
        Ok(n)
    }
}

/// A push-style blob writer (see [`Store::blob_writer`]). Dropping it without `commit`
/// deletes the temp file.
#[derive(Debug)]
pub struct BlobWriter {
    store: Store,
    tmp: tempfile::NamedTempFile,
    digest: Digest,
    size: u64,
    written: u64,
    hasher: Hasher,
    _gc: StoreLock,
}

impl BlobWriter {
    /// Checks size and digest and moves the blob into place.
    pub fn commit(self) -> Result<(), StoreError> {
        if self.written != self.size {
            return Err(StoreError::Verify {
                digest: self.digest.clone(),
                source: DigestError::Size {
                    digest: self.digest.clone(),
                    expected: self.size,
                    actual: self.written,
                },
            });
        }
        let actual = self.hasher.finish();
        if actual != self.digest {
            return Err(StoreError::Verify {
                digest: self.digest.clone(),
                source: DigestError::Mismatch {
                    expected: self.digest.clone(),
                    actual,
                },
            });
        }
        self.store.commit(self.tmp, &self.digest)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > self.size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                DigestError::Size {
                    digest: self.digest.clone(),
                    expected: self.size,
                    actual: self.written + buf.len() as u64,
                },
            ));
        }
        let n = self.tmp.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path().join("s")).unwrap();
        (dir, s)
    }

    fn tmp_count(s: &Store) -> usize {
        fs::read_dir(s.root().join(TMP_DIR)).unwrap().count()
    }

    #[test]
    fn creates_an_oci_layout() {
        let (_d, s) = store();
        let layout = fs::read_to_string(s.root().join("oci-layout")).unwrap();
        assert!(layout.contains("imageLayoutVersion"));
        let index: serde_json::Value =
            serde_json::from_slice(&fs::read(s.root().join("index.json")).unwrap()).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        assert!(s.list_images().unwrap().is_empty());
        Store::open(s.root()).unwrap();
    }

    #[test]
    fn put_and_read_back() {
        let (_d, s) = store();
        let data = b"hello blob";
        let d = Digest::sha256_of(data);
        s.put_bytes(&d, data).unwrap();
        assert!(s.has_blob(&d, data.len() as u64));
        assert!(s.verify_blob(&d, data.len() as u64).unwrap());
        assert_eq!(s.read_blob(&d, data.len() as u64).unwrap(), data);
        assert_eq!(tmp_count(&s), 0);
    }

    #[test]
    fn bad_content_never_lands() {
        let (_d, s) = store();
        let data = b"hello blob";
        let d = Digest::sha256_of(data);
        let n = data.len() as u64;
        let e = s.put_blob(&d, n, &mut &b"hello blub"[..]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DigestMismatch);
        let e = s.put_blob(&d, n, &mut &data[..5]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DigestMismatch);
        let e = s
            .put_blob(&d, n, &mut &b"hello blob and more"[..])
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DigestMismatch);
        assert!(!s.blob_path(&d).exists());
        assert_eq!(tmp_count(&s), 0);

        let mut w = s.blob_writer(&d, n).unwrap();
        assert!(w.write_all(b"hello blob!").is_err());
        drop(w);
        let mut w = s.blob_writer(&d, n).unwrap();
        w.write_all(b"hello blub").unwrap();
        assert_eq!(w.commit().unwrap_err().kind(), ErrorKind::DigestMismatch);
        assert!(!s.blob_path(&d).exists());
        assert_eq!(tmp_count(&s), 0);
        let mut w = s.blob_writer(&d, n).unwrap();
        w.write_all(data).unwrap();
        w.commit().unwrap();
        assert!(s.verify_blob(&d, n).unwrap());
    }

    #[test]
    fn corrupt_blob_is_detected_and_removed() {
        let (_d, s) = store();
        let data = b"0123456789";
        let d = Digest::sha256_of(data);
        s.put_bytes(&d, data).unwrap();
        fs::write(s.blob_path(&d), b"0123456780").unwrap();
        let mut out = Vec::new();
        let e = s
            .open_blob(&d, 10)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(digest_error_of(&e).is_some());
        assert!(!s.blob_path(&d).exists(), "corrupt blob kept");
        s.put_bytes(&d, data).unwrap();
        fs::write(s.blob_path(&d), b"short").unwrap();
        assert!(!s.verify_blob(&d, 10).unwrap());
        assert!(!s.blob_path(&d).exists());
        assert!(matches!(
            s.open_blob(&d, 10),
            Err(StoreError::Missing { .. })
        ));
    }

    #[test]
    fn verified_blob_is_hashed_again_once_changed() {
        let (_d, s) = store();
        let data = b"0123456789";
        let d = Digest::sha256_of(data);
        s.put_bytes(&d, data).unwrap();
        assert!(s.verify_blob(&d, 10).unwrap());
        // unchanged since verify_blob: read as is
        let mut r = s.open_blob(&d, 10).unwrap();
        assert!(matches!(r.inner, BlobInner::Hashed(_)));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        // rewritten in place with the same size: its ctime changed, so it is hashed again
        fs::write(s.blob_path(&d), b"0123456780").unwrap();
        let mut r = s.open_blob(&d, 10).unwrap();
        assert!(matches!(r.inner, BlobInner::Verifying(_)));
        let e = r.read_to_end(&mut Vec::new()).unwrap_err();
        assert!(digest_error_of(&e).is_some());
        // a clone of the store shares what was verified
        s.put_bytes(&d, data).unwrap();
        assert!(s.verify_blob(&d, 10).unwrap());
        let c = s.clone();
        assert!(matches!(
            c.open_blob(&d, 10).unwrap().inner,
            BlobInner::Hashed(_)
        ));
        // another Store value over the same directory hashes it
        let other = Store::open(s.root()).unwrap();
        assert!(matches!(
            other.open_blob(&d, 10).unwrap().inner,
            BlobInner::Verifying(_)
        ));
    }
}
