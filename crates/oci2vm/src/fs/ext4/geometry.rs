//! Block size and the block-group geometry that follows from it.
//!
//! Spec: <https://www.kernel.org/doc/html/latest/filesystems/ext4/overview.html#blocks>
//!
//! ```text
//! 4 KiB blocks: block 0 = [1024 boot bytes | superblock @1024 | ...]   groups of 32768 blocks
//!               group g = blocks [g x 32768, (g+1) x 32768); descriptors from block 1
//! 1 KiB blocks: block 0 = boot block (not in any group), block 1 = superblock
//!               s_first_data_block = 1, groups of 8192 blocks:
//!               group g = blocks [1 + g x 8192, 1 + (g+1) x 8192); descriptors from block 2
//! ```
//!
//! A group is as many blocks as one bitmap block has bits (8 x block size). Without the
//! `64bit` feature block numbers are 32-bit, so a filesystem has at most 2^32 - 1 blocks.

use super::Ext4Error;

/// One MiB.
const MIB: u64 = 1 << 20;

/// Filesystems smaller than this get 1 KiB blocks when the block size is left to us (the
/// boundary of mke2fs's "small" type in e2fsprogs 1.47.0's `mke2fs.conf`).
pub const SMALL_FS: u64 = 512 * MIB;

/// Block size and group layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Bytes per block: 1024, 2048 or 4096.
    pub block_size: u64,
    /// The superblock's block (`s_first_data_block`): 1 for 1 KiB blocks, else 0.
    pub first_data_block: u64,
    /// Blocks per group (8 x block size).
    pub blocks_per_group: u64,
}

impl Geometry {
    /// The geometry for `block_size` bytes per block.
    pub fn new(block_size: u32) -> Result<Self, Ext4Error> {
        if !matches!(block_size, 1024 | 2048 | 4096) {
            return Err(Ext4Error::Option {
                option: "block_size",
                reason: "must be 1024, 2048 or 4096",
            });
        }
        let bs = u64::from(block_size);
        Ok(Geometry {
            block_size: bs,
            first_data_block: u64::from(bs == 1024),
            blocks_per_group: bs * 8,
        })
    }

    /// Block size as a `usize` (for buffers).
    pub fn bs(&self) -> usize {
        self.block_size as usize
    }

    /// `s_log_block_size`: block size = 1024 << log.
    pub fn log_block_size(&self) -> u32 {
        (self.block_size / 1024).trailing_zeros()
    }

    /// Groups of a filesystem of `blocks` blocks.
    pub fn groups(&self, blocks: u64) -> u64 {
        blocks
            .saturating_sub(self.first_data_block)
            .div_ceil(self.blocks_per_group)
    }

    /// First block of group `g`.
    pub fn group_first(&self, g: u64) -> u64 {
        self.first_data_block + g * self.blocks_per_group
    }

    /// First block of the group descriptor table.
    pub fn gdt_start(&self) -> u64 {
        self.first_data_block + 1
    }

    /// Blocks the descriptors of `groups` groups take (32 bytes each).
    pub fn gdt_blocks(&self, groups: u64) -> u64 {
        (groups * super::group::DESC_SIZE as u64).div_ceil(self.block_size)
    }

    /// Inodes per inode-table block.
    pub fn inodes_per_block(&self) -> u64 {
        self.block_size / super::INODE_SIZE
    }

    /// The most blocks a filesystem can have (32-bit block numbers).
    pub fn max_blocks(&self) -> u64 {
        u64::from(u32::MAX)
    }

    /// Descriptor blocks needed for a filesystem of up to `bytes` bytes (capped at the largest
    /// filesystem of this block size).
    pub fn gdt_blocks_for_size(&self, bytes: u64) -> u64 {
        let blocks = (bytes / self.block_size).clamp(self.first_data_block + 1, self.max_blocks());
        self.gdt_blocks(self.groups(blocks))
    }

    /// Bytes of a whole number of blocks.
    pub fn bytes(&self, blocks: u64) -> u64 {
        blocks * self.block_size
    }
}

/// The block size used when none is asked for: 1 KiB for a filesystem expected to be smaller
/// than [`SMALL_FS`] (tail padding of small files is most of the waste there; mke2fs 1.47.0
/// does the same), 4 KiB otherwise. `expected_size` is the filesystem size when known, else an
/// estimate.
pub fn auto_block_size(expected_size: u64) -> u32 {
    if expected_size < SMALL_FS { 1024 } else { 4096 }
}

/// The default filesystem size: the `occupied` bytes (everything up to the last metadata
/// block) + 25 % of the `content` (data and metadata in use) + 64 MiB, rounded up to 1 MiB.
/// The free space is for the VM's own writes; it costs nothing in the sparse image.
pub fn default_size(occupied: u64, content: u64) -> u64 {
    (occupied + content / 4 + 64 * MIB).div_ceil(MIB) * MIB
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometries() {
        let g4 = Geometry::new(4096).unwrap();
        assert_eq!(
            (
                g4.first_data_block,
                g4.blocks_per_group,
                g4.log_block_size()
            ),
            (0, 32768, 2)
        );
        assert_eq!(g4.groups(32768), 1);
        assert_eq!(g4.groups(32769), 2);
        assert_eq!(g4.gdt_start(), 1);
        assert_eq!(g4.gdt_blocks(128), 1);
        assert_eq!(g4.gdt_blocks(129), 2);
        let g1 = Geometry::new(1024).unwrap();
        assert_eq!(
            (
                g1.first_data_block,
                g1.blocks_per_group,
                g1.log_block_size()
            ),
            (1, 8192, 0)
        );
        assert_eq!(g1.groups(8193), 1, "block 0 is in no group");
        assert_eq!(g1.groups(8194), 2);
        assert_eq!(g1.group_first(1), 8193);
        assert_eq!(g1.gdt_start(), 2);
        assert_eq!(Geometry::new(2048).unwrap().log_block_size(), 1);
        assert!(Geometry::new(8192).is_err());
        // 16 TiB of 4 KiB blocks: 131072 groups, 4 MiB of descriptors
        assert_eq!(g4.gdt_blocks_for_size(u64::MAX), 1024);
    }

    #[test]
    fn auto_and_default_sizes() {
        assert_eq!(auto_block_size(260 * MIB), 1024);
        assert_eq!(auto_block_size(SMALL_FS), 4096);
        assert_eq!(default_size(0, 0), 64 * MIB);
        assert_eq!(default_size(100 * MIB, 100 * MIB), 189 * MIB);
        assert_eq!(default_size(1, 0), 65 * MIB);
    }
}
