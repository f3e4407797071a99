//! Manifests and indexes (OCI and Docker schema 2): parse with `oci-spec`, then validate.
//!
//! ```text
//! {"schemaVersion":2, "mediaType":M?, "manifests":[desc..]}            index / manifest list
//! {"schemaVersion":2, "mediaType":M?, "config":desc, "layers":[desc..]} manifest
//! desc = {"mediaType", "digest", "size" (>= 0), "urls"?, "platform"?, "annotations"?}
//! ```
//!
//! The checks beyond `oci-spec`: at most [`MAX_MANIFEST_SIZE`] bytes; schema 1 refused;
//! a document with both `manifests` and `layers`/`config` refused (CVE-2021-41190); the
//! document's `mediaType`, its shape and the declared type (descriptor or Content-Type) agree;
//! negative sizes named; digests strict ([`crate::Digest`]).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_SCHEMA1, ImageError,
    MAX_MANIFEST_SIZE, OCI_CONFIG, OCI_INDEX, OCI_MANIFEST,
};
use crate::digest::Digest;
use crate::platform::Platform;

/// A content descriptor with a strict digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// The target's media type.
    pub media_type: String,
    /// The target's digest.
    pub digest: Digest,
    /// The target's size in bytes.
    pub size: u64,
    /// Where to fetch a foreign layer (we refuse those).
    pub urls: Vec<String>,
    /// The platform of an index entry.
    pub platform: Option<Platform>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// The `org.opencontainers.image.ref.name` annotation.
    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .get("org.opencontainers.image.ref.name")
            .map(String::as_str)
    }

    fn from_spec(d: &oci_spec::image::Descriptor, doc: &Digest) -> Result<Self, ImageError> {
        let digest = Digest::parse(d.digest().as_ref()).map_err(|e| ImageError::Malformed {
            what: "descriptor in",
            digest: doc.to_string(),
            reason: e.to_string(),
        })?;
        let platform = d.platform().as_ref().map(|p| {
            Platform::new(
                &p.os().to_string(),
                &p.architecture().to_string(),
                p.variant().as_deref(),
            )
        });
        Ok(Descriptor {
            media_type: d.media_type().to_string(),
            digest,
            size: d.size(),
            urls: d.urls().clone().unwrap_or_default(),
            platform,
            annotations: d
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
        })
    }
}

/// An image index or Docker manifest list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageIndex {
    /// `OCI_INDEX` or `DOCKER_MANIFEST_LIST`.
    pub media_type: String,
    /// The entries.
    pub manifests: Vec<Descriptor>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageManifest {
    /// `OCI_MANIFEST` or `DOCKER_MANIFEST`.
    pub media_type: String,
    /// The config blob.
    pub config: Descriptor,
    /// The layer blobs, bottom first.
    pub layers: Vec<Descriptor>,
}

/// A parsed manifest-or-index document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestDocument {
    /// An index / manifest list.
    Index(ImageIndex),
    /// A single-platform manifest.
    Manifest(ImageManifest),
}

fn is_index_type(t: &str) -> bool {
    t == OCI_INDEX || t == DOCKER_MANIFEST_LIST
}

fn is_manifest_type(t: &str) -> bool {
    t == OCI_MANIFEST || t == DOCKER_MANIFEST
}

fn known_type(t: &str) -> bool {
    is_index_type(t) || is_manifest_type(t) || DOCKER_SCHEMA1.contains(&t)
}

/// Strips parameters from a Content-Type (`application/json; charset=utf-8`).
fn bare_type(t: &str) -> &str {
    t.split(';').next().unwrap_or(t).trim()
}

impl ManifestDocument {
    /// Parses and validates a manifest or index. `digest` names it in errors (the caller has
    /// already verified the bytes against it); `declared` is the media type from the
    /// descriptor that pointed here or the registry's Content-Type, when known.
    pub fn parse(
        bytes: &[u8],
        digest: &Digest,
        declared: Option<&str>,
    ) -> Result<Self, ImageError> {
        let name = || digest.to_string();
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(ImageError::TooLarge {
                what: "manifest",
                digest: name(),
                size: bytes.len() as u64,
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let malformed = |reason: String| ImageError::Malformed {
            what: "manifest",
            digest: name(),
            reason,
        };
        let value: Value = serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| malformed("not a JSON object".into()))?;
        let doc_type = match obj.get("mediaType") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(malformed("mediaType is not a string".into())),
        };
        let declared = declared.map(bare_type).filter(|t| known_type(t));
        let schema1 = obj.get("schemaVersion").and_then(Value::as_i64) == Some(1)
            || doc_type.is_some_and(|t| DOCKER_SCHEMA1.contains(&t))
            || declared.is_some_and(|t| DOCKER_SCHEMA1.contains(&t));
        if schema1 {
            return Err(ImageError::Schema1 { digest: name() });
        }
        if obj.get("schemaVersion").and_then(Value::as_i64) != Some(2) {
            return Err(malformed("schemaVersion must be 2".into()));
        }
        let has_manifests = obj.contains_key("manifests");
        let has_layers = obj.contains_key("layers") || obj.contains_key("config");
        if has_manifests && has_layers {
            return Err(ImageError::Ambiguous { digest: name() });
        }
        if !has_manifests && !has_layers {
            return Err(malformed(
                "neither `manifests` nor `config`/`layers`".into(),
            ));
        }
        let mismatch = |declared: &str, actual: &str| ImageError::MediaTypeMismatch {
            digest: name(),
            declared: declared.to_string(),
            actual: actual.to_string(),
        };
        let shape = if has_manifests {
            "an index"
        } else {
            "a manifest"
        };
        if let Some(t) = doc_type {
            if !known_type(t) {
                return Err(ImageError::UnsupportedMediaType {
                    what: "manifest",
                    media_type: t.to_string(),
                    digest: name(),
                });
            }
            if is_index_type(t) != has_manifests {
                return Err(mismatch(t, shape));
            }
            if let Some(d) = declared {
                if d != t {
                    return Err(mismatch(d, t));
                }
            }
        } else if let Some(d) = declared {
            if is_index_type(d) != has_manifests {
                return Err(mismatch(d, shape));
            }
        }
        check_sizes(obj, digest)?;
        let media_type = doc_type
            .or(declared)
            .unwrap_or(if has_manifests {
                OCI_INDEX
            } else {
                OCI_MANIFEST
            })
            .to_string();
        if has_manifests {
            let idx: oci_spec::image::ImageIndex =
                serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
            let manifests = idx
                .manifests()
                .iter()
                .map(|d| Descriptor::from_spec(d, digest))
                .collect::<Result<_, _>>()?;
            Ok(ManifestDocument::Index(ImageIndex {
                media_type,
                manifests,
            }))
        } else {
            let m: oci_spec::image::ImageManifest =
                serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
            let config = Descriptor::from_spec(m.config(), digest)?;
            if config.media_type != OCI_CONFIG && config.media_type != DOCKER_CONFIG {
                return Err(ImageError::UnsupportedMediaType {
                    what: "config",
                    media_type: config.media_type,
                    digest: config.digest.to_string(),
                });
            }
            let layers = m
                .layers()
                .iter()
                .map(|d| Descriptor::from_spec(d, digest))
                .collect::<Result<_, _>>()?;
            Ok(ManifestDocument::Manifest(ImageManifest {
                media_type,
                config,
                layers,
            }))
        }
    }
}

/// Names the first negative `size` in `config`, `layers` or `manifests`.
fn check_sizes(obj: &serde_json::Map<String, Value>, doc: &Digest) -> Result<(), ImageError> {
    let mut descs: Vec<&Value> = Vec::new();
    descs.extend(obj.get("config"));
    for key in ["layers", "manifests"] {
        if let Some(Value::Array(a)) = obj.get(key) {
            descs.extend(a.iter());
        }
    }
    for d in descs {
        if let Some(size) = d.get("size").and_then(Value::as_i64).filter(|s| *s < 0) {
            let digest = d.get("digest").and_then(Value::as_str).unwrap_or("-");
            return Err(ImageError::NegativeSize {
                digest: format!("{} (in {doc})", digest.chars().take(80).collect::<String>()),
                size,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorKind};

    const C: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const L: &str = "sha256:a704f602a5bf107fba225e658539b12cf6818eae88684cbe39f9e4d465ff69e0";

    fn manifest_json(mt: Option<&str>, layer_size: i64) -> String {
        let mt = mt
            .map(|m| format!(r#""mediaType":"{m}","#))
            .unwrap_or_default();
        format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"{OCI_CONFIG}","digest":"{C}","size":2}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{L}","size":{layer_size}}}]}}"#
        )
    }

    fn parse(json: &str, declared: Option<&str>) -> Result<ManifestDocument, ImageError> {
        ManifestDocument::parse(
            json.as_bytes(),
            &Digest::sha256_of(json.as_bytes()),
            declared,
        )
    }

    #[test]
    fn parses_oci_and_docker_manifests() {
        for (mt, declared, want) in [
            (Some(OCI_MANIFEST), None, OCI_MANIFEST),
            (None, None, OCI_MANIFEST),
            (None, Some(DOCKER_MANIFEST), DOCKER_MANIFEST),
            (
                Some(DOCKER_MANIFEST),
                Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
                DOCKER_MANIFEST,
            ),
            (Some(OCI_MANIFEST), Some("application/json"), OCI_MANIFEST),
        ] {
            match parse(&manifest_json(mt, 7), declared).unwrap() {
                ManifestDocument::Manifest(m) => {
                    assert_eq!(m.media_type, want);
                    assert_eq!(m.layers[0].size, 7);
                    assert_eq!(m.config.digest.to_string(), C);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn parses_index_with_platforms() {
        let j = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST_LIST}","manifests":[
            {{"mediaType":"{DOCKER_MANIFEST}","digest":"{L}","size":5,"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#
        );
        match parse(&j, None).unwrap() {
            ManifestDocument::Index(i) => {
                assert_eq!(
                    i.manifests[0].platform.as_ref().unwrap().to_string(),
                    "linux/arm64/v8"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_documents() {
        let both = format!(
            r#"{{"schemaVersion":2,"manifests":[],"config":{{"mediaType":"{OCI_CONFIG}","digest":"{C}","size":2}},"layers":[]}}"#
        );
        assert!(matches!(
            parse(&both, None),
            Err(ImageError::Ambiguous { .. })
        ));
        assert!(matches!(
            parse(&manifest_json(None, -1), None),
            Err(ImageError::NegativeSize { size: -1, .. })
        ));
        assert!(matches!(
            parse(&manifest_json(Some(OCI_INDEX), 1), None),
            Err(ImageError::MediaTypeMismatch { .. })
        ));
        assert!(matches!(
            parse(&manifest_json(Some(OCI_MANIFEST), 1), Some(DOCKER_MANIFEST)),
            Err(ImageError::MediaTypeMismatch { .. })
        ));
        assert!(matches!(
            parse(&manifest_json(None, 1), Some(OCI_INDEX)),
            Err(ImageError::MediaTypeMismatch { .. })
        ));
        let s1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        let e = parse(s1, None).unwrap_err();
        assert!(matches!(e, ImageError::Schema1 { .. }));
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        let e = parse(&manifest_json(None, 1), Some(DOCKER_SCHEMA1[1])).unwrap_err();
        assert!(matches!(e, ImageError::Schema1 { .. }));
        let bad_digest = manifest_json(None, 1).replace(L, "sha256:../../../etc/passwd");
        assert!(matches!(
            parse(&bad_digest, None),
            Err(ImageError::Malformed { .. })
        ));
        let artifact =
            manifest_json(None, 1).replace(OCI_CONFIG, "application/vnd.cncf.helm.config.v1+json");
        assert_eq!(
            parse(&artifact, None).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        for junk in ["[]", "nul", "{}", r#"{"schemaVersion":3,"layers":[]}"#] {
            assert!(parse(junk, None).is_err(), "{junk}");
        }
        let big = format!("{}{}", manifest_json(None, 1), " ".repeat(4 << 20));
        assert!(matches!(
            parse(&big, None),
            Err(ImageError::TooLarge { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(
            mt in proptest::option::of("(application/vnd\\.(oci|docker)\\.[a-z.]{0,20}(\\+json)?|[ -~]{0,12})"),
            keys in proptest::collection::vec("(manifests|layers|config|schemaVersion|mediaType|size|digest|urls)", 0..6),
            size in proptest::num::i64::ANY,
        ) {
            let mut obj = serde_json::Map::new();
            for k in keys {
                let v = match k.as_str() {
                    "schemaVersion" => serde_json::json!(2),
                    "manifests" | "layers" => serde_json::json!([{"mediaType": OCI_MANIFEST, "digest": L, "size": size}]),
                    "config" => serde_json::json!({"mediaType": OCI_CONFIG, "digest": C, "size": size}),
                    "mediaType" => serde_json::json!(mt.clone().unwrap_or_default()),
                    _ => serde_json::json!(size),
                };
                obj.insert(k, v);
            }
            let bytes = serde_json::to_vec(&obj).unwrap();
            let _ = ManifestDocument::parse(&bytes, &Digest::sha256_of(&bytes), mt.as_deref());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = ManifestDocument::parse(&bytes, &Digest::sha256_of(&bytes), None);
        }
    }
}
