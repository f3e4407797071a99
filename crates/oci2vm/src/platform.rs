//! Platforms (`os/arch[/variant]`) and choosing a manifest from an index.
//!
//! Values follow the OCI image-index `platform` object
//! (<https://github.com/opencontainers/image-spec/blob/main/image-index.md>): GOOS/GOARCH names.
//! We normalise the usual aliases (`x86_64` = `amd64`, `aarch64` = `arm64`) and the default
//! variants (`arm64` means `arm64/v8`, `amd64` means `amd64/v1`, `arm` means `arm/v7`), as
//! containerd's platform matcher does.

use std::fmt;
use std::str::FromStr;

use crate::error::{Classify, ErrorKind};

/// Errors about platforms.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// `--platform` could not be parsed.
    #[error("invalid platform {input:?}: want os/arch[/variant], e.g. linux/amd64")]
    Invalid {
        /// What was given.
        input: String,
    },
    /// No manifest in the index matches the wanted platform.
    #[error("no image for platform {wanted} (the image has: {available})")]
    NoMatch {
        /// The platform that was asked for.
        wanted: Platform,
        /// The platforms the image offers, comma-separated.
        available: String,
    },
}

impl Classify for PlatformError {
    fn kind(&self) -> ErrorKind {
        match self {
            PlatformError::Invalid { .. } => ErrorKind::InvalidInput,
            PlatformError::NoMatch { .. } => ErrorKind::NotFound,
        }
    }
}

impl From<PlatformError> for crate::Error {
    fn from(e: PlatformError) -> Self {
        crate::Error::new(e.kind(), e)
    }
}

/// An operating system, architecture and optional variant, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Platform {
    /// `linux`, `windows`, ...
    pub os: String,
    /// GOARCH: `amd64`, `arm64`, `arm`, `386`, `riscv64`, ...
    pub architecture: String,
    /// `v8`, `v7`, ... (`None` when not given and there is no default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Builds a normalised platform from raw parts.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let os = os.to_ascii_lowercase();
        let (architecture, implied) = normalise_arch(&architecture.to_ascii_lowercase());
        let variant = variant
            .filter(|v| !v.is_empty())
            .map(|v| v.to_ascii_lowercase())
            .or(implied.map(str::to_string));
        let variant = match (architecture.as_str(), variant.as_deref()) {
            ("arm64", None | Some("8")) => Some("v8".to_string()),
            ("arm", None | Some("7")) => Some("v7".to_string()),
            ("arm", Some("6")) => Some("v6".to_string()),
            ("arm", Some("5")) => Some("v5".to_string()),
            ("amd64", Some("v1")) => None,
            _ => variant,
        };
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The platform of this machine (Linux on the compile-time architecture).
    pub fn host() -> Self {
        Platform::new("linux", std::env::consts::ARCH, None)
    }

    /// Whether an image for `candidate` can serve a request for `self`. A request without a
    /// variant accepts any variant of the architecture.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.os == candidate.os
            && self.architecture == candidate.architecture
            && (self.variant.is_none()
                || self.architecture == "arm64" && candidate.variant.is_none()
                || self.variant == candidate.variant)
    }

    /// Picks the best index entry for this platform: an exact match first, then any match.
    /// `entries` yields each entry's platform (`None` for entries without one, which never
    /// match). Returns the chosen position.
    pub fn select<'a>(
        &self,
        entries: impl IntoIterator<Item = Option<&'a Platform>>,
    ) -> Result<usize, PlatformError> {
        let entries: Vec<Option<&Platform>> = entries.into_iter().collect();
        let exact = entries.iter().position(|p| *p == Some(self));
        let any = || {
            entries
                .iter()
                .position(|p| p.is_some_and(|p| self.matches(p)))
        };
        exact.or_else(any).ok_or_else(|| {
            let mut available: Vec<String> =
                entries.iter().flatten().map(|p| p.to_string()).collect();
            available.dedup();
            let available = if available.is_empty() {
                "no platforms".to_string()
            } else {
                available.join(", ")
            };
            PlatformError::NoMatch {
                wanted: self.clone(),
                available,
            }
        })
    }
}

fn normalise_arch(arch: &str) -> (String, Option<&'static str>) {
    match arch {
        "x86_64" | "x86-64" => ("amd64".into(), None),
        "aarch64" => ("arm64".into(), None),
        "armhf" => ("arm".into(), Some("v7")),
        "armel" => ("arm".into(), Some("v6")),
        "i386" | "i486" | "i586" | "i686" | "x86" => ("386".into(), None),
        "powerpc64le" => ("ppc64le".into(), None),
        other => (other.into(), None),
    }
}

impl FromStr for Platform {
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || PlatformError::Invalid {
            input: s.chars().take(100).collect(),
        };
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(invalid());
        }
        Ok(Platform::new(parts[0], parts[1], parts.get(2).copied()))
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(p("linux/x86_64"), Platform::new("linux", "amd64", None));
        assert_eq!(p("linux/aarch64").to_string(), "linux/arm64/v8");
        assert_eq!(p("linux/arm64").to_string(), "linux/arm64/v8");
        assert_eq!(p("linux/arm64/v8"), p("linux/arm64"));
        assert_eq!(p("linux/amd64/v1"), p("linux/amd64"));
        assert_eq!(p("linux/amd64/v3").to_string(), "linux/amd64/v3");
        assert_eq!(p("linux/armhf").to_string(), "linux/arm/v7");
        assert_eq!(p("Linux/AMD64").to_string(), "linux/amd64");
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "a/b/c/d",
            "linux/amd 64",
            "linux/../x",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn host_is_normalised() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        assert!(!h.architecture.contains('_'), "{h}");
    }

    #[test]
    fn selection_prefers_exact_and_lists_available() {
        let entries = [
            p("linux/arm/v6"),
            p("linux/amd64/v3"),
            p("linux/amd64"),
            p("linux/arm64"),
        ];
        let sel = |w: &str| p(w).select(entries.iter().map(Some));
        assert_eq!(sel("linux/amd64").unwrap(), 2);
        assert_eq!(sel("linux/amd64/v3").unwrap(), 1);
        assert_eq!(sel("linux/arm64/v8").unwrap(), 3);
        assert!(sel("linux/arm/v7").is_err());
        let e = sel("linux/riscv64").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("linux/riscv64"), "{msg}");
        assert!(
            msg.contains("linux/arm/v6, linux/amd64/v3, linux/amd64, linux/arm64/v8"),
            "{msg}"
        );
        assert_eq!(crate::Error::from(e).kind(), ErrorKind::NotFound);
        // entries without a platform never match
        assert!(p("linux/amd64").select([None]).is_err());
    }

    #[test]
    fn unvariant_request_matches_any_variant() {
        let only_v2 = [p("linux/amd64/v2")];
        assert_eq!(
            p("linux/amd64").select(only_v2.iter().map(Some)).unwrap(),
            0
        );
        let arm_plain = [Platform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: None,
        }];
        assert_eq!(
            p("linux/arm64").select(arm_plain.iter().map(Some)).unwrap(),
            0
        );
    }
}
