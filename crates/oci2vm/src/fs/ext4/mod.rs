//! Our own ext4 writer: merged tree + file data -> `rootfs.ext4`, with no root, no mount and
//! no loop device. The output mounts read-write on Linux and passes `e2fsck -fn`.
//!
//! Format reference: <https://www.kernel.org/doc/html/latest/filesystems/ext4/>.
//!
//! ```text
//! block 0 (+1)  gdt      reserve    data start                        data end        meta end
//! +-----------+--------+---------+---------------------------------+---------------+-------+
//! |superblock |group   |(free:   | file data, in the order it was   | bitmaps, inode| free  |
//! |@1024 bytes|descs   | room for| placed: streamed while the layers| tables, dirs, | ...   |
//! |           |(32 B)  | growth) | were read, or copied; zero blocks| symlinks,     |       |
//! |           |        |         | and dead files are holes (free)  | xattr + extent|       |
//! +-----------+--------+---------+---------------------------------+  tree blocks  +-------+
//! ```
//!
//! File data comes first so that it can be written once, straight into its final blocks,
//! while the layers are decompressed ([`Ext4Image::sink`], a [`BlockSink`](crate::layers::BlockSink));
//! whatever the tree holds elsewhere (a spool, memory) is copied in by [`Ext4Image::finish`].
//! Everything else is computed from the final tree at the end ([`layout`]) and written after
//! the data in one pass ([`writer`]); `flex_bg` lets all bitmaps and inode tables sit there.
//! Blocks of data that the final tree no longer references (overwritten or whited-out files)
//! are punched out of the file and left free. See `docs/ext4.md` for the feature set and the
//! sizing rules.

mod bitmap;
mod csum;
mod dir;
mod extent;
mod geometry;
mod group;
mod htree;
mod inode;
mod journal;
mod layout;
mod metadata;
mod superblock;
mod writer;
mod xattr;

use std::path::PathBuf;

pub use geometry::{Geometry, SMALL_FS, auto_block_size};
pub use writer::{Ext4Image, write_ext4};

/// On-disk inode size (fixed).
pub const INODE_SIZE: u64 = 256;

/// Options for [`write_ext4`] and [`Ext4Image`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ext4Options {
    /// Filesystem size in bytes (rounded down to whole blocks). `None`: what is used + 25 % of
    /// the content + 64 MiB, rounded up to 1 MiB.
    pub size: Option<u64>,
    /// Block size: 1024, 2048 or 4096. `None`: [`auto_block_size`] of the expected size (1 KiB
    /// below 512 MiB), and 4 KiB whenever the tree needs it (a symlink target or an xattr set
    /// that does not fit a smaller block).
    pub block_size: Option<u32>,
    /// Total inode count. `None`: `size / inode_ratio`, but at least `used * 5/4 + 64`.
    pub inodes: Option<u32>,
    /// Bytes of filesystem per inode when `inodes` is not given (default 16 KiB).
    pub inode_ratio: u64,
    /// Filesystem UUID. `None`: derived from `seed`.
    pub uuid: Option<[u8; 16]>,
    /// Seed for the UUID and the directory hash seed (e.g. the image digest's first 16 bytes).
    pub seed: [u8; 16],
    /// Volume label (at most 16 bytes).
    pub label: Vec<u8>,
    /// Superblock timestamps (mkfs, write, last check). `None`: the newest mtime in the tree
    /// (callers pass `SOURCE_DATE_EPOCH` here when it is set). Never the wall clock.
    pub timestamp: Option<i64>,
    /// Add an internal JBD2 journal (inode 8, empty and clean), sized like mke2fs does.
    pub journal: bool,
    /// Checksum all metadata (`metadata_csum`, crc32c), as mke2fs does by default.
    pub metadata_csum: bool,
    /// Index directories larger than one block (htree, half-MD4), as the kernel does.
    pub htree: bool,
}

impl Default for Ext4Options {
    fn default() -> Self {
        Ext4Options {
            size: None,
            block_size: None,
            inodes: None,
            inode_ratio: 16 * 1024,
            uuid: None,
            seed: [0; 16],
            label: Vec::new(),
            timestamp: None,
            journal: false,
            metadata_csum: true,
            htree: true,
        }
    }
}

/// What [`write_ext4`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ext4Report {
    /// Block size in bytes.
    pub block_size: u32,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub free_blocks: u64,
    /// Total inodes.
    pub inodes: u64,
    /// Inodes in use (including the reserved inodes 1-10).
    pub used_inodes: u64,
    /// Bytes written by the final pass (metadata, copied data); data placed while the layers
    /// streamed is not counted.
    pub bytes_written: u64,
    /// Blocks of file data (all files, holes excluded).
    pub data_blocks: u64,
    /// Blocks written while streaming that no file in the final tree uses (freed, punched).
    pub dead_blocks: u64,
    /// Extended attributes dropped because ext4 has no namespace for them.
    pub dropped_xattrs: u64,
}

/// Errors of the ext4 writer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Ext4Error {
    /// The content does not fit in the requested size.
    #[error("content needs {needed} bytes but the filesystem has {size}")]
    NoSpace {
        /// Bytes the content and metadata need.
        needed: u64,
        /// Requested filesystem size.
        size: u64,
    },
    /// Too many inodes for the filesystem, or fewer than the tree needs.
    #[error("inode count {inodes} cannot hold {used} inodes with {groups} groups")]
    Inodes {
        /// Requested inodes.
        inodes: u64,
        /// Inodes the tree needs.
        used: u64,
        /// Block groups.
        groups: u64,
    },
    /// An option is out of range.
    #[error("invalid option {option}: {reason}")]
    Option {
        /// Which option.
        option: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A file has more hard links than ext4 allows (65000).
    #[error("too many hard links ({nlink}) to {path}")]
    TooManyLinks {
        /// One of its paths.
        path: String,
        /// Link count.
        nlink: u32,
    },
    /// A symlink target is empty or not shorter than a block.
    #[error("symlink target of {path} has unsupported length {len} (block size {block_size})")]
    Symlink {
        /// The link's path.
        path: String,
        /// Target length.
        len: usize,
        /// The block size.
        block_size: u64,
    },
    /// The extended attributes of an inode do not fit in the inode and one block.
    #[error("extended attributes of {path} do not fit ({bytes} bytes, block size {block_size})")]
    XattrTooLarge {
        /// The inode's path.
        path: String,
        /// Bytes needed.
        bytes: usize,
        /// The block size.
        block_size: u64,
    },
    /// A POSIX ACL xattr value is malformed.
    #[error("malformed posix acl {name} on {path}")]
    Acl {
        /// The inode's path.
        path: String,
        /// The xattr name.
        name: String,
    },
    /// A file is larger than ext4 can map with this block size (2^32 blocks).
    #[error("{path} is larger than the filesystem can hold ({max} bytes)")]
    FileTooLarge {
        /// The file's path.
        path: String,
        /// The largest file size.
        max: u64,
    },
    /// A file's content could not be read from the spool.
    #[error("reading content of {path}")]
    Spool {
        /// The file's path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The output path exists and is not a regular file (a device, a directory...).
    #[error("output {path} exists and is not a regular file")]
    NotAFile {
        /// The output path.
        path: PathBuf,
    },
    /// Writing the image failed.
    #[error("writing {path}")]
    Io {
        /// The image (or its temporary file).
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl crate::error::Classify for Ext4Error {
    fn kind(&self) -> crate::ErrorKind {
        use crate::ErrorKind;
        match self {
            Ext4Error::NoSpace { .. }
            | Ext4Error::Inodes { .. }
            | Ext4Error::Option { .. }
            | Ext4Error::NotAFile { .. } => ErrorKind::InvalidInput,
            Ext4Error::TooManyLinks { .. }
            | Ext4Error::FileTooLarge { .. }
            | Ext4Error::Symlink { .. }
            | Ext4Error::XattrTooLarge { .. }
            | Ext4Error::Acl { .. } => ErrorKind::Unsupported,
            Ext4Error::Spool { .. } | Ext4Error::Io { .. } => ErrorKind::Io,
        }
    }
}

impl From<Ext4Error> for crate::Error {
    fn from(e: Ext4Error) -> Self {
        crate::Error::new(crate::error::Classify::kind(&e), e)
    }
}

/// Stores `v` little-endian at `buf[off..off + 2]`.
pub(crate) fn put16(buf: &mut [u8], off: usize, v: u16) {
    buf[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

/// Stores `v` little-endian at `buf[off..off + 4]`.
pub(crate) fn put32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
