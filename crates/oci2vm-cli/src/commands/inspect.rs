//! `oci2vm inspect SOURCE [--json]`: what an image is and how it wants to run.

use anyhow::Context as _;
use clap::Args;
use oci2vm::image::{Healthcheck, ResolvedImage};
use oci2vm::source::{RemoteFetcher, resolve};
use serde_json::json;

use super::{Context, parse_source};

/// Arguments of `inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image: docker://REF, REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF].
    pub source: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub verbosity: super::Verbosity,
}

/// Runs the command.
pub fn run(ctx: &Context, args: &InspectArgs) -> anyhow::Result<()> {
    let reference = parse_source(&args.source)?;
    let client = ctx.registry_for(&reference)?;
    let remote = client.as_ref().map(|c| c as &dyn RemoteFetcher);
    let image = resolve(&reference, &ctx.source_options(), remote)
        .with_context(|| format!("inspecting {}", args.source))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&image))?);
    } else {
        print!("{}", to_text(&image));
    }
    Ok(())
}

/// The JSON form (field names as in `skopeo inspect` / Docker configs where they overlap).
pub fn to_json(image: &ResolvedImage) -> serde_json::Value {
    let r = &image.config.runtime;
    json!({
        "Name": image.source,
        "Digest": image.manifest_digest,
        "IndexDigest": image.index_digest,
        "MediaType": image.manifest_media_type,
        "Platform": image.platform.to_string(),
        "Os": image.platform.os,
        "Architecture": image.platform.architecture,
        "Variant": image.platform.variant,
        "Created": image.config.created,
        "ConfigDigest": image.manifest.config.digest,
        "Entrypoint": r.entrypoint,
        "Cmd": r.cmd,
        "Env": r.env,
        "WorkingDir": r.working_dir,
        "User": r.user,
        "ExposedPorts": r.exposed_ports,
        "Volumes": r.volumes,
        "Labels": r.labels,
        "StopSignal": r.stop_signal,
        "Healthcheck": r.healthcheck,
        "Layers": image.layers.iter().map(|l| json!({
            "Digest": l.digest,
            "Size": l.size,
            "MediaType": l.media_type,
            "DiffID": l.diff_id,
        })).collect::<Vec<_>>(),
    })
}

fn list(v: &Option<Vec<String>>) -> String {
    v.as_ref().map_or_else(
        || "-".into(),
        |v| serde_json::to_string(v).unwrap_or_default(),
    )
}

fn seconds(ns: Option<i64>) -> Option<String> {
    ns.map(|n| format!("{}s", n as f64 / 1e9))
}

fn healthcheck(h: &Healthcheck) -> String {
    let mut s = h.test.join(" ");
    let mut extra = Vec::new();
    for (k, v) in [
        ("interval", seconds(h.interval)),
        ("timeout", seconds(h.timeout)),
        ("start-period", seconds(h.start_period)),
        ("start-interval", seconds(h.start_interval)),
        ("retries", h.retries.map(|r| r.to_string())),
    ] {
        if let Some(v) = v {
            extra.push(format!("{k} {v}"));
        }
    }
    if !extra.is_empty() {
        s.push_str(&format!(" ({})", extra.join(", ")));
    }
    s
}

/// The text form: one `Key: value` line per field, multi-valued fields indented below.
pub fn to_text(image: &ResolvedImage) -> String {
    let r = &image.config.runtime;
    let mut out = String::new();
    let mut line = |k: &str, v: &str| out.push_str(&format!("{:<13} {v}\n", format!("{k}:")));
    line("Name", &image.source);
    line("Digest", &image.manifest_digest.to_string());
    if let Some(i) = &image.index_digest {
        line("Index", &i.to_string());
    }
    line("MediaType", &image.manifest_media_type);
    line("Platform", &image.platform.to_string());
    line("Created", image.config.created.as_deref().unwrap_or("-"));
    line("Entrypoint", &list(&r.entrypoint));
    line("Cmd", &list(&r.cmd));
    let multi = |v: Vec<String>| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join("\n              ")
        }
    };
    line("Env", &multi(r.env.clone()));
    line("WorkingDir", r.working_dir.as_deref().unwrap_or("-"));
    line("User", r.user.as_deref().unwrap_or("-"));
    line("ExposedPorts", &multi(r.exposed_ports.clone()));
    line("Volumes", &multi(r.volumes.clone()));
    line(
        "Labels",
        &multi(r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect()),
    );
    line("StopSignal", r.stop_signal.as_deref().unwrap_or("-"));
    line(
        "Healthcheck",
        &r.healthcheck
            .as_ref()
            .map_or_else(|| "-".into(), healthcheck),
    );
    line("Layers", &image.layers.len().to_string());
    for l in &image.layers {
        out.push_str(&format!(
            "  {}  {:>12}  {}\n",
            l.digest, l.size, l.media_type
        ));
    }
    out
}
