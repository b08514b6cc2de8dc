//! The JT/T 808 gateway under a fleet's load: N terminals (1,000 by
//! default) connect within about a second and stay connected, register and
//! authenticate, then each reports a
//! position every interval (10 s), their reports spread evenly over it, and
//! waits for the platform's answer like a terminal does. The gateway and
//! ingest run as their release binaries against a private Tansu (memory
//! storage); the gateway's CPU (cores) and memory are read from `/proc`
//! over the steady part of the run.
//!
//! `citybrain-bench jt808` (`make bench-jt808`) runs only this and rewrites
//! its section of `BENCHMARKS.md` (and the `jt808` key of
//! `BENCHMARKS.json`, see `jt808_report.rs`); `make bench` runs it after the
//! other phases.

use crate::procs::{self, ProcStats, free_port, wait_for_port};
use crate::report::Machine;
use crate::{Options, create_topics, service};
use anyhow::Context;
use citybrain_jt808_gateway::body::{self, Location, status};
use citybrain_jt808_gateway::codec::FrameCodec;
use citybrain_jt808_gateway::config::Jt808Config;
use citybrain_jt808_gateway::location::bcd_digits_at;
use citybrain_jt808_gateway::message::{Message, Replier, Version, id};
use citybrain_jt808_gateway::wire;
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

const PREFIX: &str = "bj.";
const CONNECTS_PER_STEP: usize = 50;
const CONNECT_STEP: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct Jt808Options {
    pub terminals: usize,
    pub interval: Duration,
    /// How long the measured steady state lasts.
    pub steady: Duration,
}

impl Default for Jt808Options {
    fn default() -> Self {
        Self {
            terminals: 1000,
            interval: Duration::from_secs(10),
            steady: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Jt808Result {
    pub machine: Machine,
    pub terminals: usize,
    pub interval_s: f64,
    pub steady_s: f64,
    /// From the first connect until every terminal was authenticated.
    pub connect_s: f64,
    pub reports_sent: u64,
    pub reports_ok: u64,
    pub reports_not_ok: u64,
    pub answer_p50_ms: f64,
    pub answer_p99_ms: f64,
    pub answer_max_ms: f64,
    /// Positions ingest counted as accepted (from its metrics).
    pub ingest_accepted: u64,
    /// CPU over the steady state, in cores (CPU s / wall s).
    pub cpu_cores: BTreeMap<String, f64>,
    /// The gateway's resident memory after the steady state, and its peak.
    pub gateway_rss_mb: f64,
    pub gateway_peak_rss_mb: f64,
    pub ingest_peak_rss_mb: f64,
}

/// Runs the fleet against a gateway of its own.
pub async fn run(options: &Options, jt: &Jt808Options) -> anyhow::Result<Jt808Result> {
    let machine = Machine::describe();
    let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let dir = std::env::temp_dir().join(format!("citybrain-bench-jt808-{id}"));
    std::fs::create_dir_all(&dir)?;
    let broker_port = free_port();
    let brokers = format!("127.0.0.1:{broker_port}");
    let mut broker = procs::start_broker(broker_port, &dir).await?;
    let topics: Vec<String> = citybrain_proto::feed::Feed::ALL
        .iter()
        .map(|f| format!("{PREFIX}{}", f.topic()))
        .collect();
    create_topics(&brokers, &topics).await?;

    let (grpc_port, ingest_admin) = (free_port(), free_port());
    let mut ingest_config = citybrain_ingest::config::IngestConfig::new(&brokers);
    ingest_config.kafka.topic_prefix = PREFIX.into();
    ingest_config.grpc_addr = ([127, 0, 0, 1], grpc_port).into();
    ingest_config.admin_addr = ([127, 0, 0, 1], ingest_admin).into();
    ingest_config.api_keys_file = options.root.join("deploy/local/dev-api-keys.toml");
    ingest_config.producer.settings.idempotence = false; // Tansu 0.6.0, as in make run
    let mut ingest = service(options, "citybrain-ingest", &ingest_config, &dir);
    wait_for_port(grpc_port, "ingest", Duration::from_secs(30)).await?;

    let registry = dir.join("terminals.toml");
    std::fs::write(&registry, registry_text(jt.terminals))?;
    let (port, admin) = (free_port(), free_port());
    let mut config = Jt808Config::new(BTreeMap::from([(
        "lucheng".to_string(),
        DEV_KEY.to_string(),
    )]));
    config.listen_addr = ([127, 0, 0, 1], port).into();
    config.admin_addr = ([127, 0, 0, 1], admin).into();
    config.ingest_url = format!("http://127.0.0.1:{grpc_port}");
    config.registry_file = registry;
    config.state_dir = dir.join("state");
    let mut gateway = service(options, "citybrain-jt808-gateway", &config, &dir);
    wait_for_port(port, "the jt808 gateway", Duration::from_secs(30)).await?;
    let (gateway_pid, ingest_pid) = (gateway.pid(), ingest.pid());

    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let authenticated = Arc::new(tokio::sync::Semaphore::new(0));
    // Reports start once everyone is in; the steady window is measured from
    // the first report to the last.
    let (go, go_rx) = tokio::sync::watch::channel(None::<Instant>);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..jt.terminals {
        let (stats, authenticated, mut go_rx) =
            (stats.clone(), authenticated.clone(), go_rx.clone());
        let (interval, steady, n) = (jt.interval, jt.steady, jt.terminals);
        tasks.spawn(async move {
            // 50 connects every 50 ms (1,000 within a second): a listen
            // backlog overrun on loopback makes the kernel fall back to SYN
            // cookies, which measures the kernel rather than the gateway.
            tokio::time::sleep(CONNECT_STEP * (i / CONNECTS_PER_STEP) as u32).await;
            let mut terminal = FleetTerminal::connect(port, i).await?;
            terminal.register_and_authenticate().await?;
            authenticated.add_permits(1);
            let start = loop {
                if let Some(start) = *go_rx.borrow_and_update() {
                    break start;
                }
                go_rx.changed().await?;
            };
            let offset = interval.mul_f64(i as f64 / n as f64);
            let mut tick = start + offset;
            while tick < start + steady {
                tokio::time::sleep_until(tick.into()).await;
                terminal.report(&stats).await?;
                tick += interval;
            }
            anyhow::Ok(())
        });
    }
    let all_in = authenticated.acquire_many(jt.terminals as u32);
    tokio::time::timeout(Duration::from_secs(300), all_in)
        .await
        .context("the terminals did not all authenticate within 5 minutes")??
        .forget();
    let connect_s = started.elapsed().as_secs_f64();
    tracing::info!(
        terminals = jt.terminals,
        connect_s,
        "all terminals authenticated; reporting"
    );
    let steady_start = Instant::now();
    let cpu_before = cpu(&[
        ("jt808 gateway", gateway_pid),
        ("ingest", ingest_pid),
        ("tansu", broker.pid()),
        ("bench client", std::process::id()),
    ]);
    go.send(Some(steady_start + Duration::from_millis(100)))?;
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let wall = steady_start.elapsed().as_secs_f64();
    let cpu_after = cpu(&[
        ("jt808 gateway", gateway_pid),
        ("ingest", ingest_pid),
        ("tansu", broker.pid()),
        ("bench client", std::process::id()),
    ]);
    let cpu_cores = cpu_after
        .iter()
        .map(|(name, after)| (name.clone(), (after - cpu_before[name]) / wall))
        .collect();
    let gateway_stats = ProcStats::read(gateway_pid);
    let gateway_rss_mb = current_rss_mb(gateway_pid);
    let ingest_peak_rss_mb = ProcStats::read(ingest_pid).peak_rss_mb;
    let ingest_accepted = ingest_accepted(ingest_admin).await;

    let mut latencies = stats
        .latencies_us
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(0.0, |us| f64::from(*us) / 1000.0)
    };
    let result = Jt808Result {
        machine,
        terminals: jt.terminals,
        interval_s: jt.interval.as_secs_f64(),
        steady_s: wall,
        connect_s,
        reports_sent: stats.sent.load(Ordering::Relaxed),
        reports_ok: stats.ok.load(Ordering::Relaxed),
        reports_not_ok: stats.not_ok.load(Ordering::Relaxed),
        answer_p50_ms: pct(0.5),
        answer_p99_ms: pct(0.99),
        answer_max_ms: pct(1.0),
        ingest_accepted,
        cpu_cores,
        gateway_rss_mb,
        gateway_peak_rss_mb: gateway_stats.peak_rss_mb,
        ingest_peak_rss_mb,
    };
    gateway.stop(Duration::from_secs(15));
    ingest.stop(Duration::from_secs(15));
    broker.stop(Duration::from_secs(5));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(result)
}

/// The development key of tenant `lucheng` (public; `make run` prints it).
const DEV_KEY: &str = "cb_dev_lucheng_simulator_key_0001";

fn number(i: usize) -> String {
    format!("139{:08}", 2_000_000 + i)
}

fn plate(i: usize) -> String {
    format!("京B{i:05}")
}

fn registry_text(n: usize) -> String {
    let roles = [
        "vaccine_shuttle",
        "sanitation_truck",
        "street_cleaner",
        "patrol",
    ];
    let mut text = String::new();
    for i in 0..n {
        let _ = writeln!(
            text,
            "[[terminals]]\nnumber = \"{}\"\ntenant = \"lucheng\"\nvehicle_id = \"BENCH-{i:05}\"\n\
             plate = \"{}\"\nrole = \"{}\"\n",
            number(i),
            plate(i),
            roles[i % roles.len()]
        );
    }
    text
}

#[derive(Default)]
struct Stats {
    sent: AtomicU64,
    ok: AtomicU64,
    not_ok: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

struct FleetTerminal {
    index: usize,
    link: Framed<TcpStream, FrameCodec>,
    out: Replier,
    version: Version,
}

impl FleetTerminal {
    async fn connect(port: u16, index: usize) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        // Half the fleet speaks 2019, half 2013.
        let version = if index.is_multiple_of(2) {
            Version::V2013
        } else {
            Version::V2019 { protocol: 1 }
        };
        Ok(Self {
            index,
            link: Framed::new(stream, FrameCodec::default()),
            out: Replier::for_terminal(&number(index), version),
            version,
        })
    }

    async fn register_and_authenticate(&mut self) -> anyhow::Result<()> {
        let (m, model, tid) = match self.version {
            Version::V2013 => (5, 20, 7),
            Version::V2019 { .. } => (11, 30, 30),
        };
        let mut body = vec![0, 11, 0, 112];
        for (text, len) in [("BENCH", m), ("citybrain-bench", model), ("T1", tid)] {
            let mut field = text.as_bytes().to_vec();
            field.resize(len, 0);
            body.extend(field);
        }
        body.push(1);
        body.extend(wire::gbk_encode(&plate(self.index)));
        let answer = self
            .exchange(id::REGISTER, &body, id::REGISTER_ANSWER)
            .await?;
        anyhow::ensure!(
            answer.get(2) == Some(&0),
            "registration refused: {answer:?}"
        );
        let code = answer[3..].to_vec();
        let auth = match self.version {
            Version::V2013 => code,
            Version::V2019 { .. } => {
                let mut b = vec![code.len() as u8];
                b.extend(code);
                b.extend([b'0'; 15]);
                b.extend([0u8; 20]);
                b
            }
        };
        let answer = self
            .exchange(id::AUTHENTICATE, &auth, id::PLATFORM_ANSWER)
            .await?;
        anyhow::ensure!(
            answer.get(4) == Some(&0),
            "authentication refused: {answer:?}"
        );
        Ok(())
    }

    async fn report(&mut self, stats: &Stats) -> anyhow::Result<()> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() as i64;
        let n = self.index as u32;
        let location = Location {
            alarm: 0,
            status: status::ACC_ON | status::FIXED,
            latitude: 39_880_000 + n * 50,
            longitude: 116_720_000 + n * 50,
            altitude: 30,
            speed: 300 + (n % 200) as u16,
            direction: (n % 360) as u16,
            time: wire::bcd_encode(&bcd_digits_at(now, true), 6)
                .try_into()
                .expect("six bytes"),
            mileage: Some(100_000 + n),
            signal: Some(25),
            satellites: Some(12),
        };
        let started = Instant::now();
        stats.sent.fetch_add(1, Ordering::Relaxed);
        let answer = self
            .exchange(
                id::LOCATION,
                &body::encode_location(&location),
                id::PLATFORM_ANSWER,
            )
            .await?;
        let took = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        stats
            .latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(took);
        if answer.get(4) == Some(&0) {
            stats.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.not_ok.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Sends message `msg_id` and returns the body of the `answer_id` that
    /// answers it (by reply serial).
    async fn exchange(
        &mut self,
        msg_id: u16,
        body: &[u8],
        answer_id: u16,
    ) -> anyhow::Result<Vec<u8>> {
        let message = self.out.message(msg_id, body);
        let serial = Message::parse(message.clone())?.header.serial;
        self.link.send(message).await?;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.link.next())
                .await
                .context("no answer within 30 s")?
                .context("the gateway closed the connection")??;
            let Ok(answer) = frame.map(Message::parse) else {
                continue;
            };
            let answer = answer?;
            if answer.header.id == answer_id
                && answer.body.len() >= 2
                && u16::from_be_bytes([answer.body[0], answer.body[1]]) == serial
            {
                return Ok(answer.body.to_vec());
            }
        }
    }
}

fn cpu(procs: &[(&str, u32)]) -> BTreeMap<String, f64> {
    procs
        .iter()
        .map(|(name, pid)| (name.to_string(), procs::cpu_seconds(*pid)))
        .collect()
}

fn current_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn ingest_accepted(admin_port: u16) -> u64 {
    let addr = ([127, 0, 0, 1], admin_port).into();
    let metrics = citybrain_tests::http::get(addr, "/metrics", &[]).await.body;
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("citybrain_ingest_events_total")
                && l.contains("kind=\"vehicle_position\"")
                && l.contains("outcome=\"accepted\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_registry_lists_every_terminal() {
        let text = super::registry_text(2);
        assert!(text.contains("number = \"13902000001\""), "{text}");
        assert_eq!(text.matches("[[terminals]]").count(), 2);
    }
}
