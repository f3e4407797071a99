//! Tests for vmlinux extraction: synthetic bzImages whose payloads are compressed by the same
//! command-line tools and flags the kernel build uses (`scripts/Makefile.lib`), plus errors.

use super::*;
use std::io::Write;
use std::process::{Command, Stdio};

/// A small ELF64 x86-64 executable with one PT_LOAD and a PVH note (entry 0x1000123).
fn tiny_elf() -> Vec<u8> {
    let mut e = vec![0u8; 64];
    e[..4].copy_from_slice(b"\x7fELF");
    e[4] = 2; // ELFCLASS64
    e[5] = 1; // little-endian
    e[6] = 1;
    e[0x10..0x12].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e[0x12..0x14].copy_from_slice(&62u16.to_le_bytes());
    e[0x14..0x18].copy_from_slice(&1u32.to_le_bytes());
    e[0x18..0x20].copy_from_slice(&0x0100_0000u64.to_le_bytes());
    e[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
    e[0x34..0x36].copy_from_slice(&64u16.to_le_bytes());
    e[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
    e[0x38..0x3a].copy_from_slice(&2u16.to_le_bytes());
    let mut note = Vec::new();
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&4u32.to_le_bytes());
    note.extend_from_slice(&18u32.to_le_bytes());
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&0x0100_0123u32.to_le_bytes());
    let note_off = 64 + 2 * 56;
    let mut load = vec![0u8; 56];
    load[..4].copy_from_slice(&1u32.to_le_bytes());
    let mut pnote = vec![0u8; 56];
    pnote[..4].copy_from_slice(&4u32.to_le_bytes());
    pnote[8..16].copy_from_slice(&(note_off as u64).to_le_bytes());
    pnote[32..40].copy_from_slice(&(note.len() as u64).to_le_bytes());
    e.extend(load);
    e.extend(pnote);
    e.extend(note);
    // Some body so the compressors have work: 9 MiB crosses an lz4 legacy block boundary.
    e.extend((0..9u32 << 20).map(|i| (i % 251) as u8 ^ (i >> 13) as u8));
    e
}

fn bzimage(payload: &[u8]) -> Vec<u8> {
    let mut img = vec![0u8; 1024 + 0x100];
    img[0x1f1] = 1; // setup_sects: pm part at 1024
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    img[0x248..0x24c].copy_from_slice(&0x100u32.to_le_bytes());
    img[0x24c..0x250].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    img.extend_from_slice(payload);
    img
}

/// Compresses with an external tool and appends the 4-byte size like `size_append`.
fn tool_compress(argv: &[&str], data: &[u8]) -> Option<Vec<u8>> {
    let child = Command::new(argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{} missing under CI",
            argv[0]
        );
        eprintln!("SKIPPED: {} not installed", argv[0]);
        return None;
    };
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data_owned = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&data_owned));
    let out = child.wait_with_output().expect("tool runs");
    writer.join().expect("writer thread").expect("write stdin");
    assert!(out.status.success(), "{argv:?} failed");
    let mut p = out.stdout;
    p.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Some(p)
}

#[test]
fn every_kernel_compression_round_trips() {
    let elf = tiny_elf();
    let cases: &[(&[&str], Compression)] = &[
        (&["gzip", "-n", "-9", "-c"], Compression::Gzip),
        (
            &["xz", "--check=crc32", "--x86", "--lzma2=,dict=32MiB", "-c"],
            Compression::Xz,
        ),
        (&["zstd", "-19", "-q", "-c"], Compression::Zstd),
        (&["lz4", "-l", "-9", "-q", "-c"], Compression::Lz4),
        (&["xz", "--format=lzma", "-9", "-c"], Compression::Lzma),
    ];
    for (argv, want) in cases {
        let Some(payload) = tool_compress(argv, &elf) else {
            continue;
        };
        assert_eq!(detect(&payload), Some(*want), "{argv:?}");
        let (out, info) = extract(&bzimage(&payload)).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        assert!(out == elf, "{argv:?}: content differs");
        assert_eq!(info.entry, 0x0100_0000);
        assert_eq!(info.load_segments, 1);
        assert_eq!(info.pvh_entry, Some(0x0100_0123));
    }
}

#[test]
fn not_a_bzimage() {
    assert!(matches!(
        extract(b"hello"),
        Err(VmlinuxError::NotBzImage { .. })
    ));
    let mut img = bzimage(b"\x1f\x8b");
    img[0x206..0x208].copy_from_slice(&0x0206u16.to_le_bytes());
    assert!(matches!(
        extract(&img),
        Err(VmlinuxError::NotBzImage { .. })
    ));
    let mut img = bzimage(b"\x1f\x8b");
    img[0x24c..0x250].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        extract(&img),
        Err(VmlinuxError::NotBzImage { .. })
    ));
}

#[test]
fn unknown_and_unsupported_compressions_are_named() {
    let e = extract(&bzimage(b"\x00\x01\x02\x03")).expect_err("unknown");
    assert!(matches!(e, VmlinuxError::UnknownCompression { .. }));
    assert_eq!(
        e.to_string(),
        "unknown kernel payload compression (magic 00010203)"
    );
    let e = extract(&bzimage(b"BZh91AY&SY")).expect_err("bzip2");
    assert!(matches!(
        e,
        VmlinuxError::UnsupportedCompression {
            compression: Compression::Bzip2
        }
    ));
    assert!(matches!(
        extract(&bzimage(b"\x89LZO\x00")),
        Err(VmlinuxError::UnsupportedCompression {
            compression: Compression::Lzo
        })
    ));
}

#[test]
fn corrupt_payload_and_non_elf_output_fail() {
    let mut gz = Vec::new();
    let mut enc = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
    enc.write_all(b"this is not an ELF file").expect("compress");
    enc.finish().expect("finish");
    assert!(matches!(
        extract(&bzimage(&gz)),
        Err(VmlinuxError::NotElf { .. })
    ));
    let mut elf = tiny_elf();
    elf[0x12] = 183; // EM_AARCH64
    assert!(matches!(elf_info(&elf), Err(VmlinuxError::NotElf { .. })));
    // Hostile program-header and note offsets fail cleanly.
    let mut elf = tiny_elf();
    elf[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(elf_info(&elf), Err(VmlinuxError::NotElf { .. })));
    let mut elf = tiny_elf();
    let pnote = 64 + 56;
    elf[pnote + 8..pnote + 16].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
    assert!(matches!(elf_info(&elf), Err(VmlinuxError::NotElf { .. })));
    let mut elf = tiny_elf();
    elf[176..180].copy_from_slice(&u32::MAX.to_le_bytes()); // namesz of the note
    assert_eq!(elf_info(&elf).expect("still an ELF").pvh_entry, None);
    let truncated = &gz[..gz.len() / 2];
    assert!(matches!(
        extract(&bzimage(truncated)),
        Err(VmlinuxError::Decompress { .. })
    ));
}
