//! Sources: resolve a [`Reference`] to a [`ResolvedImage`] and copy its blobs into the store.
//!
//! ```text
//! Reference ──open──> ImageSource (oci dir | oci-archive | docker-archive | registry)
//!     root document ──parse──> index ──platform──> manifest ──> config   => ResolvedImage
//!     pull: manifest, config, layers ──verified──> Store, then index.json gets the name
//! ```
//!
//! Every byte taken from a source is checked against its digest and size: small documents
//! here (bounded by [`MAX_MANIFEST_SIZE`] / [`MAX_CONFIG_SIZE`]), blobs by the store.

mod archive;
mod docker_archive;
mod layout;
mod progress;
mod registry;

pub use archive::TarIndex;
pub use registry::RemoteFetcher;

use std::io::{self, Read};
use std::path::PathBuf;

use crate::digest::{Digest, DigestError, VerifyingReader, digest_error_of};
use crate::error::{Classify, ErrorKind, Result};
use crate::image::{
    ImageError, MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE, ManifestDocument, OCI_INDEX, OCI_MANIFEST,
    ResolvedImage,
};
use crate::platform::Platform;
use crate::reference::Reference;
use crate::store::{Store, StoredImage};

/// How deep indexes may nest (index -> index -> manifest).
const MAX_INDEX_DEPTH: usize = 2;

/// Errors from local sources.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading the source failed.
    #[error("reading {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The archive is malformed or refers outside itself.
    #[error("bad archive {path}: {reason}")]
    BadArchive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A member the archive's metadata names is not in it.
    #[error("archive {archive} has no member {member}")]
    MissingMember {
        /// The archive.
        archive: PathBuf,
        /// The missing member.
        member: String,
    },
    /// A blob a manifest names is not in the source.
    #[error("blob {digest} is missing from {source_name}")]
    MissingBlob {
        /// The source.
        source_name: String,
        /// The blob.
        digest: Digest,
    },
    /// The directory or archive is not an OCI image layout.
    #[error("{path} is not an OCI image layout: {reason}")]
    NotLayout {
        /// The directory or archive.
        path: PathBuf,
        /// What is missing.
        reason: String,
    },
    /// The requested image name is not in the source.
    #[error("no image {wanted:?} in {source_name} (it has: {available})")]
    NoSuchImage {
        /// The source.
        source_name: String,
        /// The requested name.
        wanted: String,
        /// The names present.
        available: String,
    },
    /// The source holds several images and none was named.
    #[error("{source_name} holds several images; name one (it has: {available})")]
    Ambiguous {
        /// The source.
        source_name: String,
        /// The names present.
        available: String,
    },
    /// Content from the source failed verification.
    #[error("content {digest} from {source_name} failed verification")]
    Verify {
        /// The source.
        source_name: String,
        /// The expected digest.
        digest: Digest,
        /// What differed.
        #[source]
        source: DigestError,
    },
    /// A registry reference was given but no registry client is available.
    #[error("no registry client is available to fetch {reference}")]
    NoRegistry {
        /// The reference.
        reference: String,
    },
    /// Indexes nested deeper than we follow.
    #[error("indexes in {source_name} nest more than {MAX_INDEX_DEPTH} levels deep")]
    TooDeep {
        /// The source.
        source_name: String,
    },
}

impl Classify for SourceError {
    fn kind(&self) -> ErrorKind {
        match self {
            SourceError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            SourceError::Io { .. } => ErrorKind::Io,
            SourceError::BadArchive { .. }
            | SourceError::MissingMember { .. }
            | SourceError::MissingBlob { .. }
            | SourceError::NotLayout { .. }
            | SourceError::TooDeep { .. } => ErrorKind::InvalidImage,
            SourceError::NoSuchImage { .. } => ErrorKind::NotFound,
            SourceError::Ambiguous { .. } => ErrorKind::InvalidInput,
            SourceError::Verify { .. } => ErrorKind::DigestMismatch,
            SourceError::NoRegistry { .. } => ErrorKind::Unsupported,
        }
    }
}

impl From<SourceError> for crate::Error {
    fn from(e: SourceError) -> Self {
        crate::Error::new(e.kind(), e)
    }
}

/// Options for resolving and pulling.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// The platform to pick from an index; `None` means the host's, and then a
    /// single-platform image of another platform is accepted (with a warning).
    pub platform: Option<Platform>,
    /// Show progress bars on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
}

/// The top-level document of a source, already verified against `digest`.
#[derive(Debug)]
pub(crate) struct RootDocument {
    bytes: Vec<u8>,
    digest: Digest,
    media_type: Option<String>,
}

/// One opened source.
pub(crate) trait ImageSource {
    /// How to name the source in messages and in [`ResolvedImage::source`].
    fn name(&self) -> String;
    /// The document the reference points at (an index or a manifest).
    fn root(&self) -> Result<RootDocument>;
    /// A small blob (manifest, config), verified, at most `limit` bytes.
    fn read_small(&self, digest: &Digest, size: u64, media_type: &str) -> Result<Vec<u8>>;
    /// Copies a blob into the store (which verifies it).
    fn copy_blob(&self, digest: &Digest, size: u64, store: &Store, progress: bool) -> Result<()>;
    /// The raw bytes of a blob as a stream, when the source can give them without staging
    /// (local files); the caller verifies them. `None`: use [`ImageSource::copy_blob`].
    fn stream_blob(&self, _digest: &Digest, _size: u64) -> Result<Option<Box<dyn Read + Send>>> {
        Ok(None)
    }
}

/// Reads all of `reader`, which must hold exactly `size` bytes hashing to `digest`.
pub(crate) fn read_verified(
    reader: impl Read,
    digest: &Digest,
    size: u64,
    source_name: &str,
) -> Result<Vec<u8>> {
    let mut r = VerifyingReader::new(reader, digest.clone(), size);
    let mut out = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let verify_err = |e: io::Error| -> crate::Error {
        match digest_error_of(&e) {
            Some(de) => SourceError::Verify {
                source_name: source_name.to_string(),
                digest: digest.clone(),
                source: de.clone(),
            }
            .into(),
            None => SourceError::Io {
                path: source_name.into(),
                source: e,
            }
            .into(),
        }
    };
    r.read_to_end(&mut out).map_err(verify_err)?;
    let mut inner = r.finish().map_err(verify_err)?;
    VerifyingReader::ensure_inner_exhausted(&mut inner, digest, size).map_err(verify_err)?;
    Ok(out)
}

fn check_limit(what: &'static str, digest: &Digest, size: u64, limit: u64) -> Result<()> {
    if size > limit {
        return Err(ImageError::TooLarge {
            what,
            digest: digest.to_string(),
            size,
            limit,
        }
        .into());
    }
    Ok(())
}

fn open<'f>(
    reference: &Reference,
    remote: Option<&'f dyn RemoteFetcher>,
) -> Result<Box<dyn ImageSource + 'f>> {
    Ok(match reference {
        Reference::Docker(r) => {
            let fetcher = remote.ok_or_else(|| SourceError::NoRegistry {
                reference: reference.to_string(),
            })?;
            Box::new(registry::RegistrySource::new(r.clone(), fetcher))
        }
        Reference::OciLayout { dir, tag } => Box::new(layout::LayoutSource::dir(dir, tag.clone())?),
        Reference::OciArchive { file, tag } => {
            Box::new(layout::LayoutSource::archive(file, tag.clone())?)
        }
        Reference::DockerArchive { file, reference } => {
            docker_archive::open(file, reference.as_ref())?
        }
    })
}

/// Resolves `reference` to one platform's manifest and config. Registry references need
/// `remote`; local ones ignore it.
pub fn resolve(
    reference: &Reference,
    opts: &SourceOptions,
    remote: Option<&dyn RemoteFetcher>,
) -> Result<ResolvedImage> {
    let source = open(reference, remote)?;
    resolve_source(&*source, reference, opts)
}

fn resolve_source(
    source: &dyn ImageSource,
    reference: &Reference,
    opts: &SourceOptions,
) -> Result<ResolvedImage> {
    let root = source.root()?;
    check_limit(
        "manifest",
        &root.digest,
        root.bytes.len() as u64,
        MAX_MANIFEST_SIZE,
    )?;
    let (mut bytes, mut digest) = (root.bytes, root.digest);
    let mut doc = ManifestDocument::parse(&bytes, &digest, root.media_type.as_deref())?;
    let mut index_digest = None;
    for _ in 0..=MAX_INDEX_DEPTH {
        match doc {
            ManifestDocument::Manifest(m) => {
                let c = &m.config;
                check_limit("config", &c.digest, c.size, MAX_CONFIG_SIZE)?;
                let config = source.read_small(&c.digest, c.size, &c.media_type)?;
                let image = ResolvedImage::assemble(
                    reference.to_string(),
                    index_digest,
                    digest,
                    bytes,
                    m,
                    config,
                    opts.platform.as_ref(),
                )?;
                if opts.platform.is_none() && !Platform::host().matches(&image.platform) {
                    tracing::warn!(platform = %image.platform, "image is not for this host's platform");
                }
                return Ok(image);
            }
            ManifestDocument::Index(index) => {
                let wanted = opts.platform.clone().unwrap_or_else(Platform::host);
                let pos = wanted.select(index.manifests.iter().map(|d| d.platform.as_ref()))?;
                let d = &index.manifests[pos];
                tracing::debug!(platform = %wanted, digest = %d.digest, "selected from index");
                check_limit("manifest", &d.digest, d.size, MAX_MANIFEST_SIZE)?;
                let child = source.read_small(&d.digest, d.size, &d.media_type)?;
                doc = ManifestDocument::parse(&child, &d.digest, Some(&d.media_type))?;
                index_digest = Some(digest);
                (bytes, digest) = (child, d.digest.clone());
            }
        }
    }
    Err(SourceError::TooDeep {
        source_name: source.name(),
    }
    .into())
}

/// The `index.json` entry for a pulled image. An OCI manifest is named directly. Tools that
/// read OCI layouts (containers/image, hence skopeo) only look up OCI manifests and indexes by
/// name, so a Docker schema 2 manifest is named through a one-entry OCI index we write; the
/// entry records the manifest digest as well.
fn store_entry(store: &Store, image: &ResolvedImage, name: &str) -> Result<StoredImage> {
    let manifest_size = image.manifest_bytes.len() as u64;
    if image.manifest_media_type == OCI_MANIFEST {
        return Ok(StoredImage {
            name: Some(name.to_string()),
            digest: image.manifest_digest.clone(),
            size: manifest_size,
            media_type: OCI_MANIFEST.to_string(),
            platform: Some(image.platform.clone()),
            manifest_digest: Some(image.manifest_digest.clone()),
        });
    }
    let p = &image.platform;
    let mut platform = serde_json::json!({"architecture": p.architecture, "os": p.os});
    if let Some(v) = &p.variant {
        platform["variant"] = v.clone().into();
    }
    let wrapper = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": image.manifest_media_type,
            "digest": image.manifest_digest.to_string(),
            "size": manifest_size,
            "platform": platform,
        }],
    });
    let bytes = serde_json::to_vec(&wrapper).map_err(|e| SourceError::Io {
        path: store.root().to_path_buf(),
        source: io::Error::other(e),
    })?;
    let digest = Digest::sha256_of(&bytes);
    store.put_bytes(&digest, &bytes)?;
    Ok(StoredImage {
        name: Some(name.to_string()),
        digest,
        size: bytes.len() as u64,
        media_type: OCI_INDEX.to_string(),
        platform: Some(image.platform.clone()),
        manifest_digest: Some(image.manifest_digest.clone()),
    })
}

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The resolved image; all its blobs are now in the store.
    pub image: ResolvedImage,
    /// The name recorded in the store's `index.json`.
    pub name: String,
    /// Blobs copied (the others were already present and verified).
    pub blobs_copied: usize,
}

/// Resolves `reference`, copies manifest, config and layers into `store` (verified), and
/// records the image in `index.json` under [`Reference::store_name`]. Layers already in the
/// store are hashed again before they are accepted.
pub fn pull(
    reference: &Reference,
    store: &Store,
    opts: &SourceOptions,
    remote: Option<&dyn RemoteFetcher>,
) -> Result<PulledImage> {
    pull_with(reference, store, opts, remote)
}

/// A pull for a caller that reads every layer next (see [`pull_for_reading`]): manifest and
/// config are in the store; layers already there are not hashed again (the caller verifies
/// each layer's DiffID as it reads it); a layer a local source can stream is stored while the
/// caller reads it ([`Store::storing_reader`]), one pass over the source for both. The image
/// is named in the store by [`ReadingPull::finish`], once every layer is there.
#[derive(Debug)]
pub struct ReadingPull {
    /// The resolved image.
    pub image: ResolvedImage,
    name: String,
    streams: Vec<Option<crate::store::StoringReader>>,
    copied: usize,
    _gc: crate::store::StoreLock,
}

impl ReadingPull {
    /// The reader of layer `i` that stores it on the way, when it was not in the store and its
    /// source streams it; `None`: the layer is in the store.
    pub fn take_stream(&mut self, i: usize) -> Option<crate::store::StoringReader> {
        self.streams.get_mut(i).and_then(Option::take)
    }

    /// Records the image in `index.json` once all its layers are in the store.
    pub fn finish(self, store: &Store) -> Result<PulledImage> {
        for layer in &self.image.layers {
            if !store.has_blob(&layer.digest, layer.size) {
                return Err(crate::store::StoreError::Missing {
                    digest: layer.digest.clone(),
                }
                .into());
            }
        }
        let entry = store_entry(store, &self.image, &self.name)?;
        store.add_image_ref(&entry)?;
        let copied =
            self.copied + self.streams.len() - self.streams.iter().filter(|s| s.is_some()).count();
        tracing::info!(name = %self.name, digest = %self.image.manifest_digest, copied, "pulled");
        Ok(PulledImage {
            image: self.image,
            name: self.name,
            blobs_copied: copied,
        })
    }
}

/// Resolves `reference` and prepares to read every layer: manifest and config go into the
/// store (verified); a layer already in the store with the right size is not hashed here, since
/// the reader checks the layer's DiffID (when reading fails, [`Store::verify_blob`] tells a
/// corrupt stored blob, and removes it, from a bad image); a missing layer is streamed from a
/// local source and stored while it is read, or copied first from a registry.
pub fn pull_for_reading(
    reference: &Reference,
    store: &Store,
    opts: &SourceOptions,
    remote: Option<&dyn RemoteFetcher>,
) -> Result<ReadingPull> {
    let source = open(reference, remote)?;
    let image = resolve_source(&*source, reference, opts)?;
    let gc = store.writer_lock()?;
    let mut copied = put_documents(store, &image)?;
    let mut streams = Vec::with_capacity(image.layers.len());
    for layer in &image.layers {
        if store.has_blob(&layer.digest, layer.size) {
            streams.push(None);
            continue;
        }
        match source.stream_blob(&layer.digest, layer.size)? {
            Some(src) => {
                streams.push(Some(store.storing_reader(
                    &layer.digest,
                    layer.size,
                    src,
                )?));
            }
            None => {
                source.copy_blob(&layer.digest, layer.size, store, opts.progress)?;
                copied += 1;
                streams.push(None);
            }
        }
    }
    Ok(ReadingPull {
        name: reference.store_name(),
        image,
        streams,
        copied,
        _gc: gc,
    })
}

/// Stores manifest and config (verified) unless present; returns how many were copied.
fn put_documents(store: &Store, image: &ResolvedImage) -> Result<usize> {
    let mut copied = 0;
    for (digest, bytes) in [
        (&image.manifest_digest, &image.manifest_bytes),
        (&image.manifest.config.digest, &image.config_bytes),
    ] {
        if !store.verify_blob(digest, bytes.len() as u64)? {
            store.put_bytes(digest, bytes)?;
            copied += 1;
        }
    }
    Ok(copied)
}

fn pull_with(
    reference: &Reference,
    store: &Store,
    opts: &SourceOptions,
    remote: Option<&dyn RemoteFetcher>,
) -> Result<PulledImage> {
    let source = open(reference, remote)?;
    let image = resolve_source(&*source, reference, opts)?;
    let _gc = store.writer_lock()?;
    let mut copied = put_documents(store, &image)?;
    for layer in &image.layers {
        if store.verify_blob(&layer.digest, layer.size)? {
            tracing::debug!(digest = %layer.digest, "layer already in the store");
            continue;
        }
        source.copy_blob(&layer.digest, layer.size, store, opts.progress)?;
        copied += 1;
    }
    let name = reference.store_name();
    let entry = store_entry(store, &image, &name)?;
    store.add_image_ref(&entry)?;
    tracing::info!(%name, digest = %image.manifest_digest, copied, "pulled");
    Ok(PulledImage {
        image,
        name,
        blobs_copied: copied,
    })
}
