//! Benchmark/demo: flatten the image of an OCI layout into one tar (the CLI's
//! `oci2vm convert --format tar` does the same once wired).
//!
//! usage: flatten LAYOUT_DIR TAG OUT.tar|-   (scratch spool next to OUT, or $TMPDIR for -)

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use oci2vm::Digest;
use oci2vm::layers::{ApplyOptions, LayerInput, build_tree};

type Layers = Vec<LayerInput<Box<dyn Read + Send>>>;

fn json(dir: &Path, digest: &str) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let d = Digest::parse(digest)?;
    Ok(serde_json::from_slice(&std::fs::read(
        dir.join(d.layout_path()),
    )?)?)
}

/// index.json -> manifest (by tag) -> config diff_ids -> layer blobs.
fn layers(dir: &Path, tag: &str) -> Result<Layers, Box<dyn std::error::Error>> {
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("index.json"))?)?;
    let manifests = index["manifests"]
        .as_array()
        .ok_or("index has no manifests")?;
    let desc = manifests
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str() == Some(tag))
        .ok_or("tag not found")?;
    let manifest = json(dir, desc["digest"].as_str().ok_or("no digest")?)?;
    let config = json(
        dir,
        manifest["config"]["digest"].as_str().ok_or("no config")?,
    )?;
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or("no diff_ids")?;
    let mut out = Layers::new();
    for (l, d) in manifest["layers"]
        .as_array()
        .ok_or("no layers")?
        .iter()
        .zip(diff_ids)
    {
        let digest = Digest::parse(l["digest"].as_str().ok_or("no digest")?)?;
        let file = std::fs::File::open(dir.join(digest.layout_path()))?;
        out.push(LayerInput {
            digest,
            diff_id: Some(Digest::parse(d.as_str().ok_or("bad diff_id")?)?),
            media_type: l["mediaType"].as_str().ok_or("no media type")?.to_string(),
            reader: Box::new(file),
            verify_digest: true,
        });
    }
    Ok(out)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, layout, tag, out] = &args[..] else {
        eprintln!("usage: flatten LAYOUT_DIR TAG OUT.tar|-");
        std::process::exit(2);
    };
    let out = PathBuf::from(out);
    let spool_parent = if out == Path::new("-") {
        std::env::temp_dir()
    } else {
        out.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf()
    };
    let mut layers = layers(Path::new(layout), tag)?;
    let t0 = Instant::now();
    // one layer: the tar is written while the layer streams (as `oci2vm convert` does)
    if layers.len() == 1
        && out != Path::new("-")
        && let Some(layer) = layers.pop()
    {
        let mut spool = oci2vm::layers::spool::Spool::new();
        let mut stream = oci2vm::fs::tar_stream::TarStream::create(&out, &mut spool)?;
        let (tree, report) =
            oci2vm::layers::build_single(layer, &ApplyOptions::default(), &mut stream)?;
        let kept = stream.streaming();
        let stats = stream.finish(&tree, &spool)?;
        let bytes: u64 = report.layers.iter().map(|l| l.uncompressed_bytes).sum();
        eprintln!(
            "layers=1 uncompressed={bytes} entries={} streamed={kept} total={:.3}s",
            stats.entries,
            t0.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    let spool = tempfile::Builder::new()
        .prefix(".oci2vm-spool-")
        .tempdir_in(spool_parent)?;
    let (tree, spool_data, report) = build_tree(layers, &ApplyOptions::default(), spool.path())?;
    let t1 = Instant::now();
    let stats = oci2vm::fs::tar::write_to(&tree, &spool_data, &out)?;
    let t2 = Instant::now();
    let bytes: u64 = report.layers.iter().map(|l| l.uncompressed_bytes).sum();
    eprintln!(
        "layers={} uncompressed={bytes} entries={} tree={:.3}s write={:.3}s",
        report.layers.len(),
        stats.entries,
        (t1 - t0).as_secs_f64(),
        (t2 - t1).as_secs_f64()
    );
    Ok(())
}
