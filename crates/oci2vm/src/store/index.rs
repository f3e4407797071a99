//! The store's `index.json`: one entry per pulled image, named by its full reference.
//!
//! ```text
//! {"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
//!   {"mediaType":M,"digest":D,"size":N,"platform":{"os","architecture","variant"?},
//!    "annotations":{"org.opencontainers.image.ref.name":"docker.io/library/busybox:latest"}}]}
//! ```
//!
//! Entries we did not write (e.g. added by `skopeo copy ... oci:STORE:X`) are kept as they are.
//! Every read-modify-write happens under `.lock-index` and replaces the file atomically.

use std::io;

use serde::{Deserialize, Serialize};

use super::{INDEX_LOCK, Store, StoreError, StoreLock};
use crate::digest::Digest;
use crate::image::OCI_INDEX;
use crate::platform::Platform;

/// The annotation naming an image in an OCI layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Our annotation recording the platform manifest's digest when the entry is a wrapper index.
pub const MANIFEST_DIGEST: &str = "dev.oci2vm.manifest.digest";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexFile {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<serde_json::Map<String, serde_json::Value>>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

/// An image recorded in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredImage {
    /// The `org.opencontainers.image.ref.name` (full reference), if any.
    pub name: Option<String>,
    /// The manifest (or index) digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
    /// Its media type.
    pub media_type: String,
    /// Its platform, when recorded.
    pub platform: Option<Platform>,
    /// The platform manifest's digest (differs from `digest` when the entry is an index).
    pub manifest_digest: Option<Digest>,
}

impl StoredImage {
    fn from_entry(e: &serde_json::Map<String, serde_json::Value>) -> Option<Self> {
        let digest = Digest::parse(e.get("digest")?.as_str()?).ok()?;
        let size = e.get("size")?.as_u64()?;
        let media_type = e.get("mediaType")?.as_str()?.to_string();
        let annotation = |key: &str| {
            e.get("annotations")
                .and_then(|a| a.get(key))
                .and_then(|n| n.as_str())
        };
        let name = annotation(REF_NAME).map(str::to_string);
        let manifest_digest = match annotation(MANIFEST_DIGEST) {
            Some(d) => Digest::parse(d).ok(),
            None if media_type.contains("manifest") => Some(digest.clone()),
            None => None,
        };
        let platform = e.get("platform").and_then(|p| {
            Some(Platform::new(
                p.get("os")?.as_str()?,
                p.get("architecture")?.as_str()?,
                p.get("variant").and_then(|v| v.as_str()),
            ))
        });
        Some(StoredImage {
            name,
            digest,
            size,
            media_type,
            platform,
            manifest_digest,
        })
    }

    fn to_entry(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("mediaType".into(), self.media_type.clone().into());
        m.insert("digest".into(), self.digest.to_string().into());
        m.insert("size".into(), self.size.into());
        if let Some(p) = &self.platform {
            let mut pm = serde_json::Map::new();
            pm.insert("architecture".into(), p.architecture.clone().into());
            pm.insert("os".into(), p.os.clone().into());
            if let Some(v) = &p.variant {
                pm.insert("variant".into(), v.clone().into());
            }
            m.insert("platform".into(), pm.into());
        }
        let mut a = serde_json::Map::new();
        if let Some(n) = &self.name {
            a.insert(REF_NAME.into(), n.clone().into());
        }
        if let Some(d) = self.manifest_digest.as_ref().filter(|d| **d != self.digest) {
            a.insert(MANIFEST_DIGEST.into(), d.to_string().into());
        }
        if !a.is_empty() {
            m.insert("annotations".into(), a.into());
        }
        m
    }
}

impl Store {
    fn index_path(&self) -> std::path::PathBuf {
        self.root.join("index.json")
    }

    pub(super) fn init_index(&self) -> Result<(), StoreError> {
        if self.index_path().exists() {
            return Ok(());
        }
        let _l = StoreLock::exclusive(&self.root.join(INDEX_LOCK))?;
        if self.index_path().exists() {
            return Ok(());
        }
        let empty = IndexFile {
            schema_version: 2,
            media_type: Some(OCI_INDEX.into()),
            manifests: Vec::new(),
            rest: serde_json::Map::new(),
        };
        self.write_index(&empty)
    }

    fn read_index(&self) -> Result<IndexFile, StoreError> {
        let path = self.index_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => b"{\"schemaVersion\":2}".to_vec(),
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path,
            reason: e.to_string(),
        })
    }

    fn write_index(&self, index: &IndexFile) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(index).map_err(|e| StoreError::Corrupt {
            path: self.index_path(),
            reason: e.to_string(),
        })?;
        self.write_atomic(&self.index_path(), &bytes)
    }

    /// Records (or replaces) the image named `image.name` in `index.json`.
    pub fn add_image_ref(&self, image: &StoredImage) -> Result<(), StoreError> {
        let _l = StoreLock::exclusive(&self.root.join(INDEX_LOCK))?;
        let mut index = self.read_index()?;
        if let Some(name) = &image.name {
            index.manifests.retain(|e| {
                e.get("annotations")
                    .and_then(|a| a.get(REF_NAME))
                    .and_then(|n| n.as_str())
                    != Some(name)
            });
        }
        index.manifests.push(image.to_entry());
        if index.media_type.is_none() {
            index.media_type = Some(OCI_INDEX.into());
        }
        self.write_index(&index)
    }

    /// Removes the image named `name`; returns whether it was there.
    pub fn remove_image_ref(&self, name: &str) -> Result<bool, StoreError> {
        let _l = StoreLock::exclusive(&self.root.join(INDEX_LOCK))?;
        let mut index = self.read_index()?;
        let before = index.manifests.len();
        index.manifests.retain(|e| {
            e.get("annotations")
                .and_then(|a| a.get(REF_NAME))
                .and_then(|n| n.as_str())
                != Some(name)
        });
        let removed = index.manifests.len() != before;
        if removed {
            self.write_index(&index)?;
        }
        Ok(removed)
    }

    /// The images recorded in `index.json` (entries we cannot parse are skipped with a
    /// warning), in file order.
    pub fn list_images(&self) -> Result<Vec<StoredImage>, StoreError> {
        let index = self.read_index()?;
        let mut out = Vec::new();
        for e in &index.manifests {
            match StoredImage::from_entry(e) {
                Some(i) => out.push(i),
                None => tracing::warn!(entry = ?e, "skipping unreadable index.json entry"),
            }
        }
        Ok(out)
    }
}
