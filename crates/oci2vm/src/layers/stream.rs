//! Single-layer builds: entries are applied as they come off the layer stream, and a sink
//! places each file's data while it streams by (into a spool segment, or straight into an
//! output such as the flattened tar).
//!
//! ```text
//! blob -> inflate -> strict tar reader -> prepare -> apply (tree) -> sink.applied(tree, ev, data)
//!                                                                     ScratchSink: data -> spool
//!                                                                     fs::tar::TarStream: header
//!                                                                       + data -> output file
//! ```
//!
//! With one layer nothing below it can change what an entry means, so applying in stream
//! order gives the same tree as applying after the whole layer was parsed; the DiffID is still
//! verified at the end, before the caller publishes anything.
//!
//! A writer that wants file data placed straight into its output (the flattened tar in
//! `fs::tar_stream`; an ext4 image's data blocks — the "direct segment" idea) implements
//! [`ApplySink`]: it receives each entry right after it is applied and decides where the
//! file's bytes go, returning the [`ContentRef`] the tree keeps (segment = its output file).

use std::fs::File;
use std::io::{self, BufWriter};
use std::ops::Range;

use super::apply::{Applier, ApplyOptions};
use super::build::{
    BlobInput, CHUNK_DEPTH, DataSource, Handler, LayerReport, Report, Shared, SinkError, decode,
    empty_tree, parse_decoded,
};
use super::entry::prepare;
use super::error::LayerError;
use super::spool::ContentRef;
use super::tar::{Entry, EntryKind};
use super::tree::{InodeKind, NodeId, Tree};

/// What applying one entry did, as a sink sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The lowest-numbered entry that existed before and was changed or removed.
    pub changed: Option<NodeId>,
    /// Entries this one created, in creation order (implied parents first): node ids.
    pub new: Range<u32>,
    /// The regular file this entry created; its data is read next through the data source.
    pub file: Option<NodeId>,
}

/// Receives a single-layer build's entries as they are applied.
pub trait ApplySink {
    /// Called after each entry is applied. When `ev.file` is set, the sink must take the
    /// file's data from `data` and return where it now lives; otherwise it returns `None`
    /// (unread data is skipped).
    fn applied(
        &mut self,
        tree: &Tree,
        ev: &Applied,
        data: &mut dyn DataSource,
    ) -> Result<Option<ContentRef>, SinkError>;
}

/// Appends file data to one spool segment.
#[derive(Debug)]
pub struct ScratchSink {
    out: BufWriter<File>,
    segment: u32,
    offset: u64,
}

impl ScratchSink {
    /// A sink appending to `file`, registered in the spool as `segment`.
    pub fn new(file: File, segment: u32) -> Self {
        ScratchSink {
            out: BufWriter::with_capacity(1 << 20, file),
            segment,
            offset: 0,
        }
    }

    /// Flushes what is buffered (the spool reads the segment through another handle).
    pub fn finish(self) -> io::Result<File> {
        self.out
            .into_inner()
            .map_err(io::IntoInnerError::into_error)
    }

    /// Appends one file's data and returns where it landed.
    pub fn append(&mut self, data: &mut dyn DataSource) -> Result<ContentRef, LayerError> {
        let len = data.copy_to(&mut self.out)?;
        let c = ContentRef {
            segment: self.segment,
            offset: self.offset,
            len,
        };
        self.offset += len;
        Ok(c)
    }
}

/// A sink that only places file data (the tree's shape does not matter to it); it is an
/// [`ApplySink`] that takes the data of every file entry.
pub trait PlaceData {
    /// Takes one file's data and returns where it now lives.
    fn place_data(&mut self, data: &mut dyn DataSource) -> Result<ContentRef, SinkError>;
}

impl<T: PlaceData> ApplySink for T {
    fn applied(
        &mut self,
        _tree: &Tree,
        ev: &Applied,
        data: &mut dyn DataSource,
    ) -> Result<Option<ContentRef>, SinkError> {
        if ev.file.is_none() {
            return Ok(None);
        }
        self.place_data(data).map(Some)
    }
}

impl PlaceData for ScratchSink {
    fn place_data(&mut self, data: &mut dyn DataSource) -> Result<ContentRef, SinkError> {
        Ok(self.append(data)?)
    }
}

struct Inline<'a, 't> {
    applier: Applier<'t>,
    sink: &'a mut dyn ApplySink,
    opts: &'a ApplyOptions,
}

impl Handler for Inline<'_, '_> {
    fn entry(&mut self, e: Entry, data: &mut dyn DataSource) -> Result<(), SinkError> {
        let is_file = e.kind == EntryKind::File;
        // the real place is known once the sink has taken the data
        let pending = ContentRef {
            len: e.size,
            ..ContentRef::EMPTY
        };
        let entry = prepare(e, pending, &self.opts.limits).map_err(SinkError::Entry)?;
        let before = node_id(self.applier.tree());
        self.applier.apply(&entry).map_err(SinkError::Entry)?;
        let events = self.applier.events();
        let ev = Applied {
            changed: events.changed,
            new: before..node_id(self.applier.tree()),
            file: events.created.filter(|_| is_file),
        };
        let placed = self.sink.applied(self.applier.tree(), &ev, data)?;
        if let Some(node) = ev.file {
            let Some(content) = placed else {
                return Err(SinkError::Layer(LayerError::Spool(io::Error::other(
                    "the output sink did not take a file's data",
                ))));
            };
            let tree = self.applier.tree_mut();
            let ino = tree.node(node).inode;
            if let InodeKind::File { content: c } = &mut tree.inode_mut(ino).kind {
                *c = content;
            }
        }
        Ok(())
    }
}

fn node_id(tree: &Tree) -> u32 {
    u32::try_from(tree.node_count()).expect("fewer than 2^32 nodes")
}

/// Builds the tree of a one-layer image, applying entries as they stream and handing each
/// to `sink`. The layer's DiffID (and blob digest when asked) is verified before returning.
pub fn build_single(
    input: BlobInput,
    opts: &ApplyOptions,
    sink: &mut dyn ApplySink,
) -> Result<(Tree, Report), LayerError> {
    build_streamed(vec![input], opts, sink)
}

/// Builds the merged tree of `layers` (bottom first) one layer after the other, each applied
/// while it streams (its inflate and read stages still run on their own threads), handing
/// every entry to `sink`. Because every lower layer is complete before a layer starts,
/// applying in stream order gives the same tree as [`super::build_tree`]; the sink sees the
/// data of every file of every layer, in order, so where it places data is deterministic.
/// Each layer's DiffID (and blob digest when asked) is verified at the end of that layer.
pub fn build_streamed(
    layers: Vec<BlobInput>,
    opts: &ApplyOptions,
    sink: &mut dyn ApplySink,
) -> Result<(Tree, Report), LayerError> {
    if layers.len() > opts.limits.layers {
        return Err(LayerError::TooManyLayers {
            count: layers.len(),
            limit: opts.limits.layers,
        });
    }
    let shared = Shared::new(opts);
    let mut tree = empty_tree(opts);
    let mut report = Report::default();
    std::thread::scope(|s| {
        let mut inputs = layers.into_iter();
        let mut next = inputs
            .next()
            .map(|first| decode(s, first, &opts.limits, CHUNK_DEPTH));
        let mut i = 0u32;
        while let Some(current) = next.take() {
            // a layer that could not even start decoding is reported only once every layer
            // below it applied (the lowest failing layer is the one reported)
            let current = current?;
            // the next layer starts decoding now, up to LOOKAHEAD chunks ahead, on the cores
            // this layer's parser leaves idle; it is applied only after this one
            next = inputs
                .next()
                .map(|input| decode(s, input, &opts.limits, LOOKAHEAD));
            let digest = current.layer().clone();
            let mut inline = Inline {
                applier: Applier::new(&mut tree, opts, i),
                sink: &mut *sink,
                opts,
            };
            let meta = parse_decoded(current, &shared, &mut inline)?;
            let stats = inline.applier.stats;
            report.layers.push(LayerReport {
                digest,
                diff_id: meta.diff_id,
                compression: meta.compression,
                uncompressed_bytes: meta.bytes,
                stats,
                warnings: meta.warnings,
            });
            i += 1;
        }
        Ok::<(), LayerError>(())
    })?;
    Ok((tree, report))
}

/// Chunks of 1 MiB the next layer may decode ahead of its turn (bounded memory).
const LOOKAHEAD: usize = 32;
