//! One module per verb; each takes the shared [`Context`] and its own arguments.

pub mod assets;
pub mod convert;
pub mod images;
pub mod inspect;
pub mod prune;
pub mod pull;
pub mod run;

use std::path::PathBuf;

use anyhow::Context as _;
use oci2vm::registry::{RegistryClient, RegistryOptions};
use oci2vm::source::SourceOptions;
use oci2vm::store::Store;
use oci2vm::{Platform, Reference};

/// Global options, validated.
#[derive(Debug, Clone)]
pub struct Context {
    /// `--store` / `OCI2VM_STORE`.
    pub store: Option<PathBuf>,
    /// `--platform`.
    pub platform: Option<Platform>,
    /// `--creds`.
    pub creds: Option<(String, String)>,
    /// `--authfile`.
    pub authfile: Option<PathBuf>,
    /// `--tls-verify`.
    pub tls_verify: Option<bool>,
}

impl Context {
    /// Opens the store (creating it if needed).
    pub fn store(&self) -> anyhow::Result<Store> {
        let path = match &self.store {
            Some(p) => p.clone(),
            None => Store::default_path().map_err(oci2vm::Error::from)?,
        };
        Store::open(&path)
            .map_err(oci2vm::Error::from)
            .with_context(|| format!("opening the store {}", path.display()))
    }

    /// Source options from the global flags.
    pub fn source_options(&self) -> SourceOptions {
        SourceOptions {
            platform: self.platform.clone(),
            progress: true,
        }
    }

    /// A registry client when `reference` needs one.
    pub fn registry_for(&self, reference: &Reference) -> anyhow::Result<Option<RegistryClient>> {
        if !matches!(reference, Reference::Docker(_)) {
            return Ok(None);
        }
        let opts = RegistryOptions {
            creds: self.creds.clone(),
            authfile: self.authfile.clone(),
            tls_verify: self.tls_verify,
            ..RegistryOptions::default()
        };
        Ok(Some(
            RegistryClient::new(opts).map_err(oci2vm::Error::from)?,
        ))
    }
}

/// Parses a SOURCE argument.
pub fn parse_source(s: &str) -> anyhow::Result<Reference> {
    Ok(Reference::parse(s).map_err(oci2vm::Error::from)?)
}

/// Parses a size like `2G`, `512M`, `1048576`, `1.5G` (binary units: K, M, G, T; optional `i`,
/// `B`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_suffix(['b', 'B']).unwrap_or(t);
    let t = t.strip_suffix(['i', 'I']).unwrap_or(t);
    let (num, mul) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mul: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown size unit in {s:?} (use K, M, G or T)")),
            };
            (&t[..i], mul)
        }
        _ => (t, 1),
    };
    let v: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("invalid size {s:?}"));
    }
    let bytes = v * mul as f64;
    if bytes > u64::MAX as f64 / 2.0 {
        return Err(format!("size {s:?} is too large"));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "G", "-1G", "2X", "nan", "1e300T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}

/// `-v`/`--verbose` after a subcommand (every subcommand but `run`, whose `-v` is `--volume`
/// as in `docker run`; `run` takes `--verbose`).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Verbosity {
    /// More logging on stderr (-v info, -vv debug).
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
}
