//! `docker-archive:FILE[:REF]`: archives from `docker save` and `skopeo copy docker-archive:`.
//!
//! ```text
//! legacy (all Docker versions, skopeo):        Docker 25+ adds an OCI layout:
//!   manifest.json  [{"Config":"<id>.json",        oci-layout, index.json, blobs/sha256/..
//!                    "RepoTags":["name:tag"],      (manifest.json then points into blobs/)
//!                    "Layers":["<id>/layer.tar"]}]
//!   <id>.json                 config
//!   <id>/layer.tar -> ../<diff_id>.tar   (symlink inside the archive)
//! ```
//!
//! Format: <https://github.com/moby/moby/blob/master/image/spec/v1.2.md> (the "combined image
//! JSON and filesystem changeset format"). When the archive has an OCI layout we read that (it keeps
//! the original manifest digest); otherwise we synthesise a Docker schema 2 manifest: config
//! digest = sha256 of the config member; an uncompressed layer's digest is its diff_id (it is
//! the same tar; the store verifies it on copy), a compressed one's is the sha256 of the member.

use std::io::Read;
use std::path::Path;

use serde::Deserialize;

use super::archive::TarIndex;
use super::layout::{LayoutSource, Selector};
use super::progress::blob_bar;
use super::{ImageSource, RootDocument, SourceError, read_verified};
use crate::digest::Digest;
use crate::error::Result;
use crate::image::{
    Compression, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR, DOCKER_MANIFEST, ImageConfig,
    MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE,
};
use crate::reference::DockerReference;
use crate::store::Store;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// Opens a docker archive, choosing the OCI layout when it has one.
pub(crate) fn open(
    file: &Path,
    reference: Option<&DockerReference>,
) -> Result<Box<dyn ImageSource>> {
    let index = TarIndex::open(file)?;
    let name = format!(
        "docker-archive:{}{}",
        file.display(),
        reference.map(|r| format!(":{r}")).unwrap_or_default()
    );
    if index.contains("oci-layout") && index.contains("index.json") {
        tracing::debug!(archive = %file.display(), "docker archive with an OCI layout");
        let selector = reference.map_or(Selector::Only, |r| Selector::Docker(r.clone()));
        return Ok(Box::new(LayoutSource::from_tar(index, name, selector)?));
    }
    Ok(Box::new(LegacyArchive::open(index, name, reference)?))
}

/// A legacy docker archive with its synthesised manifest.
#[derive(Debug)]
struct LegacyArchive {
    index: TarIndex,
    name: String,
    manifest: Vec<u8>,
    /// (digest, member path) for the config and every layer.
    blobs: Vec<(Digest, String)>,
}

impl LegacyArchive {
    fn open(index: TarIndex, name: String, reference: Option<&DockerReference>) -> Result<Self> {
        let bad = |reason: String| SourceError::BadArchive {
            path: index.path().to_path_buf(),
            reason,
        };
        if !index.contains("manifest.json") {
            return Err(bad("no manifest.json (not a docker-archive?)".into()).into());
        }
        let raw = index.read_member("manifest.json", MAX_MANIFEST_SIZE)?;
        let entries: Vec<ManifestEntry> =
            serde_json::from_slice(&raw).map_err(|e| bad(format!("manifest.json: {e}")))?;
        let entry = select(&entries, reference, &name)?;

        let config = index.read_member(&entry.config, MAX_CONFIG_SIZE)?;
        let config_digest = Digest::sha256_of(&config);
        let parsed = ImageConfig::parse(&config, &config_digest)?;
        if parsed.diff_ids.len() != entry.layers.len() {
            return Err(bad(format!(
                "manifest.json lists {} layers but the config has {} diff_ids",
                entry.layers.len(),
                parsed.diff_ids.len()
            ))
            .into());
        }
        let mut blobs = vec![(config_digest.clone(), entry.config.clone())];
        let mut layers = Vec::new();
        for (path, diff_id) in entry.layers.iter().zip(&parsed.diff_ids) {
            let (offset, size) = index.lookup(path)?;
            let mut head = [0u8; 4];
            let n = index
                .reader(offset, size)?
                .read(&mut head)
                .map_err(|source| SourceError::Io {
                    path: index.path().to_path_buf(),
                    source,
                })?;
            let (digest, media_type) = match Compression::sniff(&head[..n]) {
                Compression::None => (diff_id.clone(), DOCKER_LAYER_TAR),
                c => {
                    let mut hasher = diff_id.algorithm().hasher();
                    std::io::copy(&mut index.reader(offset, size)?, &mut hasher).map_err(
                        |source| SourceError::Io {
                            path: index.path().to_path_buf(),
                            source,
                        },
                    )?;
                    let mt = if c == Compression::Gzip {
                        DOCKER_LAYER_GZIP
                    } else {
                        "application/vnd.docker.image.rootfs.diff.tar.zstd"
                    };
                    (hasher.finish(), mt)
                }
            };
            layers.push(serde_json::json!({
                "mediaType": media_type, "size": size, "digest": digest.to_string(),
            }));
            blobs.push((digest, path.clone()));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": config.len(), "digest": config_digest.to_string()},
            "layers": layers,
        });
        let manifest = serde_json::to_vec(&manifest).map_err(|e| bad(e.to_string()))?;
        Ok(LegacyArchive {
            index,
            name,
            manifest,
            blobs,
        })
    }

    fn member_of(&self, digest: &Digest) -> Result<&str> {
        self.blobs
            .iter()
            .find(|(d, _)| d == digest)
            .map(|(_, m)| m.as_str())
            .ok_or_else(|| {
                SourceError::MissingBlob {
                    source_name: self.name.clone(),
                    digest: digest.clone(),
                }
                .into()
            })
    }
}

fn select<'a>(
    entries: &'a [ManifestEntry],
    reference: Option<&DockerReference>,
    name: &str,
) -> Result<&'a ManifestEntry> {
    let tags = |e: &ManifestEntry| e.repo_tags.clone().unwrap_or_default();
    let available = || {
        let v: Vec<String> = entries.iter().flat_map(tags).collect();
        if v.is_empty() {
            format!("{} untagged images", entries.len())
        } else {
            v.join(", ")
        }
    };
    match reference {
        Some(r) => {
            let want = r.to_string();
            entries
                .iter()
                .find(|e| {
                    tags(e)
                        .iter()
                        .any(|t| DockerReference::parse(t).is_ok_and(|t| t.to_string() == want))
                })
                .ok_or_else(|| {
                    SourceError::NoSuchImage {
                        source_name: name.to_string(),
                        wanted: want.clone(),
                        available: available(),
                    }
                    .into()
                })
        }
        None => match entries {
            [only] => Ok(only),
            [] => Err(SourceError::NoSuchImage {
                source_name: name.to_string(),
                wanted: "any".into(),
                available: available(),
            }
            .into()),
            _ => Err(SourceError::Ambiguous {
                source_name: name.to_string(),
                available: available(),
            }
            .into()),
        },
    }
}

impl ImageSource for LegacyArchive {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn root(&self) -> Result<RootDocument> {
        Ok(RootDocument {
            bytes: self.manifest.clone(),
            digest: Digest::sha256_of(&self.manifest),
            media_type: Some(DOCKER_MANIFEST.to_string()),
        })
    }

    fn read_small(&self, digest: &Digest, size: u64, _media_type: &str) -> Result<Vec<u8>> {
        let (offset, len) = self.index.lookup(self.member_of(digest)?)?;
        read_verified(self.index.reader(offset, len)?, digest, size, &self.name)
    }

    fn copy_blob(&self, digest: &Digest, size: u64, store: &Store, progress: bool) -> Result<()> {
        let (offset, len) = self.index.lookup(self.member_of(digest)?)?;
        let bar = blob_bar(progress, digest, size);
        let res = store.put_blob(
            digest,
            size,
            &mut bar.wrap_read(self.index.reader(offset, len)?),
        );
        bar.finish_and_clear();
        Ok(res?)
    }

    fn stream_blob(&self, digest: &Digest, _size: u64) -> Result<Option<Box<dyn Read + Send>>> {
        let (offset, len) = self.index.lookup(self.member_of(digest)?)?;
        Ok(Some(Box::new(self.index.reader(offset, len)?)))
    }
}
