//! `oci2vm convert SOURCE --format FORMAT -o OUT`: write the merged tree of an image.
//!
//! | format | OUT | what |
//! |---|---|---|
//! | `tar` | FILE or `-` | flattened rootfs tar (PAX, deterministic) |
//! | `dir` | DIR (new or empty) | unpacked rootfs; rootless runs report what they could not apply |
//! | `ext4` | FILE | ext4 image written directly, with the guest config at `/.oci2vm/config` and the image's Volumes as directories |
//! | `cpio` | FILE or `-` | newc initramfs of the whole tree |
//! | `lxc` | DIR | `DIR/rootfs/` and an LXC `DIR/config` running Entrypoint+Cmd |
//! | `nspawn` | DIR | `DIR/rootfs/` and `DIR/rootfs.nspawn`; prints the `systemd-nspawn` command |

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use oci2vm::convert::{self, FlattenOptions, Flattened};
use oci2vm::fs::ext4::Ext4Options;
use oci2vm::source::RemoteFetcher;

use super::{Context, parse_size, parse_source};

/// Output formats of `convert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Flattened rootfs tar.
    Tar,
    /// Unpacked directory.
    Dir,
    /// ext4 filesystem image.
    Ext4,
    /// cpio newc initramfs.
    Cpio,
    /// LXC rootfs + config.
    Lxc,
    /// systemd-nspawn rootfs + .nspawn settings.
    Nspawn,
}

/// Arguments of `convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The image: docker://REF, REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF].
    pub source: String,
    /// What to write.
    #[arg(long, short = 'f', value_enum)]
    pub format: Format,
    /// Output file (`-` for stdout with tar and cpio) or directory.
    #[arg(long, short = 'o', value_name = "PATH")]
    pub output: PathBuf,
    /// ext4: filesystem size, e.g. 2G [default: what the image uses + 25% of its content + 64 MiB].
    #[arg(long, value_parser = parse_size)]
    pub size: Option<u64>,
    /// ext4: number of inodes [default: one per 16 KiB].
    #[arg(long)]
    pub inodes: Option<u32>,
    /// ext4: bytes of filesystem per inode when --inodes is not given [default: 16384].
    #[arg(long, value_parser = parse_size)]
    pub inode_ratio: Option<u64>,
    /// ext4: filesystem UUID [default: derived from the image digest, so the same image gives
    /// the same bytes].
    #[arg(long, value_parser = parse_uuid)]
    pub uuid: Option<[u8; 16]>,
    /// ext4: volume label, at most 16 bytes [default: oci2vm-root].
    #[arg(long, value_parser = parse_label)]
    pub label: Option<String>,
    /// ext4: block size, 1024, 2048 or 4096 [default: 1024 below 512 MiB, else 4096; 4096
    /// whenever the image needs it].
    #[arg(long, value_parser = parse_block_size)]
    pub block_size: Option<u32>,
    /// ext4: add a JBD2 journal.
    #[arg(long)]
    pub journal: bool,
    /// ext4: leave out /.oci2vm/config (the guest config `oci2vm run` and the assets use).
    #[arg(long)]
    pub no_guest_config: bool,
    /// Directory for spooled layer data [default: the system temp dir].
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    #[command(flatten)]
    pub verbosity: super::Verbosity,
}

/// Runs the command.
pub fn run(ctx: &Context, a: &ConvertArgs) -> anyhow::Result<()> {
    let reference = parse_source(&a.source)?;
    let store = ctx.store()?;
    let client = ctx.registry_for(&reference)?;
    let remote = client.as_ref().map(|c| c as &dyn RemoteFetcher);
    let opts = FlattenOptions {
        source: ctx.source_options(),
        apply: oci2vm::layers::ApplyOptions::from_env(),
        scratch_dir: a.scratch.clone(),
    };
    let out = &a.output;
    let stdout = out == Path::new("-");
    if stdout && !matches!(a.format, Format::Tar | Format::Cpio) {
        return Err(oci2vm::Error::new(
            oci2vm::ErrorKind::InvalidInput,
            "-o - (stdout) works with --format tar or cpio only",
        )
        .into());
    }
    let flatten = || {
        convert::flatten(&reference, &store, &opts, remote)
            .with_context(|| format!("flattening {}", a.source))
    };
    let what = || format!("writing {}", out.display());
    match a.format {
        // one pass: file data goes straight into the image's blocks while the layers stream
        Format::Ext4 => {
            let (_, r) = convert::flatten_to_ext4(
                &reference,
                &store,
                &opts,
                remote,
                out,
                |image| {
                    let base = convert::ext4_options(image, a.size);
                    Ext4Options {
                        inodes: a.inodes,
                        inode_ratio: a.inode_ratio.unwrap_or(base.inode_ratio),
                        uuid: a.uuid.or(base.uuid),
                        label: a
                            .label
                            .as_ref()
                            .map_or_else(|| base.label.clone(), |l| l.as_bytes().to_vec()),
                        journal: a.journal,
                        block_size: a.block_size,
                        ..base
                    }
                },
                |flat| {
                    flat.create_volumes()?;
                    if !a.no_guest_config {
                        flat.embed_guest_config()?;
                    }
                    Ok(())
                },
            )
            .with_context(|| format!("converting {} into {}", a.source, out.display()))?;
            eprintln!(
                "{}: {} blocks of {} bytes ({} free), {} inodes ({} used)",
                out.display(),
                r.blocks,
                r.block_size,
                r.free_blocks,
                r.inodes,
                r.used_inodes
            );
        }
        // a one-layer image streams straight into the file
        Format::Tar if !stdout => {
            let (_, stats) = convert::flatten_to_tar(&reference, &store, &opts, remote, out)
                .with_context(|| format!("flattening {} into {}", a.source, out.display()))?;
            tracing::info!(?stats, "tar written");
        }
        Format::Tar => {
            let flat = flatten()?;
            let stats = oci2vm::fs::tar::write_to(&flat.tree, &flat.spool, out)
                .map_err(oci2vm::Error::from)
                .with_context(what)?;
            tracing::info!(?stats, "tar written");
        }
        Format::Dir => write_dir(&flatten()?, out)?,
        Format::Cpio => flatten()?.write_cpio(out).with_context(what)?,
        Format::Lxc | Format::Nspawn => {
            let mut flat = flatten()?;
            flat.create_volumes()?;
            write_container(&flat, a.format, out)?
        }
    }
    Ok(())
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (or the 32 hex digits alone).
fn parse_uuid(s: &str) -> Result<[u8; 16], String> {
    let bad = || format!("{s:?} is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
    let hex: Vec<u8> = s.bytes().filter(|c| *c != b'-').collect();
    if hex.len() != 32 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(hex.chunks(2)) {
        let text = std::str::from_utf8(pair).map_err(|_| bad())?;
        *o = u8::from_str_radix(text, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn parse_label(s: &str) -> Result<String, String> {
    if s.len() > 16 {
        return Err(format!("{s:?}: a label has at most 16 bytes"));
    }
    Ok(s.to_string())
}

fn parse_block_size(s: &str) -> Result<u32, String> {
    match s {
        "1024" | "1k" | "1K" => Ok(1024),
        "2048" | "2k" | "2K" => Ok(2048),
        "4096" | "4k" | "4K" => Ok(4096),
        _ => Err(format!("{s:?}: the block size is 1024, 2048 or 4096")),
    }
}

fn write_dir(flat: &Flattened, out: &Path) -> anyhow::Result<()> {
    let report = oci2vm::fs::dir::write_to(&flat.tree, &flat.spool, out)
        .map_err(oci2vm::Error::from)
        .with_context(|| format!("writing {}", out.display()))?;
    if !report.is_complete() {
        eprintln!(
            "warning: {} entries written; not applied without root: {} ownerships, {} device nodes, \
             {} xattrs, {} sockets skipped",
            report.entries,
            report.ownership_not_applied,
            report.devices_not_created,
            report.xattrs_not_applied,
            report.sockets_skipped
        );
        for d in report.details.iter().take(20) {
            eprintln!("  {d}");
        }
        if report.details.len() > 20 {
            eprintln!("  ... and {} more", report.details.len() - 20);
        }
    }
    Ok(())
}

/// `DIR/rootfs` plus an LXC config or a `.nspawn` file next to it.
fn write_container(flat: &Flattened, format: Format, out: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let out = std::fs::canonicalize(out).with_context(|| format!("resolving {}", out.display()))?;
    let rootfs = out.join("rootfs");
    write_dir(flat, &rootfs)?;
    let runtime = convert::assets_runtime(flat.runtime());
    let rootfs_str = rootfs
        .to_str()
        .context("the output path must be valid UTF-8 for LXC and nspawn configs")?;
    match format {
        Format::Lxc => {
            let name =
                oci2vm::assets::machine_name(&flat.image.source, &flat.image.manifest_digest);
            let cfg = oci2vm::assets::lxc::emit(&runtime, &name, rootfs_str)
                .map_err(oci2vm::Error::from)?;
            let path = out.join("config");
            convert::atomic_write(&path, |f| {
                std::io::Write::write_all(f, cfg.text.as_bytes())
                    .map_err(|e| oci2vm::Error::new(oci2vm::ErrorKind::Io, e))
            })?;
            println!("{}", cfg.start_command);
        }
        _ => {
            let volumes = out.join("volumes");
            let ns = oci2vm::assets::nspawn::emit(&runtime, rootfs_str, &volumes)
                .map_err(oci2vm::Error::from)?;
            let path = out.join("rootfs.nspawn");
            convert::atomic_write(&path, |f| {
                std::io::Write::write_all(f, ns.settings.as_bytes())
                    .map_err(|e| oci2vm::Error::new(oci2vm::ErrorKind::Io, e))
            })?;
            println!("{}", ns.command_line());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ext4_option_values() {
        let u = parse_uuid("01234567-89ab-cdef-0123-456789ABCDEF").unwrap();
        assert_eq!(u[0], 0x01);
        assert_eq!(u[15], 0xef);
        assert_eq!(parse_uuid("0123456789abcdef0123456789abcdef").unwrap(), u);
        assert!(parse_uuid("0123").is_err());
        assert!(parse_uuid("g1234567-89ab-cdef-0123-456789abcdef").is_err());
        assert_eq!(parse_block_size("4k").unwrap(), 4096);
        assert!(parse_block_size("512").is_err());
        assert!(parse_label("a-label-of-17-byt").is_err());
        assert_eq!(parse_label("root").unwrap(), "root");
    }
}
