//! One module per verb; each takes the shared [`Context`] and its own arguments.

pub mod images;
pub mod inspect;
pub mod prune;
pub mod pull;

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
