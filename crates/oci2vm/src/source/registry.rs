//! `docker://` sources over a [`RemoteFetcher`], the seam to the registry client.
//!
//! ```text
//! fetch_manifest(registry, repo, tag|digest) ──verify digest──> index | manifest
//!   index ──platform──> fetch_manifest(.., child digest) ──verify──> manifest
//!   config, layers: fetch_blob(.., digest, size, sink) ──> store blob writer (verifies again)
//! ```
//!
//! The client verifies what it downloads; we verify again (defence in depth): manifests by
//! hashing the bytes, blobs through [`Store::blob_writer`].

use std::io::Write;

use super::progress::blob_bar;
use super::{ImageSource, RootDocument, SourceError};
use crate::digest::{Digest, DigestError};
use crate::error::Result;
use crate::image::MAX_MANIFEST_SIZE;
use crate::reference::DockerReference;
use crate::store::Store;

/// What oci2vm needs from a registry client. `registry` is `docker.io`, `127.0.0.1:5000`...;
/// `repository` is `library/busybox`; `reference` is a tag or a digest string.
pub trait RemoteFetcher {
    /// Fetches a manifest or index: its bytes, the Content-Type, and its digest.
    fn fetch_manifest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String, Digest)>;

    /// Writes exactly `size` bytes of the blob `digest` to `sink`, or fails.
    fn fetch_blob(
        &self,
        registry: &str,
        repository: &str,
        digest: &Digest,
        size: u64,
        sink: &mut dyn Write,
    ) -> Result<()>;
}

impl RemoteFetcher for crate::registry::RegistryClient {
    fn fetch_manifest(
        &self,
        registry: &str,
        repository: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String, Digest)> {
        let m =
            crate::registry::RegistryClient::fetch_manifest(self, registry, repository, reference)?;
        Ok((m.bytes, m.media_type, m.digest))
    }

    fn fetch_blob(
        &self,
        registry: &str,
        repository: &str,
        digest: &Digest,
        size: u64,
        sink: &mut dyn Write,
    ) -> Result<()> {
        Ok(crate::registry::RegistryClient::fetch_blob(
            self, registry, repository, digest, size, sink,
        )?)
    }
}

/// A registry image.
pub(crate) struct RegistrySource<'f> {
    reference: DockerReference,
    fetcher: &'f dyn RemoteFetcher,
}

impl std::fmt::Debug for RegistrySource<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrySource")
            .field("reference", &self.reference)
            .finish()
    }
}

impl<'f> RegistrySource<'f> {
    pub(crate) fn new(reference: DockerReference, fetcher: &'f dyn RemoteFetcher) -> Self {
        RegistrySource { reference, fetcher }
    }

    fn verify(&self, bytes: &[u8], expected: &Digest, size: Option<u64>) -> Result<()> {
        let verify_err = |source| SourceError::Verify {
            source_name: self.name(),
            digest: expected.clone(),
            source,
        };
        if let Some(size) = size {
            if bytes.len() as u64 != size {
                return Err(verify_err(DigestError::Size {
                    digest: expected.clone(),
                    expected: size,
                    actual: bytes.len() as u64,
                })
                .into());
            }
        }
        expected.verify(bytes).map_err(verify_err)?;
        Ok(())
    }
}

impl ImageSource for RegistrySource<'_> {
    fn name(&self) -> String {
        format!("docker://{}", self.reference)
    }

    fn root(&self) -> Result<RootDocument> {
        let r = &self.reference;
        let (bytes, media_type, digest) =
            self.fetcher
                .fetch_manifest(r.registry(), r.repository(), &r.manifest_reference())?;
        super::check_limit("manifest", &digest, bytes.len() as u64, MAX_MANIFEST_SIZE)?;
        // A pinned digest is the authority; otherwise the registry's digest must match the bytes.
        let expected = r.digest().cloned().unwrap_or(digest);
        self.verify(&bytes, &expected, None)?;
        Ok(RootDocument {
            bytes,
            digest: expected,
            media_type: Some(media_type),
        })
    }

    fn read_small(&self, digest: &Digest, size: u64, media_type: &str) -> Result<Vec<u8>> {
        let r = &self.reference;
        let is_manifest = media_type.contains("manifest") || media_type.contains("index");
        let bytes = if is_manifest {
            let (bytes, _ct, _d) =
                self.fetcher
                    .fetch_manifest(r.registry(), r.repository(), &digest.to_string())?;
            bytes
        } else {
            let mut sink = LimitedVec {
                buf: Vec::new(),
                limit: size,
            };
            self.fetcher
                .fetch_blob(r.registry(), r.repository(), digest, size, &mut sink)?;
            sink.buf
        };
        self.verify(&bytes, digest, Some(size))?;
        Ok(bytes)
    }

    fn copy_blob(&self, digest: &Digest, size: u64, store: &Store, progress: bool) -> Result<()> {
        let r = &self.reference;
        let mut writer = store.blob_writer(digest, size)?;
        let bar = blob_bar(progress, digest, size);
        let res = self.fetcher.fetch_blob(
            r.registry(),
            r.repository(),
            digest,
            size,
            &mut bar.wrap_write(&mut writer),
        );
        bar.finish_and_clear();
        res?;
        Ok(writer.commit()?)
    }
}

/// An in-memory sink that refuses more than `limit` bytes.
struct LimitedVec {
    buf: Vec<u8>,
    limit: u64,
}

impl Write for LimitedVec {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() as u64 + data.len() as u64 > self.limit {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "blob longer than its descriptor",
            ));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use super::*;
    use crate::error::ErrorKind;
    use crate::image::{DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST};
    use crate::platform::Platform;
    use crate::reference::Reference;
    use crate::source::{SourceOptions, pull, resolve};

    /// An in-memory registry: tags -> manifest digest, digest -> (bytes, media type).
    #[derive(Default)]
    struct FakeRegistry {
        tags: HashMap<String, Digest>,
        blobs: HashMap<Digest, (Vec<u8>, String)>,
        corrupt: Option<Digest>,
        fetched: Mutex<Vec<String>>,
    }

    impl FakeRegistry {
        fn add(&mut self, bytes: Vec<u8>, mt: &str) -> Digest {
            let d = Digest::sha256_of(&bytes);
            self.blobs.insert(d.clone(), (bytes, mt.to_string()));
            d
        }
    }

    impl RemoteFetcher for FakeRegistry {
        fn fetch_manifest(
            &self,
            reg: &str,
            repo: &str,
            reference: &str,
        ) -> Result<(Vec<u8>, String, Digest)> {
            assert_eq!((reg, repo), ("127.0.0.1:5000", "test/img"));
            self.fetched.lock().unwrap().push(reference.to_string());
            let d = match self.tags.get(reference) {
                Some(d) => d.clone(),
                None => Digest::parse(reference)?,
            };
            let (b, mt) = self.blobs.get(&d).cloned().ok_or_else(|| {
                crate::Error::new(ErrorKind::NotFound, format!("manifest {reference} unknown"))
            })?;
            Ok((b, mt, d))
        }

        fn fetch_blob(
            &self,
            _: &str,
            _: &str,
            digest: &Digest,
            size: u64,
            sink: &mut dyn Write,
        ) -> Result<()> {
            self.fetched.lock().unwrap().push(digest.to_string());
            let (mut b, _) = self.blobs.get(digest).cloned().ok_or_else(|| {
                crate::Error::new(ErrorKind::NotFound, format!("blob {digest} unknown"))
            })?;
            if self.corrupt.as_ref() == Some(digest) {
                b[0] ^= 1; // a client bug or a lying proxy: the store must catch it
            }
            assert_eq!(b.len() as u64, size);
            sink.write_all(&b)
                .map_err(|e| crate::Error::new(ErrorKind::Network, e))
        }
    }

    fn image(reg: &mut FakeRegistry, arch: &str, layer: &[u8]) -> (Digest, usize) {
        let layer_d = reg.add(layer.to_vec(), DOCKER_LAYER_GZIP);
        let diff = Digest::sha256_of(b"uncompressed");
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","config":{{"Cmd":["sh"]}},"rootfs":{{"type":"layers","diff_ids":["{diff}"]}}}}"#
        );
        let config_d = reg.add(config.clone().into_bytes(), DOCKER_CONFIG);
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","size":{},"digest":"{config_d}"}},"layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","size":{},"digest":"{layer_d}"}}]}}"#,
            config.len(),
            layer.len()
        );
        let len = m.len();
        (reg.add(m.into_bytes(), DOCKER_MANIFEST), len)
    }

    fn multi() -> (FakeRegistry, Digest, Digest) {
        let mut reg = FakeRegistry::default();
        let (amd, amd_len) = image(&mut reg, "amd64", b"amd64 layer");
        let (arm, arm_len) = image(&mut reg, "arm64", b"arm64 layer");
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
            {{"mediaType":"{DOCKER_MANIFEST}","size":{amd_len},"digest":"{amd}","platform":{{"os":"linux","architecture":"amd64"}}}},
            {{"mediaType":"{DOCKER_MANIFEST}","size":{arm_len},"digest":"{arm}","platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#
        );
        let list_d = reg.add(list.into_bytes(), DOCKER_MANIFEST_LIST);
        reg.tags.insert("latest".into(), list_d);
        (reg, amd, arm)
    }

    fn opts(p: &str) -> SourceOptions {
        SourceOptions {
            platform: Some(p.parse().unwrap()),
            progress: false,
        }
    }

    #[test]
    fn resolves_index_to_platform_manifest_by_digest() {
        let (reg, amd, arm) = multi();
        let r = Reference::parse("docker://127.0.0.1:5000/test/img").unwrap();
        let img = resolve(&r, &opts("linux/arm64"), Some(&reg)).unwrap();
        assert_eq!(img.manifest_digest, arm);
        assert_eq!(img.platform, Platform::new("linux", "arm64", None));
        assert!(img.index_digest.is_some());
        assert_eq!(reg.fetched.lock().unwrap()[1], arm.to_string());
        let img = resolve(&r, &opts("linux/amd64"), Some(&reg)).unwrap();
        assert_eq!(img.manifest_digest, amd);
        let e = resolve(&r, &opts("linux/s390x"), Some(&reg)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("linux/amd64, linux/arm64/v8"), "{e}");
        let e = resolve(&r, &opts("linux/amd64"), None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }

    #[test]
    fn pinned_digest_is_enforced() {
        let (mut reg, amd, _) = multi();
        let r = Reference::parse(&format!("docker://127.0.0.1:5000/test/img@{amd}")).unwrap();
        assert_eq!(
            resolve(&r, &opts("linux/amd64"), Some(&reg))
                .unwrap()
                .manifest_digest,
            amd
        );
        // the registry answers the digest request with other bytes
        let other = reg.tags["latest"].clone();
        let swapped = reg.blobs[&other].clone();
        reg.blobs.insert(amd.clone(), swapped);
        let e = resolve(&r, &opts("linux/amd64"), Some(&reg)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DigestMismatch);
    }

    #[test]
    fn pull_stores_verified_blobs_and_refuses_corrupt_ones() {
        let (mut reg, amd, _) = multi();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let r = Reference::parse("127.0.0.1:5000/test/img:latest").unwrap();
        let layer = Digest::sha256_of(b"amd64 layer");
        reg.corrupt = Some(layer.clone());
        let e = pull(&r, &store, &opts("linux/amd64"), Some(&reg)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DigestMismatch);
        assert!(!store.has_blob(&layer, 11));
        assert!(store.list_images().unwrap().is_empty());
        reg.corrupt = None;
        let p = pull(&r, &store, &opts("linux/amd64"), Some(&reg)).unwrap();
        assert_eq!(p.name, "127.0.0.1:5000/test/img:latest");
        assert!(store.verify_blob(&layer, 11).unwrap());
        let images = store.list_images().unwrap();
        assert_eq!(images.len(), 1);
        assert_eq!(images[0].manifest_digest.as_ref(), Some(&amd));
        // a Docker manifest is named through a one-entry OCI index (for skopeo)
        assert_eq!(images[0].media_type, crate::image::OCI_INDEX);
        assert!(store.reachable_blobs().unwrap().contains(&amd));
        assert_eq!(
            images[0].name.as_deref(),
            Some("127.0.0.1:5000/test/img:latest")
        );
    }
}
