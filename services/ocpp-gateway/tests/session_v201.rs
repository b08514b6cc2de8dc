//! A real OCPP 2.0.1 charging station (PyPI `ocpp`, which validates every answer
//! against the official schemas) boots, reports status, authorises, runs a
//! transaction with meter values and stops. The rows in ClickHouse and the
//! query API's utilisation and energy for its site are computed from what
//! the client sent.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_0_1_charging_station_runs_a_transaction_end_to_end() {
    let site = "武疃村";
    let pipeline = Pipeline::start(&[Spec {
        id: "WT-DC-01",
        site,
        connectors: 2,
    }])
    .await;
    let records = run_charger(&pipeline.url(), "WT-DC-01", "2.0.1", "session").await;
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("error").is_some())
        .collect();
    assert!(
        refused.is_empty(),
        "every call answered CALLRESULT: {refused:#?}"
    );
    assert_eq!(records[0]["subprotocol"], "ocpp2.0.1");

    let events = calls(&records, "TransactionEvent");
    let by_seq = |seq: u64| {
        events
            .iter()
            .find(|(request, _)| request["seqNo"] == seq)
            .map(|(request, _)| *request)
            .unwrap()
    };
    let (started, charging, ended) = (by_seq(0), by_seq(1), by_seq(3));
    let energy = |event: &Value| {
        event["meterValue"][0]["sampledValue"][0]["value"]
            .as_f64()
            .unwrap()
    };
    let sets = events.len() + calls(&records, "MeterValues").len();
    let statuses = calls(&records, "StatusNotification");
    // Statuses; CHARGING and FINISHING derived from the transaction's
    // chargingState on the Occupied EVSE; the fault NotifyEvent; OFFLINE x 2.
    pipeline
        .wait_for_rows(&[
            ("raw_connector_status", statuses.len() as u64 + 2 + 1 + 2),
            ("raw_meter_sample", sets as u64),
            ("raw_charging_session", 2),
        ])
        .await;
    let db = &pipeline.database.name;
    let client = pipeline.client();

    type SessionRow = (
        String,
        String,
        String,
        Option<f64>,
        Option<f64>,
        Option<f64>,
        Option<u32>,
        String,
        Option<u64>,
    );
    let sessions: Vec<SessionRow> = client
        .query(&format!(
            "SELECT phase, transaction_id, device_id, meter_start_wh, meter_stop_wh, energy_kwh, duration_s,
                    stop_reason, seq_no
             FROM {db}.raw_charging_session ORDER BY observed_at"
        ))
        .fetch_all()
        .await
        .unwrap();
    let tx = started["transactionInfo"]["transactionId"]
        .as_str()
        .unwrap()
        .to_string();
    let (t_start, t_end) = (unix(&started["timestamp"]), unix(&ended["timestamp"]));
    let (begin, end) = (energy(started), energy(ended));
    assert_eq!(
        sessions,
        vec![
            (
                "started".into(),
                tx.clone(),
                "WT-DC-01:2".into(),
                Some(begin),
                None,
                None,
                None,
                "unspecified".into(),
                Some(0)
            ),
            (
                "ended".into(),
                tx.clone(),
                "WT-DC-01:2".into(),
                Some(begin),
                Some(end),
                Some((end - begin) / 1000.0),
                Some((t_end - t_start) as u32),
                "local".into(),
                Some(3)
            ),
        ]
    );

    // Samples: seqNo and the offline flag kept; the main meter is connector 0.
    type SampleRow = (String, Option<f64>, Option<f64>, u8, Option<u64>);
    let samples: Vec<SampleRow> = client
        .query(&format!(
            "SELECT device_id, energy_active_import_wh, power_active_import_w, offline, seq_no
             FROM {db}.raw_meter_sample ORDER BY observed_at"
        ))
        .fetch_all()
        .await
        .unwrap();
    let offline_seq: Vec<u64> = events
        .iter()
        .filter(|(r, _)| r["offline"] == true)
        .map(|(r, _)| r["seqNo"].as_u64().unwrap())
        .collect();
    assert_eq!(samples.len(), sets);
    for (device, wh, _, offline, seq) in &samples {
        assert!(wh.is_some(), "every set of the scenario has a register");
        assert_eq!(
            *offline == 1,
            seq.is_some_and(|s| offline_seq.contains(&s)),
            "{samples:?}"
        );
        assert_eq!(device == "WT-DC-01:0", seq.is_none(), "{samples:?}");
    }
    assert_eq!(samples[1].2, Some(58_000.0), "kW made W");

    let rows: Vec<(String, String, u32, String)> = client
        .query(&format!(
            "SELECT device_id, status, toUInt32(observed_at), error_code FROM {db}.raw_connector_status
             ORDER BY observed_at, device_id"
        ))
        .fetch_all()
        .await
        .unwrap();
    let plain: Vec<(String, String, u32)> = rows
        .iter()
        .map(|r| (r.0.clone(), r.1.clone(), r.2))
        .collect();
    let t_off = offline_at(&plain);
    let status_at = |evse: u64, status: &str| {
        statuses
            .iter()
            .find(|(r, _)| r["evseId"] == evse && r["connectorStatus"] == status)
            .map(|(r, _)| unix(&r["timestamp"]))
            .unwrap()
    };
    let (notify, _) = calls(&records, "NotifyEvent")[0];
    let t_fault = unix(&notify["eventData"][0]["timestamp"]);
    let changes: BTreeMap<u32, Vec<(i64, &str)>> = BTreeMap::from([
        (
            1,
            vec![
                (status_at(1, "Available"), "available"),
                (t_fault, "faulted"),
                (t_off, "offline"),
            ],
        ),
        (
            2,
            vec![
                (
                    statuses
                        .iter()
                        .find(|(r, _)| r["evseId"] == 2)
                        .map(|(r, _)| unix(&r["timestamp"]))
                        .unwrap(),
                    "available",
                ),
                (status_at(2, "Occupied"), "preparing"),
                (unix(&charging["timestamp"]), "charging"),
                (t_end, "finishing"),
                (
                    statuses
                        .iter()
                        .rev()
                        .find(|(r, _)| r["evseId"] == 2)
                        .map(|(r, _)| unix(&r["timestamp"]))
                        .unwrap(),
                    "available",
                ),
                (t_off, "offline"),
            ],
        ),
    ]);
    let mut expected: Vec<(String, String, u32)> = changes
        .iter()
        .flat_map(|(evse, list)| {
            list.iter()
                .map(move |(at, s)| (format!("WT-DC-01:{evse}"), s.to_string(), *at as u32))
        })
        .collect();
    expected.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0)));
    assert_eq!(plain, expected);
    let fault = rows.iter().find(|r| r.1 == "faulted").unwrap();
    assert_eq!(fault.3, "high_temperature", "the event's techCode");

    let query = start_query(&pipeline).await;
    let seconds = seconds_by_status(&changes);
    let (totals, connectors) = site_totals(&query, site, t_start - 7200).await;
    assert_eq!(
        (totals["sessions_started"], totals["sessions_ended"]),
        (1.0, 1.0)
    );
    assert!(
        (totals["energy_kwh"] - (end - begin) / 1000.0).abs() < 1e-9,
        "{totals:?}"
    );
    assert_eq!(
        totals["charging_seconds"], seconds["charging"] as f64,
        "{totals:?}"
    );
    assert_eq!(
        totals["faulted_seconds"], seconds["faulted"] as f64,
        "{totals:?}"
    );
    assert_eq!(
        totals["observed_seconds"],
        seconds.values().sum::<i64>() as f64,
        "{totals:?}"
    );
    assert_eq!(connectors, 2);
    query.stop().await;
    pipeline.shutdown().await;
}
