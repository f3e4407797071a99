//! `oci2vm`: arguments -> validated plan -> `commands/<verb>.rs` -> exit code.
//!
//! Errors are printed once, as the whole cause chain on one line (`error: a: b: c`), then an
//! optional `hint:` line; the exit code comes from the library's [`oci2vm::ErrorKind`]
//! (1 for errors without one, 2 for argument errors as clap reports them).

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use oci2vm::Platform;

#[derive(Debug, Parser)]
#[command(
    name = "oci2vm",
    version,
    about = "Turn container images into virtual machines"
)]
struct Cli {
    /// More logging on stderr (-v info, -vv debug). Also accepted after the subcommand, where
    /// `run` takes only `--verbose` (its `-v` is `--volume`, as in `docker run`).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// The image store (an OCI image layout) [default: $XDG_CACHE_HOME/oci2vm or ~/.cache/oci2vm].
    #[arg(long, value_name = "DIR", env = "OCI2VM_STORE", global = true)]
    store: Option<PathBuf>,

    /// The platform to pick from a multi-platform image [default: this host's].
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", global = true)]
    platform: Option<Platform>,

    #[command(flatten)]
    registry: RegistryArgs,

    #[command(subcommand)]
    command: Command,
}

/// How to reach registries (docker:// sources).
#[derive(Debug, Clone, Args)]
struct RegistryArgs {
    /// Credentials for the registry.
    #[arg(long, value_name = "USER:PASS", value_parser = parse_creds, global = true)]
    creds: Option<(String, String)>,

    /// A Docker-format auth file (auth.json / config.json) to read credentials from.
    #[arg(long, value_name = "FILE", global = true)]
    authfile: Option<PathBuf>,

    /// Require HTTPS with verified certificates (true), or allow plain HTTP (false)
    /// [default: HTTPS, plain HTTP for loopback registries].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", global = true)]
    tls_verify: Option<bool>,
}

fn parse_creds(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((u, p)) if !u.is_empty() => Ok((u.to_string(), p.to_string())),
        _ => Err("want USER:PASS".to_string()),
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show an image's manifest digest, platform, runtime config and layers.
    Inspect(commands::inspect::InspectArgs),
    /// Copy an image's manifest, config and layers into the store (verified).
    Pull(commands::pull::PullArgs),
    /// List the images in the store.
    Images(commands::images::ImagesArgs),
    /// Remove blobs no stored image refers to, and stale temp files.
    Prune(commands::Verbosity),
    /// Write an image's merged root filesystem as tar, dir, ext4, cpio, LXC or nspawn.
    Convert(Box<commands::convert::ConvertArgs>),
    /// Boot an image as a VM and run its entrypoint, like `docker run`.
    Run(Box<commands::run::RunArgs>),
    /// Write a directory of VM assets (kernel, initramfs, rootfs.ext4, VMM configs, manifest).
    Assets(Box<commands::assets::AssetsArgs>),
}

impl Command {
    /// The `-v`/`--verbose` count given after the subcommand.
    fn verbose(&self) -> u8 {
        match self {
            Command::Inspect(a) => a.verbosity.verbose,
            Command::Pull(a) => a.verbosity.verbose,
            Command::Images(a) => a.verbosity.verbose,
            Command::Prune(v) => v.verbose,
            Command::Convert(a) => a.verbosity.verbose,
            Command::Run(a) => a.verbose,
            Command::Assets(a) => a.verbosity.verbose,
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// The cause chain as `a: b: c`, skipping links that only repeat the previous one (the
/// library's `Error` displays its source).
fn chain(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if parts.last() != Some(&msg) {
            parts.push(msg);
        }
    }
    parts.join(": ")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbose = cli.verbose.saturating_add(cli.command.verbose());
    init_logging(verbose);
    let ctx = commands::Context {
        store: cli.store.clone(),
        platform: cli.platform.clone(),
        creds: cli.registry.creds.clone(),
        authfile: cli.registry.authfile.clone(),
        tls_verify: cli.registry.tls_verify,
    };
    let result = match &cli.command {
        Command::Inspect(a) => commands::inspect::run(&ctx, a).map(|()| 0),
        Command::Pull(a) => commands::pull::run(&ctx, a).map(|()| 0),
        Command::Images(a) => commands::images::run(&ctx, a).map(|()| 0),
        Command::Prune(_) => commands::prune::run(&ctx).map(|()| 0),
        Command::Convert(a) => commands::convert::run(&ctx, a).map(|()| 0),
        Command::Run(a) => commands::run::run(&ctx, a, verbose),
        Command::Assets(a) => commands::assets::run(&ctx, a).map(|()| 0),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            let kind = e
                .chain()
                .find_map(|c| c.downcast_ref::<oci2vm::Error>())
                .map(|e| e.kind());
            if let Some(hint) = kind.and_then(|k| k.hint()) {
                eprintln!("hint: {hint}");
            }
            let code = kind.map_or(1, |k| k.exit_code());
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}
