//! Errors of the layer engine: every one names the layer (compressed blob digest) and, where
//! there is one, the entry index and path.

use std::io;

use super::path::PathError;
use super::tar::TarError;
use crate::digest::Digest;
use crate::error::{Classify, ErrorKind};

/// Why one entry could not be applied to the merged tree.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// The name is malformed or escapes the root.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The hard-link target name is malformed or escapes the root.
    #[error("hard-link target {target:?}")]
    LinkPath {
        /// The raw target.
        target: String,
        /// Why.
        #[source]
        source: PathError,
    },
    /// The root entry (`.`, `/`) is not a directory (CVE-2021-29136).
    #[error("root entry is not a directory")]
    RootNotDir,
    /// A parent component exists and is neither a directory nor a symlink (ENOTDIR).
    #[error("parent component {component:?} is not a directory")]
    NotADirectory {
        /// The component.
        component: String,
    },
    /// Too many symlinks while resolving a parent (ELOOP).
    #[error("too many levels of symbolic links (limit {limit})")]
    SymlinkLoop {
        /// The hop limit.
        limit: u32,
    },
    /// A symlink with an empty target.
    #[error("empty symlink target")]
    EmptySymlink,
    /// A symlink target longer than the limit.
    #[error("symlink target of {len} bytes exceeds {limit}")]
    SymlinkTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The hard-link target does not exist (yet).
    #[error("hard-link target {target:?} does not exist")]
    LinkTargetMissing {
        /// The normalised target.
        target: String,
    },
    /// The hard-link target is a directory.
    #[error("hard-link target {target:?} is a directory")]
    LinkToDirectory {
        /// The normalised target.
        target: String,
    },
    /// `x => x`.
    #[error("hard link to itself")]
    LinkToSelf,
    /// More names on one inode than the limit.
    #[error("more than {limit} hard links to one inode")]
    TooManyLinks {
        /// The limit.
        limit: u32,
    },
    /// Device numbers Linux cannot represent.
    #[error("device number {major}:{minor} out of range")]
    DeviceRange {
        /// Major.
        major: u64,
        /// Minor.
        minor: u64,
    },
    /// An xattr name that is empty, too long or has a NUL.
    #[error("invalid xattr name {name:?}")]
    XattrName {
        /// The name.
        name: String,
    },
    /// An xattr value over the limit.
    #[error("xattr {name:?} value of {len} bytes exceeds {limit}")]
    XattrValue {
        /// The name.
        name: String,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// Directory nesting deeper than the limit.
    #[error("directory depth exceeds {limit}")]
    Depth {
        /// The limit.
        limit: usize,
    },
    /// More entries than the limit.
    #[error("more than {limit} entries")]
    Entries {
        /// The limit.
        limit: u64,
    },
    /// The file's data does not fit in the output (a filesystem of a requested size).
    #[error("file data does not fit in the output ({limit} bytes)")]
    OutputFull {
        /// The output's size in bytes.
        limit: u64,
    },
    /// The file is larger than the output format can hold.
    #[error("file is larger than the output can hold ({max} bytes)")]
    FileTooLarge {
        /// The largest file size.
        max: u64,
    },
}

/// Errors building the merged tree.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The tar stream is malformed.
    #[error("layer {layer}: malformed tar")]
    Tar {
        /// The layer.
        layer: Digest,
        /// Where and what.
        #[source]
        source: TarError,
    },
    /// An entry cannot be applied.
    #[error("layer {layer}: entry {index} {path:?}")]
    Entry {
        /// The layer.
        layer: Digest,
        /// Entry ordinal in the layer.
        index: u64,
        /// The entry's raw path.
        path: String,
        /// What.
        #[source]
        source: EntryError,
    },
    /// The uncompressed bytes exceed the budget (decompression bomb).
    #[error("layer {layer}: uncompressed size exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The layer.
        layer: Digest,
        /// The limit.
        limit: u64,
    },
    /// The media type is not a layer we handle.
    #[error("layer {layer}: unsupported media type {media_type:?}")]
    MediaType {
        /// The layer.
        layer: Digest,
        /// The media type.
        media_type: String,
    },
    /// The content is compressed with something we do not read (xz, bzip2).
    #[error("layer {layer}: {format} compression is not supported")]
    Compression {
        /// The layer.
        layer: Digest,
        /// The detected format.
        format: &'static str,
    },
    /// The decompressor failed (corrupt stream, garbage after the last member, huge window).
    #[error("layer {layer}: decompression failed")]
    Decompress {
        /// The layer.
        layer: Digest,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The compressed blob does not hash to its digest.
    #[error("layer {layer}: blob digest mismatch (got {actual})")]
    BlobDigest {
        /// The layer (expected digest).
        layer: Digest,
        /// What it hashed to.
        actual: Digest,
    },
    /// The uncompressed stream does not hash to the config's DiffID.
    #[error("layer {layer}: diff_id mismatch: expected {expected}, got {actual}")]
    DiffId {
        /// The layer.
        layer: Digest,
        /// From the image config.
        expected: Digest,
        /// What the stream hashed to.
        actual: Digest,
    },
    /// Spool (scratch file) or output I/O failed.
    #[error("spool i/o failed")]
    Spool(#[source] io::Error),
    /// More layers than the limit.
    #[error("{count} layers exceed the limit of {limit}")]
    TooManyLayers {
        /// How many.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A worker thread panicked (a bug).
    #[error("layer worker thread panicked")]
    Panicked,
}

impl Classify for LayerError {
    fn kind(&self) -> ErrorKind {
        match self {
            LayerError::Entry {
                source: EntryError::OutputFull { .. },
                ..
            } => ErrorKind::InvalidInput,
            LayerError::Entry {
                source: EntryError::FileTooLarge { .. },
                ..
            } => ErrorKind::Unsupported,
            LayerError::Tar { .. }
            | LayerError::Entry { .. }
            | LayerError::TooLarge { .. }
            | LayerError::TooManyLayers { .. } => ErrorKind::InvalidImage,
            LayerError::Decompress { .. } => ErrorKind::InvalidImage,
            LayerError::MediaType { .. } | LayerError::Compression { .. } => ErrorKind::Unsupported,
            LayerError::BlobDigest { .. } | LayerError::DiffId { .. } => ErrorKind::DigestMismatch,
            LayerError::Spool(_) | LayerError::Panicked => ErrorKind::Io,
        }
    }
}

impl From<LayerError> for crate::Error {
    fn from(e: LayerError) -> Self {
        crate::Error::new(Classify::kind(&e), e)
    }
}
