//! Layers: decompress, parse tar entries, apply them in order into the merged tree.
//!
//! [`tree`] is the merged-tree data model every writer (tar, dir, ext4, cpio) reads;
//! [`spool`] holds the file contents the tree points into.

pub mod spool;
pub mod tree;
