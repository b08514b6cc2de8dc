//! A JT/T 808 vehicle terminal written from the standard for the tests,
//! sharing no code with the gateway: frames are built and read here, byte
//! by byte (header, XOR checksum, 0x7E/0x7D escaping, BCD, GMT+8 times).

#![allow(dead_code)] // each test uses a different part

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const REGISTER: u16 = 0x0100;
pub const AUTHENTICATE: u16 = 0x0102;
pub const HEARTBEAT: u16 = 0x0002;
pub const LOGOUT: u16 = 0x0003;
pub const LOCATION: u16 = 0x0200;
pub const BATCH: u16 = 0x0704;
pub const PLATFORM_ANSWER: u16 = 0x8001;
pub const REGISTER_ANSWER: u16 = 0x8100;

/// How long the tests wait for any one answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// 6-byte BCD number, no version byte.
    V2013,
    /// Properties bit 14, protocol version 1, 10-byte BCD number.
    V2019,
}

/// A message from the platform.
#[derive(Debug)]
pub struct Answer {
    pub id: u16,
    pub body: Vec<u8>,
}

pub struct Terminal {
    stream: TcpStream,
    pub number: String,
    pub version: Version,
    serial: u16,
    inbox: Vec<u8>,
}

impl Terminal {
    pub async fn connect(addr: SocketAddr, number: &str, version: Version) -> Self {
        Self {
            stream: TcpStream::connect(addr)
                .await
                .expect("connect to the gateway"),
            number: number.into(),
            version,
            serial: 0,
            inbox: Vec::new(),
        }
    }

    /// The frame of message `id` with `serial` and `body`.
    pub fn frame(&self, id: u16, serial: u16, body: &[u8]) -> Vec<u8> {
        let mut message = Vec::new();
        message.extend_from_slice(&id.to_be_bytes());
        let mut properties = body.len() as u16 & 0x03ff;
        if self.version == Version::V2019 {
            properties |= 1 << 14;
        }
        message.extend_from_slice(&properties.to_be_bytes());
        let digits = match self.version {
            Version::V2013 => 12,
            Version::V2019 => {
                message.push(1);
                20
            }
        };
        message.extend_from_slice(&bcd(&format!("{:0>digits$}", self.number)));
        message.extend_from_slice(&serial.to_be_bytes());
        message.extend_from_slice(body);
        let checksum = message.iter().fold(0, |acc, b| acc ^ b);
        message.push(checksum);
        let mut frame = vec![0x7e];
        for byte in message {
            match byte {
                0x7e => frame.extend_from_slice(&[0x7d, 0x02]),
                0x7d => frame.extend_from_slice(&[0x7d, 0x01]),
                other => frame.push(other),
            }
        }
        frame.push(0x7e);
        frame
    }

    /// Sends a message with the next serial; returns the serial.
    pub async fn send(&mut self, id: u16, body: &[u8]) -> u16 {
        let serial = self.serial;
        self.serial = self.serial.wrapping_add(1);
        self.send_as(id, serial, body).await;
        serial
    }

    /// Sends a message with a given serial (a resend keeps its serial).
    pub async fn send_as(&mut self, id: u16, serial: u16, body: &[u8]) {
        let frame = self.frame(id, serial, body);
        self.send_raw(&frame).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("write to the gateway");
    }

    /// The next message from the platform (checksum verified).
    pub async fn answer(&mut self) -> Answer {
        tokio::time::timeout(ANSWER_TIMEOUT, self.read_answer())
            .await
            .expect("the gateway answers in time")
            .expect("the gateway keeps the connection open")
    }

    /// Whether the gateway closes the connection within `within`, reading
    /// (and discarding) anything it still sends.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let mut buf = [0u8; 512];
        let wait = async {
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(within, wait).await.is_ok()
    }

    async fn read_answer(&mut self) -> Option<Answer> {
        loop {
            // A frame: 7E, then bytes up to the next 7E.
            if let Some(start) = self.inbox.iter().position(|b| *b == 0x7e)
                && let Some(len) = self.inbox[start + 1..].iter().position(|b| *b == 0x7e)
            {
                let escaped: Vec<u8> = self.inbox[start + 1..start + 1 + len].to_vec();
                self.inbox.drain(..start + 2 + len);
                if escaped.is_empty() {
                    continue;
                }
                return Some(parse_answer(&escaped));
            }
            let mut buf = [0u8; 2048];
            let n = self.stream.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            self.inbox.extend_from_slice(&buf[..n]);
        }
    }

    /// Reads a 0x8001: (reply serial, reply id, result).
    pub async fn general(&mut self) -> (u16, u16, u8) {
        let answer = self.answer().await;
        assert_eq!(answer.id, PLATFORM_ANSWER, "{answer:?}");
        let b = &answer.body;
        assert_eq!(b.len(), 5, "{answer:?}");
        (
            u16::from_be_bytes([b[0], b[1]]),
            u16::from_be_bytes([b[2], b[3]]),
            b[4],
        )
    }

    /// Sends `id` and returns the 0x8001 result, checking that it answers
    /// this very message.
    pub async fn request(&mut self, id: u16, body: &[u8]) -> u8 {
        let serial = self.send(id, body).await;
        let (reply_serial, reply_id, result) = self.general().await;
        assert_eq!(
            (reply_serial, reply_id),
            (serial, id),
            "answer to this message"
        );
        result
    }

    /// 0x0100 with `plate` (GBK bytes); returns (result, code).
    pub async fn register(&mut self, plate: &[u8]) -> (u8, String) {
        let (manufacturer, model, id) = match self.version {
            Version::V2013 => (5, 20, 7),
            Version::V2019 => (11, 30, 30),
        };
        let mut body = vec![0x00, 0x0b, 0x00, 0x70]; // Beijing, Tongzhou
        body.extend(padded(b"CBTST", manufacturer));
        body.extend(padded(b"JT808-TEST", model));
        body.extend(padded(b"T000001", id));
        body.push(1); // blue plate
        body.extend_from_slice(plate);
        let serial = self.send(REGISTER, &body).await;
        let answer = self.answer().await;
        assert_eq!(answer.id, REGISTER_ANSWER, "{answer:?}");
        let b = &answer.body;
        assert_eq!(u16::from_be_bytes([b[0], b[1]]), serial);
        (
            b[2],
            String::from_utf8(b[3..].to_vec()).expect("an ASCII code"),
        )
    }

    /// 0x0102 in this terminal's version; returns the 0x8001 result.
    pub async fn authenticate(&mut self, code: &str) -> u8 {
        let body = match self.version {
            Version::V2013 => code.as_bytes().to_vec(),
            Version::V2019 => {
                let mut b = vec![code.len() as u8];
                b.extend_from_slice(code.as_bytes());
                b.extend(padded(b"860000000000001", 15));
                b.extend(padded(b"v1.0.0", 20));
                b
            }
        };
        self.request(AUTHENTICATE, &body).await
    }
}

fn parse_answer(escaped: &[u8]) -> Answer {
    let mut message = Vec::new();
    let mut i = 0;
    while i < escaped.len() {
        if escaped[i] == 0x7d {
            message.push(match escaped[i + 1] {
                0x01 => 0x7d,
                0x02 => 0x7e,
                other => panic!("bad escape 7d {other:02x} from the gateway"),
            });
            i += 2;
        } else {
            message.push(escaped[i]);
            i += 1;
        }
    }
    let checksum = message.pop().expect("a checksum");
    assert_eq!(
        message.iter().fold(0, |acc, b| acc ^ b),
        checksum,
        "the gateway's checksum"
    );
    let id = u16::from_be_bytes([message[0], message[1]]);
    let properties = u16::from_be_bytes([message[2], message[3]]);
    let header = if properties & (1 << 14) != 0 { 17 } else { 12 };
    let body = message[header..].to_vec();
    assert_eq!(
        body.len(),
        usize::from(properties & 0x03ff),
        "declared length"
    );
    Answer { id, body }
}

fn padded(text: &[u8], len: usize) -> Vec<u8> {
    let mut out = text.to_vec();
    out.resize(len, 0);
    out
}

fn bcd(digits: &str) -> Vec<u8> {
    digits
        .as_bytes()
        .chunks(2)
        .map(|p| ((p[0] - b'0') << 4) | (p[1] - b'0'))
        .collect()
}

/// A location report as the terminal knows it: raw JT/T 808 units.
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Degrees × 10⁶ (positive; `south`/`west` give the sign).
    pub lat_e6: u32,
    pub lon_e6: u32,
    pub south: bool,
    pub west: bool,
    pub altitude_m: u16,
    /// 0.1 km/h.
    pub speed_e1: u16,
    pub direction: u16,
    /// Unix seconds; sent as BCD GMT+8.
    pub at: i64,
    pub acc_on: bool,
    pub fixed: bool,
    pub alarm: u32,
    /// 0.1 km.
    pub mileage_e1: Option<u32>,
    pub satellites: Option<u8>,
    pub signal: Option<u8>,
}

impl Report {
    pub fn status(&self) -> u32 {
        u32::from(self.acc_on)
            | u32::from(self.fixed) << 1
            | u32::from(self.south) << 2
            | u32::from(self.west) << 3
    }

    pub fn body(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&self.alarm.to_be_bytes());
        b.extend_from_slice(&self.status().to_be_bytes());
        b.extend_from_slice(&self.lat_e6.to_be_bytes());
        b.extend_from_slice(&self.lon_e6.to_be_bytes());
        b.extend_from_slice(&self.altitude_m.to_be_bytes());
        b.extend_from_slice(&self.speed_e1.to_be_bytes());
        b.extend_from_slice(&self.direction.to_be_bytes());
        b.extend_from_slice(&bcd(&gmt8_digits(self.at)));
        // An add-on the gateway does not know (0x25, extended signals)
        // first: it must be skipped by its length.
        b.extend_from_slice(&[0x25, 4, 0, 0, 0, 0x10]);
        if let Some(m) = self.mileage_e1 {
            b.extend_from_slice(&[0x01, 4]);
            b.extend_from_slice(&m.to_be_bytes());
        }
        if let Some(s) = self.signal {
            b.extend_from_slice(&[0x30, 1, s]);
        }
        if let Some(s) = self.satellites {
            b.extend_from_slice(&[0x31, 1, s]);
        }
        b
    }

    /// Degrees as the platform should store them.
    pub fn latitude(&self) -> f64 {
        f64::from(self.lat_e6) / 1e6 * if self.south { -1.0 } else { 1.0 }
    }

    pub fn longitude(&self) -> f64 {
        f64::from(self.lon_e6) / 1e6 * if self.west { -1.0 } else { 1.0 }
    }

    pub fn speed_kmh(&self) -> f64 {
        f64::from(self.speed_e1) / 10.0
    }
}

/// A 0x0704 body: count, type 1 (blind-area re-upload), (length, item)*.
pub fn batch(reports: &[Report]) -> Vec<u8> {
    let mut b = (reports.len() as u16).to_be_bytes().to_vec();
    b.push(1);
    for report in reports {
        let item = report.body();
        b.extend_from_slice(&(item.len() as u16).to_be_bytes());
        b.extend_from_slice(&item);
    }
    b
}

/// `YYMMDDhhmmss` of Unix time `at` in GMT+8 (civil-from-days).
pub fn gmt8_digits(at: i64) -> String {
    let local = at + 8 * 3600;
    let (days, secs) = (local.div_euclid(86_400), local.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{:02}{month:02}{day:02}{:02}{:02}{:02}",
        year % 100,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}
