//! `oci2vm pull SOURCE`: copy an image into the store and name it there.

use anyhow::Context as _;
use clap::Args;
use oci2vm::source::{RemoteFetcher, pull};

use super::{Context, parse_source};

/// Arguments of `pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image: docker://REF, REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF].
    pub source: String,
    #[command(flatten)]
    pub verbosity: super::Verbosity,
}

/// Runs the command: prints `NAME DIGEST` on success.
pub fn run(ctx: &Context, args: &PullArgs) -> anyhow::Result<()> {
    let reference = parse_source(&args.source)?;
    let store = ctx.store()?;
    let client = ctx.registry_for(&reference)?;
    let remote = client.as_ref().map(|c| c as &dyn RemoteFetcher);
    let pulled = pull(&reference, &store, &ctx.source_options(), remote)
        .with_context(|| format!("pulling {}", args.source))?;
    tracing::info!(copied = pulled.blobs_copied, "done");
    println!("{} {}", pulled.name, pulled.image.manifest_digest);
    Ok(())
}
