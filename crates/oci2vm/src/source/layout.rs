//! OCI image layouts: `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]`, and the OCI layout inside a
//! Docker 25+ `docker save` archive.
//!
//! ```text
//! oci-layout                   {"imageLayoutVersion":"1.0.0"}
//! index.json                   {"manifests":[{digest,size,mediaType,annotations:{
//!                                 "org.opencontainers.image.ref.name":TAG,
//!                                 "io.containerd.image.name":FULL (Docker 25+)}}]}
//! blobs/<alg>/<hex>            content
//! ```
//!
//! Spec: <https://github.com/opencontainers/image-spec/blob/main/image-layout.md>. Archives are
//! read in place through a [`TarIndex`]; blob paths come from validated digests only.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::archive::TarIndex;
use super::progress::blob_bar;
use super::{ImageSource, RootDocument, SourceError, read_verified};
use crate::digest::Digest;
use crate::error::Result;
use crate::image::{Descriptor, MAX_MANIFEST_SIZE, ManifestDocument, OCI_INDEX};
use crate::reference::DockerReference;
use crate::store::Store;

const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Where the layout's files are.
#[derive(Debug)]
enum Files {
    Dir(PathBuf),
    Tar(TarIndex),
}

impl Files {
    fn path(&self) -> &Path {
        match self {
            Files::Dir(d) => d,
            Files::Tar(t) => t.path(),
        }
    }

    fn read_meta(&self, name: &str) -> Result<Vec<u8>> {
        let missing = || SourceError::NotLayout {
            path: self.path().to_path_buf(),
            reason: format!("no {name}"),
        };
        match self {
            Files::Dir(d) => {
                let p = d.join(name);
                let f = File::open(&p).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => missing(),
                    _ => SourceError::Io {
                        path: p.clone(),
                        source: e,
                    },
                })?;
                let mut out = Vec::new();
                f.take(MAX_MANIFEST_SIZE + 1)
                    .read_to_end(&mut out)
                    .map_err(|source| SourceError::Io {
                        path: p.clone(),
                        source,
                    })?;
                if out.len() as u64 > MAX_MANIFEST_SIZE {
                    return Err(SourceError::NotLayout {
                        path: p,
                        reason: "index.json larger than 4 MiB".into(),
                    }
                    .into());
                }
                Ok(out)
            }
            Files::Tar(t) => {
                if !t.contains(name) {
                    return Err(missing().into());
                }
                Ok(t.read_member(name, MAX_MANIFEST_SIZE)?)
            }
        }
    }

    fn open_blob(&self, digest: &Digest, source_name: &str) -> Result<Box<dyn Read + Send>> {
        let missing = || SourceError::MissingBlob {
            source_name: source_name.to_string(),
            digest: digest.clone(),
        };
        match self {
            Files::Dir(d) => {
                let p = d.join(digest.layout_path());
                match File::open(&p) {
                    Ok(f) => Ok(Box::new(f)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Err(missing().into()),
                    Err(source) => Err(SourceError::Io { path: p, source }.into()),
                }
            }
            Files::Tar(t) => {
                let name = digest.layout_path();
                let name = name.to_str().unwrap_or_default();
                match t.lookup(name) {
                    Ok((offset, size)) => Ok(Box::new(t.reader(offset, size)?)),
                    Err(SourceError::MissingMember { .. }) => Err(missing().into()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }
}

/// How to pick an entry of `index.json`.
#[derive(Debug, Clone)]
pub(crate) enum Selector {
    /// By `org.opencontainers.image.ref.name`.
    RefName(String),
    /// By `io.containerd.image.name` (Docker 25+ archives), falling back to the tag as ref.name.
    Docker(DockerReference),
    /// The only entry.
    Only,
}

/// An opened OCI layout.
#[derive(Debug)]
pub(crate) struct LayoutSource {
    files: Files,
    name: String,
    selector: Selector,
}

impl LayoutSource {
    /// `oci:DIR[:TAG]`.
    pub(crate) fn dir(dir: &Path, tag: Option<String>) -> Result<Self> {
        let meta = std::fs::metadata(dir).map_err(|source| SourceError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(SourceError::NotLayout {
                path: dir.to_path_buf(),
                reason: "not a directory".into(),
            }
            .into());
        }
        let name = format!(
            "oci:{}{}",
            dir.display(),
            tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default()
        );
        let selector = tag.map_or(Selector::Only, Selector::RefName);
        let s = LayoutSource {
            files: Files::Dir(dir.to_path_buf()),
            name,
            selector,
        };
        s.files.read_meta("oci-layout")?;
        Ok(s)
    }

    /// `oci-archive:FILE[:TAG]`.
    pub(crate) fn archive(file: &Path, tag: Option<String>) -> Result<Self> {
        let name = format!(
            "oci-archive:{}{}",
            file.display(),
            tag.as_ref().map(|t| format!(":{t}")).unwrap_or_default()
        );
        let selector = tag.map_or(Selector::Only, Selector::RefName);
        Self::from_tar(TarIndex::open(file)?, name, selector)
    }

    /// A layout inside an already indexed archive.
    pub(crate) fn from_tar(index: TarIndex, name: String, selector: Selector) -> Result<Self> {
        let s = LayoutSource {
            files: Files::Tar(index),
            name,
            selector,
        };
        s.files.read_meta("oci-layout")?;
        Ok(s)
    }

    fn select(&self, entries: Vec<Descriptor>) -> Result<Descriptor> {
        let names = |es: &[Descriptor]| {
            let v: Vec<String> = es
                .iter()
                .map(|e| {
                    e.annotations
                        .get(CONTAINERD_NAME)
                        .map(String::as_str)
                        .or(e.ref_name())
                        .map_or_else(|| e.digest.to_string(), str::to_string)
                })
                .collect();
            if v.is_empty() {
                "no images".to_string()
            } else {
                v.join(", ")
            }
        };
        let available = names(&entries);
        let (wanted, matching): (String, Vec<Descriptor>) = match &self.selector {
            Selector::Only => (String::new(), entries),
            Selector::RefName(t) => (
                t.clone(),
                entries
                    .into_iter()
                    .filter(|e| e.ref_name() == Some(t))
                    .collect(),
            ),
            Selector::Docker(r) => {
                let full = r.to_string();
                let by_name: Vec<Descriptor> = entries
                    .iter()
                    .filter(|e| {
                        e.annotations
                            .get(CONTAINERD_NAME)
                            .and_then(|n| DockerReference::parse(n).ok())
                            .is_some_and(|n| n.to_string() == full)
                    })
                    .cloned()
                    .collect();
                let m = if by_name.is_empty() {
                    entries
                        .into_iter()
                        .filter(|e| e.ref_name() == r.tag())
                        .collect()
                } else {
                    by_name
                };
                (full, m)
            }
        };
        let mut matching = matching;
        match matching.len() {
            1 => Ok(matching.remove(0)),
            0 if matches!(self.selector, Selector::Only) => Err(SourceError::NoSuchImage {
                source_name: self.name.clone(),
                wanted: "any".into(),
                available,
            }
            .into()),
            0 => Err(SourceError::NoSuchImage {
                source_name: self.name.clone(),
                wanted,
                available,
            }
            .into()),
            _ => Err(SourceError::Ambiguous {
                source_name: self.name.clone(),
                available: names(&matching),
            }
            .into()),
        }
    }
}

impl ImageSource for LayoutSource {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn root(&self) -> Result<RootDocument> {
        let bytes = self.files.read_meta("index.json")?;
        let index_digest = Digest::sha256_of(&bytes);
        let entries = match ManifestDocument::parse(&bytes, &index_digest, Some(OCI_INDEX))? {
            ManifestDocument::Index(i) => i.manifests,
            ManifestDocument::Manifest(_) => {
                return Err(SourceError::NotLayout {
                    path: self.files.path().to_path_buf(),
                    reason: "index.json is a manifest".into(),
                }
                .into());
            }
        };
        let entry = self.select(entries)?;
        super::check_limit("manifest", &entry.digest, entry.size, MAX_MANIFEST_SIZE)?;
        let bytes = self.read_small(&entry.digest, entry.size, &entry.media_type)?;
        Ok(RootDocument {
            bytes,
            digest: entry.digest,
            media_type: Some(entry.media_type),
        })
    }

    fn read_small(&self, digest: &Digest, size: u64, _media_type: &str) -> Result<Vec<u8>> {
        let r = self.files.open_blob(digest, &self.name)?;
        read_verified(r, digest, size, &self.name)
    }

    fn copy_blob(&self, digest: &Digest, size: u64, store: &Store, progress: bool) -> Result<()> {
        let r = self.files.open_blob(digest, &self.name)?;
        let bar = blob_bar(progress, digest, size);
        let res = store.put_blob(digest, size, &mut bar.wrap_read(r));
        bar.finish_and_clear();
        Ok(res?)
    }

    fn stream_blob(&self, digest: &Digest, _size: u64) -> Result<Option<Box<dyn Read + Send>>> {
        self.files.open_blob(digest, &self.name).map(Some)
    }
}
