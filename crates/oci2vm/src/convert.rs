//! Orchestration: source -> store -> merged tree -> outputs.
//!
//! ```text
//! Reference --source::pull--> store (verified blobs) --open_blob--> layers::build_tree
//!     --> Flattened { tree, spool } --> fs::{tar, dir, ext4, cpio} | assets::{lxc, nspawn}
//! ext4:   layers::build_streamed (layer after layer) --BlockSink--> the image's data blocks
//!     --> Flattened { tree, spool = the image } --> Ext4Image::finish (metadata)
//! tar:    one layer --> layers::build_single --TarStream--> the output file
//! ```
//!
//! Every stage below is a module with its own error type; this file only wires them. Outputs
//! are written to a temporary name beside the target and renamed at the end, so a failure
//! leaves nothing at the output path.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::assets;
use crate::digest::Digest;
use crate::error::{Classify, ErrorKind, Result};
use crate::fs::ext4::{Ext4Image, Ext4Options, Ext4Report};
use crate::fs::tar::TarStats;
use crate::fs::tar_stream::TarStream;
use crate::guest::image::ImageRuntime;
use crate::image::ResolvedImage;
use crate::image::RuntimeConfig;
use crate::layers::spool::{Segment, Spool};
use crate::layers::tree::{Inode, InodeKind, Timestamp, Tree};
use crate::layers::{ApplyOptions, BlobInput, LayerInput, Report};
use crate::reference::Reference;
use crate::source::{self, ReadingPull, RemoteFetcher, SourceOptions};
use crate::store::Store;

/// Errors of the orchestration itself (each stage reports its own).
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The scratch directory for spooled layer data could not be made.
    #[error("creating a scratch directory in {path}")]
    Scratch {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Writing an output file failed.
    #[error("writing {path}")]
    Output {
        /// The output path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A `Volumes` entry climbs out of the root filesystem.
    #[error("{image}: volume {volume:?} contains '..'")]
    VolumePath {
        /// The image.
        image: String,
        /// The `Volumes` key.
        volume: String,
    },
    /// The image's reserved guest path is taken by something that is not a directory.
    #[error("{image}: /.oci2vm exists in the image and is not a directory")]
    ReservedPath {
        /// The image.
        image: String,
    },
}

impl Classify for ConvertError {
    fn kind(&self) -> ErrorKind {
        match self {
            ConvertError::Scratch { .. } | ConvertError::Output { .. } => ErrorKind::Io,
            ConvertError::ReservedPath { .. } | ConvertError::VolumePath { .. } => {
                ErrorKind::InvalidImage
            }
        }
    }
}

impl From<ConvertError> for crate::Error {
    fn from(e: ConvertError) -> Self {
        crate::Error::new(e.kind(), e)
    }
}

/// How to read and flatten an image.
#[derive(Debug, Clone, Default)]
pub struct FlattenOptions {
    /// Platform selection and progress bars.
    pub source: SourceOptions,
    /// Layer limits and `SOURCE_DATE_EPOCH`.
    pub apply: ApplyOptions,
    /// Where layer data is spooled (default: the system temp dir).
    pub scratch_dir: Option<PathBuf>,
}

/// An image pulled into the store and flattened into its merged tree.
#[derive(Debug)]
pub struct Flattened {
    /// The resolved image (manifest, config, layers).
    pub image: ResolvedImage,
    /// The merged tree.
    pub tree: Tree,
    /// File contents the tree points into.
    pub spool: Spool,
    /// What the layer engine saw (warnings, sizes).
    pub report: Report,
    _scratch: Option<tempfile::TempDir>,
}

/// Pulls `reference` into `store` (verifying every blob) and applies its layers in order.
pub fn flatten(
    reference: &Reference,
    store: &Store,
    opts: &FlattenOptions,
    remote: Option<&dyn RemoteFetcher>,
) -> Result<Flattened> {
    let mut pull = source::pull_for_reading(reference, store, &opts.source, remote)?;
    let layers = open_layers(store, &mut pull)?;
    flatten_pulled(store, pull, layers, opts)
}

fn flatten_pulled(
    store: &Store,
    pull: ReadingPull,
    layers: Layers,
    opts: &FlattenOptions,
) -> Result<Flattened> {
    let scratch_parent = opts.scratch_dir.clone().unwrap_or_else(std::env::temp_dir);
    let scratch = tempfile::Builder::new()
        .prefix("oci2vm-spool-")
        .tempdir_in(&scratch_parent)
        .map_err(|source| ConvertError::Scratch {
            path: scratch_parent.clone(),
            source,
        })?;
    let (tree, spool, report) =
        crate::layers::build_tree(layers.inputs, &opts.apply, scratch.path())
            .map_err(|e| recheck_blobs(store, &pull.image, &layers.in_store, e.into()))?;
    let image = pull.finish(store)?.image;
    Ok(Flattened {
        image,
        tree,
        spool,
        report,
        _scratch: Some(scratch),
    })
}

/// What the layer data of `image` is expected to inflate to: three times its compressed size
/// (typical of gzip-compressed root filesystems; the Debian fixture is 2.7). Only used to pick
/// the block size and the descriptor reserve of an ext4 image before the layers are read.
fn expected_content(image: &ResolvedImage) -> u64 {
    image
        .layers
        .iter()
        .map(|l| l.size)
        .fold(0u64, u64::saturating_add)
        .saturating_mul(3)
}

/// Pulls `reference` into `store` and writes its ext4 image to `out` in one pass over the
/// layers: they are applied one after the other while they stream, and every file's data is
/// written straight into its final blocks of the image (no spool, no copy). `options` gives
/// the ext4 options for the resolved image; `prepare` may change the tree (guest config,
/// volume directories) before the metadata is written. The image appears at `out` only when
/// everything succeeded.
pub fn flatten_to_ext4(
    reference: &Reference,
    store: &Store,
    opts: &FlattenOptions,
    remote: Option<&dyn RemoteFetcher>,
    out: &Path,
    options: impl FnOnce(&ResolvedImage) -> Ext4Options,
    prepare: impl FnOnce(&mut Flattened) -> Result<()>,
) -> Result<(Flattened, Ext4Report)> {
    let mut pull = source::pull_for_reading(reference, store, &opts.source, remote)?;
    let ext4 = options(&pull.image);
    let target = Ext4Image::create(out, &ext4, expected_content(&pull.image))?;
    let layers = open_layers(store, &mut pull)?;
    let mut spool = Spool::new();
    let mut sink = target.sink(1);
    let (tree, report) = crate::layers::build_streamed(layers.inputs, &opts.apply, &mut sink)
        .map_err(|e| recheck_blobs(store, &pull.image, &layers.in_store, e.into()))?;
    let image = pull.finish(store)?.image;
    let segment = spool.add_segment(Segment::Blocks(sink.finish()?));
    debug_assert_eq!(segment, 1);
    let mut flat = Flattened {
        image,
        tree,
        spool,
        report,
        _scratch: None,
    };
    prepare(&mut flat)?;
    let written = target.finish(&flat.tree, &flat.spool)?;
    Ok((flat, written))
}

/// After the layers of `image` failed to apply: when a layer blob that was in the store turns
/// out to be corrupt (it was not hashed before reading, see [`source::pull_for_reading`]),
/// that is the error to report, and the blob is gone from the store so the next run fetches it
/// again; a layer streamed from its source that did not match its digest is a digest mismatch
/// too (and was not stored); otherwise the image itself is bad and `err` stands.
fn recheck_blobs(
    store: &Store,
    image: &ResolvedImage,
    in_store: &[bool],
    err: crate::Error,
) -> crate::Error {
    for (layer, _) in image.layers.iter().zip(in_store).filter(|(_, s)| **s) {
        match store.verify_blob(&layer.digest, layer.size) {
            Ok(true) => {}
            Ok(false) => {
                return crate::Error::new(
                    ErrorKind::DigestMismatch,
                    CorruptBlob {
                        digest: layer.digest.clone(),
                        source: err,
                    },
                );
            }
            Err(e) => {
                tracing::warn!(digest = %layer.digest, error = %e, "re-checking a layer blob")
            }
        }
    }
    if err.kind() != ErrorKind::DigestMismatch && has_digest_error(&err) {
        return crate::Error::new(ErrorKind::DigestMismatch, err);
    }
    err
}

/// Whether a [`crate::digest::DigestError`] is in the chain of `e` (also inside `io::Error`s).
fn has_digest_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.downcast_ref::<crate::digest::DigestError>().is_some()
            || e.downcast_ref::<io::Error>()
                .is_some_and(|io| crate::digest::digest_error_of(io).is_some())
        {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A stored layer blob did not hash to its digest.
#[derive(Debug, thiserror::Error)]
#[error("layer {digest}: the copy in the store is corrupt and was removed; run again to fetch it")]
struct CorruptBlob {
    digest: Digest,
    #[source]
    source: crate::Error,
}

/// The layers of a pull, ready to read, bottom first.
struct Layers {
    inputs: Vec<BlobInput>,
    /// Whether each layer was read from the store (else from its source, stored on the way).
    in_store: Vec<bool>,
}

/// Opens every layer of `pull`: from the store, or from its source while it is stored.
fn open_layers(store: &Store, pull: &mut ReadingPull) -> Result<Layers> {
    let n = pull.image.layers.len();
    let mut layers = Layers {
        inputs: Vec::with_capacity(n),
        in_store: Vec::with_capacity(n),
    };
    for i in 0..n {
        let stream = pull.take_stream(i);
        let in_store = stream.is_none();
        let layer = &pull.image.layers[i];
        // the layer engine hashes the uncompressed stream against the DiffID, which the
        // verified config names: that proves a stored blob unchanged, so its compressed bytes
        // are not hashed again (after a failure, recheck_blobs tells a corrupt blob); a blob
        // read from its source is hashed by the store as it is written
        let reader: Box<dyn Read + Send> = match stream {
            Some(r) => Box::new(BufReader::with_capacity(1 << 20, r)),
            None => Box::new(BufReader::with_capacity(
                1 << 20,
                store.open_layer_blob(&layer.digest, layer.size)?,
            )),
        };
        layers.in_store.push(in_store);
        layers.inputs.push(LayerInput {
            digest: layer.digest.clone(),
            diff_id: Some(layer.diff_id.clone()),
            media_type: layer.media_type.clone(),
            reader,
            verify_digest: false,
        });
    }
    Ok(layers)
}

/// Pulls `reference` into `store` and writes its flattened tar to the file `out` (temporary
/// name, then rename). A one-layer image is written while its layer streams
/// ([`crate::fs::tar_stream`]); others are flattened first. Same bytes either way.
pub fn flatten_to_tar(
    reference: &Reference,
    store: &Store,
    opts: &FlattenOptions,
    remote: Option<&dyn RemoteFetcher>,
    out: &Path,
) -> Result<(Report, TarStats)> {
    let mut pull = source::pull_for_reading(reference, store, &opts.source, remote)?;
    let mut layers = open_layers(store, &mut pull)?;
    if layers.inputs.len() == 1
        && let Some(layer) = layers.inputs.pop()
    {
        let mut spool = Spool::new();
        let mut stream = TarStream::create(out, &mut spool)?;
        let (tree, report) = crate::layers::build_single(layer, &opts.apply, &mut stream)
            .map_err(|e| recheck_blobs(store, &pull.image, &layers.in_store, e.into()))?;
        pull.finish(store)?;
        let stats = stream.finish(&tree, &spool)?;
        return Ok((report, stats));
    }
    let flat = flatten_pulled(store, pull, layers, opts)?;
    let stats = crate::fs::tar::write_to(&flat.tree, &flat.spool, out)?;
    Ok((flat.report, stats))
}

impl Flattened {
    /// The image's runtime config (Entrypoint, Cmd, Env, ...).
    pub fn runtime(&self) -> &RuntimeConfig {
        &self.image.config.runtime
    }

    /// Writes the image's runtime config to the guest's reserved path
    /// ([`oci2vm_guest::CONFIG_PATH`]) so the root filesystem is self-contained. The image's
    /// own files, including `/sbin/init`, are left untouched.
    pub fn embed_guest_config(&mut self) -> Result<()> {
        let cfg = crate::guest::image::guest_config(&guest_runtime(self.runtime()));
        self.embed_config(&cfg)
    }

    /// Writes `cfg` (instead of the image's own runtime config) to the guest's reserved path;
    /// the boot tests use it to run many cases from one flattened image.
    pub fn embed_config(&mut self, cfg: &oci2vm_guest::GuestConfig) -> Result<()> {
        let text = cfg.to_text();
        let (dir_name, file_name) = reserved_names();
        let mtime = Timestamp::from_secs(self.apply_epoch());
        let root = self.tree.root();
        let dir = match self.tree.lookup(root, dir_name) {
            Some(n) if self.tree.inode_of(n).is_dir() => n,
            Some(_) => {
                return Err(ConvertError::ReservedPath {
                    image: self.image.source.clone(),
                }
                .into());
            }
            None => {
                let ino = self
                    .tree
                    .add_inode(Inode::new(InodeKind::Dir, 0o755, 0, 0, mtime));
                self.tree.link(root, dir_name, ino, u32::MAX - 1)
            }
        };
        if let Some(old) = self.tree.lookup(dir, file_name) {
            self.tree.unlink(old);
        }
        let seg = self.spool.add_segment(Segment::Memory(Vec::new()));
        let content =
            self.spool
                .append(seg, text.as_bytes())
                .map_err(|source| ConvertError::Output {
                    path: "/.oci2vm/config".into(),
                    source,
                })?;
        let ino = self
            .tree
            .add_inode(Inode::new(InodeKind::File { content }, 0o644, 0, 0, mtime));
        self.tree.link(dir, file_name, ino, u32::MAX - 1);
        Ok(())
    }

    /// Creates each of the image's `Volumes` as a directory (mode 0755, root-owned) in the
    /// tree, with any missing parents, so the declared mount points exist in the guest as they
    /// do in a container. Paths are resolved in the tree only, never on the host; a component
    /// that exists and is not a directory (a file, or a symlink, which is not followed) leaves
    /// that volume as the image has it, with a warning. `..` is refused. Returns the number of
    /// directories created.
    pub fn create_volumes(&mut self) -> Result<usize> {
        let mtime = Timestamp::from_secs(self.apply_epoch());
        create_volume_dirs(
            &mut self.tree,
            &self.image.config.runtime.volumes,
            mtime,
            &self.image.source,
        )
    }

    fn apply_epoch(&self) -> i64 {
        std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// ext4 options for this image (see [`ext4_options`]).
    pub fn ext4_options(&self, size: Option<u64>) -> Ext4Options {
        ext4_options(&self.image, size)
    }

    /// Writes an ext4 image of the tree to `out` (atomically).
    pub fn write_ext4(&self, out: &Path, opts: &Ext4Options) -> Result<Ext4Report> {
        Ok(crate::fs::ext4::write_ext4(
            &self.tree,
            &self.spool,
            out,
            opts,
        )?)
    }

    /// Writes a newc cpio archive of the tree to `out` (atomically; `-` for stdout).
    pub fn write_cpio(&self, out: &Path) -> Result<()> {
        if out == Path::new("-") {
            let stdout = io::stdout();
            let w = BufWriter::with_capacity(1 << 20, stdout.lock());
            crate::fs::cpio::write_cpio(&self.tree, &self.spool, w)?;
            return Ok(());
        }
        atomic_write(out, |f| {
            let w = BufWriter::with_capacity(1 << 20, f);
            crate::fs::cpio::write_cpio(&self.tree, &self.spool, w)?;
            Ok(())
        })
    }
}

/// ext4 options for `image`: UUID and hash seed derived from the manifest digest, timestamps
/// from `SOURCE_DATE_EPOCH` when set (deterministic output).
pub fn ext4_options(image: &ResolvedImage, size: Option<u64>) -> Ext4Options {
    let mut seed = [0u8; 16];
    let d = Digest::sha256_of(image.manifest_digest.to_string().as_bytes());
    for (i, pair) in d.hex().as_bytes().chunks(2).take(16).enumerate() {
        let s = std::str::from_utf8(pair).unwrap_or("00");
        seed[i] = u8::from_str_radix(s, 16).unwrap_or(0);
    }
    Ext4Options {
        size,
        seed,
        label: b"oci2vm-root".to_vec(),
        timestamp: std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse().ok()),
        ..Ext4Options::default()
    }
}

/// A root filesystem for `run`, converted once per (manifest digest, conversion options) and
/// cached in the store under `rootfs/`. The cached file is never written by a VM (the launcher
/// attaches it copy-on-write).
#[derive(Debug)]
pub struct CachedRootfs {
    /// The resolved image.
    pub image: ResolvedImage,
    /// The ext4 image.
    pub path: PathBuf,
    /// False when an earlier conversion was reused.
    pub converted: bool,
}

/// Resolves `reference`, and converts it to an ext4 root filesystem with the guest config
/// embedded, unless the store already holds one for the same image and options.
pub fn cached_rootfs(
    reference: &Reference,
    store: &Store,
    opts: &FlattenOptions,
    remote: Option<&dyn RemoteFetcher>,
    size: Option<u64>,
) -> Result<CachedRootfs> {
    let image = source::resolve(reference, &opts.source, remote)?;
    let key = rootfs_key(&image, size, opts.apply.source_date_epoch);
    let dir = store.root().join(crate::store::prune::ROOTFS_CACHE_DIR);
    let path = dir.join(format!("{}.ext4", key.hex()));
    if path.is_file() {
        tracing::info!(path = %path.display(), "reusing converted root filesystem");
        return Ok(CachedRootfs {
            image,
            path,
            converted: false,
        });
    }
    std::fs::create_dir_all(&dir).map_err(|source| ConvertError::Output {
        path: dir.clone(),
        source,
    })?;
    let (flat, _) = flatten_to_ext4(
        reference,
        store,
        opts,
        remote,
        &path,
        |image| ext4_options(image, size),
        |flat| {
            flat.create_volumes()?;
            flat.embed_guest_config()
        },
    )?;
    Ok(CachedRootfs {
        image: flat.image,
        path,
        converted: true,
    })
}

/// [`Flattened::create_volumes`] on a bare tree.
fn create_volume_dirs(
    tree: &mut Tree,
    volumes: &[String],
    mtime: Timestamp,
    image: &str,
) -> Result<usize> {
    let mut created = 0;
    for volume in volumes {
        let parts: Vec<&str> = volume
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if parts.contains(&"..") {
            return Err(ConvertError::VolumePath {
                image: image.to_string(),
                volume: volume.clone(),
            }
            .into());
        }
        let mut dir = tree.root();
        for part in parts {
            dir = match tree.lookup(dir, part.as_bytes()) {
                Some(n) if tree.inode_of(n).is_dir() => n,
                Some(_) => {
                    tracing::warn!(
                        volume = %volume,
                        component = part,
                        "volume path is not a directory in the image; left as is"
                    );
                    break;
                }
                None => {
                    let ino = tree.add_inode(Inode::new(InodeKind::Dir, 0o755, 0, 0, mtime));
                    created += 1;
                    tree.link(dir, part.as_bytes(), ino, u32::MAX - 1)
                }
            };
        }
    }
    Ok(created)
}

/// The cache key of a converted root filesystem: everything that changes its bytes.
fn rootfs_key(image: &ResolvedImage, size: Option<u64>, epoch: Option<i64>) -> Digest {
    let text = crate::guest::image::guest_config(&guest_runtime(&image.config.runtime)).to_text();
    let key = format!(
        "oci2vm {} rootfs v3\nmanifest {}\nsize {size:?}\nepoch {epoch:?}\nconfig {text}",
        env!("CARGO_PKG_VERSION"),
        image.manifest_digest,
    );
    Digest::sha256_of(key.as_bytes())
}

fn reserved_names() -> (&'static [u8], &'static [u8]) {
    let path = oci2vm_guest::CONFIG_PATH.trim_start_matches('/');
    match path.split_once('/') {
        Some((d, f)) => (d.as_bytes(), f.as_bytes()),
        None => (b".oci2vm", path.as_bytes()),
    }
}

/// Writes a file through a temporary name beside `out`, renamed on success.
pub fn atomic_write(out: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    crate::fs::check_output_file(out)?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let io_err = |source| ConvertError::Output {
        path: out.to_path_buf(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".oci2vm-tmp-")
        .tempfile_in(&dir)
        .map_err(io_err)?;
    write(tmp.as_file_mut())?;
    tmp.as_file_mut().flush().map_err(io_err)?;
    tmp.as_file().sync_all().map_err(io_err)?;
    tmp.persist(out).map_err(|e| io_err(e.error))?;
    Ok(())
}

/// The guest side's view of the runtime config.
pub fn guest_runtime(rc: &RuntimeConfig) -> ImageRuntime {
    ImageRuntime {
        entrypoint: rc.entrypoint.clone().unwrap_or_default(),
        cmd: rc.cmd.clone().unwrap_or_default(),
        env: rc.env.clone(),
        workdir: rc.working_dir.clone().unwrap_or_default(),
        user: rc.user.clone().unwrap_or_default(),
        stop_signal: rc.stop_signal.clone(),
    }
}

/// The emitters' view of the runtime config.
pub fn assets_runtime(rc: &RuntimeConfig) -> assets::RuntimeConfig {
    let nonneg = |v: Option<i64>| v.and_then(|x| u64::try_from(x).ok()).unwrap_or(0);
    assets::RuntimeConfig {
        entrypoint: rc.entrypoint.clone().unwrap_or_default(),
        cmd: rc.cmd.clone().unwrap_or_default(),
        env: rc.env.clone(),
        working_dir: rc.working_dir.clone().unwrap_or_default(),
        user: rc.user.clone().unwrap_or_default(),
        exposed_ports: rc.exposed_ports.clone(),
        volumes: rc.volumes.clone(),
        labels: rc.labels.clone(),
        stop_signal: rc.stop_signal.clone(),
        healthcheck: rc.healthcheck.as_ref().map(|h| assets::Healthcheck {
            test: h.test.clone(),
            interval: nonneg(h.interval),
            timeout: nonneg(h.timeout),
            start_period: nonneg(h.start_period),
            retries: h.retries.and_then(|r| u32::try_from(r).ok()).unwrap_or(0),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_become_directories_inside_the_tree_only() {
        let t0 = Timestamp::from_secs(0);
        let mut tree = Tree::new(0o755, 0, 0, t0);
        let root = tree.root();
        let etc = tree.add_inode(Inode::new(InodeKind::Dir, 0o700, 0, 0, t0));
        let etc = tree.link(root, b"etc", etc, 0);
        let file = tree.add_inode(Inode::new(
            InodeKind::Symlink {
                target: b"/etc".to_vec(),
            },
            0o777,
            0,
            0,
            t0,
        ));
        tree.link(root, b"link", file, 0);
        let vols: Vec<String> = ["/data", "/var/lib/x/", "etc/y", "/./data", "/link/z"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // data, var, var/lib, var/lib/x, etc/y; /link is a symlink: not followed, nothing made.
        assert_eq!(create_volume_dirs(&mut tree, &vols, t0, "img").unwrap(), 5);
        let var = tree.lookup(root, b"var").unwrap();
        let lib = tree.lookup(var, b"lib").unwrap();
        assert!(tree.inode_of(tree.lookup(lib, b"x").unwrap()).is_dir());
        assert!(tree.inode_of(tree.lookup(etc, b"y").unwrap()).is_dir());
        assert_eq!(
            tree.inode_of(etc).mode & 0o777,
            0o700,
            "existing dir changed"
        );
        // Idempotent.
        assert_eq!(create_volume_dirs(&mut tree, &vols, t0, "img").unwrap(), 0);
        let e = create_volume_dirs(&mut tree, &["/a/../../etc".into()], t0, "img").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidImage);
        assert!(tree.lookup(root, b"a").is_none(), "created before refusing");
    }

    #[test]
    fn reserved_path_splits_into_dir_and_file() {
        assert_eq!(reserved_names(), (&b".oci2vm"[..], &b"config"[..]));
    }

    #[test]
    fn atomic_write_leaves_nothing_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.bin");
        let r = atomic_write(&out, |f| {
            f.write_all(b"partial").unwrap();
            Err(crate::Error::new(ErrorKind::Io, "disk full"))
        });
        assert!(r.is_err());
        assert!(!out.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        atomic_write(&out, |f| {
            f.write_all(b"ok").unwrap();
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), b"ok");
    }

    #[test]
    fn healthcheck_durations_map_to_the_emitters_units() {
        let rc = RuntimeConfig {
            healthcheck: Some(crate::image::Healthcheck {
                test: vec!["CMD".into(), "true".into()],
                interval: Some(5_000_000_000),
                timeout: Some(-1),
                start_period: None,
                start_interval: None,
                retries: Some(3),
            }),
            ..RuntimeConfig::default()
        };
        let h = assets_runtime(&rc).healthcheck.unwrap();
        assert_eq!(
            (h.interval, h.timeout, h.start_period, h.retries),
            (5_000_000_000, 0, 0, 3)
        );
    }
}
