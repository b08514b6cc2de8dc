//! The message header (JT/T 808-2013 and -2019) and the platform's replies.
//!
//! ```text
//! 2013: id(2) properties(2) terminal BCD[6]  serial(2) [count(2) index(2)]
//! 2019: id(2) properties(2) version(1) terminal BCD[10] serial(2) [count(2) index(2)]
//! properties: bits 0-9 body length, 10-12 encryption, 13 split, 14 version flag
//! ```
//!
//! The version comes from bit 14, checked against the length: some 2013
//! terminals set that (then reserved) bit, and their frames only add up with
//! a 2013 header (SmallChi/JT808 parses them with `JTT2013Force`). A header
//! that fits neither is refused.

use crate::wire::{self, Reader, WireError};
use bytes::{BufMut, Bytes, BytesMut};

/// Message ids the gateway knows.
pub mod id {
    pub const TERMINAL_ANSWER: u16 = 0x0001;
    pub const HEARTBEAT: u16 = 0x0002;
    pub const LOGOUT: u16 = 0x0003;
    pub const QUERY_TIME: u16 = 0x0004;
    pub const REGISTER: u16 = 0x0100;
    pub const AUTHENTICATE: u16 = 0x0102;
    pub const LOCATION: u16 = 0x0200;
    pub const LOCATION_BATCH: u16 = 0x0704;
    pub const PLATFORM_ANSWER: u16 = 0x8001;
    pub const TIME_ANSWER: u16 = 0x8004;
    pub const REGISTER_ANSWER: u16 = 0x8100;

    /// The metric label of a terminal message id: the known ones by name,
    /// everything else as `other`.
    pub fn label(id: u16) -> &'static str {
        match id {
            TERMINAL_ANSWER => "0x0001",
            HEARTBEAT => "0x0002",
            LOGOUT => "0x0003",
            QUERY_TIME => "0x0004",
            REGISTER => "0x0100",
            AUTHENTICATE => "0x0102",
            LOCATION => "0x0200",
            LOCATION_BATCH => "0x0704",
            _ => "other",
        }
    }
}

const VERSION_FLAG: u16 = 1 << 14;
const SPLIT_FLAG: u16 = 1 << 13;
const LENGTH_MASK: u16 = 0x03ff;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V2013,
    /// JT/T 808-2019, with the header's protocol version byte (1 so far).
    V2019 {
        protocol: u8,
    },
}

impl Version {
    fn terminal_len(self) -> usize {
        match self {
            Version::V2013 => 6,
            Version::V2019 { .. } => 10,
        }
    }

    fn header_len(self, split: bool) -> usize {
        let base = match self {
            Version::V2013 => 12,
            Version::V2019 { .. } => 17,
        };
        base + if split { 4 } else { 0 }
    }
}

/// A terminal's number as its header carries it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Terminal {
    bcd: Vec<u8>,
    digits: String,
}

impl Terminal {
    /// The number without leading zeros: the same terminal under a 2013
    /// (12-digit) and a 2019 (20-digit) header, and the registry's key.
    pub fn number(&self) -> &str {
        let trimmed = self.digits.trim_start_matches('0');
        if trimmed.is_empty() { "0" } else { trimmed }
    }

    /// All digits, as sent.
    pub fn digits(&self) -> &str {
        &self.digits
    }
}

/// Packet `index` (1-based) of a message split into `count` packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub count: u16,
    pub index: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub version: Version,
    /// Bits 10-12: 0 none, 1 RSA (the gateway supports none other).
    pub encryption: u8,
    pub terminal: Terminal,
    pub serial: u16,
    pub split: Option<Split>,
}

/// One message from a terminal: its header and (for a split packet, a
/// piece of) its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub body: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error(
        "header declares a {declared}-byte body, but the frame holds {actual} bytes after \
         a 2013 or 2019 header"
    )]
    Length { declared: usize, actual: usize },
    #[error("split packet {index} of {count} is not a valid packet index")]
    Split { count: u16, index: u16 },
}

impl Message {
    /// Parses an unescaped message (as [`crate::codec::FrameCodec`] yields it).
    pub fn parse(message: Bytes) -> Result<Self, HeaderError> {
        let mut r = Reader::new(&message);
        let id = r.u16("header.id")?;
        let properties = r.u16("header.properties")?;
        let declared = usize::from(properties & LENGTH_MASK);
        let split = properties & SPLIT_FLAG != 0;
        let fits = |version: Version| message.len() == version.header_len(split) + declared;
        let version = if properties & VERSION_FLAG != 0 && fits(Version::V2019 { protocol: 0 }) {
            Version::V2019 {
                protocol: r.u8("header.protocol_version")?,
            }
        } else if fits(Version::V2013) {
            Version::V2013
        } else {
            let header = Version::V2013.header_len(split);
            return Err(HeaderError::Length {
                declared,
                actual: message.len().saturating_sub(header),
            });
        };
        let bcd = r.bytes(version.terminal_len(), "header.terminal")?;
        let terminal = Terminal {
            digits: wire::bcd_digits(bcd, "header.terminal")?,
            bcd: bcd.to_vec(),
        };
        let serial = r.u16("header.serial")?;
        let split = if split {
            let count = r.u16("header.packet_count")?;
            let index = r.u16("header.packet_index")?;
            if count == 0 || index == 0 || index > count {
                return Err(HeaderError::Split { count, index });
            }
            Some(Split { count, index })
        } else {
            None
        };
        let start = message.len() - r.remaining();
        Ok(Message {
            header: Header {
                id,
                version,
                encryption: ((properties >> 10) & 0x07) as u8,
                terminal,
                serial,
                split,
            },
            body: message.slice(start..),
        })
    }
}

/// What the platform answers in 0x8001 (and in 0x8100 for registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultCode {
    Ok = 0,
    /// Not done now; the terminal keeps the message and sends it again.
    Fail = 1,
    /// The message is wrong; sending it again will not help.
    BadMessage = 2,
    Unsupported = 3,
}

impl ResultCode {
    pub fn label(self) -> &'static str {
        match self {
            ResultCode::Ok => "ok",
            ResultCode::Fail => "fail",
            ResultCode::BadMessage => "bad_message",
            ResultCode::Unsupported => "unsupported",
        }
    }
}

/// 0x8100 results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterResult {
    Ok = 0,
    VehicleAlreadyRegistered = 1,
    NoSuchVehicle = 2,
    TerminalAlreadyRegistered = 3,
    NoSuchTerminal = 4,
}

/// Builds messages to one terminal, in the header form it uses, with the
/// platform's own serial numbers (or, [`Replier::for_terminal`], a
/// terminal's own messages).
#[derive(Debug, Clone)]
pub struct Replier {
    version: Version,
    terminal: Vec<u8>,
    next_serial: u16,
}

impl Replier {
    pub fn new(header: &Header) -> Self {
        Self {
            version: header.version,
            terminal: header.terminal.bcd.clone(),
            next_serial: 0,
        }
    }

    /// Messages in the header form of terminal `number` (decimal digits):
    /// what a terminal itself writes (the simulator's terminals and the
    /// benchmark's load use this; the tests' terminal has its own code).
    pub fn for_terminal(number: &str, version: Version) -> Self {
        Self {
            version,
            terminal: wire::bcd_encode(number, version.terminal_len()),
            next_serial: 0,
        }
    }

    /// Follows the terminal's header form (a terminal may change version
    /// after a firmware update without reconnecting).
    pub fn follow(&mut self, header: &Header) {
        self.version = header.version;
        self.terminal.clone_from(&header.terminal.bcd);
    }

    /// 0x8001: the answer to the terminal message (`id`, `serial`).
    pub fn general(&mut self, id: u16, serial: u16, result: ResultCode) -> Bytes {
        let mut body = BytesMut::with_capacity(5);
        body.put_u16(serial);
        body.put_u16(id);
        body.put_u8(result as u8);
        self.message(id::PLATFORM_ANSWER, &body)
    }

    /// 0x8100: the answer to registration `serial`, with the authentication
    /// code when the result is OK.
    pub fn register(&mut self, serial: u16, result: RegisterResult, code: Option<&str>) -> Bytes {
        let mut body = BytesMut::with_capacity(3 + code.map_or(0, str::len));
        body.put_u16(serial);
        body.put_u8(result as u8);
        if let (RegisterResult::Ok, Some(code)) = (result, code) {
            body.put_slice(code.as_bytes());
        }
        self.message(id::REGISTER_ANSWER, &body)
    }

    /// 0x8004: the platform's time, BCD `YYMMDDhhmmss` in UTC (2019).
    pub fn time(&mut self, utc_digits: &str) -> Bytes {
        self.message(id::TIME_ANSWER, &wire::bcd_encode(utc_digits, 6))
    }

    /// Any message: header in the terminal's form, then `body`.
    pub fn message(&mut self, id: u16, body: &[u8]) -> Bytes {
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        let mut out = BytesMut::with_capacity(self.version.header_len(false) + body.len());
        out.put_u16(id);
        let mut properties = (body.len() as u16) & LENGTH_MASK;
        if let Version::V2019 { .. } = self.version {
            properties |= VERSION_FLAG;
        }
        out.put_u16(properties);
        if let Version::V2019 { protocol } = self.version {
            out.put_u8(protocol);
        }
        out.put_slice(&self.terminal);
        out.put_u16(serial);
        out.put_slice(body);
        out.freeze()
    }
}
