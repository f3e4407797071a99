//! Our own ext4 writer: merged tree + spool -> `rootfs.ext4`, with no root, no mount and no
//! loop device. The output mounts read-write on Linux and passes `e2fsck -fn`.
//!
//! Format reference: <https://www.kernel.org/doc/html/latest/filesystems/ext4/>.
//!
//! ```text
//! block 0          1..          ..         ..          ..                         ..
//! +----------+-----------+-----------+-----------+--------------+----------+---------+--------+
//! |superblock|group descs|block bmaps|inode bmaps|inode tables  |dirs,links|file data|extent  | free...
//! |@1024     |(32 B each)|(1/group)  |(1/group)  |(all groups)  |xattr blks|(inode   |index   |
//! +----------+-----------+-----------+-----------+--------------+----------+ order)  +--------+
//! ```
//!
//! Everything the tree needs is allocated as one contiguous prefix of the device (flex_bg lets
//! all bitmaps and inode tables sit at the start); the rest is free space for the VM. The plan
//! is computed from the final tree first ([`layout`]), then [`writer`] makes one pass: the
//! directory/symlink/xattr region, then file data straight from the spool (all-zero 4 KiB blocks
//! become holes), then extent index blocks, and finally inode tables, bitmaps, descriptors and
//! the superblock. See `docs/ext4.md` for the feature set and the sizing formula.

mod bitmap;
mod csum;
mod dir;
mod extent;
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

pub use writer::write_ext4;

/// Filesystem block size (fixed).
pub const BLOCK_SIZE: u64 = 4096;
/// On-disk inode size (fixed).
pub const INODE_SIZE: u64 = 256;
/// Blocks per block group (one bitmap block of 4 KiB covers 32768 blocks).
pub const BLOCKS_PER_GROUP: u64 = 32768;

/// Options for [`write_ext4`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ext4Options {
    /// Filesystem size in bytes (rounded down to 4 KiB). `None`: content + headroom
    /// (`content * 5/4 + 64 MiB`, rounded up to 1 MiB).
    pub size: Option<u64>,
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
    /// Total blocks of 4 KiB.
    pub blocks: u64,
    /// Free blocks.
    pub free_blocks: u64,
    /// Total inodes.
    pub inodes: u64,
    /// Inodes in use (including the reserved inodes 1-10).
    pub used_inodes: u64,
    /// Bytes actually written (the rest of the image is holes).
    pub bytes_written: u64,
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
    /// A symlink target is empty or longer than a block.
    #[error("symlink target of {path} has unsupported length {len}")]
    Symlink {
        /// The link's path.
        path: String,
        /// Target length.
        len: usize,
    },
    /// The extended attributes of an inode do not fit in the inode and one block.
    #[error("extended attributes of {path} do not fit ({bytes} bytes)")]
    XattrTooLarge {
        /// The inode's path.
        path: String,
        /// Bytes needed.
        bytes: usize,
    },
    /// A POSIX ACL xattr value is malformed.
    #[error("malformed posix acl {name} on {path}")]
    Acl {
        /// The inode's path.
        path: String,
        /// The xattr name.
        name: String,
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
            Ext4Error::NoSpace { .. } | Ext4Error::Inodes { .. } | Ext4Error::Option { .. } => {
                ErrorKind::InvalidInput
            }
            Ext4Error::TooManyLinks { .. }
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
