//! Resource limits applied while layers are read and merged (research note §2.4).
//!
//! Every limit is configurable; the defaults follow Linux (`PATH_MAX`, `NAME_MAX`,
//! `MAXSYMLINKS`), ext4 (`EXT4_LINK_MAX`, xattr sizes) and Go `archive/tar` (1 MiB special
//! headers, CVE-2022-2879). Exceeding any of them is an error naming the layer and the entry.

/// Bounds on what one image may make us do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest PAX (`x`) or GNU long-name/long-link (`L`/`K`) header body.
    pub special_header: u64,
    /// Longest normalised path, in bytes.
    pub path_len: usize,
    /// Longest single path component, in bytes.
    pub name_len: usize,
    /// Longest symlink target, in bytes.
    pub symlink_target: usize,
    /// Symlinks followed while resolving one path (`ELOOP` beyond).
    pub symlink_hops: u32,
    /// Deepest directory nesting.
    pub depth: usize,
    /// Entries across all layers (headers that become or change tree entries).
    pub entries: u64,
    /// Uncompressed bytes across all layers (decompression bombs).
    pub total_bytes: u64,
    /// Longest xattr name.
    pub xattr_name: usize,
    /// Largest xattr value.
    pub xattr_value: usize,
    /// Names per inode (hard links).
    pub links_per_inode: u32,
    /// Largest zstd window, as a power of two.
    pub zstd_window_log_max: u32,
    /// Layers per image.
    pub layers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            special_header: 1 << 20,
            path_len: 4096,
            name_len: 255,
            symlink_target: 4095,
            symlink_hops: 40,
            depth: 1024,
            entries: 10_000_000,
            total_bytes: 256 << 30,
            xattr_name: 255,
            xattr_value: 64 << 10,
            links_per_inode: 65_000,
            zstd_window_log_max: 27,
            layers: 1024,
        }
    }
}

/// Largest device major number Linux `dev_t` carries (12 bits).
pub const MAX_DEV_MAJOR: u32 = 4095;
/// Largest device minor number Linux `dev_t` carries (20 bits).
pub const MAX_DEV_MINOR: u32 = 1_048_575;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_research_note() {
        let l = Limits::default();
        assert_eq!((l.path_len, l.name_len, l.symlink_hops), (4096, 255, 40));
        assert_eq!((l.xattr_value, l.links_per_inode), (65_536, 65_000));
        assert_eq!(l.special_header, 1_048_576);
        assert_eq!(l.zstd_window_log_max, 27);
    }
}
