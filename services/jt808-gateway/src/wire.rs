//! JT/T 808's data types: big-endian BYTE / WORD / DWORD, BCD[n] and GBK
//! strings, read from an unescaped message without panicking on short input.

use std::fmt::Write as _;

/// A message body or header that does not hold what its type says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{field}: needs {need} bytes, {left} left")]
    Short {
        field: &'static str,
        need: usize,
        left: usize,
    },
    #[error("{field}: byte {byte:#04x} is not BCD")]
    NotBcd { field: &'static str, byte: u8 },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

/// Reads fields front to back; every read names the field it is for.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        if self.remaining() < n {
            return Err(WireError::Short {
                field,
                need: n,
                left: self.remaining(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.bytes(1, field)?[0])
    }

    pub fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        let b = self.bytes(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        let b = self.bytes(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }
}

/// The decimal digits of a BCD field (two per byte, high nibble first).
pub fn bcd_digits(bytes: &[u8], field: &'static str) -> Result<String, WireError> {
    let mut digits = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        if byte >> 4 > 9 || byte & 0x0f > 9 {
            return Err(WireError::NotBcd { field, byte });
        }
        let _ = write!(digits, "{byte:02x}");
    }
    Ok(digits)
}

/// `digits` as BCD in `len` bytes, left-padded with zeros. Callers pass
/// decimal digits only (at most `2 * len` of them).
pub fn bcd_encode(digits: &str, len: usize) -> Vec<u8> {
    let padded = format!("{digits:0>width$}", width = len * 2);
    let nibbles: Vec<u8> = padded
        .bytes()
        .rev()
        .take(len * 2)
        .rev()
        .map(|c| c.wrapping_sub(b'0') & 0x0f)
        .collect();
    nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
}

/// A GBK string field, without the NUL padding and spaces terminals put
/// around fixed-width text. Bytes that are not GBK become U+FFFD: a badly
/// encoded plate is still shown, never a reason to drop a message.
pub fn gbk(bytes: &[u8]) -> String {
    let (text, _, _) = encoding_rs::GBK.decode(bytes);
    text.trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string()
}

/// `text` in GBK (characters GBK lacks become `&#…;`, as encoding_rs does).
pub fn gbk_encode(text: &str) -> Vec<u8> {
    encoding_rs::GBK.encode(text).0.into_owned()
}

/// Lower-case hex of `bytes`, for logs and ids.
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_names_a_short_field() {
        let mut r = Reader::new(&[0x01, 0x02, 0x00, 0x00, 0x00, 0x26, 0x7e]);
        assert_eq!(r.u16("id").unwrap(), 0x0102);
        assert_eq!(r.u32("alarm").unwrap(), 0x26);
        assert_eq!(
            r.u16("speed").unwrap_err(),
            WireError::Short {
                field: "speed",
                need: 2,
                left: 1
            }
        );
        assert_eq!(r.rest(), &[0x7e]);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn bcd_round_trips_and_refuses_hex_nibbles() {
        assert_eq!(
            bcd_digits(&[0x01, 0x23, 0x45, 0x67, 0x89, 0x00], "terminal").unwrap(),
            "012345678900"
        );
        assert_eq!(
            bcd_encode("12345678900", 6),
            vec![0x01, 0x23, 0x45, 0x67, 0x89, 0x00]
        );
        assert_eq!(bcd_encode("123456789", 10)[..6], [0, 0, 0, 0, 0, 0x01]);
        assert_eq!(
            bcd_digits(&[0x4a], "terminal").unwrap_err(),
            WireError::NotBcd {
                field: "terminal",
                byte: 0x4a
            }
        );
    }

    #[test]
    fn gbk_plates_decode_and_lose_their_padding() {
        // "粤A12345" in GBK, as in SmallChi/JT808's 0x0100 test frames.
        assert_eq!(
            gbk(&[0xd4, 0xc1, 0x41, 0x31, 0x32, 0x33, 0x34, 0x35, 0x00]),
            "粤A12345"
        );
        // "京" is BE A9 in GBK.
        assert_eq!(gbk(&[0xbe, 0xa9, b'A', b' ']), "京A");
        assert_eq!(gbk(&[0xff, b'x']), "\u{fffd}x");
        assert_eq!(gbk_encode("京A"), [0xbe, 0xa9, b'A']);
    }
}
