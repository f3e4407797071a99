//! `oci2vm prune`: drop unreferenced blobs, stale temp files and cached root filesystems.

use super::Context;

/// Runs the command.
pub fn run(ctx: &Context) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let r = store.prune().map_err(oci2vm::Error::from)?;
    println!(
        "removed {} blobs, {} temp files and {} cached root filesystems, freed {} bytes; kept {} blobs",
        r.blobs_removed, r.temp_files_removed, r.rootfs_removed, r.bytes_freed, r.blobs_kept
    );
    Ok(())
}
