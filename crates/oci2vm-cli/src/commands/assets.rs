//! `oci2vm assets SOURCE -o DIR`: a directory Firecracker, Cloud Hypervisor, QEMU, libvirt and
//! Gondolin boot with their own tools (the work is [`oci2vm::assets::build`]).
//!
//! ```text
//! DIR/bzImage initramfs rootfs.ext4 [vmlinux] [firecracker.json cloud-hypervisor.sh qemu.sh
//!     libvirt.xml] manifest.json
//! ```

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use oci2vm::assets::build::{self, BuildOptions, Vmm};
use oci2vm::convert::FlattenOptions;
use oci2vm::source::RemoteFetcher;

use super::{Context, parse_size, parse_source};

/// A parsed `--vmm` list (an alias, so clap takes it as one value).
type VmmList = Vec<Vmm>;

/// Arguments of `assets`.
#[derive(Debug, Args)]
pub struct AssetsArgs {
    /// The image: docker://REF, REF, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF].
    pub source: String,
    #[command(flatten)]
    pub verbosity: super::Verbosity,
    /// Output directory (must not exist, or be empty); written atomically.
    #[arg(long, short = 'o', value_name = "DIR")]
    pub output: PathBuf,
    /// VMMs to write configs for: comma-separated firecracker, cloud-hypervisor, qemu,
    /// libvirt, gondolin, or all.
    #[arg(long, default_value = "all", value_parser = Vmm::parse_list)]
    pub vmm: VmmList,
    /// Kernel (bzImage) [default: the newest in /boot with modules].
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Modules directory for --kernel.
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// Guest memory in MiB.
    #[arg(long, default_value_t = 512)]
    pub memory: u32,
    /// vCPUs.
    #[arg(long, default_value_t = 1)]
    pub cpus: u32,
    /// Host tap device for Firecracker, Cloud Hypervisor and QEMU (instead of user networking).
    #[arg(long, value_name = "NAME")]
    pub tap: Option<String>,
    /// Root filesystem size, e.g. 2G [default: content * 1.25 + 64 MiB].
    #[arg(long, value_parser = parse_size)]
    pub disk_size: Option<u64>,
    /// Print the plan (digest, layers, files) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs the command.
pub fn run(ctx: &Context, a: &AssetsArgs) -> anyhow::Result<()> {
    let reference = parse_source(&a.source)?;
    let client = ctx.registry_for(&reference)?;
    let remote = client.as_ref().map(|c| c as &dyn RemoteFetcher);
    let flatten = FlattenOptions {
        source: ctx.source_options(),
        apply: oci2vm::layers::ApplyOptions::from_env(),
        scratch_dir: None,
    };
    let mut vmms: Vec<Vmm> = a.vmm.clone();
    vmms.sort();
    vmms.dedup();
    let opts = BuildOptions {
        vmms,
        kernel: a.kernel.clone(),
        modules: a.modules.clone(),
        init: None,
        cache_dir: super::run::cache_dir(),
        memory_mib: a.memory,
        cpus: a.cpus,
        tap: a.tap.clone(),
        disk_size: a.disk_size,
    };
    if a.dry_run {
        let p = build::dry_run(&reference, &flatten, remote, &opts, &a.output)
            .with_context(|| format!("planning {}", a.source))?;
        println!("source    {}", p.image.source);
        println!("digest    {}", p.image.manifest_digest);
        println!("platform  {}", p.image.platform);
        let total: u64 = p.image.layers.iter().map(|l| l.size).sum();
        println!(
            "layers    {} ({total} bytes compressed)",
            p.image.layers.len()
        );
        for l in &p.image.layers {
            println!("  {} {:>12} {}", l.digest, l.size, l.media_type);
        }
        println!("cmdline   {}", p.plan.kernel_cmdline);
        println!("files in {}:", a.output.display());
        for f in &p.files {
            let size = f.size.map_or_else(|| "-".to_string(), |s| s.to_string());
            println!("  {:<22} {:>10}  {}", f.name, size, f.role);
        }
        return Ok(());
    }
    let store = ctx.store()?;
    let built = build::build(&reference, &store, &flatten, remote, &opts, &a.output)
        .with_context(|| format!("writing assets of {} to {}", a.source, a.output.display()))?;
    println!("{} {}", built.image.manifest_digest, a.output.display());
    for f in &built.files {
        println!("  {:<22} {:>12}  sha256:{}", f.name, f.size, f.sha256);
    }
    Ok(())
}
