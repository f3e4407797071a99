//! The store under corruption, concurrency (threads and processes) and an outside reader.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns panic on purpose

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;

use oci2vm::source::{SourceOptions, pull};
use oci2vm::store::{Store, StoredImage};
use oci2vm::{Digest, Reference};

const WORKER_ENV: &str = "OCI2VM_TEST_STORE_WORKER";
const IMAGES_PER_WORKER: usize = 25;

fn blob_files(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn tmp_files(store: &Store) -> usize {
    std::fs::read_dir(store.root().join("tmp")).unwrap().count()
}

/// Writes `n` distinct "images" (a blob each, plus one shared blob) and records them.
fn write_images(store: &Store, tag: &str, n: usize) {
    let shared = b"shared between all writers".repeat(1000);
    let sd = Digest::sha256_of(&shared);
    for i in 0..n {
        store.put_bytes(&sd, &shared).unwrap();
        let own = format!("{tag}-{i}").repeat(100);
        let d = Digest::sha256_of(own.as_bytes());
        store.put_bytes(&d, own.as_bytes()).unwrap();
        store
            .add_image_ref(&StoredImage {
                name: Some(format!("localhost/{tag}:{i}")),
                digest: d,
                size: own.len() as u64,
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                platform: None,
                manifest_digest: None,
            })
            .unwrap();
    }
}

fn check_all_recorded(store: &Store, tags: &[String], n: usize) {
    let images = store.list_images().unwrap();
    assert_eq!(images.len(), tags.len() * n, "lost index.json updates");
    for tag in tags {
        for i in 0..n {
            let name = format!("localhost/{tag}:{i}");
            let img = images
                .iter()
                .find(|m| m.name.as_deref() == Some(&name))
                .expect(&name);
            assert!(store.verify_blob(&img.digest, img.size).unwrap());
        }
    }
    assert_eq!(tmp_files(store), 0, "temp files left behind");
}

#[test]
fn concurrent_threads_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let tags: Vec<String> = (0..6).map(|t| format!("t{t}")).collect();
    std::thread::scope(|s| {
        for tag in &tags {
            let root = root.clone();
            s.spawn(move || write_images(&Store::open(root).unwrap(), tag, 10));
        }
    });
    check_all_recorded(&Store::open(&root).unwrap(), &tags, 10);
}

/// Not a test on its own: the body of each child process in `concurrent_processes_lose_nothing`.
#[test]
#[ignore = "run by concurrent_processes_lose_nothing as a child process"]
fn store_worker_process() {
    let Ok(spec) = std::env::var(WORKER_ENV) else {
        return;
    };
    let (root, tag) = spec.split_once('|').unwrap();
    write_images(&Store::open(root).unwrap(), tag, IMAGES_PER_WORKER);
}

#[test]
fn concurrent_processes_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let exe = std::env::current_exe().unwrap();
    let tags: Vec<String> = (0..3).map(|t| format!("p{t}")).collect();
    let children: Vec<_> = tags
        .iter()
        .map(|tag| {
            Command::new(&exe)
                .args([
                    "--ignored",
                    "--exact",
                    "store_worker_process",
                    "--nocapture",
                ])
                .env(WORKER_ENV, format!("{}|{tag}", root.display()))
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    check_all_recorded(&Store::open(&root).unwrap(), &tags, IMAGES_PER_WORKER);
}

/// A reader that hands out its data in two halves, waiting for a signal in between.
struct Paused {
    data: Vec<u8>,
    pos: usize,
    reached_half: Option<mpsc::Sender<()>>,
    resume: mpsc::Receiver<()>,
}

impl Read for Paused {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let half = self.data.len() / 2;
        if self.pos == half {
            if let Some(tx) = self.reached_half.take() {
                tx.send(()).unwrap();
                self.resume.recv().unwrap();
            }
        }
        let end = if self.pos < half {
            half
        } else {
            self.data.len()
        };
        let n = buf.len().min(end - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn temp_files_are_never_visible_as_blobs_and_prune_clears_stale_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data = vec![7u8; 1 << 20];
    let d = Digest::sha256_of(&data);
    let (half_tx, half_rx) = mpsc::channel();
    let (resume_tx, resume_rx) = mpsc::channel();
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut r = Paused {
                data: data.clone(),
                pos: 0,
                reached_half: Some(half_tx),
                resume: resume_rx,
            };
            store.put_blob(&d, data.len() as u64, &mut r)
        });
        half_rx.recv().unwrap();
        assert!(blob_files(&store).is_empty(), "a partial blob is visible");
        assert!(!store.has_blob(&d, data.len() as u64));
        assert_eq!(tmp_files(&store), 1);
        resume_tx.send(()).unwrap();
        h.join().unwrap().unwrap();
    });
    assert_eq!(blob_files(&store), [d.hex().to_string()]);
    // a crashed writer's leftovers are removed by prune, as are unreferenced blobs
    std::fs::write(
        store.root().join("tmp/0123456789abcdef.crashed"),
        b"partial",
    )
    .unwrap();
    let report = store.prune().unwrap();
    assert_eq!(report.temp_files_removed, 1);
    assert_eq!(report.blobs_removed, 1);
    assert!(blob_files(&store).is_empty());
}

#[test]
fn corrupt_layer_is_detected_and_refetched_on_pull() {
    let Some(fx) = common::fixtures() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let r = Reference::parse(&format!("oci:{}/oci/busybox", fx.display())).unwrap();
    let opts = SourceOptions::default();
    let first = pull(&r, &store, &opts, None).unwrap();
    assert_eq!(first.blobs_copied, 3);
    let again = pull(&r, &store, &opts, None).unwrap();
    assert_eq!(again.blobs_copied, 0);
    let layer = &first.image.layers[0];
    let path = store.blob_path(&layer.digest);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    // a reader notices (and drops the bad blob) ...
    let mut sink = Vec::new();
    let e = store
        .open_blob(&layer.digest, layer.size)
        .unwrap()
        .read_to_end(&mut sink)
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
    assert!(!path.exists());
    // ... and so does pull, which fetches it again
    std::fs::write(&path, &bytes).unwrap();
    let repaired = pull(&r, &store, &opts, None).unwrap();
    assert_eq!(repaired.blobs_copied, 1);
    assert!(store.verify_blob(&layer.digest, layer.size).unwrap());
    // prune keeps everything that is referenced
    let report = store.prune().unwrap();
    assert_eq!((report.blobs_removed, report.blobs_kept), (0, 3));
}

#[test]
fn skopeo_and_umoci_read_the_store() {
    let Some(fx) = common::fixtures() else { return };
    let Some(()) = common::need_tool("skopeo") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("s")).unwrap();
    let opts = SourceOptions::default();
    for src in [
        format!("oci:{}/oci/busybox", fx.display()),
        format!(
            "docker-archive:{}/docker-archive/config-docker.tar:localhost/config-docker:latest",
            fx.display()
        ),
        format!("oci-archive:{}/oci-archive/busybox-multi.tar", fx.display()),
    ] {
        let r = Reference::parse(&src).unwrap();
        let p = pull(&r, &store, &opts, None).unwrap();
        let target = format!("oci:{}:{}", store.root().display(), p.name);
        let out = Command::new("skopeo")
            .args(["inspect", "--raw", &target])
            .output()
            .unwrap();
        let recorded = store
            .list_images()
            .unwrap()
            .into_iter()
            .find(|i| i.name.as_deref() == Some(&p.name))
            .unwrap();
        assert_eq!(Digest::sha256_of(&out.stdout), recorded.digest, "{src}");
        assert_eq!(
            recorded.manifest_digest.as_ref(),
            Some(&p.image.manifest_digest)
        );
        let config = common::skopeo_json(&["inspect", "--config", &target]);
        assert_eq!(
            config["architecture"],
            p.image.platform.architecture.as_str()
        );
        // and skopeo can copy every blob out (it verifies digests)
        let copy = dir
            .path()
            .join(format!("copy-{}", p.image.manifest_digest.hex()));
        let st = Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                &target,
                &format!("oci:{}:x", copy.display()),
            ])
            .status()
            .unwrap();
        assert!(st.success(), "skopeo copy from the store failed for {src}");
        // oci2vm reads its own store as an oci: source
        let back =
            oci2vm::source::resolve(&Reference::parse(&target).unwrap(), &opts, None).unwrap();
        assert_eq!(back.manifest_digest, p.image.manifest_digest);
    }
    if Command::new("umoci")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let names: Vec<String> = store
            .list_images()
            .unwrap()
            .into_iter()
            .filter_map(|i| i.name)
            .collect();
        let out = Command::new("umoci")
            .args(["ls", "--layout"])
            .arg(store.root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed = String::from_utf8_lossy(&out.stdout);
        for n in names {
            assert!(
                listed.lines().any(|l| l == n),
                "umoci ls lacks {n}: {listed}"
            );
        }
    }
}

#[test]
fn default_path_follows_xdg() {
    // Only reads the environment of this process; other tests do not use default_path.
    let p = Store::default_path().unwrap();
    assert!(p.ends_with("oci2vm"));
    assert!(Path::new(&p).is_absolute());
}
