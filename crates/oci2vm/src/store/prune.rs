//! Garbage collection: remove blobs not reachable from `index.json`, and stale temp files.
//!
//! ```text
//! index.json entries ──> manifest | index ──> config, layers | child manifests  (reachable)
//! blobs/<alg>/<hex> not reachable ──> removed          tmp/* ──> removed
//! ```
//!
//! Runs under the exclusive `.lock-gc`, so no writer is between writing a blob and recording
//! its image: every temp file is stale and every unreferenced blob is garbage. A recorded
//! manifest that cannot be read or parsed is kept, but what it references cannot be found and
//! is removed; pulling the image again restores it.

use std::collections::HashSet;
use std::fs;
use std::io;

use super::{GC_LOCK, Store, StoreError, StoreLock, TMP_DIR};
use crate::digest::Digest;
use crate::image::{MAX_MANIFEST_SIZE, ManifestDocument};

/// What `prune` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    /// Blobs still referenced.
    pub blobs_kept: usize,
    /// Blobs removed.
    pub blobs_removed: usize,
    /// Bytes freed by removing blobs and temp files.
    pub bytes_freed: u64,
    /// Stale temp files removed.
    pub temp_files_removed: usize,
    /// Cached root filesystems (`rootfs/*.ext4`, derived data `run` rebuilds on demand) removed.
    pub rootfs_removed: usize,
}

/// Where `convert::cached_rootfs` keeps converted root filesystems, inside the store.
pub const ROOTFS_CACHE_DIR: &str = "rootfs";

impl Store {
    /// The set of blob digests reachable from `index.json`.
    pub fn reachable_blobs(&self) -> Result<HashSet<Digest>, StoreError> {
        let mut reachable = HashSet::new();
        let mut stack: Vec<(Digest, u64, Option<String>)> = self
            .list_images()?
            .into_iter()
            .map(|i| (i.digest, i.size, Some(i.media_type)))
            .collect();
        while let Some((digest, size, media_type)) = stack.pop() {
            if !reachable.insert(digest.clone()) || size > MAX_MANIFEST_SIZE {
                continue;
            }
            let bytes = match self.read_blob(&digest, size) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(%digest, error = %e, "cannot read a manifest while pruning");
                    continue;
                }
            };
            match ManifestDocument::parse(&bytes, &digest, media_type.as_deref()) {
                Ok(ManifestDocument::Index(i)) => {
                    for d in i.manifests {
                        stack.push((d.digest, d.size, Some(d.media_type)));
                    }
                }
                Ok(ManifestDocument::Manifest(m)) => {
                    reachable.insert(m.config.digest);
                    reachable.extend(m.layers.into_iter().map(|l| l.digest));
                }
                Err(e) => tracing::warn!(%digest, error = %e, "unparsable manifest while pruning"),
            }
        }
        Ok(reachable)
    }

    /// Removes unreachable blobs and stale temp files.
    pub fn prune(&self) -> Result<PruneReport, StoreError> {
        let _gc = StoreLock::exclusive(&self.root.join(GC_LOCK))?;
        let reachable = self.reachable_blobs()?;
        let mut report = PruneReport::default();
        let io = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { path, source }
        };
        for alg in ["sha256", "sha512"] {
            let dir = self.root.join("blobs").join(alg);
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(&dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io(&dir))?;
                let name = entry.file_name();
                let Some(digest) = name
                    .to_str()
                    .and_then(|n| Digest::parse(&format!("{alg}:{n}")).ok())
                else {
                    continue; // not a blob name: not ours to judge
                };
                if reachable.contains(&digest) {
                    report.blobs_kept += 1;
                    continue;
                }
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
                tracing::debug!(%digest, "pruned blob");
                report.blobs_removed += 1;
                report.bytes_freed += len;
            }
        }
        let tmp = self.root.join(TMP_DIR);
        for entry in fs::read_dir(&tmp).map_err(io(&tmp))? {
            let entry = entry.map_err(io(&tmp))?;
            let meta = entry.metadata().map_err(io(&entry.path()))?;
            if meta.is_file() {
                fs::remove_file(entry.path()).map_err(io(&entry.path()))?;
                report.temp_files_removed += 1;
                report.bytes_freed += meta.len();
            }
        }
        // Converted root filesystems are derived data: a VM still using one keeps its open file.
        let rootfs = self.root.join(ROOTFS_CACHE_DIR);
        if let Ok(entries) = fs::read_dir(&rootfs) {
            for entry in entries {
                let entry = entry.map_err(io(&rootfs))?;
                let path = entry.path();
                let meta = entry.metadata().map_err(io(&path))?;
                if meta.is_file() && path.extension().is_some_and(|e| e == "ext4") {
                    fs::remove_file(&path).map_err(io(&path))?;
                    report.rootfs_removed += 1;
                    report.bytes_freed += meta.len();
                }
            }
        }
        Ok(report)
    }
}
