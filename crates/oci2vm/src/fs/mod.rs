//! Writers from the merged tree: tar, dir, ext4, cpio.

pub mod cpio;
