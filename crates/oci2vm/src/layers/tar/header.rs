//! One 512-byte tar header block: field extraction, numeric fields, checksum, format.
//!
//! Spec: POSIX.1-2017 `pax` "ustar Interchange Format"
//! (<https://pubs.opengroup.org/onlinepubs/9799919799/utilities/pax.html>), GNU tar manual
//! "Basic Tar Format" (<https://www.gnu.org/software/tar/manual/html_node/Standard.html>),
//! Go `archive/tar` (`reader.go`, `strconv.go`) as the reference reader.
//!
//! ```text
//! offset size  ustar/pax            GNU (magic "ustar  \0")
//!    0   100   name                 name
//!  100     8   mode (octal)         mode
//!  108     8   uid                  uid            numeric fields: octal ASCII, or
//!  116     8   gid                  gid            base-256 when byte 0 has bit 7 set
//!  124    12   size                 size
//!  136    12   mtime                mtime
//!  148     8   chksum               chksum         sum of all bytes, chksum as spaces
//!  156     1   typeflag             typeflag
//!  157   100   linkname             linkname
//!  257     6   magic "ustar\0"      "ustar "
//!  263     2   version "00"         " \0"
//!  265    32   uname                uname
//!  297    32   gname                gname
//!  329     8   devmajor             devmajor
//!  337     8   devminor             devminor
//!  345   155   prefix               atime(12) ctime(12) ... (not a prefix!)
//!  500    12   (pad)
//! ```

use super::TarErrorKind;

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// Which header dialect a block is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// POSIX ustar (also pax).
    Ustar,
    /// GNU (`ustar  \0`): no prefix field.
    Gnu,
    /// Pre-POSIX V7: no magic at all.
    V7,
}

/// A parsed header block (raw fields; the reader interprets them).
#[derive(Debug, Clone)]
pub struct RawHeader {
    /// The format from the magic.
    pub format: Format,
    /// Name, prefix joined for ustar.
    pub name: Vec<u8>,
    /// Link target.
    pub linkname: Vec<u8>,
    /// Permission bits (type bits masked off).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Size of the data that follows.
    pub size: u64,
    /// Modification time, seconds (may be negative).
    pub mtime: i64,
    /// Type flag byte.
    pub typeflag: u8,
    /// Device major.
    pub devmajor: u64,
    /// Device minor.
    pub devminor: u64,
}

/// True for an all-zero block (end-of-archive marker).
pub fn is_zero(block: &[u8; BLOCK]) -> bool {
    block.iter().all(|&b| b == 0)
}

/// Bytes of a NUL-terminated field (the whole field when there is no NUL).
pub fn cstr(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(i) => &field[..i],
        None => field,
    }
}

fn checksum_ok(block: &[u8; BLOCK]) -> Result<(), TarErrorKind> {
    let stored = parse_octal(&block[148..156]).map_err(|_| TarErrorKind::Checksum)?;
    let mut unsigned: i64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    if stored == unsigned || stored == signed {
        Ok(())
    } else {
        Err(TarErrorKind::Checksum)
    }
}

/// Parses an octal field: optional leading spaces/NULs, digits, trailing spaces/NULs.
/// An empty field is 0.
pub fn parse_octal(field: &[u8]) -> Result<i64, TarErrorKind> {
    let trimmed = trim(field);
    let mut v: i64 = 0;
    for &b in trimmed {
        if !(b'0'..=b'7').contains(&b) {
            return Err(TarErrorKind::Numeric);
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(TarErrorKind::Numeric)?;
    }
    Ok(v)
}

fn trim(field: &[u8]) -> &[u8] {
    let is_pad = |b: &u8| *b == b' ' || *b == 0;
    let start = field.iter().position(|b| !is_pad(b)).unwrap_or(field.len());
    let end = field
        .iter()
        .rposition(|b| !is_pad(b))
        .map_or(start, |i| i + 1);
    &field[start..end.max(start)]
}

/// Parses a numeric field: base-256 (bit 7 of byte 0 set) or octal. Negative values are
/// returned as such; callers decide whether a field may be negative.
pub fn parse_numeric(field: &[u8]) -> Result<i64, TarErrorKind> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        // Base-256, two's complement big-endian; bit 7 of byte 0 is the marker and bit 6
        // the sign (Go `strconv.go:parseNumeric`).
        let inv: u8 = if field[0] & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &c) in field.iter().enumerate() {
            let mut c = c ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 != 0 {
                return Err(TarErrorKind::Numeric);
            }
            x = (x << 8) | u64::from(c);
        }
        if x >> 63 != 0 {
            return Err(TarErrorKind::Numeric);
        }
        let v = x as i64;
        return Ok(if inv == 0xff { !v } else { v });
    }
    parse_octal(field)
}

fn unsigned(field: &[u8]) -> Result<u64, TarErrorKind> {
    let v = parse_numeric(field)?;
    u64::try_from(v).map_err(|_| TarErrorKind::Negative)
}

/// Validates and parses one header block.
pub fn parse(block: &[u8; BLOCK]) -> Result<RawHeader, TarErrorKind> {
    checksum_ok(block)?;
    let magic = &block[257..263];
    let version = &block[263..265];
    let format = if magic == b"ustar\0" {
        if version != b"00" {
            return Err(TarErrorKind::AmbiguousFormat);
        }
        Format::Ustar
    } else if magic == b"ustar " {
        if version != b" \0" {
            return Err(TarErrorKind::AmbiguousFormat);
        }
        Format::Gnu
    } else if block[257..265].iter().all(|&b| b == 0) {
        Format::V7
    } else {
        return Err(TarErrorKind::AmbiguousFormat);
    };
    let mut name = cstr(&block[0..100]).to_vec();
    if format == Format::Ustar {
        let prefix = cstr(&block[345..500]);
        if !prefix.is_empty() {
            let mut full = prefix.to_vec();
            full.push(b'/');
            full.extend_from_slice(&name);
            name = full;
        }
    }
    let mode_raw = unsigned(&block[100..108])?;
    Ok(RawHeader {
        format,
        name,
        linkname: cstr(&block[157..257]).to_vec(),
        mode: (mode_raw & 0o7777) as u32,
        uid: unsigned(&block[108..116])?,
        gid: unsigned(&block[116..124])?,
        size: unsigned(&block[124..136])?,
        mtime: parse_numeric(&block[136..148])?,
        typeflag: block[156],
        devmajor: if format == Format::V7 {
            0
        } else {
            unsigned(&block[329..337])?
        },
        devminor: if format == Format::V7 {
            0
        } else {
            unsigned(&block[337..345])?
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum_into(block: &mut [u8; BLOCK]) {
        block[148..156].copy_from_slice(b"        ");
        let s: u32 = block.iter().map(|&b| u32::from(b)).sum();
        block[148..156].copy_from_slice(format!("{s:06o}\0 ").as_bytes());
    }

    fn base() -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b[..5].copy_from_slice(b"hello");
        b[100..108].copy_from_slice(b"0100644\0");
        b[124..136].copy_from_slice(b"00000000005\0");
        b[156] = b'0';
        b[257..263].copy_from_slice(b"ustar\0");
        b[263..265].copy_from_slice(b"00");
        b
    }

    #[test]
    fn parses_ustar_and_masks_type_bits() {
        let mut b = base();
        b[345..348].copy_from_slice(b"pre");
        sum_into(&mut b);
        let h = parse(&b).unwrap();
        assert_eq!(h.name, b"pre/hello");
        assert_eq!(h.mode, 0o644);
        assert_eq!(h.size, 5);
        assert_eq!(h.format, Format::Ustar);
    }

    #[test]
    fn gnu_header_has_no_prefix() {
        let mut b = base();
        b[257..263].copy_from_slice(b"ustar ");
        b[263..265].copy_from_slice(b" \0");
        b[345..348].copy_from_slice(b"123");
        sum_into(&mut b);
        assert_eq!(parse(&b).unwrap().name, b"hello");
    }

    #[test]
    fn checksum_signed_accepted_and_mismatch_rejected() {
        let mut b = base();
        b[10] = 0xe9; // high byte: signed and unsigned sums differ
        b[148..156].copy_from_slice(b"        ");
        let s: i64 = b.iter().map(|&x| i64::from(x as i8)).sum();
        b[148..156].copy_from_slice(format!("{s:06o}\0 ").as_bytes());
        assert!(parse(&b).is_ok());
        b[0] = b'j';
        assert!(matches!(parse(&b), Err(TarErrorKind::Checksum)));
    }

    #[test]
    fn numeric_fields() {
        assert_eq!(parse_numeric(b"  0755 \0").unwrap(), 0o755);
        assert_eq!(parse_numeric(b"\0\0\0\0").unwrap(), 0);
        assert!(parse_numeric(b"0789").is_err());
        let mut big = [0u8; 8];
        big[0] = 0x80;
        big[4..].copy_from_slice(&100_000u32.to_be_bytes());
        assert_eq!(parse_numeric(&big).unwrap(), 100_000);
        let neg = [0xffu8; 8];
        assert_eq!(parse_numeric(&neg).unwrap(), -1);
        assert!(matches!(unsigned(&neg), Err(TarErrorKind::Negative)));
        let mut huge = [0xffu8; 12];
        huge[0] = 0x80;
        assert!(parse_numeric(&huge).is_err());
    }

    #[test]
    fn ambiguous_magic_rejected() {
        let mut b = base();
        b[263..265].copy_from_slice(b"\0\0");
        sum_into(&mut b);
        assert!(matches!(parse(&b), Err(TarErrorKind::AmbiguousFormat)));
        let mut b = base();
        b[257..263].copy_from_slice(b"junk!!");
        sum_into(&mut b);
        assert!(matches!(parse(&b), Err(TarErrorKind::AmbiguousFormat)));
    }
}
