//! Some of the town's vehicles report as their JT/T 808 terminals would:
//! over TCP to the jt808 gateway (`--vehicles-via-jt808`), so the live town
//! exercises that path end to end.
//!
//! Each vehicle of the terminal registry (the gateway's own file) gets one
//! terminal task: it registers once and keeps its code, authenticates on
//! every connection, sends each live position as 0x0200 and waits for the
//! platform's answer, resending the same message (same serial) on "fail".
//! Positions that pile up while the gateway is away go out as 0x0704
//! batches (blind-area re-upload) when it is back. Odd-numbered terminals
//! speak JT/T 808-2019, the others 2013.
//!
//! What the terminal cannot carry (route, trip, stop, occupancy,
//! passengers) is lost on this path, as it is for a real terminal.

use citybrain_jt808_gateway::body::{self, Location, status};
use citybrain_jt808_gateway::codec::FrameCodec;
use citybrain_jt808_gateway::location::bcd_digits_at;
use citybrain_jt808_gateway::message::{Message, Replier, Version, id};
use citybrain_jt808_gateway::registry::{Registry, RegistryError, Vehicle};
use citybrain_jt808_gateway::wire;
use citybrain_proto::events::v1::{Event, ServiceStatus, event::Payload};
use futures::{SinkExt, StreamExt};
use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::codec::Framed;

/// Positions a terminal keeps while the gateway is away (a real one keeps
/// days of them; this bounds the simulator's memory).
const MAX_PENDING: usize = 20_000;
/// Items per 0x0704 (each ~40 bytes; a body holds at most 1023).
const BATCH_ITEMS: usize = 20;
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the fleet did, for the simulator's summary.
#[derive(Debug, Default)]
pub struct FleetCounters {
    /// Positions the gateway answered "ok".
    pub stored: AtomicU64,
    /// Positions answered "bad message" or "unsupported" (dropped).
    pub refused: AtomicU64,
    /// Positions dropped because a terminal's queue was full.
    pub dropped: AtomicU64,
    /// Messages sent again after "fail" or a lost connection.
    pub resent: AtomicU64,
}

/// The JT/T 808 terminals of the registry's vehicles.
pub struct Fleet {
    routes: HashMap<String, mpsc::UnboundedSender<Location>>,
    tasks: JoinSet<()>,
    pub counters: Arc<FleetCounters>,
}

impl Fleet {
    /// Starts one terminal per registry entry, reporting to `addr`.
    pub fn start(addr: &str, registry_file: &Path) -> Result<Self, RegistryError> {
        let registry = Registry::load(registry_file)?;
        let counters = Arc::new(FleetCounters::default());
        let mut vehicles: Vec<Arc<Vehicle>> = registry.vehicles().cloned().collect();
        vehicles.sort_by(|a, b| a.terminal.cmp(&b.terminal));
        let mut routes = HashMap::new();
        let mut tasks = JoinSet::new();
        for (i, vehicle) in vehicles.into_iter().enumerate() {
            let (tx, rx) = mpsc::unbounded_channel();
            routes.insert(vehicle.vehicle_id.clone(), tx);
            let version = if i % 2 == 1 {
                Version::V2019 { protocol: 1 }
            } else {
                Version::V2013
            };
            let terminal = Terminal {
                addr: addr.to_string(),
                vehicle,
                version,
                counters: counters.clone(),
                pending: VecDeque::new(),
                code: None,
            };
            tasks.spawn(terminal.run(rx));
        }
        tracing::info!(
            terminals = routes.len(),
            gateway = addr,
            "vehicles report through the jt808 gateway"
        );
        Ok(Self {
            routes,
            tasks,
            counters,
        })
    }

    /// Takes the positions of the fleet's vehicles out of `events` (their
    /// terminals send them); returns the rest.
    pub fn take(&self, events: Vec<Event>) -> Vec<Event> {
        events
            .into_iter()
            .filter(|event| {
                let Some(Payload::VehiclePosition(p)) = &event.payload else {
                    return true;
                };
                let Some(route) = self.routes.get(&p.vehicle_id) else {
                    return true;
                };
                match location(event) {
                    Some(loc) => route.send(loc).is_err(),
                    None => true,
                }
            })
            .collect()
    }

    /// Lets the terminals send what they hold for up to `timeout`.
    pub async fn close(mut self, timeout: Duration) {
        self.routes.clear();
        let drained = tokio::time::timeout(timeout, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("jt808 terminals still had positions to send; leaving them");
            self.tasks.abort_all();
        }
    }
}

/// A simulated position as its terminal reports it.
fn location(event: &Event) -> Option<Location> {
    let Some(Payload::VehiclePosition(p)) = &event.payload else {
        return None;
    };
    let point = event.location.as_ref()?;
    let at = event.observed_at.as_ref()?.seconds;
    let mut state = status::FIXED;
    if p.ignition_on {
        state |= status::ACC_ON;
    }
    if point.latitude < 0.0 {
        state |= status::SOUTH;
    }
    if point.longitude < 0.0 {
        state |= status::WEST;
    }
    if p.service_status == ServiceStatus::OutOfService as i32 {
        state |= status::OUT_OF_SERVICE;
    }
    let digits = bcd_digits_at(at, true);
    Some(Location {
        alarm: 0,
        status: state,
        latitude: (point.latitude.abs() * 1e6).round() as u32,
        longitude: (point.longitude.abs() * 1e6).round() as u32,
        altitude: point.altitude_m.unwrap_or(0.0).round() as i16 as u16,
        speed: (p.speed_kmh * 10.0).round() as u16,
        direction: p.heading_deg.unwrap_or(0.0).round() as u16 % 360,
        time: wire::bcd_encode(&digits, 6).try_into().ok()?,
        mileage: p.odometer_km.map(|km| (km * 10.0).round() as u32),
        signal: Some(25),
        satellites: Some(12),
    })
}

struct Terminal {
    addr: String,
    vehicle: Arc<Vehicle>,
    version: Version,
    counters: Arc<FleetCounters>,
    pending: VecDeque<Location>,
    /// The authentication code, once registered.
    code: Option<String>,
}

type Link = Framed<TcpStream, FrameCodec>;

impl Terminal {
    async fn run(mut self, mut positions: mpsc::UnboundedReceiver<Location>) {
        let mut backoff = Duration::from_millis(500);
        let mut open = true;
        loop {
            if !open && self.pending.is_empty() {
                return;
            }
            match self.session(&mut positions, &mut open).await {
                Ok(()) => return,
                Err(reason) => {
                    tracing::debug!(terminal = %self.vehicle.terminal, %reason, "reconnecting");
                    // Keep collecting while away, as a terminal does.
                    let _ = tokio::time::timeout(backoff, async {
                        while let Some(loc) = positions.recv().await {
                            self.keep(loc);
                        }
                    })
                    .await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if positions.is_closed() && positions.is_empty() {
                        open = false;
                    }
                }
            }
        }
    }

    fn keep(&mut self, loc: Location) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        self.pending.push_back(loc);
    }

    /// One connection: authenticate, then send until the queue is closed
    /// and empty (`Ok`) or the link fails (`Err`, reconnect).
    async fn session(
        &mut self,
        positions: &mut mpsc::UnboundedReceiver<Location>,
        open: &mut bool,
    ) -> Result<(), String> {
        let stream = tokio::time::timeout(ANSWER_TIMEOUT, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let mut link = Framed::new(stream, FrameCodec::default());
        let mut out = Replier::for_terminal(&self.vehicle.terminal, self.version);
        if self.code.is_none() {
            self.code = Some(self.register(&mut link, &mut out).await?);
        }
        let code = self.code.clone().unwrap_or_default();
        let body = match self.version {
            Version::V2013 => code.into_bytes(),
            Version::V2019 { .. } => {
                let mut b = vec![code.len() as u8];
                b.extend_from_slice(code.as_bytes());
                b.extend_from_slice(&[b'0'; 15]);
                b.extend_from_slice(b"citybrain-sim\0\0\0\0\0\0\0");
                b
            }
        };
        if exchange(&mut link, out.message(id::AUTHENTICATE, &body)).await? != 0 {
            self.code = None; // register again on the next connection
            return Err("authentication refused".into());
        }
        loop {
            while let Ok(loc) = positions.try_recv() {
                self.keep(loc);
            }
            if self.pending.is_empty() {
                if !*open {
                    return Ok(());
                }
                match tokio::time::timeout(HEARTBEAT, positions.recv()).await {
                    Ok(Some(loc)) => self.keep(loc),
                    Ok(None) => *open = false,
                    Err(_) => {
                        if exchange(&mut link, out.message(id::HEARTBEAT, &[])).await? != 0 {
                            return Err("heartbeat refused".into());
                        }
                    }
                }
                continue;
            }
            let n = self.pending.len().min(BATCH_ITEMS);
            let items: Vec<Vec<u8>> = self.pending.range(..n).map(body::encode_location).collect();
            let message = if n == 1 {
                out.message(id::LOCATION, &items[0])
            } else {
                out.message(id::LOCATION_BATCH, &body::encode_batch(1, &items))
            };
            let mut wait = Duration::from_millis(200);
            loop {
                match exchange(&mut link, message.clone()).await? {
                    0 => {
                        self.counters.stored.fetch_add(n as u64, Ordering::Relaxed);
                        break;
                    }
                    1 => {
                        // Not stored now: the same message again, later.
                        self.counters.resent.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(MAX_BACKOFF);
                    }
                    result => {
                        tracing::warn!(terminal = %self.vehicle.terminal, result, "positions refused by the gateway");
                        self.counters.refused.fetch_add(n as u64, Ordering::Relaxed);
                        break;
                    }
                }
            }
            self.pending.drain(..n);
        }
    }

    async fn register(&self, link: &mut Link, out: &mut Replier) -> Result<String, String> {
        let (manufacturer, model, terminal_id) = match self.version {
            Version::V2013 => (5, 20, 7),
            Version::V2019 { .. } => (11, 30, 30),
        };
        let field = |text: &str, len: usize| {
            let mut b = text.as_bytes().to_vec();
            b.resize(len, 0);
            b
        };
        let mut body = vec![0x00, 0x0b, 0x00, 0x70]; // Beijing, Tongzhou
        body.extend(field("CBSIM", manufacturer));
        body.extend(field("citybrain-simulator", model));
        body.extend(field(&self.vehicle.vehicle_id, terminal_id));
        body.push(1); // blue plate
        body.extend(wire::gbk_encode(&self.vehicle.plate));
        let request = out.message(id::REGISTER, &body);
        let serial = Message::parse(request.clone())
            .map_err(|e| e.to_string())?
            .header
            .serial;
        link.send(request).await.map_err(|e| e.to_string())?;
        let answer = next(link, id::REGISTER_ANSWER, serial).await?;
        match answer.get(2) {
            Some(0) => Ok(String::from_utf8_lossy(&answer[3..]).into_owned()),
            result => Err(format!("registration refused: {result:?}")),
        }
    }
}

/// Sends `message` and returns the result of the 0x8001 that answers it.
async fn exchange(link: &mut Link, message: bytes::Bytes) -> Result<u8, String> {
    let header = Message::parse(message.clone())
        .map_err(|e| e.to_string())?
        .header;
    link.send(message).await.map_err(|e| e.to_string())?;
    let body = next(link, id::PLATFORM_ANSWER, header.serial).await?;
    if body.len() < 5 || u16::from_be_bytes([body[2], body[3]]) != header.id {
        return Err("an answer to another message".into());
    }
    Ok(body[4])
}

/// The body of the next `answer_id` whose reply serial is `serial`.
async fn next(link: &mut Link, answer_id: u16, serial: u16) -> Result<Vec<u8>, String> {
    let deadline = tokio::time::Instant::now() + ANSWER_TIMEOUT;
    loop {
        let frame = tokio::time::timeout_at(deadline, link.next())
            .await
            .map_err(|_| "no answer in time".to_string())?
            .ok_or("connection closed")?
            .map_err(|e| e.to_string())?;
        let Ok(Ok(message)) = frame.map(Message::parse) else {
            continue;
        };
        let body = message.body;
        if message.header.id == answer_id
            && body.len() >= 2
            && u16::from_be_bytes([body[0], body[1]]) == serial
        {
            return Ok(body.to_vec());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use citybrain_proto::events::v1::{Location as Point, VehiclePosition};

    #[test]
    fn a_simulated_position_is_what_its_terminal_would_send() {
        let event = Event {
            observed_at: Some(prost_types::Timestamp {
                seconds: 1_795_940_100,
                nanos: 0,
            }),
            location: Some(Point {
                latitude: 39.901234,
                longitude: 116.749876,
                altitude_m: None,
                accuracy_m: None,
            }),
            payload: Some(Payload::VehiclePosition(VehiclePosition {
                vehicle_id: "VS-N-1".into(),
                speed_kmh: 32.5,
                heading_deg: Some(87.0),
                odometer_km: Some(18_230.4),
                ignition_on: true,
                ..Default::default()
            })),
            ..Default::default()
        };
        let loc = location(&event).unwrap();
        assert_eq!((loc.latitude, loc.longitude), (39_901_234, 116_749_876));
        assert_eq!(
            (loc.speed, loc.direction, loc.mileage),
            (325, 87, Some(182_304))
        );
        assert_eq!(loc.status, status::FIXED | status::ACC_ON);
        // 08:15 UTC is 16:15 in GMT+8.
        assert_eq!(loc.time, [0x26, 0x11, 0x29, 0x16, 0x15, 0x00]);
    }
}
