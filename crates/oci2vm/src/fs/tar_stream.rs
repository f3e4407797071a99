//! The flattened tar of a one-layer image, written while its layer is applied: no spool, no
//! second pass. Layers made by Docker, BuildKit, umoci, buildah or `tar --sort=name` list
//! entries in exactly the order [`super::tar`] emits (parents first, siblings sorted by raw
//! name bytes), so each entry's header and data can go to the output the moment it is applied.
//!
//! ```text
//! entry applied --(new entries in walk order, nothing earlier changed)--> header + data + pad
//!               --(out of order, a duplicate, an attribute change)-->     stream abandoned:
//!                  the output file becomes a plain spool (data appended), and `finish`
//!                  writes the tar again from the final tree (same bytes as `tar::write_to`)
//! ```
//!
//! Either way the result is byte-identical to [`super::tar::write_to`] on the same tree: the
//! stream is only kept when it is a prefix-complete copy of that walk.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::tar::{TarStats, Writer, write_to};
use super::{FsError, parent_of};
use crate::layers::error::LayerError;
use crate::layers::spool::{ContentRef, Spool};
use crate::layers::stream::{Applied, ApplySink};
use crate::layers::tree::{InodeId, NodeId, Tree};
use crate::layers::{DataSource, SinkError};

/// Counts bytes written (the output offset of file data).
struct Counting<W> {
    inner: W,
    pos: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// An [`ApplySink`] writing the flattened tar of a one-layer image to a file.
pub struct TarStream {
    path: PathBuf,
    tmp: tempfile::NamedTempFile,
    w: Writer<'static, Counting<BufWriter<File>>>,
    segment: u32,
    /// The output so far is exactly the start of the final walk.
    valid: bool,
    /// Nodes `0..emitted` are in the output.
    emitted: u32,
    /// Path of the last node written (the walk must keep increasing).
    last: Vec<u8>,
    /// The name carrying the data of each non-directory inode written.
    first: HashMap<InodeId, NodeId>,
}

impl std::fmt::Debug for TarStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarStream")
            .field("path", &self.path)
            .field("valid", &self.valid)
            .field("emitted", &self.emitted)
            .finish_non_exhaustive()
    }
}

/// Pre-order position of two `/`-joined paths: component by component, a parent first.
fn walk_order(a: &[u8], b: &[u8]) -> Ordering {
    // the root's path is empty: one empty component, below every name
    a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/'))
}

impl TarStream {
    /// Starts the tar at `path` (written to a temporary name beside it and renamed by
    /// [`finish`](Self::finish)); file data lands in the output, which `spool` learns as a
    /// segment so the tree can point into it.
    pub fn create(path: &Path, spool: &mut Spool) -> Result<TarStream, FsError> {
        let werr = |source| FsError::Write {
            path: path.to_path_buf(),
            source,
        };
        super::check_output_file(path)?;
        let tmp = tempfile::Builder::new()
            .prefix(".oci2vm-tar-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(parent_of(path))
            .map_err(werr)?;
        let reader = tmp.as_file().try_clone().map_err(werr)?;
        let writer = tmp.as_file().try_clone().map_err(werr)?;
        let segment = spool.add_file(reader).map_err(werr)?;
        Ok(TarStream {
            path: path.to_path_buf(),
            tmp,
            w: Writer::new(
                Counting {
                    inner: BufWriter::with_capacity(1 << 20, writer),
                    pos: 0,
                },
                None,
            ),
            segment,
            valid: true,
            emitted: 0,
            last: Vec::new(),
            first: HashMap::new(),
        })
    }

    /// Whether the output is still being written in stream order (false once the layer's
    /// order or a change to an earlier entry forced a rewrite at the end).
    pub fn streaming(&self) -> bool {
        self.valid
    }

    /// Writes node `node` (not the root) if it keeps the walk order; clears `valid` if not.
    fn emit(&mut self, tree: &Tree, node: NodeId) -> io::Result<()> {
        let n = tree.node(node);
        let path = tree.path(node);
        if !n.live || walk_order(&path, &self.last) != Ordering::Greater {
            self.valid = false;
            return Ok(());
        }
        let ino = tree.inode(n.inode);
        let mut link = None;
        if !ino.is_dir() {
            match self.first.get(&n.inode) {
                Some(first) => link = Some(tree.path(*first)),
                None => {
                    self.first.insert(n.inode, node);
                }
            }
        }
        let mut name = path.clone();
        if ino.is_dir() {
            name.push(b'/');
        }
        self.w.header(tree, node, &name, link.as_deref())?;
        self.last = path;
        Ok(())
    }

    fn emit_root(&mut self, tree: &Tree) -> io::Result<()> {
        if self.emitted == 0 {
            self.w.header(tree, tree.root(), b"./", None)?;
            self.emitted = 1;
        }
        Ok(())
    }

    /// Ends the archive and renames it into place; if the stream was abandoned, writes the
    /// tar again from `tree` (file data read back from `spool`, which holds the output).
    pub fn finish(mut self, tree: &Tree, spool: &Spool) -> Result<TarStats, FsError> {
        let out = self.path.clone();
        let werr = |source| FsError::Write {
            path: out.clone(),
            source,
        };
        if self.valid {
            self.emit_root(tree).map_err(werr)?;
            if self.emitted as usize != tree.node_count() {
                self.valid = false;
            }
        }
        if self.valid {
            self.w.out.write_all(&[0u8; 1024]).map_err(werr)?;
        }
        self.w.out.flush().map_err(werr)?;
        if !self.valid {
            tracing::debug!(path = %self.path.display(), "layer not in walk order: tar rewritten");
            return write_to(tree, spool, &self.path);
        }
        let stats = self.w.stats.clone();
        let TarStream { tmp, path, .. } = self;
        tmp.persist(&path).map_err(|e| FsError::Write {
            path: path.clone(),
            source: e.error,
        })?;
        Ok(stats)
    }
}

impl ApplySink for TarStream {
    fn applied(
        &mut self,
        tree: &Tree,
        ev: &Applied,
        data: &mut dyn DataSource,
    ) -> Result<Option<ContentRef>, SinkError> {
        if self.valid && ev.changed.is_some_and(|c| c.0 < self.emitted) {
            self.valid = false;
        }
        if self.valid && !ev.new.is_empty() {
            self.emit_root(tree).map_err(LayerError::Spool)?;
            for id in ev.new.clone() {
                self.emit(tree, NodeId(id)).map_err(LayerError::Spool)?;
                if !self.valid {
                    break;
                }
                self.emitted = id + 1;
            }
        }
        let Some(node) = ev.file else {
            return Ok(None);
        };
        // while valid, `node` (the last new entry) was just written: its data follows
        let keep = self.valid && self.emitted == node.0 + 1;
        let offset = self.w.out.pos;
        let len = data.copy_to(&mut self.w.out)?;
        if keep {
            self.w.stats.data_bytes += len;
            self.w.pad(len).map_err(LayerError::Spool)?;
        }
        Ok(Some(ContentRef {
            segment: self.segment,
            offset,
            len,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_order_is_component_wise() {
        assert_eq!(walk_order(b"a", b""), Ordering::Greater);
        assert_eq!(walk_order(b"a/b", b"a"), Ordering::Greater);
        // "a/b" comes before "a-b" in a walk although '-' < '/' in bytes
        assert_eq!(walk_order(b"a-b", b"a/b"), Ordering::Greater);
        assert_eq!(walk_order(b"a/z", b"b"), Ordering::Less);
        assert_eq!(walk_order(b"a", b"a"), Ordering::Equal);
    }
}
