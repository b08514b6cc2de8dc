//! What the JT/T 808 gateway tests share: the gateway in this process, the
//! query service, ClickHouse and query API reads, the registry, and reports
//! with the values the platform must store for them.

use crate::terminal::Report;
use citybrain_jt808_gateway::config::Jt808Config;
use citybrain_tests::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// "京A12345" and "京B54321" in GBK (京 = BE A9).
pub const PLATE_A: &[u8] = b"\xbe\xa9A12345";
pub const PLATE_B: &[u8] = b"\xbe\xa9B54321";
pub const SHUTTLE: &str = "13912345678";
pub const TRUCK: &str = "20240501001";

pub fn registry(dir: &Path) -> PathBuf {
    let path = dir.join("terminals.toml");
    std::fs::write(
        &path,
        format!(
            "[[terminals]]\nnumber = \"{SHUTTLE}\"\ntenant = \"{TENANT}\"\nvehicle_id = \"VS-N-1\"\n\
             plate = \"京A·12345\"\nrole = \"vaccine_shuttle\"\n\n\
             [[terminals]]\nnumber = \"{TRUCK}\"\ntenant = \"{TENANT}\"\nvehicle_id = \"ST-01\"\n\
             plate = \"京B54321\"\nrole = \"sanitation_truck\"\n"
        ),
    )
    .unwrap();
    path
}

pub fn gateway_config(ingest: &str, dir: &Path) -> Jt808Config {
    let mut config = Jt808Config::new(BTreeMap::from([(TENANT.into(), FULL_KEY.into())]));
    config.listen_addr = ([127, 0, 0, 1], 0).into();
    config.admin_addr = ([127, 0, 0, 1], 0).into();
    config.ingest_url = ingest.into();
    config.registry_file = registry(dir);
    config.state_dir = dir.join("state");
    config
}

/// The gateway in this process.
pub struct RunningJt808 {
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), citybrain_jt808_gateway::ServeError>>,
}

impl RunningJt808 {
    pub async fn start(config: Jt808Config) -> Self {
        let listener = TcpListener::bind(config.listen_addr).await.unwrap();
        let admin = TcpListener::bind(config.admin_addr).await.unwrap();
        let (addr, admin_addr) = (listener.local_addr().unwrap(), admin.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(citybrain_jt808_gateway::serve(
            config,
            listener,
            admin,
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            admin: admin_addr,
            stop: Some(stop),
            task,
        }
    }

    pub async fn metric(&self, series: &str) -> f64 {
        let text = http::get(self.admin, "/metrics", &[]).await.body;
        text.lines()
            .filter(|line| line.starts_with(series))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    pub async fn shutdown(mut self) {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task)
            .await
            .expect("gateway task")
            .expect("the gateway stops cleanly");
    }
}

/// Rows of `sql` (JSONEachRow) from ClickHouse's HTTP interface.
pub async fn clickhouse_rows(url: &str, sql: &str) -> Vec<Value> {
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("a host:port ClickHouse URL");
    let reply = http::post(
        addr,
        "/",
        &[],
        format!("{sql} FORMAT JSONEachRow").as_bytes(),
    )
    .await;
    assert_eq!(reply.status, 200, "{sql}: {}", reply.body);
    reply
        .body
        .lines()
        .map(|line| numbers_as_f64(serde_json::from_str(line).unwrap()))
        .collect()
}

/// Every number as a float: ClickHouse prints `35` for a Float64 of 35.0.
pub fn numbers_as_f64(value: Value) -> Value {
    match value {
        Value::Number(n) => Value::from(n.as_f64().expect("finite")),
        Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (k, numbers_as_f64(v)))
            .collect(),
        Value::Array(items) => items.into_iter().map(numbers_as_f64).collect(),
        other => other,
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A moving shuttle near 潞城镇 at `at`.
pub fn report(at: i64, n: u32) -> Report {
    Report {
        lat_e6: 39_901_234 + n * 137,
        lon_e6: 116_749_876 + n * 211,
        south: false,
        west: false,
        altitude_m: 31 + n as u16,
        speed_e1: 325 + n as u16 * 10,
        direction: (87 + n as u16 * 90) % 360,
        at,
        acc_on: true,
        fixed: true,
        alarm: 0,
        mileage_e1: Some(182_304 + n * 7),
        satellites: Some(11),
        signal: Some(25),
    }
}

pub fn rfc3339(at: i64) -> String {
    citybrain_proto::time::format_utc(at)
}

/// The stored row of each sent position, computed from what was sent.
pub fn expected_row(device: &str, vehicle: &str, role: &str, serial: u16, r: &Report) -> Value {
    numbers_as_f64(serde_json::json!({
        "device_id": device,
        "vehicle_id": vehicle,
        "role": role,
        "tenant_id": TENANT,
        "at": r.at,
        "seq_no": serial,
        "latitude": r.latitude(),
        "longitude": r.longitude(),
        "altitude_m": f64::from(r.altitude_m),
        "speed_kmh": r.speed_kmh(),
        "heading_deg": (r.speed_e1 > 0).then(|| f64::from(r.direction)),
        "odometer_km": r.mileage_e1.map(|m| f64::from(m) / 10.0),
        "ignition_on": u8::from(r.acc_on),
        "service_status": if r.acc_on { "on_route" } else { "parked" },
    }))
}
