//! Phase 3: at a steady offered load, how long an event takes from its
//! event time to being visible through the query service.
//!
//! The load is the town's own events re-stamped to "now" with fresh ids.
//! Beside it, four marker vehicles each report one position per second, at
//! fixed offsets inside the second, each in a call of its own; a poller asks
//! the query API for the vehicles' live positions every 100 ms, and a marker
//! counts as visible once its vehicle's newest `observed_at` (whole seconds)
//! has reached the marker's second. Latency = the answer's arrival minus the
//! marker's event time, so it includes up to one poll interval.

use crate::ingest::Client;
use crate::query::percentile;
use crate::workload::{API_KEY, restamp};
use citybrain_proto::events::v1::{Event, event::Payload};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

const MARKERS: usize = 4;
const POLL: Duration = Duration::from_millis(100);
const TICK: Duration = Duration::from_millis(50);
const BATCH: usize = 1000;

/// One offered load's outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Level {
    pub offered_per_s: f64,
    pub achieved_per_s: f64,
    pub accepted: u64,
    pub not_accepted: u64,
    pub seconds: f64,
    pub markers_sent: usize,
    pub markers_seen: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The sink's own view (its freshness histogram over this level): event
    /// time to INSERT, p50 and p99 as the upper bound of their bucket, s.
    pub sink_insert_p50_le_s: Option<f64>,
    pub sink_insert_p99_le_s: Option<f64>,
}

impl Level {
    /// Whether the pipeline kept up: what was offered went in, every marker
    /// showed up, and p99 is within the target.
    pub fn sustained(&self, p99_target_ms: f64) -> bool {
        self.achieved_per_s >= 0.95 * self.offered_per_s
            && self.markers_seen == self.markers_sent
            && self.p99_ms <= p99_target_ms
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A marker vehicle's position: `template` (a town vehicle position) as
/// vehicle `bench-marker-<k>`.
fn marker(template: &Event, k: usize, at: SystemTime) -> Event {
    let mut event = restamp(template, at);
    event.device_id = format!("bench-marker-{k}");
    event.seq_no = None;
    if let Some(Payload::VehiclePosition(p)) = event.payload.as_mut() {
        p.vehicle_id = format!("bench-marker-{k}");
    }
    event
}

/// Offers `rate` events/s for `duration`, markers included, and measures.
pub async fn run_level(
    ingest_url: &str,
    query_port: u16,
    sink_admin_port: u16,
    pool: Arc<Vec<Event>>,
    marker_template: Event,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Level> {
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(Client::connect(ingest_url).await?);
    }
    let accepted = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    let in_flight = Arc::new(Semaphore::new(32));
    let sink_before = sink_freshness(sink_admin_port).await;
    let started = Instant::now();

    // Markers: one every 250 ms, vehicle k at offset 100 + 200k ms in each
    // second, so one vehicle's markers fall in distinct whole seconds.
    let pending: Pending = Arc::new(Mutex::new(vec![VecDeque::new(); MARKERS]));
    let marker_task = {
        let client = clients[0].clone();
        let pending = pending.clone();
        tokio::spawn(async move {
            let mut count = 0;
            let mut second = now_ms() / 1000 + 1;
            while started.elapsed() < duration {
                for k in 0..MARKERS {
                    let due = second * 1000 + 100 + 200 * k as i64;
                    let wait = due - now_ms();
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                    }
                    let at = SystemTime::now();
                    let event_ms = now_ms();
                    let event = marker(&marker_template, k, at);
                    pending.lock().expect("marker lock")[k].push_back((event_ms / 1000, event_ms));
                    let client = client.clone();
                    // Sent on its own so a marker never waits behind a batch
                    // in the client; it shares ingest and Kafka with the load.
                    tokio::spawn(async move { client.send(vec![event]).await });
                    count += 1;
                }
                second += 1;
            }
            count
        })
    };
    let poller = tokio::spawn(poll_markers(query_port, pending.clone()));

    // The load: catch up to rate × elapsed every tick, in calls of ≤ 1000.
    let mut offered = 0u64;
    let mut next = 0usize;
    let mut calls = tokio::task::JoinSet::new();
    let mut ticker = tokio::time::interval(TICK);
    while started.elapsed() < duration {
        ticker.tick().await;
        let due = (rate * started.elapsed().as_secs_f64()) as u64;
        while offered < due {
            let n = ((due - offered) as usize).min(BATCH);
            let at = SystemTime::now();
            let events: Vec<Event> = (0..n)
                .map(|i| restamp(&pool[(next + i) % pool.len()], at))
                .collect();
            next = (next + n) % pool.len();
            offered += n as u64;
            let permit = in_flight.clone().acquire_owned().await?;
            let client = clients[(offered / BATCH as u64) as usize % clients.len()].clone();
            let (accepted, other) = (accepted.clone(), other.clone());
            calls.spawn(async move {
                let result = client.send(events).await;
                drop(permit);
                match result {
                    Ok(answer) => {
                        accepted.fetch_add(answer.accepted, Ordering::Relaxed);
                        other.fetch_add(answer.other, Ordering::Relaxed);
                    }
                    Err(_) => {
                        other.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            });
            while calls.try_join_next().is_some() {}
        }
    }
    let sending = started.elapsed().as_secs_f64();
    while calls.join_next().await.is_some() {}
    let acked_in = started.elapsed().as_secs_f64();
    let markers_sent = marker_task.await?;
    let (mut latencies, unseen) = poller.await??;
    let accepted = accepted.load(Ordering::Relaxed);
    let sink_after = sink_freshness(sink_admin_port).await;
    let during: Vec<(f64, f64)> = sink_after
        .iter()
        .map(|(le, n)| {
            let before = sink_before
                .iter()
                .find(|(b, _)| b == le)
                .map_or(0.0, |(_, n)| *n);
            (*le, n - before)
        })
        .collect();
    Ok(Level {
        sink_insert_p50_le_s: bucket_quantile(&during, 0.50),
        sink_insert_p99_le_s: bucket_quantile(&during, 0.99),
        offered_per_s: offered as f64 / sending,
        achieved_per_s: accepted as f64 / acked_in,
        accepted,
        not_accepted: other.load(Ordering::Relaxed),
        seconds: sending,
        markers_sent,
        markers_seen: markers_sent - unseen,
        p50_ms: percentile(&mut latencies, 0.50),
        p99_ms: percentile(&mut latencies, 0.99),
        max_ms: percentile(&mut latencies, 1.0),
    })
}

type Pending = Arc<Mutex<Vec<VecDeque<(i64, i64)>>>>;

/// Polls the live vehicles while markers are being sent, until every marker
/// was seen, or 30 s after the last one; (latencies ms, markers never seen).
async fn poll_markers(query_port: u16, pending: Pending) -> anyhow::Result<(Vec<f64>, usize)> {
    let mut latencies = Vec::new();
    let mut quiet_since: Option<Instant> = None;
    let mut last_count = 0;
    loop {
        let reply = citybrain_tests::http::get_with_key(
            ([127, 0, 0, 1], query_port).into(),
            "/v1/live/vehicles",
            Some(API_KEY),
        )
        .await;
        let (status, body) = (reply.status, reply.body);
        let arrived = now_ms();
        let seen = if status == 200 {
            marker_seconds(&body)?
        } else {
            Vec::new()
        };
        let waiting = {
            let mut queues = pending.lock().expect("marker lock");
            for (k, newest) in seen {
                let queue = &mut queues[k];
                while queue.front().is_some_and(|(second, _)| *second <= newest) {
                    let (_, event_ms) = queue.pop_front().expect("checked");
                    latencies.push((arrived - event_ms) as f64);
                }
            }
            queues.iter().map(VecDeque::len).sum::<usize>()
        };
        // Done once nothing is pending and no marker has been added for
        // 2 s (the sender has stopped).
        let sent = latencies.len() + waiting;
        if sent != last_count {
            last_count = sent;
            quiet_since = Some(Instant::now());
        }
        let quiet = quiet_since.map_or(Duration::ZERO, |t| t.elapsed());
        if waiting == 0 && sent > 0 && quiet > Duration::from_secs(2) {
            return Ok((latencies, 0));
        }
        if quiet > Duration::from_secs(30) {
            // Never seen: count them at what they have waited so far (a
            // lower bound), so they weigh on p99 instead of vanishing.
            let now = now_ms();
            let mut queues = pending.lock().expect("marker lock");
            for queue in queues.iter_mut() {
                latencies.extend(queue.drain(..).map(|(_, event_ms)| (now - event_ms) as f64));
            }
            return Ok((latencies, waiting));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// (marker index, newest observed second) for each marker vehicle in a
/// `/v1/live/vehicles` answer.
fn marker_seconds(body: &str) -> anyhow::Result<Vec<(usize, i64)>> {
    let table: serde_json::Value = serde_json::from_str(body)?;
    let column = |name: &str| {
        table["columns"]
            .as_array()
            .and_then(|cols| cols.iter().position(|c| c["name"] == name))
            .ok_or_else(|| anyhow::anyhow!("no {name} column in /v1/live/vehicles"))
    };
    let (vehicle, observed) = (column("vehicle")?, column("observed_at")?);
    let mut out = Vec::new();
    for row in table["rows"].as_array().into_iter().flatten() {
        let Some(k) = row[vehicle]
            .as_str()
            .and_then(|v| v.strip_prefix("bench-marker-"))
            .and_then(|k| k.parse::<usize>().ok())
            .filter(|k| *k < MARKERS)
        else {
            continue;
        };
        if let Some(second) = row[observed]
            .as_str()
            .and_then(citybrain_proto::time::parse_utc)
        {
            out.push((k, second));
        }
    }
    Ok(out)
}

/// The sink's freshness histogram, summed over kinds: (le, cumulative count).
async fn sink_freshness(admin_port: u16) -> Vec<(f64, f64)> {
    let reply =
        citybrain_tests::http::get(([127, 0, 0, 1], admin_port).into(), "/metrics", &[]).await;
    let (200, body) = (reply.status, reply.body) else {
        return Vec::new();
    };
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in body.lines() {
        let Some(rest) = line.strip_prefix("citybrain_sink_freshness_seconds_bucket{") else {
            continue;
        };
        let le = rest
            .split("le=\"")
            .nth(1)
            .and_then(|v| v.split('"').next())
            .and_then(|v| {
                if v == "+Inf" {
                    Some(f64::INFINITY)
                } else {
                    v.parse().ok()
                }
            });
        let count = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
        if let (Some(le), Some(count)) = (le, count) {
            match buckets.iter_mut().find(|(b, _)| *b == le) {
                Some(bucket) => bucket.1 += count,
                None => buckets.push((le, count)),
            }
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// The smallest bucket bound holding a `q` share of the observations.
fn bucket_quantile(cumulative: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = cumulative.last()?.1;
    if total <= 0.0 {
        return None;
    }
    cumulative
        .iter()
        .find(|(_, n)| *n >= q * total)
        .map(|(le, _)| *le)
        .filter(|le| le.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_from_cumulative_buckets() {
        let b = [
            (0.5, 10.0),
            (1.0, 60.0),
            (2.0, 99.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(bucket_quantile(&b, 0.5), Some(1.0));
        assert_eq!(bucket_quantile(&b, 0.99), Some(2.0));
        assert_eq!(bucket_quantile(&b, 1.0), None);
        assert_eq!(bucket_quantile(&[], 0.5), None);
    }
}
