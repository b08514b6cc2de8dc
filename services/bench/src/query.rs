//! Phase 5: latency of the planners' main aggregates through the query
//! service's HTTP API, over the whole history the run loaded.

use crate::workload::API_KEY;
use std::time::Instant;

/// The questions planners ask most: (label, path without the time range).
pub const AGGREGATES: &[(&str, &str)] = &[
    (
        "charging_energy_by_day_site",
        "/v1/aggregates/charging_energy?bucket=day&group_by=site",
    ),
    (
        "charger_utilisation_by_day_site",
        "/v1/aggregates/charger_utilisation?bucket=day&group_by=site",
    ),
    (
        "parking_occupancy_by_hour",
        "/v1/aggregates/parking_occupancy?bucket=hour",
    ),
    (
        "vehicle_distance_by_day_role",
        "/v1/aggregates/vehicle_distance?bucket=day&group_by=role",
    ),
    (
        "patrol_compliance_by_week_village",
        "/v1/aggregates/patrol_compliance?bucket=week&group_by=village",
    ),
    (
        "service_requests_by_day",
        "/v1/aggregates/service_requests?bucket=day",
    ),
    (
        "service_request_sla_by_week_department",
        "/v1/aggregates/service_request_sla?bucket=week&group_by=department",
    ),
];

/// One aggregate's latencies.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Latency {
    pub name: String,
    pub rows: usize,
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Runs each aggregate `warmup` times untimed, then `samples` times timed,
/// one request at a time, over `[from, to)` (Unix seconds).
pub async fn aggregates(
    port: u16,
    from: i64,
    to: i64,
    warmup: usize,
    samples: usize,
) -> anyhow::Result<Vec<Latency>> {
    let mut out = Vec::new();
    for (name, path) in AGGREGATES {
        let path = format!("{path}&from={from}&to={to}");
        let mut rows = 0;
        for _ in 0..warmup {
            let reply = citybrain_tests::http::get_with_key(
                ([127, 0, 0, 1], port).into(),
                &path,
                Some(API_KEY),
            )
            .await;
            let (status, body) = (reply.status, reply.body);
            anyhow::ensure!(status == 200, "{path} answered {status}: {body}");
            let table: serde_json::Value = serde_json::from_str(&body)?;
            rows = table["rows"].as_array().map_or(0, Vec::len);
        }
        anyhow::ensure!(
            rows > 0,
            "{path} returned no rows: the history did not load"
        );
        let mut ms = Vec::with_capacity(samples);
        for _ in 0..samples {
            let started = Instant::now();
            let reply = citybrain_tests::http::get_with_key(
                ([127, 0, 0, 1], port).into(),
                &path,
                Some(API_KEY),
            )
            .await;
            let (status, body) = (reply.status, reply.body);
            ms.push(started.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(status == 200, "{path} answered {status}: {body}");
        }
        out.push(Latency {
            name: (*name).to_string(),
            rows,
            samples,
            p50_ms: percentile(&mut ms, 0.50),
            p99_ms: percentile(&mut ms, 0.99),
            max_ms: percentile(&mut ms, 1.0),
        });
    }
    Ok(out)
}

/// The nearest-rank percentile (`q` in 0..=1); 0 for no samples.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    values[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.5), 50.0);
        assert_eq!(percentile(&mut v, 0.99), 99.0);
        assert_eq!(percentile(&mut v, 1.0), 100.0);
        assert_eq!(percentile(&mut [3.0, 1.0], 0.5), 1.0);
        assert_eq!(percentile(&mut [], 0.5), 0.0);
    }
}
