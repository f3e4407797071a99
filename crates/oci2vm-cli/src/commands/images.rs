//! `oci2vm images [--json]`: the images recorded in the store.

use clap::Args;

use super::Context;

/// Arguments of `images`.
#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub verbosity: super::Verbosity,
}

/// Runs the command.
pub fn run(ctx: &Context, args: &ImagesArgs) -> anyhow::Result<()> {
    let store = ctx.store()?;
    let images = store.list_images().map_err(oci2vm::Error::from)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&images)?);
        return Ok(());
    }
    let rows: Vec<[String; 3]> = images
        .iter()
        .map(|i| {
            [
                i.name.clone().unwrap_or_else(|| "<none>".into()),
                i.manifest_digest.as_ref().unwrap_or(&i.digest).to_string(),
                i.platform
                    .as_ref()
                    .map_or_else(|| "-".into(), ToString::to_string),
            ]
        })
        .collect();
    let width = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(4);
    println!("{:width$}  {:71}  PLATFORM", "NAME", "DIGEST");
    for [name, digest, platform] in rows {
        println!("{name:width$}  {digest:71}  {platform}");
    }
    Ok(())
}
