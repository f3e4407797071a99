//! Writers from the merged tree: flattened `tar` (to a file or stdout) and a `dir` unpack.
//! `cpio` writes newc archives (initramfs); `ext4` writes filesystem images.
//!
//! Every writer reads the tree in [`Tree::walk`](crate::layers::tree::Tree::walk) order
//! (parents before children, siblings sorted by raw name bytes) and file contents from the
//! [`Spool`](crate::layers::spool::Spool). File outputs are written to a temporary name in the
//! target's directory and renamed at the end: a failure leaves nothing at the output path, and
//! an existing symlink at the output path is replaced, never followed (B58).

pub mod cpio;
pub mod dir;
pub mod ext4;
pub mod tar;
pub mod tar_stream;

use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Classify, ErrorKind};

/// Errors of the filesystem writers.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// Writing the output failed.
    #[error("writing {path}")]
    Write {
        /// The output (or `-`).
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading a file's content back from the spool failed.
    #[error("reading spooled content of {entry:?}")]
    Spool {
        /// The tree path.
        entry: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An entry cannot be represented in this format.
    #[error("{entry:?} cannot be written: {reason}")]
    Unrepresentable {
        /// The tree path.
        entry: String,
        /// Why.
        reason: &'static str,
    },
    /// The output path exists and is not a regular file (or a symlink, which is replaced).
    #[error("output {path} exists and is not a regular file")]
    OutputNotAFile {
        /// The output path.
        path: PathBuf,
    },
    /// The output directory exists and is not empty (or is not a directory).
    #[error("output {path} exists and is not an empty directory")]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },
    /// Creating an entry in the output directory failed.
    #[error("creating {entry:?} in {path}")]
    Create {
        /// The output directory.
        path: PathBuf,
        /// The tree path.
        entry: String,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl Classify for FsError {
    fn kind(&self) -> ErrorKind {
        match self {
            FsError::OutputExists { .. } | FsError::OutputNotAFile { .. } => {
                ErrorKind::InvalidInput
            }
            FsError::Unrepresentable { .. } => ErrorKind::Unsupported,
            FsError::Write { .. } | FsError::Spool { .. } | FsError::Create { .. } => ErrorKind::Io,
        }
    }
}

impl From<FsError> for crate::Error {
    fn from(e: FsError) -> Self {
        crate::Error::new(Classify::kind(&e), e)
    }
}

/// Refuses an output path that exists and is neither a regular file nor a symlink (a
/// directory, a device node, a FIFO, a socket): a file written beside it and renamed over it
/// would replace what is there, not fill it (a block device under /dev would become a file in
/// memory). A symlink is replaced, never followed.
pub fn check_output_file(path: &Path) -> Result<(), FsError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !(m.is_file() || m.file_type().is_symlink()) => Err(FsError::OutputNotAFile {
            path: path.to_path_buf(),
        }),
        _ => Ok(()),
    }
}

/// The directory an output file goes in (for the temporary file), and the output path.
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
