//! Value escaping for the line-based config format, and base64url for the kernel command line.
//!
//! ```text
//! escaped value := (printable byte except '\' | "\\" | "\n" | "\t" | "\r" | "\xHH")*
//! base64url     := RFC 4648 §5 alphabet (A-Z a-z 0-9 - _), no padding
//! ```
//!
//! Escaping keeps every config entry on one line, so a value may hold newlines, tabs and any
//! other control byte. Decoding rejects malformed escapes and NUL (no C string can carry it).

/// Escapes `s` so it fits on one config line (no control bytes, no newline).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Reverses [`escape`]. `None` on a malformed escape, a raw control byte or NUL.
pub fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            if (c as u32) < 0x20 || c as u32 == 0x7f {
                return None;
            }
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'x' => {
                let hi = chars.next()?.to_digit(16)?;
                let lo = chars.next()?.to_digit(16)?;
                let v = hi * 16 + lo;
                if v == 0 || v > 0x7f {
                    return None;
                }
                out.push(char::from_u32(v)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Encodes bytes as unpadded base64url (safe on a kernel command line: no spaces, quotes, `=`).
pub fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=n {
            out.push(B64[((v >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// Decodes unpadded base64url. `None` on any byte outside the alphabet or a bad length.
pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3 + 2);
    for chunk in bytes.chunks(4) {
        let mut v: u32 = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let d = B64.iter().position(|&x| x == c)? as u32;
            v |= d << (18 - 6 * i);
        }
        let full = [(v >> 16) as u8, (v >> 8) as u8, v as u8];
        let keep = chunk.len() - 1;
        // Reject non-canonical encodings (stray low bits), so each value has one encoding.
        let mask: u32 = match keep {
            1 => 0xffff,
            2 => 0xff,
            _ => 0,
        };
        if v & mask != 0 {
            return None;
        }
        out.extend_from_slice(&full[..keep]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escape_table() {
        let cases = [
            ("plain", "plain"),
            ("a b", "a b"),
            ("l1\nl2", "l1\\nl2"),
            ("back\\slash", "back\\\\slash"),
            ("\x01\x7f", "\\x01\\x7f"),
            ("tab\t", "tab\\t"),
            ("ünï", "ünï"),
        ];
        for (raw, esc) in cases {
            assert_eq!(escape(raw), esc);
            assert_eq!(unescape(esc).as_deref(), Some(raw));
        }
    }

    #[test]
    fn unescape_rejects_garbage() {
        for bad in [
            "\\",
            "\\q",
            "\\x0",
            "\\x00",
            "\\xzz",
            "raw\nnewline",
            "\\xff",
        ] {
            assert_eq!(unescape(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn base64_known_vectors() {
        assert_eq!(b64_encode(b""), "");
        assert_eq!(b64_encode(b"f"), "Zg");
        assert_eq!(b64_encode(b"fo"), "Zm8");
        assert_eq!(b64_encode(b"foo"), "Zm9v");
        assert_eq!(b64_encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(b64_decode("Zm9v").as_deref(), Some(&b"foo"[..]));
        assert_eq!(b64_decode("Z"), None);
        assert_eq!(b64_decode("Zh"), None, "non-canonical trailing bits");
        assert_eq!(b64_decode("Zm9v="), None);
    }

    proptest! {
        #[test]
        fn escape_roundtrips(s in "[^\u{0}]*") {
            let e = escape(&s);
            prop_assert!(!e.contains('\n'));
            prop_assert_eq!(unescape(&e), Some(s));
        }

        #[test]
        fn base64_roundtrips(v in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(b64_decode(&b64_encode(&v)), Some(v));
        }

        #[test]
        fn decoders_never_panic(s in ".*") {
            let _ = unescape(&s);
            let _ = b64_decode(&s);
        }
    }
}
