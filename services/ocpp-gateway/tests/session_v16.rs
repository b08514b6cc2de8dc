//! A real OCPP 1.6 charge point (PyPI `ocpp`, which validates every answer
//! against the official schemas) boots, reports status, authorises, runs a
//! transaction with meter values and stops. The rows in ClickHouse and the
//! query API's utilisation and energy for its site are computed from what
//! the client sent.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_6_charge_point_runs_a_transaction_end_to_end() {
    let site = "后北营家园";
    let pipeline = Pipeline::start(&[Spec {
        id: "HBY-CP-01",
        site,
        connectors: 2,
    }])
    .await;
    let records = run_charger(&pipeline.url(), "HBY-CP-01", "1.6", "session").await;
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("error").is_some())
        .collect();
    assert!(
        refused.is_empty(),
        "every call answered CALLRESULT: {refused:#?}"
    );
    assert_eq!(records[0]["subprotocol"], "ocpp1.6");

    let statuses = calls(&records, "StatusNotification");
    let meter_values = calls(&records, "MeterValues");
    let sets: Vec<&Value> = meter_values
        .iter()
        .flat_map(|(request, _)| request["meterValue"].as_array().unwrap())
        .collect();
    // Two registered connectors, reported offline when the socket closed.
    pipeline
        .wait_for_rows(&[
            ("raw_connector_status", statuses.len() as u64 + 2),
            ("raw_meter_sample", sets.len() as u64),
            ("raw_charging_session", 2),
        ])
        .await;
    let db = &pipeline.database.name;
    let client = pipeline.client();

    // Sessions: the STARTED and ENDED of the one transaction.
    let (start, started) = calls(&records, "StartTransaction")[0];
    let (stop, _) = calls(&records, "StopTransaction")[0];
    let tx = started["transactionId"].as_i64().unwrap().to_string();
    type SessionRow = (
        String,
        String,
        String,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<u32>,
        String,
        u32,
    );
    let sessions: Vec<SessionRow> = client
        .query(&format!(
            "SELECT phase, transaction_id, device_id, meter_start_wh, meter_stop_wh, energy_kwh, duration_s,
                    stop_reason, toUInt32(observed_at)
             FROM {db}.raw_charging_session WHERE site = '{site}' ORDER BY observed_at"
        ))
        .fetch_all()
        .await
        .unwrap();
    let meter_start = start["meterStart"].as_f64().unwrap();
    let meter_stop = stop["meterStop"].as_f64().unwrap();
    let (t_start, t_stop) = (unix(&start["timestamp"]), unix(&stop["timestamp"]));
    let device = format!("HBY-CP-01:{}", start["connectorId"]);
    assert_eq!(
        sessions,
        vec![
            (
                "started".into(),
                tx.clone(),
                device.clone(),
                Some(meter_start),
                None,
                None,
                None,
                "unspecified".into(),
                t_start as u32,
            ),
            (
                "ended".into(),
                tx.clone(),
                device.clone(),
                Some(meter_start),
                Some(meter_stop),
                Some((meter_stop - meter_start) / 1000.0),
                Some((t_stop - t_start) as u32),
                "ev_disconnected".into(),
                t_stop as u32,
            ),
        ]
    );

    // One sample per sampled value set, in contract units.
    type SampleRow = (
        u32,
        String,
        Option<f64>,
        Option<f64>,
        String,
        String,
        Option<f64>,
    );
    let samples: Vec<SampleRow> = client
        .query(&format!(
            "SELECT toUInt32(observed_at), transaction_id, energy_active_import_wh, power_active_import_w,
                    toString(current_import_a), toString(voltage_v), soc_percent
             FROM {db}.raw_meter_sample ORDER BY observed_at"
        ))
        .fetch_all()
        .await
        .unwrap();
    let expected: Vec<SampleRow> = sets
        .iter()
        .map(|set| {
            let value = |measurand: &str| {
                set["sampledValue"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["measurand"] == measurand)
                    .map(|v| v["value"].as_str().unwrap().parse::<f64>().unwrap())
            };
            (
                unix(&set["timestamp"]) as u32,
                tx.clone(),
                value("Energy.Active.Import.Register").map(|kwh| (kwh * 1000.0).round()),
                value("Power.Active.Import"),
                format!("[{}]", value("Current.Import").unwrap()),
                format!("[{}]", value("Voltage").unwrap()),
                value("SoC"),
            )
        })
        .collect();
    let rounded: Vec<SampleRow> = samples
        .into_iter()
        .map(|mut s| {
            s.2 = s.2.map(f64::round);
            s
        })
        .collect();
    assert_eq!(rounded, expected);

    // Statuses, then OFFLINE for both connectors at the disconnect.
    let rows: Vec<(String, String, u32)> = client
        .query(&format!(
            "SELECT device_id, status, toUInt32(observed_at) FROM {db}.raw_connector_status
             ORDER BY observed_at, device_id"
        ))
        .fetch_all()
        .await
        .unwrap();
    let t_off = offline_at(&rows);
    let mut changes: BTreeMap<u32, Vec<(i64, &str)>> = BTreeMap::new();
    let mut expected: Vec<(String, String, u32)> = Vec::new();
    for (request, _) in &statuses {
        let connector = request["connectorId"].as_u64().unwrap() as u32;
        let status = match request["status"].as_str().unwrap() {
            "Available" => "available",
            "Preparing" => "preparing",
            "Charging" => "charging",
            "Finishing" => "finishing",
            other => panic!("the scenario sent {other}"),
        };
        let at = unix(&request["timestamp"]);
        changes.entry(connector).or_default().push((at, status));
        expected.push((format!("HBY-CP-01:{connector}"), status.into(), at as u32));
    }
    for connector in [1, 2] {
        changes
            .entry(connector)
            .or_default()
            .push((t_off, "offline"));
        expected.push((
            format!("HBY-CP-01:{connector}"),
            "offline".into(),
            t_off as u32,
        ));
    }
    expected.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
    assert_eq!(rows, expected);

    // The query API: energy and utilisation of the site.
    let query = start_query(&pipeline).await;
    let seconds = seconds_by_status(&changes);
    let (totals, connectors) = site_totals(&query, site, t_start - 7200).await;
    assert_eq!(totals["sessions_started"], 1.0);
    assert_eq!(totals["sessions_ended"], 1.0);
    assert!(
        (totals["energy_kwh"] - (meter_stop - meter_start) / 1000.0).abs() < 1e-9,
        "{totals:?}"
    );
    assert_eq!(
        totals["charging_seconds"], seconds["charging"] as f64,
        "{totals:?}"
    );
    let observed: i64 = seconds.values().sum();
    assert_eq!(
        totals["observed_seconds"], observed as f64,
        "connector 0 is not counted: {totals:?}"
    );
    assert_eq!(connectors, 2);

    // What the gateway counted.
    let gw = &pipeline.gateway;
    assert_eq!(
        gw.metric(
            "citybrain_ocpp_messages_total",
            &[("action", "StartTransaction"), ("outcome", "stored")]
        )
        .await,
        1.0
    );
    assert_eq!(
        gw.metric(
            "citybrain_ocpp_messages_total",
            &[("action", "Heartbeat"), ("outcome", "replied")]
        )
        .await,
        1.0
    );
    assert_eq!(
        gw.metric("citybrain_ocpp_call_errors_total", &[]).await,
        0.0
    );
    assert_eq!(
        gw.metric(
            "citybrain_ocpp_stations_offline_total",
            &[("cause", "closed")]
        )
        .await,
        1.0
    );
    query.stop().await;
    pipeline.shutdown().await;
}
