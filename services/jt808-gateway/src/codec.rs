//! Framing: `0x7E | escaped(header | body | checksum) | 0x7E` on a TCP
//! stream, as a `tokio-util` codec.
//!
//! - Escaping: `7E` is sent as `7D 02`, `7D` as `7D 01`; the checksum is the
//!   XOR of header and body, computed before escaping.
//! - Delimiters are separators: bytes between two `7E` are one candidate
//!   frame, empty ones are skipped (terminals that share one `7E` between
//!   frames and those that send two both work), and whatever arrives before
//!   the first `7E` is a candidate too (and fails as garbage).
//! - A decode problem is an item, not a stream error, so the connection
//!   survives a bad frame: [`FrameCodec`] yields `Ok(Err(FrameError))`.
//! - Memory is bounded: bytes without a `7E` beyond [`MAX_FRAME`] are
//!   dropped (one [`FrameError::Oversized`]) up to the next `7E`.

use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

pub const FLAG: u8 = 0x7e;
pub const ESCAPE: u8 = 0x7d;
/// The largest unescaped message: a 2019 split header (21 bytes), the
/// largest body the 10-bit length allows (1023) and the checksum.
pub const MAX_MESSAGE: usize = 21 + 1023 + 1;
/// The largest escaped frame between delimiters (every byte escaped).
pub const MAX_FRAME: usize = 2 * MAX_MESSAGE;
/// The smallest message: a 2013 header (12 bytes) and the checksum.
pub const MIN_MESSAGE: usize = 12 + 1;

/// Why a candidate frame was dropped. Each has a fixed metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is shorter than a header and checksum")]
    TooShort { len: usize },
    #[error("more than {MAX_FRAME} bytes without a 0x7e delimiter; dropped up to the next one")]
    Oversized,
    #[error("0x7d at offset {at} is not followed by 0x01 or 0x02")]
    BadEscape { at: usize },
    #[error("checksum {received:#04x} does not match the computed {computed:#04x}")]
    Checksum { received: u8, computed: u8 },
    #[error("connection closed inside a frame ({len} bytes after the last 0x7e)")]
    Truncated { len: usize },
}

impl FrameError {
    pub fn label(&self) -> &'static str {
        match self {
            FrameError::TooShort { .. } => "too_short",
            FrameError::Oversized => "oversized",
            FrameError::BadEscape { .. } => "bad_escape",
            FrameError::Checksum { .. } => "checksum",
            FrameError::Truncated { .. } => "truncated",
        }
    }
}

/// Decodes frames into unescaped, checksum-verified messages (header and
/// body, without the checksum) and encodes messages into frames.
#[derive(Debug, Default)]
pub struct FrameCodec {
    /// Dropping an oversized frame until the next delimiter.
    discarding: bool,
    /// Bytes of the buffer already searched for a delimiter.
    scanned: usize,
}

impl Decoder for FrameCodec {
    type Item = Result<Bytes, FrameError>;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        loop {
            let Some(offset) = src[self.scanned..].iter().position(|b| *b == FLAG) else {
                if self.discarding {
                    src.clear();
                    self.scanned = 0;
                } else if src.len() > MAX_FRAME {
                    src.clear();
                    self.scanned = 0;
                    self.discarding = true;
                    return Ok(Some(Err(FrameError::Oversized)));
                } else {
                    self.scanned = src.len();
                }
                return Ok(None);
            };
            let end = self.scanned + offset;
            let candidate = src.split_to(end + 1);
            self.scanned = 0;
            if std::mem::take(&mut self.discarding) {
                continue;
            }
            let escaped = &candidate[..end];
            if escaped.is_empty() {
                continue;
            }
            if escaped.len() > MAX_FRAME {
                return Ok(Some(Err(FrameError::Oversized)));
            }
            return Ok(Some(unescape(escaped)));
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        let len = src.len();
        src.clear();
        self.scanned = 0;
        if len == 0 || std::mem::take(&mut self.discarding) {
            return Ok(None);
        }
        Ok(Some(Err(FrameError::Truncated { len })))
    }
}

/// Encodes an unescaped message (header and body): checksum, escaping and
/// the two delimiters.
impl Encoder<Bytes> for FrameCodec {
    type Error = std::io::Error;

    fn encode(&mut self, message: Bytes, dst: &mut BytesMut) -> Result<(), Self::Error> {
        frame_into(&message, dst);
        Ok(())
    }
}

/// Appends the frame of `message` to `dst`.
pub fn frame_into(message: &[u8], dst: &mut BytesMut) {
    dst.reserve(message.len() * 2 + 4);
    dst.put_u8(FLAG);
    let checksum = message.iter().fold(0u8, |acc, b| acc ^ b);
    for &byte in message.iter().chain(std::iter::once(&checksum)) {
        match byte {
            FLAG => dst.put_slice(&[ESCAPE, 0x02]),
            ESCAPE => dst.put_slice(&[ESCAPE, 0x01]),
            other => dst.put_u8(other),
        }
    }
    dst.put_u8(FLAG);
}

/// Undoes the escaping and checks the checksum.
fn unescape(escaped: &[u8]) -> Result<Bytes, FrameError> {
    let mut out = BytesMut::with_capacity(escaped.len());
    let mut i = 0;
    while i < escaped.len() {
        let byte = escaped[i];
        if byte == ESCAPE {
            match escaped.get(i + 1) {
                Some(0x01) => out.put_u8(ESCAPE),
                Some(0x02) => out.put_u8(FLAG),
                _ => return Err(FrameError::BadEscape { at: i }),
            }
            i += 2;
        } else {
            out.put_u8(byte);
            i += 1;
        }
    }
    if out.len() < MIN_MESSAGE {
        return Err(FrameError::TooShort { len: out.len() });
    }
    let received = out[out.len() - 1];
    out.truncate(out.len() - 1);
    let computed = out.iter().fold(0u8, |acc, b| acc ^ b);
    if received != computed {
        return Err(FrameError::Checksum { received, computed });
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(message: &[u8]) -> Vec<u8> {
        let mut dst = BytesMut::new();
        frame_into(message, &mut dst);
        dst.to_vec()
    }

    /// A 2013 heartbeat (0x0002) from 013912345678 with `serial`.
    fn heartbeat(serial: u16) -> Vec<u8> {
        let mut m = vec![0x00, 0x02, 0x00, 0x00, 0x01, 0x39, 0x12, 0x34, 0x56, 0x78];
        m.extend_from_slice(&serial.to_be_bytes());
        m
    }

    fn decode(chunks: &[&[u8]]) -> Vec<Result<Bytes, FrameError>> {
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                out.push(item);
            }
        }
        while let Some(item) = codec.decode_eof(&mut buf).unwrap() {
            out.push(item);
        }
        out
    }

    #[test]
    fn a_checksum_of_7e_or_7d_is_escaped_too() {
        for target in [FLAG, ESCAPE] {
            // Choose the serial's low byte so that the checksum is `target`.
            let base = heartbeat(0);
            let xor = base.iter().fold(0u8, |a, b| a ^ b);
            let message = heartbeat(u16::from(xor ^ target));
            let frame = framed(&message);
            let tail = &frame[frame.len() - 3..];
            assert_eq!(tail, [ESCAPE, if target == FLAG { 2 } else { 1 }, FLAG]);
            assert_eq!(decode(&[&frame]), vec![Ok(Bytes::from(message))]);
        }
    }

    #[test]
    fn an_escape_split_across_reads_and_byte_by_byte_input_decode() {
        let message = heartbeat(0x7e7d);
        let frame = framed(&message);
        let at = frame.iter().position(|b| *b == ESCAPE).unwrap() + 1;
        assert_eq!(
            decode(&[&frame[..at], &frame[at..]]),
            vec![Ok(Bytes::from(message.clone()))]
        );
        let bytes: Vec<&[u8]> = frame.chunks(1).collect();
        assert_eq!(decode(&bytes), vec![Ok(Bytes::from(message))]);
    }

    #[test]
    fn shared_delimiters_empty_frames_and_leading_garbage() {
        let (a, b) = (heartbeat(1), heartbeat(2));
        let mut stream = b"GET / HTTP/1.1\r\n".to_vec();
        stream.extend_from_slice(&framed(&a));
        stream.pop(); // a's closing 7E doubles as b's opening one
        stream.extend_from_slice(&framed(&b));
        stream.extend_from_slice(&[FLAG, FLAG]);
        let items = decode(&[&stream]);
        assert!(
            matches!(items[0], Err(FrameError::Checksum { .. })),
            "{items:?}"
        );
        assert_eq!(items[1..], [Ok(Bytes::from(a)), Ok(Bytes::from(b))]);
    }

    #[test]
    fn bad_escapes_short_frames_and_flipped_bits_are_refused() {
        let mut frame = framed(&heartbeat(3));
        frame[5] = ESCAPE;
        frame.insert(6, 0x03);
        assert!(matches!(
            decode(&[&frame])[..],
            [Err(FrameError::BadEscape { .. })]
        ));
        assert_eq!(
            decode(&[&[FLAG, 1, 2, 3, FLAG]]),
            vec![Err(FrameError::TooShort { len: 3 })]
        );
        let mut frame = framed(&heartbeat(3));
        frame[3] ^= 0x10;
        assert!(matches!(
            decode(&[&frame])[..],
            [Err(FrameError::Checksum { .. })]
        ));
    }

    #[test]
    fn a_frame_that_never_ends_is_dropped_and_the_stream_recovers() {
        let endless = vec![0x55u8; MAX_FRAME * 3];
        let next = framed(&heartbeat(4));
        let mut codec = FrameCodec::default();
        let mut buf = BytesMut::new();
        let mut errors = 0;
        buf.extend_from_slice(&[FLAG]);
        for chunk in endless.chunks(1000) {
            buf.extend_from_slice(chunk);
            while let Some(item) = codec.decode(&mut buf).unwrap() {
                assert_eq!(item, Err(FrameError::Oversized));
                errors += 1;
            }
            assert!(buf.len() <= MAX_FRAME + 1000, "memory stays bounded");
        }
        assert_eq!(errors, 1, "one error per endless frame");
        buf.extend_from_slice(&next);
        let item = codec.decode(&mut buf).unwrap();
        // The dropped frame ends at `next`'s opening 7E; `next` is intact.
        assert_eq!(item, Some(Ok(Bytes::from(heartbeat(4)))));
    }

    #[test]
    fn a_connection_closed_inside_a_frame_is_truncated() {
        let frame = framed(&heartbeat(5));
        assert_eq!(
            decode(&[&frame[..9]]),
            vec![Err(FrameError::Truncated { len: 8 })]
        );
        assert_eq!(decode(&[&[FLAG]]), vec![]);
    }
}
