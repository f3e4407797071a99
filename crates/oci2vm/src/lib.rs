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

pub mod digest;
pub mod error;
pub mod fs;
pub mod guest;
pub mod layers;
pub mod vmm;

pub use digest::{Algorithm, Digest};
pub use error::{Error, ErrorKind};
