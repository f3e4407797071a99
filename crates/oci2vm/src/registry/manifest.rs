//! `GET /v2/<name>/manifests/<reference>`: the four manifest types, capped and verified.
//!
//! distribution 2.8 picks what to serve from the `Accept` header alone: without the Docker v2
//! type it converts a v2s2 manifest to a signed schema 1 on the fly, and without the OCI types it
//! answers 404 for OCI content. So every request accepts all four types below, and a schema 1
//! answer is refused. The body is read up to [`MAX_MANIFEST_BYTES`] (containerd's limit) and no
//! further. The digest is computed from the bytes; when the reference is a digest it must match,
//! and a `Docker-Content-Digest` header of the same algorithm must agree (a cross-check only).

use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap};

use super::transport::Transport;
use super::{RegistryError, Target};
use crate::digest::{Digest, DigestError};

/// The media types we accept, in preference order (OCI manifest, OCI index, Docker v2s2,
/// Docker manifest list).
pub const MANIFEST_MEDIA_TYPES: [&str; 4] = [
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// The largest manifest we read (4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Fetches one manifest; `expected` is the reference when it is a digest.
pub(crate) async fn fetch(
    transport: &Transport,
    target: &Target,
    reference: &str,
    expected: Option<&Digest>,
) -> Result<super::FetchedManifest, RegistryError> {
    let url = target.url("manifests", reference);
    let accept = MANIFEST_MEDIA_TYPES.join(", ");
    let mut attempt = 0;
    let (headers, bytes) = loop {
        let mut resp = transport
            .send(target, &url, &|c| c.get(&url).header(ACCEPT, &accept))
            .await?;
        too_large_by_length(&resp, &url)?;
        let headers = resp.headers().clone();
        match read_capped(&mut resp, &url).await {
            Ok(bytes) => break (headers, bytes),
            Err(ReadError::Fatal(e)) => return Err(e),
            Err(ReadError::Cut(source)) if attempt >= transport.policy.max_retries => {
                return Err(RegistryError::Http { url, source });
            }
            Err(ReadError::Cut(e)) => {
                tracing::debug!(url, error = %e, "manifest body cut off, retrying");
                tokio::time::sleep(transport.policy.delay(attempt, None)).await;
                attempt += 1;
            }
        }
    };
    let media_type = media_type(&headers, &bytes, &url)?;
    let algorithm = expected.map_or(crate::digest::Algorithm::Sha256, Digest::algorithm);
    let mut hasher = algorithm.hasher();
    hasher.update(&bytes);
    let digest = hasher.finish();
    let mismatch = |expected: &Digest| RegistryError::Digest {
        url: url.clone(),
        source: DigestError::Mismatch {
            expected: expected.clone(),
            actual: digest.clone(),
        },
    };
    if let Some(e) = expected.filter(|e| **e != digest) {
        return Err(mismatch(e));
    }
    if let Some(h) = headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
    {
        match Digest::parse(h.trim()) {
            Ok(d) if d.algorithm() == algorithm && d != digest => return Err(mismatch(&d)),
            Ok(_) => {}
            Err(_) => tracing::debug!(url, header = h, "ignoring malformed Docker-Content-Digest"),
        }
    }
    Ok(super::FetchedManifest {
        bytes,
        media_type,
        digest,
    })
}

enum ReadError {
    Fatal(RegistryError),
    Cut(reqwest::Error),
}

fn too_large_by_length(resp: &reqwest::Response, url: &str) -> Result<(), RegistryError> {
    match resp.content_length() {
        Some(n) if n > MAX_MANIFEST_BYTES as u64 => Err(RegistryError::ManifestTooLarge {
            url: url.to_string(),
            limit: MAX_MANIFEST_BYTES,
        }),
        _ => Ok(()),
    }
}

/// Reads the body, failing as soon as it passes the cap.
async fn read_capped(resp: &mut reqwest::Response, url: &str) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(ReadError::Cut)? {
        if bytes.len() + chunk.len() > MAX_MANIFEST_BYTES {
            return Err(ReadError::Fatal(RegistryError::ManifestTooLarge {
                url: url.to_string(),
                limit: MAX_MANIFEST_BYTES,
            }));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The served type: `Content-Type` if it is one of ours, else the body's `mediaType`, else the
/// body's shape (an OCI index or manifest may omit `mediaType` and be served as JSON).
fn media_type(headers: &HeaderMap, body: &[u8], url: &str) -> Result<String, RegistryError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "schemaVersion")]
        schema_version: Option<u64>,
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        layers: Option<serde_json::Value>,
    }
    let probe: Option<Probe> = serde_json::from_slice(body).ok();
    let schema1 = content_type.starts_with("application/vnd.docker.distribution.manifest.v1")
        || probe.as_ref().is_some_and(|p| p.schema_version == Some(1));
    if schema1 {
        return Err(RegistryError::Schema1 {
            url: url.to_string(),
            media_type: content_type,
        });
    }
    if MANIFEST_MEDIA_TYPES.contains(&content_type.as_str()) {
        return Ok(content_type);
    }
    let unsupported = |media_type: String| RegistryError::MediaType {
        url: url.to_string(),
        media_type,
    };
    let Some(p) = probe else {
        return Err(unsupported(content_type));
    };
    match p.media_type {
        Some(m) if MANIFEST_MEDIA_TYPES.contains(&m.as_str()) => Ok(m),
        Some(m) => Err(unsupported(m)),
        None if p.schema_version == Some(2) && p.manifests.is_some() => {
            Ok(OCI_IMAGE_INDEX_MEDIA_TYPE.into())
        }
        None if p.schema_version == Some(2) && p.layers.is_some() => {
            Ok(OCI_IMAGE_MEDIA_TYPE.into())
        }
        None => Err(unsupported(content_type)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    #[test]
    fn media_type_from_header_body_or_shape() {
        let oci = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{},"layers":[]}"#;
        let got = media_type(
            &headers("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
            b"{}",
            "u",
        );
        assert_eq!(got.unwrap(), OCI_IMAGE_MEDIA_TYPE);
        assert_eq!(
            media_type(&headers("application/json"), oci.as_bytes(), "u").unwrap(),
            OCI_IMAGE_MEDIA_TYPE
        );
        let bare_index = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            media_type(&headers("application/json"), bare_index.as_bytes(), "u").unwrap(),
            OCI_IMAGE_INDEX_MEDIA_TYPE
        );
        let other = r#"{"schemaVersion":2,"mediaType":"application/vnd.example+json"}"#;
        assert!(matches!(
            media_type(&headers("application/json"), other.as_bytes(), "u"),
            Err(RegistryError::MediaType { .. })
        ));
        assert!(matches!(
            media_type(&headers("text/html"), b"<html>", "u"),
            Err(RegistryError::MediaType { .. })
        ));
    }

    #[test]
    fn schema1_is_refused_by_header_or_body() {
        let s1 = r#"{"schemaVersion":1,"name":"x","tag":"latest","fsLayers":[]}"#;
        for ct in [
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "application/json",
        ] {
            assert!(matches!(
                media_type(&headers(ct), s1.as_bytes(), "u"),
                Err(RegistryError::Schema1 { .. })
            ));
        }
    }

    #[test]
    fn accept_lists_all_four() {
        assert_eq!(
            MANIFEST_MEDIA_TYPES,
            [
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json",
                "application/vnd.docker.distribution.manifest.list.v2+json",
            ]
        );
    }
}
