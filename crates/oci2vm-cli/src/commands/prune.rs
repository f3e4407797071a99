//! `oci2vm prune`: drop unreferenced blobs and stale temp files from the store.

use super::Context;

/// Runs the command.
pub fn run(ctx: &Context) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let r = store.prune().map_err(oci2vm::Error::from)?;
    println!(
        "removed {} blobs and {} temp files, freed {} bytes; kept {} blobs",
        r.blobs_removed, r.temp_files_removed, r.bytes_freed, r.blobs_kept
    );
    Ok(())
}
