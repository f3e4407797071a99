//! oci2vm: turn any container image into a virtual machine.
//!
//! The library holds all behaviour; the `oci2vm` binary only parses arguments and wires the
//! stages together. The stages follow the pipeline (see `ARCHITECTURE.md`):
//!
//! ```text
//! reference/digest/platform -> registry -> store -> layers -> fs -> disk
//!                                                    guest -> vmm
//! ```
//!
//! Data flows one way; no stage reaches back into an earlier one.

pub mod assets;
pub mod convert;
pub mod digest;
pub mod error;
pub mod fs;
pub mod guest;
pub mod image;
pub mod layers;
pub mod platform;
pub mod reference;
pub mod registry;
pub mod source;
pub mod store;
pub mod vmm;

pub use digest::{Algorithm, Digest};
pub use error::{Error, ErrorKind};
pub use platform::Platform;
pub use reference::Reference;
