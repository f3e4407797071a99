//! Arbitrary bytes as 1-3 layers (some gzip-wrapped) streamed into an ext4 image
//! (`build_streamed` + `Ext4Image`), block size and options chosen by control bytes.
//!
//! Properties: nothing panics; the streamed and the spooled layer paths accept the same
//! inputs and build the same tree with the same file bytes; an accepted tree becomes an image
//! that ext4-view (the project's test oracle) loads, where every entry has the tree's type,
//! mode, owner, mtime and size, every regular file the spool's bytes and every symlink its
//! target; `write_ext4` of the spooled tree gives an image with the same listing.
//!
//! Input: byte 0 layer count (1-3), bytes 1-2 split points (as `tar_apply`, so the two
//! targets share seeds), byte 3 gzip mask (bit i wraps layer i), byte 4 options (bits 0-1
//! block size None/1024/2048/4096, bit 2 journal, bit 3 no metadata_csum, bit 4 no htree,
//! bit 5 a fixed 2 MiB size, bit 6 a fixed timestamp), the layers from byte 5.
//!
//! `OCI2VM_FUZZ_FSCK=1` also runs `e2fsck -fn` on every image made and prints what was
//! accepted (slow; for replaying a corpus with `-runs=0`).
#![no_main]

mod support;

use support::inputs;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use ext4_view::Ext4;
use libfuzzer_sys::fuzz_target;
use oci2vm::fs::ext4::{Ext4Error, Ext4Image, Ext4Options, write_ext4};
use oci2vm::layers::spool::{Segment, Spool};
use oci2vm::layers::tree::{InodeKind, NodeId, Tree};
use oci2vm::layers::{ApplyOptions, build_streamed, build_tree};

/// ext4-view refuses paths longer than this (`resolve.rs`).
const VIEW_PATH_MAX: usize = 4096;
/// ext4-view refuses path components longer than this, also in symlink targets.
const VIEW_NAME_MAX: usize = 255;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip to memory");
    e.finish().expect("gzip to memory")
}

/// One entry as both sides can describe it.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    /// Read back in full: kind letter, mode, uid, gid, mtime (s, ns), size, file bytes or
    /// symlink target.
    Seen {
        kind: char,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: (i64, u32),
        size: u64,
        data: Option<Vec<u8>>,
    },
    /// ext4-view cannot read this inode: the low 32 bits of its on-disk seconds have the
    /// sign bit set (ext4-view refuses them; Linux reads them as pre-1970 or 2038-2106), or its
    /// path is too long. Its subtree is not listed.
    Unreadable,
}

type Listing = BTreeMap<Vec<u8>, Entry>;

/// The seconds ext4-view reads back for `sec`: ext4 keeps -2^31 ..= 2^31 - 1 + 3 * 2^32 (the
/// writer clamps to that), as the low 32 bits plus two epoch bits.
fn view_seconds(sec: i64) -> Option<i64> {
    let sec = sec.clamp(i64::from(i32::MIN), i64::from(i32::MAX) + (3 << 32));
    (sec.rem_euclid(1 << 32) < 1 << 31).then_some(sec)
}

fn view_can_read(tree: &Tree, n: NodeId, path_len: usize) -> bool {
    view_seconds(tree.inode_of(n).mtime.sec).is_some() && path_len <= VIEW_PATH_MAX
}

fn content(spool: &Spool, c: &oci2vm::layers::spool::ContentRef) -> Vec<u8> {
    let len = usize::try_from(c.len).expect("small contents");
    let mut out = vec![0u8; len];
    let mut off = 0;
    while off < len {
        let n = spool
            .read_at(c, off as u64, &mut out[off..])
            .unwrap_or_else(|e| panic!("spool read at {off} of {len}: {e}"));
        assert!(n > 0, "spool ends at {off} of {len}");
        off += n;
    }
    out
}

/// What ext4-view should list for `tree`: every entry it can reach, paths with a leading `/`.
fn expected(tree: &Tree, spool: &Spool) -> Listing {
    let mut out = Listing::new();
    let mut stack = vec![(tree.root(), b"/".to_vec())];
    while let Some((n, path)) = stack.pop() {
        if !view_can_read(tree, n, path.len()) {
            out.insert(path, Entry::Unreadable);
            continue;
        }
        let ino = tree.inode_of(n);
        let data = match &ino.kind {
            InodeKind::File { content: c } => Some(content(spool, c)),
            // ext4-view refuses targets with a component longer than a file name (Linux
            // keeps any bytes but NUL); only the size is compared for those
            InodeKind::Symlink { target } => target
                .split(|&c| c == b'/')
                .all(|c| c.len() <= VIEW_NAME_MAX)
                .then(|| target.clone()),
            _ => None,
        };
        for c in tree.children_sorted(n) {
            let mut p = path.clone();
            if p.len() > 1 {
                p.push(b'/');
            }
            p.extend_from_slice(&tree.node(c).name);
            stack.push((c, p));
        }
        out.insert(
            path,
            Entry::Seen {
                kind: ino.kind.letter(),
                mode: ino.mode,
                uid: ino.uid,
                gid: ino.gid,
                mtime: (
                    view_seconds(ino.mtime.sec).expect("checked above"),
                    ino.mtime.nsec,
                ),
                size: ino.kind.size(),
                data,
            },
        );
    }
    out
}

fn letter(ft: ext4_view::FileType) -> char {
    if ft.is_regular_file() {
        'f'
    } else if ft.is_dir() {
        'd'
    } else if ft.is_symlink() {
        'l'
    } else if ft.is_char_dev() {
        'c'
    } else if ft.is_block_dev() {
        'b'
    } else if ft.is_fifo() {
        'p'
    } else if ft.is_socket() {
        's'
    } else {
        '?'
    }
}

/// Everything ext4-view reads from `image`. `/lost+found` is skipped when the tree has none
/// at the root (the writer adds it); entries the tree says ext4-view cannot read are
/// `Unreadable` when ext4-view indeed fails on them. `None` when ext4-view cannot load the
/// image because the journal inode has the filesystem time and that time is out of its range.
fn listed(image: &Path, tree: &Tree, opts: &Ext4Options) -> Option<Listing> {
    let fs = match Ext4::load_from_path(image) {
        Ok(fs) => fs,
        Err(e) => {
            // the writer's filesystem time: the option, else the newest mtime, at least 0
            let newest = tree.walk().into_iter().map(|n| tree.inode_of(n).mtime.sec);
            let root = tree.inode_of(tree.root()).mtime.sec;
            let time = opts.timestamp.unwrap_or(newest.fold(root, i64::max)).max(0);
            assert!(
                opts.journal && view_seconds(time).is_none(),
                "ext4-view loads the image: {e}"
            );
            return None;
        }
    };
    let added_lost_found = tree.lookup(tree.root(), b"lost+found").is_none();
    let mut out = Listing::new();
    let root = fs.metadata("/");
    let mut todo = Vec::new();
    match root {
        Ok(m) => todo.push((b"/".to_vec(), m)),
        Err(e) => {
            assert!(!view_can_read(tree, tree.root(), 1), "/: {e}");
            out.insert(b"/".to_vec(), Entry::Unreadable);
        }
    }
    while let Some((path, m)) = todo.pop() {
        let shown = String::from_utf8_lossy(&path).into_owned();
        let kind = letter(m.file_type());
        let data = match kind {
            'f' => Some(
                fs.read(&path[..])
                    .unwrap_or_else(|e| panic!("{shown}: read: {e}")),
            ),
            'l' => match fs.read_link(&path[..]) {
                Ok(target) => Some(target.as_ref().to_vec()),
                // a component too long for ext4-view; `expected` says whether that is so
                Err(e) if format!("{e}").contains("invalid symlink path") => None,
                Err(e) => panic!("{shown}: read_link: {e}"),
            },
            'd' => {
                for e in fs
                    .read_dir(&path[..])
                    .unwrap_or_else(|e| panic!("{shown}: read_dir: {e}"))
                {
                    let e = e.unwrap_or_else(|e| panic!("{shown}: dir entry: {e}"));
                    let name = e.file_name().as_ref().to_vec();
                    if name == b"." || name == b".." {
                        continue;
                    }
                    if path == b"/" && name == b"lost+found" && added_lost_found {
                        continue;
                    }
                    let mut p = path.clone();
                    if p.len() > 1 {
                        p.push(b'/');
                    }
                    p.extend_from_slice(&name);
                    if p.len() > VIEW_PATH_MAX {
                        out.insert(p, Entry::Unreadable);
                        continue;
                    }
                    match e.metadata() {
                        Ok(m) => todo.push((p, m)),
                        Err(err) => {
                            let t = format!("{err}");
                            assert!(
                                t.contains("timestamp"),
                                "{}: metadata: {t}",
                                String::from_utf8_lossy(&p)
                            );
                            out.insert(p, Entry::Unreadable);
                        }
                    }
                }
                None
            }
            _ => None,
        };
        let t = m.modified();
        out.insert(
            path,
            Entry::Seen {
                kind,
                mode: u32::from(m.mode()),
                uid: m.uid(),
                gid: m.gid(),
                mtime: (t.seconds(), t.nanoseconds()),
                size: if kind == 'd' { 0 } else { m.len() },
                data,
            },
        );
    }
    Some(out)
}

/// Panics with the first difference between two listings.
fn same(got: &Listing, want: &Listing, what: &str) {
    if got == want {
        return;
    }
    let keys: std::collections::BTreeSet<&Vec<u8>> = got.keys().chain(want.keys()).collect();
    for k in keys {
        let (g, w) = (got.get(k), want.get(k));
        if g != w {
            if let (
                Some(Entry::Seen { data: Some(a), .. }),
                Some(Entry::Seen { data: Some(b), .. }),
            ) = (g, w)
                && let Some(at) = a.iter().zip(b.iter()).position(|(x, y)| x != y)
            {
                let end = |d: &[u8]| d.len().min(at + 16);
                panic!(
                    "{what}: {} bytes differ at {at}: {:?} vs {:?} (lengths {} vs {})",
                    String::from_utf8_lossy(k),
                    &a[at..end(a)],
                    &b[at..end(b)],
                    a.len(),
                    b.len()
                );
            }
            let short = |e: Option<&Entry>| {
                let mut s = format!("{e:?}");
                s.truncate(600);
                s
            };
            panic!(
                "{what}: {} differs ({} vs {} entries)\n got {}\nwant {}",
                String::from_utf8_lossy(k),
                got.len(),
                want.len(),
                short(g),
                short(w)
            );
        }
    }
}

/// Finish errors that an accepted tree may legitimately meet; anything else is a bug.
fn acceptable(e: &Ext4Error, fixed_size: bool) -> bool {
    match e {
        Ext4Error::NoSpace { .. } | Ext4Error::Inodes { .. } => fixed_size,
        Ext4Error::Symlink { .. }
        | Ext4Error::XattrTooLarge { .. }
        | Ext4Error::Acl { .. }
        | Ext4Error::TooManyLinks { .. }
        | Ext4Error::FileTooLarge { .. } => true,
        _ => false,
    }
}

fn fsck(image: &Path) {
    let out = std::process::Command::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .output()
        .expect("e2fsck runs");
    assert!(
        out.status.success(),
        "e2fsck -fn: {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
    );
}

fuzz_target!(|data: &[u8]| {
    let _settle = support::Settle::new();
    if data.len() < 5 {
        return;
    }
    let n = usize::from(data[0] % 3) + 1;
    let (gz, flags) = (data[3], data[4]);
    let body = &data[5..];
    let mut cuts: Vec<usize> = data[1..n]
        .iter()
        .map(|&b| usize::from(b) * body.len() / 256)
        .collect();
    cuts.sort_unstable();
    let mut parts = Vec::new();
    let mut start = 0;
    for c in cuts.into_iter().chain([body.len()]) {
        let part = &body[start..c];
        parts.push(if gz & (1 << parts.len()) != 0 {
            gzip(part)
        } else {
            part.to_vec()
        });
        start = c;
    }

    let fixed_size = flags & 0x20 != 0;
    let opts = Ext4Options {
        block_size: [None, Some(1024), Some(2048), Some(4096)][usize::from(flags & 3)],
        journal: flags & 0x04 != 0,
        metadata_csum: flags & 0x08 == 0,
        htree: flags & 0x10 == 0,
        size: fixed_size.then_some(2 << 20),
        timestamp: (flags & 0x40 != 0).then_some(1_700_000_000),
        seed: [7; 16],
        ..Ext4Options::default()
    };
    let mut apply = ApplyOptions::default();
    apply.limits.total_bytes = 8 << 20;
    apply.source_date_epoch = Some(1_600_000_000);

    let dir = tempfile::Builder::new()
        .prefix("ext4-layers-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temp dir");
    let streamed_out = dir.path().join("streamed.ext4");
    let expected_content = body.len() as u64;

    // The one-pass path.
    let image = Ext4Image::create(&streamed_out, &opts, expected_content).expect("create image");
    let mut spool = Spool::new();
    let mut sink = image.sink(1);
    let streamed = build_streamed(inputs(&parts), &apply, &mut sink);
    // The spooled path, the reference for acceptance, tree and bytes.
    let reference = build_tree(inputs(&parts), &apply, dir.path());
    let (tree, ref_tree, ref_spool) = match (streamed, reference) {
        (Ok((tree, _)), Ok((rt, rs, _))) => (tree, rt, rs),
        (Err(_), Err(_)) => return,
        // a fixed size may stop the streamed path at the file that does not fit
        (Err(e), Ok(_)) if fixed_size => {
            assert!(
                format!("{e}").contains("does not fit"),
                "streamed only: {e}"
            );
            return;
        }
        (Err(e), Ok(_)) => panic!("the streamed path refused what the spooled one took: {e}"),
        (Ok(_), Err(e)) => panic!("the spooled path refused what the streamed one took: {e}"),
    };
    let map = sink.finish().expect("finish the block sink");
    assert_eq!(spool.add_segment(Segment::Blocks(map)), 1);

    let expect = expected(&tree, &spool);
    same(
        &expected(&ref_tree, &ref_spool),
        &expect,
        "spooled vs streamed tree",
    );

    let verbose = std::env::var_os("OCI2VM_FUZZ_FSCK").is_some();
    let streamed_ok = match image.finish(&tree, &spool) {
        Ok(_) => true,
        Err(e) => {
            assert!(acceptable(&e, fixed_size), "finish: {e:?}");
            if verbose {
                eprintln!("refused: {e}");
            }
            false
        }
    };
    let copied_out = dir.path().join("copied.ext4");
    let copied_ok = match write_ext4(&ref_tree, &ref_spool, &copied_out, &opts) {
        Ok(_) => true,
        Err(e) => {
            assert!(acceptable(&e, fixed_size), "write_ext4: {e:?}");
            false
        }
    };
    // A fixed size may fit the copy (no dead data) but not the stream.
    assert!(
        streamed_ok == copied_ok || (fixed_size && copied_ok),
        "finish {streamed_ok}, write_ext4 {copied_ok}"
    );
    if streamed_ok && let Some(got) = listed(&streamed_out, &tree, &opts) {
        same(&got, &expect, "streamed image vs its tree");
    }
    if copied_ok && let Some(got) = listed(&copied_out, &ref_tree, &opts) {
        same(&got, &expect, "copied image vs the tree");
    }
    if verbose {
        eprintln!(
            "accepted: {} entries, {} layers, options {flags:#04x}; image: streamed {streamed_ok}, copied {copied_ok}",
            tree.len(),
            parts.len()
        );
        for (ok, p) in [(streamed_ok, &streamed_out), (copied_ok, &copied_out)] {
            if ok {
                fsck(p);
            }
        }
    }
});
