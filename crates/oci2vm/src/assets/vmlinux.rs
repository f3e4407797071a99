//! Extracts the ELF `vmlinux` from an x86 bzImage (for Firecracker and Cloud Hypervisor).
//!
//! ```text
//! bzImage:  [ real-mode setup: (setup_sects + 1) * 512 bytes ][ protected-mode part ...       ]
//!             0x1f1 u8  setup_sects (0 means 4)                 ^ pm_start
//!             0x202 "HdrS"  0x206 u16 boot protocol version     pm_start + payload_offset:
//!             0x248 u32 payload_offset (from pm_start)          [ compressed vmlinux ][ u32 size ]
//!             0x24c u32 payload_length  (protocol >= 2.08)
//! payload magic: 1f 8b gzip | fd 37 7a 58 5a 00 xz | 28 b5 2f fd zstd | 02 21 4c 18 lz4 legacy
//!                5d 00 00 lzma | "BZh" bzip2 | 89 4c 5a 4f lzo
//! lz4 legacy:    magic, then blocks [u32 LE compressed size][lz4 block, <= 8 MiB out]...
//! ```
//!
//! Spec: the kernel's `Documentation/arch/x86/boot.rst` (payload fields), `lib/decompress_*.c`
//! and `scripts/Makefile.lib` (the appended size). Debian 12's cloud kernel uses lz4
//! (`CONFIG_KERNEL_LZ4=y`). The result must be an ELF64 little-endian x86-64 executable;
//! [`elf_info`] also reports the PVH entry note (`XEN_ELFNOTE_PHYS32_ENTRY`, type 18) that QEMU
//! and Cloud Hypervisor use to boot an ELF kernel directly.

use std::io::Read;
use std::path::Path;

/// Largest vmlinux we inflate (guards against decompression bombs).
pub const MAX_VMLINUX: u64 = 512 << 20;
const LZ4_LEGACY_MAGIC: u32 = 0x184c_2102;
const LZ4_LEGACY_BLOCK: usize = 8 << 20;
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// Payload compressions the kernel build can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// `CONFIG_KERNEL_GZIP`.
    Gzip,
    /// `CONFIG_KERNEL_XZ` (with the x86 BCJ filter).
    Xz,
    /// `CONFIG_KERNEL_ZSTD`.
    Zstd,
    /// `CONFIG_KERNEL_LZ4` (legacy frame).
    Lz4,
    /// `CONFIG_KERNEL_LZMA` (`.lzma` "alone" format).
    Lzma,
    /// `CONFIG_KERNEL_BZIP2` (detected, not decoded).
    Bzip2,
    /// `CONFIG_KERNEL_LZO` (detected, not decoded).
    Lzo,
}

/// Errors extracting a vmlinux.
#[derive(Debug, thiserror::Error)]
pub enum VmlinuxError {
    /// Not an x86 bzImage with a payload header.
    #[error("not a bzImage: {reason}")]
    NotBzImage {
        /// Why.
        reason: &'static str,
    },
    /// The payload magic is none we know.
    #[error("unknown kernel payload compression (magic {magic})")]
    UnknownCompression {
        /// The first bytes, hex.
        magic: String,
    },
    /// A compression we detect but do not decode.
    #[error(
        "kernel payload compressed with {compression:?}, which is not supported; pass an uncompressed vmlinux"
    )]
    UnsupportedCompression {
        /// Which.
        compression: Compression,
    },
    /// The decoder failed.
    #[error("decompressing the {compression:?} kernel payload")]
    Decompress {
        /// Which.
        compression: Compression,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The result is not an x86-64 ELF executable.
    #[error("extracted kernel is not an ELF64 x86-64 image: {reason}")]
    NotElf {
        /// Why.
        reason: &'static str,
    },
    /// Reading or writing a file.
    #[error("{path}: {op}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What we did.
        op: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl crate::error::Classify for VmlinuxError {
    fn kind(&self) -> crate::ErrorKind {
        match self {
            VmlinuxError::NotBzImage { .. } | VmlinuxError::NotElf { .. } => {
                crate::ErrorKind::InvalidInput
            }
            VmlinuxError::UnknownCompression { .. }
            | VmlinuxError::UnsupportedCompression { .. } => crate::ErrorKind::Unsupported,
            VmlinuxError::Decompress { .. } => crate::ErrorKind::InvalidInput,
            VmlinuxError::Io { .. } => crate::ErrorKind::Io,
        }
    }
}

impl From<VmlinuxError> for crate::Error {
    fn from(e: VmlinuxError) -> Self {
        crate::Error::new(crate::error::Classify::kind(&e), e)
    }
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}
fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(off..off.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// The compressed payload inside a bzImage.
pub fn payload(image: &[u8]) -> Result<&[u8], VmlinuxError> {
    let not = |reason| VmlinuxError::NotBzImage { reason };
    if image.get(0x202..0x206) != Some(b"HdrS".as_slice()) {
        return Err(not("no HdrS signature at 0x202"));
    }
    let version = u16_at(image, 0x206).ok_or(not("truncated header"))?;
    if version < 0x0208 {
        return Err(not("boot protocol older than 2.08 has no payload fields"));
    }
    let setup_sects = match image[0x1f1] {
        0 => 4,
        n => usize::from(n),
    };
    let pm_start = (setup_sects + 1) * 512;
    let offset = u32_at(image, 0x248).ok_or(not("truncated header"))? as usize;
    let length = u32_at(image, 0x24c).ok_or(not("truncated header"))? as usize;
    let start = pm_start
        .checked_add(offset)
        .ok_or(not("payload offset overflows"))?;
    let end = start
        .checked_add(length)
        .ok_or(not("payload length overflows"))?;
    image
        .get(start..end)
        .ok_or(not("payload lies outside the file"))
}

/// Detects the payload compression from its magic.
pub fn detect(payload: &[u8]) -> Option<Compression> {
    let m = |p: &[u8]| payload.starts_with(p);
    Some(if m(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if m(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else if m(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if m(&LZ4_LEGACY_MAGIC.to_le_bytes()) {
        Compression::Lz4
    } else if m(&[0x5d, 0, 0]) {
        Compression::Lzma
    } else if m(b"BZh") {
        Compression::Bzip2
    } else if m(&[0x89, b'L', b'Z', b'O']) {
        Compression::Lzo
    } else {
        return None;
    })
}

fn read_bounded(r: impl Read, c: Compression) -> Result<Vec<u8>, VmlinuxError> {
    let mut out = Vec::new();
    r.take(MAX_VMLINUX + 1)
        .read_to_end(&mut out)
        .map_err(|source| VmlinuxError::Decompress {
            compression: c,
            source,
        })?;
    if out.len() as u64 > MAX_VMLINUX {
        return Err(VmlinuxError::Decompress {
            compression: c,
            source: std::io::Error::other("output exceeds the size limit"),
        });
    }
    Ok(out)
}

fn lz4_legacy(data: &[u8]) -> Result<Vec<u8>, VmlinuxError> {
    let err = |msg: String| VmlinuxError::Decompress {
        compression: Compression::Lz4,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, msg),
    };
    let mut out = Vec::new();
    let mut pos = 0usize;
    while let Some(size) = u32_at(data, pos) {
        pos += 4;
        if size == LZ4_LEGACY_MAGIC {
            continue;
        }
        let size = size as usize;
        // What follows the last block is the kernel build's 4-byte uncompressed size.
        let Some(block) = data.get(pos..pos.saturating_add(size)) else {
            break;
        };
        let chunk = lz4_flex::block::decompress(block, LZ4_LEGACY_BLOCK)
            .map_err(|e| err(format!("block at offset {pos}: {e}")))?;
        out.extend_from_slice(&chunk);
        if out.len() as u64 > MAX_VMLINUX {
            return Err(err("output exceeds the size limit".into()));
        }
        pos += size;
    }
    Ok(out)
}

/// Runs a liblzma decoder to the end of its stream; the bytes after it (the kernel build's
/// appended size) are ignored, which `xz2::read::XzDecoder` would reject as corruption.
fn liblzma(
    payload: &[u8],
    mut stream: xz2::stream::Stream,
    c: Compression,
) -> Result<Vec<u8>, VmlinuxError> {
    let err = |msg: String| VmlinuxError::Decompress {
        compression: c,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, msg),
    };
    let mut out: Vec<u8> = Vec::with_capacity(payload.len().saturating_mul(3));
    loop {
        if out.capacity() - out.len() < (1 << 16) {
            out.reserve(4 << 20);
        }
        let consumed = usize::try_from(stream.total_in()).unwrap_or(usize::MAX);
        let input = payload.get(consumed..).unwrap_or_default();
        let (in_before, out_before) = (stream.total_in(), stream.total_out());
        let action = if input.is_empty() {
            xz2::stream::Action::Finish
        } else {
            xz2::stream::Action::Run
        };
        let status = stream
            .process_vec(input, &mut out, action)
            .map_err(|e| err(e.to_string()))?;
        if status == xz2::stream::Status::StreamEnd {
            return Ok(out);
        }
        if out.len() as u64 > MAX_VMLINUX {
            return Err(err("output exceeds the size limit".into()));
        }
        if stream.total_in() == in_before
            && stream.total_out() == out_before
            && out.capacity() > out.len()
        {
            return Err(err("truncated stream".into()));
        }
    }
}

/// Decompresses a payload.
pub fn decompress(payload: &[u8]) -> Result<Vec<u8>, VmlinuxError> {
    let c = detect(payload).ok_or_else(|| VmlinuxError::UnknownCompression {
        magic: hex::encode(&payload[..payload.len().min(6)]),
    })?;
    let dec = |source| VmlinuxError::Decompress {
        compression: c,
        source,
    };
    match c {
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(payload), c),
        Compression::Zstd => {
            let d = zstd::stream::read::Decoder::new(payload)
                .map_err(dec)?
                .single_frame();
            read_bounded(d, c)
        }
        Compression::Xz => {
            let stream = xz2::stream::Stream::new_stream_decoder(u64::MAX, 0)
                .map_err(|e| dec(std::io::Error::other(e)))?;
            liblzma(payload, stream, c)
        }
        Compression::Lzma => {
            let stream = xz2::stream::Stream::new_lzma_decoder(u64::MAX)
                .map_err(|e| dec(std::io::Error::other(e)))?;
            liblzma(payload, stream, c)
        }
        Compression::Lz4 => lz4_legacy(payload),
        Compression::Bzip2 | Compression::Lzo => {
            Err(VmlinuxError::UnsupportedCompression { compression: c })
        }
    }
}

/// What we check of the extracted kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// `e_entry`.
    pub entry: u64,
    /// Number of `PT_LOAD` segments.
    pub load_segments: usize,
    /// The PVH 32-bit entry point, when the kernel has `XEN_ELFNOTE_PHYS32_ENTRY`.
    pub pvh_entry: Option<u32>,
}

/// Checks that `elf` is an ELF64 little-endian x86-64 executable and reads its entry points.
pub fn elf_info(elf: &[u8]) -> Result<ElfInfo, VmlinuxError> {
    let not = |reason| VmlinuxError::NotElf { reason };
    if elf.get(..4) != Some(b"\x7fELF".as_slice()) {
        return Err(not("no ELF magic"));
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err(not("not ELF64 little-endian"));
    }
    if u16_at(elf, 0x12) != Some(62) {
        return Err(not("e_machine is not EM_X86_64 (62)"));
    }
    let entry = u64_at(elf, 0x18).ok_or(not("truncated header"))?;
    let phoff = u64_at(elf, 0x20).ok_or(not("truncated header"))? as usize;
    let phentsize = usize::from(u16_at(elf, 0x36).ok_or(not("truncated header"))?);
    let phnum = usize::from(u16_at(elf, 0x38).ok_or(not("truncated header"))?);
    if phentsize < 56 {
        return Err(not("program header entries too small"));
    }
    let mut load_segments = 0;
    let mut pvh_entry = None;
    for i in 0..phnum {
        let ph = phoff
            .checked_add(i * phentsize)
            .ok_or(not("program headers outside the file"))?;
        let p_type = u32_at(elf, ph).ok_or(not("program headers outside the file"))?;
        match p_type {
            1 => load_segments += 1,
            4 => {
                let off = u64_at(
                    elf,
                    ph.checked_add(8).ok_or(not("truncated program header"))?,
                )
                .ok_or(not("truncated program header"))? as usize;
                let size = u64_at(
                    elf,
                    ph.checked_add(32).ok_or(not("truncated program header"))?,
                )
                .ok_or(not("truncated program header"))? as usize;
                let notes = elf
                    .get(off..off.saturating_add(size))
                    .ok_or(not("note outside the file"))?;
                pvh_entry = pvh_entry.or_else(|| find_pvh_note(notes));
            }
            _ => {}
        }
    }
    if load_segments == 0 {
        return Err(not("no PT_LOAD segment"));
    }
    Ok(ElfInfo {
        entry,
        load_segments,
        pvh_entry,
    })
}

fn find_pvh_note(mut notes: &[u8]) -> Option<u32> {
    let align4 = |n: usize| n.div_ceil(4) * 4;
    while notes.len() >= 12 {
        let namesz = u32_at(notes, 0)? as usize;
        let descsz = u32_at(notes, 4)? as usize;
        let ntype = u32_at(notes, 8)?;
        let name = notes.get(12..namesz.checked_add(12)?)?;
        let desc_at = align4(namesz).checked_add(12)?;
        let desc = notes.get(desc_at..desc_at.checked_add(descsz)?)?;
        if name.strip_suffix(b"\0").unwrap_or(name) == b"Xen" && ntype == XEN_ELFNOTE_PHYS32_ENTRY {
            return u32_at(desc, 0);
        }
        notes = notes.get(desc_at.checked_add(align4(descsz))?..)?;
    }
    None
}

/// Extracts and checks the vmlinux of a bzImage held in memory.
pub fn extract(bzimage: &[u8]) -> Result<(Vec<u8>, ElfInfo), VmlinuxError> {
    let elf = decompress(payload(bzimage)?)?;
    let info = elf_info(&elf)?;
    Ok((elf, info))
}

/// Extracts `src` (a bzImage) to `dst`; an ELF `src` is copied as it is.
pub fn extract_file(src: &Path, dst: &Path) -> Result<ElfInfo, VmlinuxError> {
    let io = |path: &Path, op| {
        let path = path.to_path_buf();
        move |source| VmlinuxError::Io { path, op, source }
    };
    let image = std::fs::read(src).map_err(io(src, "reading kernel"))?;
    let (elf, info) = if image.starts_with(b"\x7fELF") {
        let info = elf_info(&image)?;
        (image, info)
    } else {
        extract(&image)?
    };
    std::fs::write(dst, &elf).map_err(io(dst, "writing vmlinux"))?;
    Ok(info)
}

#[cfg(test)]
#[path = "vmlinux_tests.rs"]
mod tests;
