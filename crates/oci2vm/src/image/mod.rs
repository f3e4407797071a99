//! The image model: manifests, indexes and configs (OCI and Docker schema 2), validated, and
//! the [`ResolvedImage`] every source produces.
//!
//! ```text
//! index / manifest list ──platform──> manifest ──> config (runtime, diff_ids)
//!                                        └──────> layers[i] (digest, size, media type) + diff_ids[i]
//! ```
//!
//! Specs: <https://github.com/opencontainers/image-spec/blob/main/manifest.md>,
//! <https://github.com/opencontainers/image-spec/blob/main/image-index.md>,
//! <https://github.com/opencontainers/image-spec/blob/main/config.md>,
//! <https://distribution.github.io/distribution/spec/manifest-v2-2/>.
//! Parsing uses `oci-spec`'s types; the checks it does not make (media-type confusion,
//! schema 1, foreign layers, size bounds) are ours, as is the Docker-only `Healthcheck`.

mod config;
mod manifest;

pub use config::{Healthcheck, ImageConfig, RuntimeConfig};
pub use manifest::{Descriptor, ImageIndex, ImageManifest, ManifestDocument};

use crate::digest::Digest;
use crate::error::{Classify, ErrorKind};
use crate::platform::Platform;

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker schema 1 manifests (unsupported).
pub const DOCKER_SCHEMA1: [&str; 2] = [
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
];
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer (as written by `docker save` consumers such as skopeo).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";

/// Largest manifest or index we read (as containerd and containers/image do).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// Largest config we read.
pub const MAX_CONFIG_SIZE: u64 = 8 << 20;

/// Errors in manifests, indexes and configs.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A document is not valid JSON of the expected shape.
    #[error("malformed {what} {digest}: {reason}")]
    Malformed {
        /// `manifest`, `index`, `config`.
        what: &'static str,
        /// The document's digest (or `-` when not known).
        digest: String,
        /// The parser's complaint.
        reason: String,
    },
    /// A document exceeds its size bound.
    #[error("{what} {digest} is {size} bytes, more than the {limit}-byte limit")]
    TooLarge {
        /// `manifest`, `config`.
        what: &'static str,
        /// The document's digest.
        digest: String,
        /// Its declared size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The media type declared for a document disagrees with the document itself.
    #[error("media type mismatch for {digest}: declared {declared}, document says {actual}")]
    MediaTypeMismatch {
        /// The document's digest.
        digest: String,
        /// What the descriptor or Content-Type said.
        declared: String,
        /// What the document says (or looks like).
        actual: String,
    },
    /// A document that is both a manifest and an index (CVE-2021-41190).
    #[error("ambiguous document {digest}: it has both `manifests` and `layers`/`config`")]
    Ambiguous {
        /// The document's digest.
        digest: String,
    },
    /// A descriptor with a negative size.
    #[error("negative size {size} in descriptor {digest}")]
    NegativeSize {
        /// The descriptor's digest (as written).
        digest: String,
        /// The size.
        size: i64,
    },
    /// Docker schema 1 manifests.
    #[error(
        "docker schema 1 manifest {digest} is unsupported (re-push the image with a current tool)"
    )]
    Schema1 {
        /// The manifest's digest.
        digest: String,
    },
    /// A layer that must be fetched from somewhere else, or is not distributable.
    #[error("foreign or non-distributable layer {digest} ({media_type}) is unsupported")]
    ForeignLayer {
        /// The layer's digest.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// A media type we do not handle at this position.
    #[error("unsupported {what} media type {media_type:?} for {digest}")]
    UnsupportedMediaType {
        /// `manifest`, `layer`, `config`.
        what: &'static str,
        /// The media type.
        media_type: String,
        /// The object's digest.
        digest: String,
    },
    /// Layer and diff_id counts disagree.
    #[error("manifest {digest} has {layers} layers but its config has {diff_ids} diff_ids")]
    LayerCountMismatch {
        /// The manifest's digest.
        digest: Digest,
        /// Number of layer descriptors.
        layers: usize,
        /// Number of `rootfs.diff_ids`.
        diff_ids: usize,
    },
    /// The image is not for the platform that was asked for.
    #[error("image {digest} is for {actual}, not the requested {wanted}")]
    WrongPlatform {
        /// The manifest digest.
        digest: Digest,
        /// The config's platform.
        actual: Box<Platform>,
        /// The requested platform.
        wanted: Box<Platform>,
    },
}

impl Classify for ImageError {
    fn kind(&self) -> ErrorKind {
        match self {
            ImageError::Schema1 { .. }
            | ImageError::ForeignLayer { .. }
            | ImageError::UnsupportedMediaType { .. } => ErrorKind::Unsupported,
            ImageError::WrongPlatform { .. } => ErrorKind::NotFound,
            _ => ErrorKind::InvalidImage,
        }
    }
}

impl From<ImageError> for crate::Error {
    fn from(e: ImageError) -> Self {
        crate::Error::new(e.kind(), e)
    }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl Compression {
    /// The compression a layer media type declares; foreign and unknown types are errors.
    pub fn from_layer_media_type(media_type: &str, digest: &Digest) -> Result<Self, ImageError> {
        let foreign = media_type.contains(".foreign.") || media_type.contains(".nondistributable.");
        if foreign {
            return Err(ImageError::ForeignLayer {
                digest: digest.clone(),
                media_type: media_type.to_string(),
            });
        }
        match media_type {
            "application/vnd.oci.image.layer.v1.tar" | DOCKER_LAYER_TAR => Ok(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip" | DOCKER_LAYER_GZIP => {
                Ok(Compression::Gzip)
            }
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd" => Ok(Compression::Zstd),
            other => Err(ImageError::UnsupportedMediaType {
                what: "layer",
                media_type: other.to_string(),
                digest: digest.to_string(),
            }),
        }
    }

    /// Guesses the compression from a blob's first bytes (gzip and zstd magic numbers).
    pub fn sniff(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// One layer of a resolved image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayerDescriptor {
    /// Digest of the blob as stored (compressed, if it is).
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// The layer media type.
    pub media_type: String,
    /// Compression implied by the media type.
    pub compression: Compression,
    /// Digest of the uncompressed tar (`rootfs.diff_ids[i]`).
    pub diff_id: Digest,
}

/// An image resolved to one platform: everything needed to fetch and apply its layers.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// How the user named it (`docker://docker.io/library/busybox:latest`, `oci:DIR:TAG`).
    pub source: String,
    /// The digest of the index the manifest was chosen from, if any.
    pub index_digest: Option<Digest>,
    /// The platform-specific manifest's digest.
    pub manifest_digest: Digest,
    /// The manifest's media type.
    pub manifest_media_type: String,
    /// The manifest's exact bytes (what `manifest_digest` hashes).
    pub manifest_bytes: Vec<u8>,
    /// The parsed manifest.
    pub manifest: ImageManifest,
    /// The platform from the config.
    pub platform: Platform,
    /// The config's exact bytes.
    pub config_bytes: Vec<u8>,
    /// The parsed config.
    pub config: ImageConfig,
    /// The layers, bottom first, each with its diff_id.
    pub layers: Vec<LayerDescriptor>,
}

impl ResolvedImage {
    /// Validates a manifest against its config and builds the resolved image.
    /// `wanted` is checked against the config's platform when given.
    pub fn assemble(
        source: String,
        index_digest: Option<Digest>,
        manifest_digest: Digest,
        manifest_bytes: Vec<u8>,
        manifest: ImageManifest,
        config_bytes: Vec<u8>,
        wanted: Option<&Platform>,
    ) -> Result<Self, ImageError> {
        let config = ImageConfig::parse(&config_bytes, &manifest.config.digest)?;
        if manifest.layers.len() != config.diff_ids.len() {
            return Err(ImageError::LayerCountMismatch {
                digest: manifest_digest,
                layers: manifest.layers.len(),
                diff_ids: config.diff_ids.len(),
            });
        }
        if let Some(w) = wanted {
            if !w.matches(&config.platform) {
                return Err(ImageError::WrongPlatform {
                    digest: manifest_digest,
                    actual: Box::new(config.platform.clone()),
                    wanted: Box::new(w.clone()),
                });
            }
        }
        let mut layers = Vec::with_capacity(manifest.layers.len());
        for (d, diff_id) in manifest.layers.iter().zip(&config.diff_ids) {
            if !d.urls.is_empty() {
                return Err(ImageError::ForeignLayer {
                    digest: d.digest.clone(),
                    media_type: d.media_type.clone(),
                });
            }
            let compression = Compression::from_layer_media_type(&d.media_type, &d.digest)?;
            layers.push(LayerDescriptor {
                digest: d.digest.clone(),
                size: d.size,
                media_type: d.media_type.clone(),
                compression,
                diff_id: diff_id.clone(),
            });
        }
        Ok(ResolvedImage {
            source,
            index_digest,
            manifest_digest,
            manifest_media_type: manifest.media_type.clone(),
            manifest_bytes,
            platform: config.platform.clone(),
            manifest,
            config_bytes,
            config,
            layers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_media_types() {
        let d = Digest::sha256_of(b"x");
        let ok = [
            ("application/vnd.oci.image.layer.v1.tar", Compression::None),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Compression::Zstd,
            ),
            (DOCKER_LAYER_GZIP, Compression::Gzip),
            (DOCKER_LAYER_TAR, Compression::None),
        ];
        for (mt, c) in ok {
            assert_eq!(
                Compression::from_layer_media_type(mt, &d).unwrap(),
                c,
                "{mt}"
            );
        }
        for foreign in [
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        ] {
            let e = Compression::from_layer_media_type(foreign, &d).unwrap_err();
            assert!(matches!(e, ImageError::ForeignLayer { .. }));
            assert_eq!(e.kind(), ErrorKind::Unsupported);
        }
        let e = Compression::from_layer_media_type("application/x-helm", &d).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn sniffs_magic() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"bin/"), Compression::None);
    }
}
