//! Layers: decompress, parse tar entries, apply them in order into the merged tree.
//!
//! [`tree`] is the merged-tree data model every writer (tar, dir, ext4, cpio) reads;
//! [`spool`] holds the file contents the tree points into. [`build_tree`] is the entry point:
//! blobs in, `(Tree, Spool, Report)` out.
//!
//! ```text
//! blob -> decompress (sniffed) -> tar (strict reader) -> entry (validated) -> apply -> tree
//! ```

pub mod apply;
pub mod blocks;
pub mod build;
pub mod decompress;
pub mod entry;
pub mod error;
pub mod limits;
pub mod path;
pub mod spool;
pub mod stream;
pub mod tar;
pub mod tree;

pub use apply::{ApplyOptions, ApplyStats};
pub use blocks::{BlockMap, BlockSink, Run};
pub use build::{BlobInput, DataSource, LayerInput, LayerReport, Report, SinkError, build_tree};
pub use error::{EntryError, LayerError};
pub use limits::Limits;
pub use stream::{Applied, ApplySink, PlaceData, ScratchSink, build_single, build_streamed};
