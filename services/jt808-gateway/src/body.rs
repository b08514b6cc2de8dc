//! Message bodies the gateway reads: registration 0x0100, authentication
//! 0x0102, location 0x0200 and the batch 0x0704. Fields follow JT/T
//! 808-2013 and -2019 (tables 8, 11, 23-28 of the 2019 text).

use crate::message::Version;
use crate::wire::{self, Reader, WireError};

/// 0x0100. Strings are GBK, without their padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub province: u16,
    pub city: u16,
    pub manufacturer: String,
    pub model: String,
    pub terminal_id: String,
    /// 0: no plate (then `plate` holds the VIN).
    pub plate_color: u8,
    pub plate: String,
}

/// 2013: manufacturer BYTE[5], model BYTE[20], terminal id BYTE[7];
/// 2019: BYTE[11], BYTE[30], BYTE[30].
pub fn registration(body: &[u8], version: Version) -> Result<Registration, WireError> {
    let (manufacturer, model, terminal_id) = match version {
        Version::V2013 => (5, 20, 7),
        Version::V2019 { .. } => (11, 30, 30),
    };
    let mut r = Reader::new(body);
    Ok(Registration {
        province: r.u16("register.province")?,
        city: r.u16("register.city")?,
        manufacturer: wire::gbk(r.bytes(manufacturer, "register.manufacturer")?),
        model: wire::gbk(r.bytes(model, "register.model")?),
        terminal_id: wire::gbk(r.bytes(terminal_id, "register.terminal_id")?),
        plate_color: r.u8("register.plate_color")?,
        plate: wire::gbk(r.rest()),
    })
}

/// 0x0102.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authentication {
    pub code: String,
    /// 2019 only.
    pub imei: Option<String>,
    /// 2019 only.
    pub software_version: Option<String>,
}

/// 2013: the whole body is the code. 2019: code length BYTE, the code,
/// IMEI BYTE[15], software version BYTE[20].
pub fn authentication(body: &[u8], version: Version) -> Result<Authentication, WireError> {
    match version {
        Version::V2013 => Ok(Authentication {
            code: wire::gbk(body),
            imei: None,
            software_version: None,
        }),
        Version::V2019 { .. } => {
            let mut r = Reader::new(body);
            let len = r.u8("authenticate.code_length")?;
            let code = wire::gbk(r.bytes(usize::from(len), "authenticate.code")?);
            Ok(Authentication {
                code,
                imei: Some(wire::gbk(r.bytes(15, "authenticate.imei")?)),
                software_version: Some(wire::gbk(r.bytes(20, "authenticate.software_version")?)),
            })
        }
    }
}

/// Status word bits the gateway interprets (2019 table 25).
pub mod status {
    pub const ACC_ON: u32 = 1 << 0;
    pub const FIXED: u32 = 1 << 1;
    pub const SOUTH: u32 = 1 << 2;
    pub const WEST: u32 = 1 << 3;
    /// 停运: the vehicle is out of operation.
    pub const OUT_OF_SERVICE: u32 = 1 << 4;
    /// Coordinates encrypted by a secrecy plug-in.
    pub const ENCRYPTED: u32 = 1 << 5;
}

/// One location body (0x0200, or an item of 0x0704), fields as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub alarm: u32,
    pub status: u32,
    /// Degrees × 10⁶, the sign in the status word.
    pub latitude: u32,
    pub longitude: u32,
    /// Metres.
    pub altitude: u16,
    /// 0.1 km/h.
    pub speed: u16,
    /// Degrees, 0-359.
    pub direction: u16,
    /// BCD `YYMMDDhhmmss`, GMT+8.
    pub time: [u8; 6],
    /// Add-on 0x01: odometer, 0.1 km.
    pub mileage: Option<u32>,
    /// Add-on 0x30: mobile network signal strength.
    pub signal: Option<u8>,
    /// Add-on 0x31: GNSS satellites in use.
    pub satellites: Option<u8>,
}

/// The 28-byte basic block, then add-on items (id BYTE, length BYTE,
/// value). Unknown items are skipped by their length; a known item of the
/// wrong length is ignored; a truncated last item ends the list (the basic
/// block is still a position).
pub fn location(body: &[u8]) -> Result<Location, WireError> {
    let mut r = Reader::new(body);
    let mut location = Location {
        alarm: r.u32("location.alarm")?,
        status: r.u32("location.status")?,
        latitude: r.u32("location.latitude")?,
        longitude: r.u32("location.longitude")?,
        altitude: r.u16("location.altitude")?,
        speed: r.u16("location.speed")?,
        direction: r.u16("location.direction")?,
        time: r
            .bytes(6, "location.time")?
            .try_into()
            .expect("six bytes were read"),
        mileage: None,
        signal: None,
        satellites: None,
    };
    while r.remaining() >= 2 {
        let item = r.u8("location.add_on.id")?;
        let len = usize::from(r.u8("location.add_on.length")?);
        let Ok(value) = r.bytes(len, "location.add_on.value") else {
            break;
        };
        match (item, value) {
            (0x01, &[a, b, c, d]) => location.mileage = Some(u32::from_be_bytes([a, b, c, d])),
            (0x30, &[v]) => location.signal = Some(v),
            (0x31, &[v]) => location.satellites = Some(v),
            _ => {}
        }
    }
    Ok(location)
}

/// The body of `location` as a terminal sends it (0x0200, or a 0x0704
/// item): the basic block, then the add-ons it has (0x01, 0x30, 0x31).
pub fn encode_location(location: &Location) -> Vec<u8> {
    let mut b = Vec::with_capacity(28 + 12);
    for word in [
        location.alarm,
        location.status,
        location.latitude,
        location.longitude,
    ] {
        b.extend_from_slice(&word.to_be_bytes());
    }
    for half in [location.altitude, location.speed, location.direction] {
        b.extend_from_slice(&half.to_be_bytes());
    }
    b.extend_from_slice(&location.time);
    if let Some(mileage) = location.mileage {
        b.extend_from_slice(&[0x01, 4]);
        b.extend_from_slice(&mileage.to_be_bytes());
    }
    if let Some(signal) = location.signal {
        b.extend_from_slice(&[0x30, 1, signal]);
    }
    if let Some(satellites) = location.satellites {
        b.extend_from_slice(&[0x31, 1, satellites]);
    }
    b
}

/// A 0x0704 body of `items` (each an encoded location), type `kind`.
pub fn encode_batch(kind: u8, items: &[Vec<u8>]) -> Vec<u8> {
    let mut b = (items.len() as u16).to_be_bytes().to_vec();
    b.push(kind);
    for item in items {
        b.extend_from_slice(&(item.len() as u16).to_be_bytes());
        b.extend_from_slice(item);
    }
    b
}

/// 0x0704: count WORD, type BYTE (0 normal batch, 1 blind-area
/// re-upload), then `count` items of (length WORD, location body). Each
/// item is parsed on its own, so one bad item does not lose the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub kind: u8,
    pub items: Vec<Result<Location, WireError>>,
}

pub fn batch(body: &[u8]) -> Result<Batch, WireError> {
    let mut r = Reader::new(body);
    let count = r.u16("batch.count")?;
    let kind = r.u8("batch.type")?;
    let mut items = Vec::with_capacity(usize::from(count).min(256));
    for _ in 0..count {
        let len = usize::from(r.u16("batch.item_length")?);
        items.push(location(r.bytes(len, "batch.item")?));
    }
    Ok(Batch { kind, items })
}
