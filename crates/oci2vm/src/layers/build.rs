//! Building the merged tree from a list of layers: decompress and parse layers in parallel,
//! apply them strictly in order.
//!
//! ```text
//! per layer (worker threads, several layers at once):
//!   blob --[sha256 if asked]--> decoder (inflate thread) --1 MiB chunks--> parse thread:
//!   sha256 (DiffID) + byte budget -> strict tar reader -> file data appended once to the
//!   layer's spool segment (an unnamed scratch file in spool_dir) -> ordered entry list
//! main thread: receives layers, applies layer i as soon as 0..i are applied
//! ```
//!
//! A one-layer image skips the ordered-apply stage: [`super::stream::build_single`] applies
//! each entry as it is parsed and hands its data to a sink (a scratch segment here).
//!
//! After the tar end marker the stream is drained to its end so trailing bytes are hashed
//! into the DiffID (T69, ggcr `d807d512`). The lowest failing layer's error is reported.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use super::apply::{Applier, ApplyOptions, ApplyStats};
use super::decompress::{self, BudgetReader, Compression, HashingReader};
use super::entry::{LayerEntry, prepare};
use super::error::{EntryError, LayerError};
use super::spool::{ContentRef, Spool};
use super::stream::{ScratchSink, build_single};
use super::tar::{Entry, EntryKind, TarError, TarErrorKind, TarReader};
use super::tree::{Timestamp, Tree};
use crate::digest::{Digest, Hasher};

/// One layer to apply.
#[derive(Debug)]
pub struct LayerInput<R> {
    /// The compressed blob digest (named in messages; verified when `verify_digest`).
    pub digest: Digest,
    /// The expected DiffID (`config.rootfs.diff_ids[i]`), verified when given.
    pub diff_id: Option<Digest>,
    /// The descriptor media type.
    pub media_type: String,
    /// The blob bytes (compressed as the media type says, or as sniffed).
    pub reader: R,
    /// Also hash the compressed stream and compare with `digest` (when the caller has not).
    pub verify_digest: bool,
}

/// What happened to one layer.
#[derive(Debug, Clone)]
pub struct LayerReport {
    /// The blob digest.
    pub digest: Digest,
    /// The DiffID computed from the uncompressed stream (trailing bytes included).
    pub diff_id: Digest,
    /// The compression actually found.
    pub compression: Compression,
    /// Uncompressed bytes.
    pub uncompressed_bytes: u64,
    /// Apply counters and warnings.
    pub stats: ApplyStats,
    /// Reader warnings (media-type mismatch, missing end marker, global headers).
    pub warnings: Vec<String>,
}

/// What happened, per layer.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One report per layer, bottom first.
    pub layers: Vec<LayerReport>,
}

/// A layer input over a boxed blob reader.
pub type BlobInput = LayerInput<Box<dyn Read + Send>>;

struct Parsed {
    entries: Vec<LayerEntry>,
    segment: File,
    diff_id: Digest,
    compression: Compression,
    bytes: u64,
    warnings: Vec<String>,
}

pub(super) struct Shared<'a> {
    pub(super) opts: &'a ApplyOptions,
    pub(super) budget: Arc<AtomicU64>,
    pub(super) entries: AtomicU64,
    pub(super) cancel: AtomicBool,
}

impl<'a> Shared<'a> {
    pub(super) fn new(opts: &'a ApplyOptions) -> Self {
        Shared {
            opts,
            budget: Arc::new(AtomicU64::new(0)),
            entries: AtomicU64::new(0),
            cancel: AtomicBool::new(false),
        }
    }
}

/// The tree before any layer: a root directory (0755 root:root, `SOURCE_DATE_EPOCH` or 0).
pub(super) fn empty_tree(opts: &ApplyOptions) -> Tree {
    let mtime = Timestamp::from_secs(opts.source_date_epoch.unwrap_or(0));
    Tree::new(0o755, 0, 0, mtime)
}

const CHUNK: usize = 1 << 20;
/// Compressed chunks the read stage may run ahead of the decoder.
const RAW_DEPTH: usize = 4;

/// Builds the merged tree from `layers` (bottom first). File contents go to unnamed scratch
/// files in `spool_dir` (which the caller owns); the returned [`Spool`] reads them back.
pub fn build_tree(
    layers: Vec<LayerInput<Box<dyn Read + Send>>>,
    opts: &ApplyOptions,
    spool_dir: &Path,
) -> Result<(Tree, Spool, Report), LayerError> {
    let n = layers.len();
    if n > opts.limits.layers {
        return Err(LayerError::TooManyLayers {
            count: n,
            limit: opts.limits.layers,
        });
    }
    let mut layers = layers;
    if n == 1
        && let Some(layer) = layers.pop()
    {
        return build_one(layer, opts, spool_dir);
    }
    let digests: Vec<Digest> = layers.iter().map(|l| l.digest.clone()).collect();
    let queue: Mutex<Vec<Option<BlobInput>>> = Mutex::new(layers.into_iter().map(Some).collect());
    let next = AtomicUsize::new(0);
    let shared = Shared::new(opts);
    let mut tree = empty_tree(opts);
    let mut spool = Spool::new();
    let mut report = Report::default();
    let workers = std::thread::available_parallelism()
        .map_or(1, |c| c.get())
        .clamp(1, n.max(1));
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Result<Parsed, LayerError>)>();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (queue, next, shared) = (&queue, &next, &shared);
            s.spawn(move || {
                loop {
                    if shared.cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let input = queue.lock().ok().and_then(|mut q| q[i].take());
                    let Some(input) = input else { break };
                    let r = parse_layer(i, input, shared, spool_dir);
                    if r.is_err() {
                        shared.cancel.store(true, Ordering::Relaxed);
                    }
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut pending: BTreeMap<usize, Result<Parsed, LayerError>> = BTreeMap::new();
        let mut want = 0;
        for (i, r) in rx.iter() {
            pending.insert(i, r);
            while let Some(r) = pending.remove(&want) {
                let applied = r.and_then(|p| {
                    apply_layer(want, p, &digests[want], opts, &mut tree, &mut spool)
                });
                match applied {
                    Ok(lr) => report.layers.push(lr),
                    Err(e) => {
                        shared.cancel.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
                want += 1;
            }
        }
        if want < n {
            return Err(LayerError::Panicked);
        }
        Ok(())
    })?;
    Ok((tree, spool, report))
}

/// One layer: applied while it streams, contents appended to one scratch segment.
fn build_one(
    layer: BlobInput,
    opts: &ApplyOptions,
    spool_dir: &Path,
) -> Result<(Tree, Spool, Report), LayerError> {
    let file = tempfile::tempfile_in(spool_dir).map_err(LayerError::Spool)?;
    let mut spool = Spool::new();
    let reader = file.try_clone().map_err(LayerError::Spool)?;
    let segment = spool.add_file(reader).map_err(LayerError::Spool)?;
    let mut sink = ScratchSink::new(file, segment);
    let (tree, report) = build_single(layer, opts, &mut sink)?;
    sink.finish().map_err(LayerError::Spool)?;
    Ok((tree, spool, report))
}

fn apply_layer(
    i: usize,
    p: Parsed,
    digest: &Digest,
    opts: &ApplyOptions,
    tree: &mut Tree,
    spool: &mut Spool,
) -> Result<LayerReport, LayerError> {
    let seg = spool.add_file(p.segment).map_err(LayerError::Spool)?;
    assert_eq!(
        seg as usize,
        i + 1,
        "spool segments are added in layer order"
    );
    let layer = u32::try_from(i).expect("fewer than 2^32 layers");
    let mut applier = Applier::new(tree, opts, layer);
    for e in &p.entries {
        applier.apply(e).map_err(|source| LayerError::Entry {
            layer: digest.clone(),
            index: e.index,
            path: String::from_utf8_lossy(&e.raw_path).into_owned(),
            source,
        })?;
    }
    Ok(LayerReport {
        digest: digest.clone(),
        diff_id: p.diff_id,
        compression: p.compression,
        uncompressed_bytes: p.bytes,
        stats: applier.stats,
        warnings: p.warnings,
    })
}

/// Marks a decoder error inside the chunk stream.
#[derive(Debug, thiserror::Error)]
#[error("decoder failed")]
struct InflateError(#[source] io::Error);

fn parse_layer(
    i: usize,
    input: LayerInput<Box<dyn Read + Send>>,
    sh: &Shared<'_>,
    spool_dir: &Path,
) -> Result<Parsed, LayerError> {
    let segment = tempfile::tempfile_in(spool_dir).map_err(LayerError::Spool)?;
    let seg_index = u32::try_from(i + 1).expect("fewer than 2^32 layers");
    let mut collect = Collect {
        spool: ScratchSink::new(segment, seg_index),
        entries: Vec::new(),
        limits: &sh.opts.limits,
    };
    let meta = parse_stream(input, sh, &mut collect)?;
    let segment = collect.spool.finish().map_err(LayerError::Spool)?;
    Ok(Parsed {
        entries: collect.entries,
        segment,
        diff_id: meta.diff_id,
        compression: meta.compression,
        bytes: meta.bytes,
        warnings: meta.warnings,
    })
}

/// What a parsed layer stream was, besides its entries.
pub(super) struct StreamMeta {
    pub(super) diff_id: Digest,
    pub(super) compression: Compression,
    pub(super) bytes: u64,
    pub(super) warnings: Vec<String>,
}

/// A file entry's data, read straight off the layer's tar stream.
pub trait DataSource {
    /// Copies all of the current entry's data to `w` and returns its length.
    fn copy_to(&mut self, w: &mut dyn Write) -> Result<u64, LayerError>;
}

struct TarData<'a, R> {
    tar: &'a mut TarReader<R>,
    buf: &'a mut [u8],
    layer: &'a Digest,
}

impl<R: Read> DataSource for TarData<'_, R> {
    fn copy_to(&mut self, w: &mut dyn Write) -> Result<u64, LayerError> {
        self.tar
            .copy_data(w, self.buf)
            .map_err(|e| map_tar(self.layer, e))
    }
}

/// Why a handler or an output sink refused an entry.
#[derive(Debug)]
pub enum SinkError {
    /// The entry itself (the caller names the layer, the entry's index and its path).
    Entry(EntryError),
    /// Anything else (already names what it is about).
    Layer(LayerError),
}

impl From<LayerError> for SinkError {
    fn from(e: LayerError) -> Self {
        SinkError::Layer(e)
    }
}

/// What the parse loop does with each entry of a layer.
pub(super) trait Handler {
    fn entry(&mut self, e: Entry, data: &mut dyn DataSource) -> Result<(), SinkError>;
}

/// Spools file data to the layer's segment and keeps the validated entries for later.
struct Collect<'a> {
    spool: ScratchSink,
    entries: Vec<LayerEntry>,
    limits: &'a super::Limits,
}

impl Handler for Collect<'_> {
    fn entry(&mut self, e: Entry, data: &mut dyn DataSource) -> Result<(), SinkError> {
        let content = if e.kind == EntryKind::File {
            self.spool.append(data)?
        } else {
            ContentRef::EMPTY
        };
        let entry = prepare(e, content, self.limits).map_err(SinkError::Entry)?;
        self.entries.push(entry);
        Ok(())
    }
}

/// Decompresses, hashes and parses one layer, handing each entry to `handler`; verifies the
/// DiffID (and the blob digest when asked) at the end.
pub(super) fn parse_stream(
    input: LayerInput<Box<dyn Read + Send>>,
    sh: &Shared<'_>,
    handler: &mut dyn Handler,
) -> Result<StreamMeta, LayerError> {
    std::thread::scope(|s| {
        let decoding = decode(s, input, &sh.opts.limits, CHUNK_DEPTH)?;
        parse_decoded(decoding, sh, handler)
    })
}

/// Decompressed chunks one layer may have waiting for its parser.
pub(super) const CHUNK_DEPTH: usize = 16;

/// The decoding side of one layer, running: the blob is read (and hashed when asked) on one
/// thread and inflated on another, ahead of the parser by at most `depth` chunks of 1 MiB.
pub(super) struct Decoding<'scope> {
    layer: Digest,
    diff_id: Option<Digest>,
    blob_hash: Option<super::decompress::HashedSource>,
    compression: Compression,
    warnings: Vec<String>,
    chunks: ChunkReader,
    read_stage: std::thread::ScopedJoinHandle<'scope, ()>,
}

impl Decoding<'_> {
    /// The layer's blob digest.
    pub(super) fn layer(&self) -> &Digest {
        &self.layer
    }
}

/// Starts decoding `input` on threads of `scope`. Dropping the result stops them (their
/// sends fail once nobody receives).
pub(super) fn decode<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    input: LayerInput<Box<dyn Read + Send>>,
    limits: &super::Limits,
    depth: usize,
) -> Result<Decoding<'scope>, LayerError> {
    let layer = input.digest.clone();
    let (blob, blob_hash): (Box<dyn Read + Send>, _) = if input.verify_digest {
        let (r, h) = HashingReader::new(input.reader, &layer);
        (Box::new(r), Some(h))
    } else {
        (input.reader, None)
    };
    let (raw_tx, raw_rx) = sync_channel::<io::Result<Vec<u8>>>(RAW_DEPTH);
    let (raw_free_tx, raw_free_rx) = sync_channel::<Vec<u8>>(RAW_DEPTH + 2);
    let (chunk_tx, chunk_rx) = sync_channel::<io::Result<Vec<u8>>>(depth);
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(depth + 2);
    let algo = input.diff_id.as_ref().unwrap_or(&layer).algorithm();
    // read stage: blob reads (and the blob digest, in the store's reader or ours) run on their
    // own thread, ahead of the decoder
    let mut blob = blob;
    let read_stage = scope.spawn(move || pump(&mut *blob, &raw_tx, &raw_free_rx, |e| e));
    let raw = ChunkReader {
        rx: raw_rx,
        free: raw_free_tx,
        cur: Vec::new(),
        pos: 0,
        hasher: None,
        total: 0,
    };
    let opened = decompress::open(
        &layer,
        &input.media_type,
        Box::new(raw),
        limits.zstd_window_log_max,
    )?;
    let mut decoder = opened.reader;
    scope.spawn(move || {
        pump(&mut *decoder, &chunk_tx, &free_rx, |e| {
            io::Error::other(InflateError(e))
        })
    });
    Ok(Decoding {
        layer,
        diff_id: input.diff_id,
        blob_hash,
        compression: opened.compression,
        warnings: opened.warning.into_iter().collect(),
        chunks: ChunkReader {
            rx: chunk_rx,
            free: free_tx,
            cur: Vec::new(),
            pos: 0,
            hasher: Some(algo.hasher()),
            total: 0,
        },
        read_stage,
    })
}

/// Hashes (DiffID) and parses a decoding layer, handing each entry to `handler`; verifies the
/// DiffID (and the blob digest when asked) at the end.
pub(super) fn parse_decoded(
    d: Decoding<'_>,
    sh: &Shared<'_>,
    handler: &mut dyn Handler,
) -> Result<StreamMeta, LayerError> {
    let Decoding {
        layer,
        diff_id: expected,
        blob_hash,
        compression,
        mut warnings,
        chunks,
        read_stage,
    } = d;
    let limits = &sh.opts.limits;
    let mut tar = TarReader::new(
        BudgetReader::new(chunks, sh.budget.clone(), limits.total_bytes),
        limits.special_header,
    );
    let mut buf = vec![0u8; 256 << 10];
    let tar_err = |e: TarError| map_tar(&layer, e);
    while let Some(e) = tar.next_entry().map_err(tar_err)? {
        let count = sh.entries.fetch_add(1, Ordering::Relaxed) + 1;
        let index = e.index;
        let raw = e.path.clone();
        let entry_err = |source: EntryError| LayerError::Entry {
            layer: layer.clone(),
            index,
            path: String::from_utf8_lossy(&raw).into_owned(),
            source,
        };
        if count > limits.entries {
            return Err(entry_err(EntryError::Entries {
                limit: limits.entries,
            }));
        }
        let mut data = TarData {
            tar: &mut tar,
            buf: &mut buf,
            layer: &layer,
        };
        match handler.entry(e, &mut data) {
            Ok(()) => {}
            Err(SinkError::Entry(source)) => return Err(entry_err(source)),
            Err(SinkError::Layer(err)) => return Err(err),
        }
    }
    warnings.extend(tar.warnings().iter().map(|w| format!("layer {layer}: {w}")));
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let mut budget = tar.into_inner();
    io::copy(&mut budget, &mut io::sink()).map_err(|e| map_io(&layer, e))?;
    let chunks = budget.into_inner();
    let bytes = chunks.bytes_hashed();
    let diff_id = chunks.finish(&layer);
    // the decoder reached the blob's end, so the read stage has finished (or failed)
    read_stage.join().map_err(|_| LayerError::Panicked)?;
    if let Some(expected) = &expected
        && expected != &diff_id
    {
        return Err(LayerError::DiffId {
            layer: layer.clone(),
            expected: expected.clone(),
            actual: diff_id,
        });
    }
    if let Some(actual) = blob_hash.and_then(|h| h.digest())
        && actual != layer
    {
        return Err(LayerError::BlobDigest {
            layer: layer.clone(),
            actual,
        });
    }
    Ok(StreamMeta {
        diff_id,
        compression,
        bytes,
        warnings,
    })
}

fn map_io(layer: &Digest, e: io::Error) -> LayerError {
    if let Some(limit) = decompress::budget_exceeded(&e) {
        return LayerError::TooLarge {
            layer: layer.clone(),
            limit,
        };
    }
    match e.get_ref().and_then(|i| i.downcast_ref::<InflateError>()) {
        Some(_) => {
            let inner = e
                .into_inner()
                .and_then(|b| b.downcast::<InflateError>().ok());
            LayerError::Decompress {
                layer: layer.clone(),
                source: inner.map_or_else(|| io::Error::other("decoder failed"), |b| b.0),
            }
        }
        // not from the chunk stream (decoder errors are wrapped): writing the spool failed
        None => LayerError::Spool(e),
    }
}

fn map_tar(layer: &Digest, e: TarError) -> LayerError {
    match e.kind {
        TarErrorKind::Io(io) => map_io(layer, io),
        _ => LayerError::Tar {
            layer: layer.clone(),
            source: e,
        },
    }
}

/// Reads `src` to its end in [`CHUNK`]s and sends them on (empty buffers come back on
/// `free`); a read error, mapped by `wrap`, ends the stream. Returns when the receiver hangs up.
fn pump(
    src: &mut dyn Read,
    tx: &SyncSender<io::Result<Vec<u8>>>,
    free: &Receiver<Vec<u8>>,
    wrap: impl Fn(io::Error) -> io::Error,
) {
    loop {
        let mut buf = free.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        let result = loop {
            match src.read(&mut buf[filled..]) {
                Ok(0) => break Ok(true),
                Ok(k) => {
                    filled += k;
                    if filled == buf.len() {
                        break Ok(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.truncate(filled);
        let (send, end) = match result {
            Ok(eof) => (Ok(buf), eof),
            Err(e) => (Err(wrap(e)), true),
        };
        if tx.send(send).is_err() || end {
            return;
        }
    }
}

/// Reads the chunks of a [`pump`] thread, hashing them when asked (DiffID).
struct ChunkReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    free: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    hasher: Option<Hasher>,
    total: u64,
}

impl ChunkReader {
    fn bytes_hashed(&self) -> u64 {
        self.total
    }

    fn finish(self, algo_of: &Digest) -> Digest {
        self.hasher
            .unwrap_or_else(|| algo_of.algorithm().hasher())
            .finish()
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            let old = std::mem::take(&mut self.cur);
            if old.capacity() > 0 {
                let _ = self.free.try_send(old);
            }
            self.pos = 0;
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    if let Some(h) = self.hasher.as_mut() {
                        h.update(&chunk);
                    }
                    self.total += chunk.len() as u64;
                    self.cur = chunk;
                    if self.cur.is_empty() {
                        return Ok(0);
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
