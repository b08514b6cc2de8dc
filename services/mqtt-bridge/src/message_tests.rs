use super::*;
use citybrain_proto::events::v1::event::Payload;

const TOPIC: &str = "citybrain/v1/lucheng/bin_reading/WT-01-kitchen";
const AT: Timestamp = Timestamp {
    seconds: 1_795_940_100,
    nanos: 0,
};

fn bin(extra: &str) -> String {
    format!(
        r#"{{{extra}"bin_reading":{{"bin_id":"WT-01-kitchen","waste_class":"WASTE_CLASS_KITCHEN","fill_level":0.4}}}}"#
    )
}

fn reasons(prepared: &Prepared) -> Vec<(u32, ReasonCode, &str)> {
    prepared
        .refused
        .iter()
        .map(|r| {
            (
                r.index,
                ReasonCode::try_from(r.reason).unwrap(),
                r.field.as_str(),
            )
        })
        .collect()
}

#[test]
fn topics_name_tenant_kind_and_device() {
    assert_eq!(
        Topic::parse(TOPIC).unwrap(),
        Topic {
            tenant: "lucheng".into(),
            kind: Kind::BinReading,
            device_id: "WT-01-kitchen".into()
        }
    );
    for bad in [
        "citybrain/v1/lucheng/bin_reading",
        "citybrain/v1/lucheng/teleport/B1",
        "citybrain/v1/lucheng/bin_reading/B1/rejected",
        "other/v1/lucheng/bin_reading/B1",
        "citybrain/v1//bin_reading/B1",
    ] {
        assert!(Topic::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_bare_sensor_reading_gets_the_topic_s_device_the_receive_time_and_a_derived_id() {
    let payload = bin("");
    let prepared = prepare(TOPIC, payload.as_bytes(), AT, 10);
    assert!(prepared.refused.is_empty(), "{prepared:?}");
    let (index, event) = &prepared.events[0];
    assert_eq!(*index, 0);
    assert_eq!(event.device_id, "WT-01-kitchen");
    assert_eq!(event.observed_at, Some(AT));
    assert!(event.observed_at_assumed, "the default time is flagged");
    assert!(matches!(event.payload, Some(Payload::BinReading(_))));
    // The broker's redelivery of the same message gets the same id; another
    // topic or payload does not.
    let again = prepare(TOPIC, payload.as_bytes(), AT, 10);
    assert_eq!(again.events[0].1.event_id, event.event_id);
    let other = prepare(&TOPIC.replace("WT-01", "WT-02"), payload.as_bytes(), AT, 10);
    assert_ne!(other.events[0].1.event_id, event.event_id);
    let later = bin(r#""seq_no":2,"#);
    let later = prepare(TOPIC, later.as_bytes(), AT, 10);
    assert_ne!(later.events[0].1.event_id, event.event_id);
}

#[test]
fn what_the_device_sends_is_kept() {
    let payload = bin(
        r#""event_id":"0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6d21","device_id":"WT-01-kitchen","observed_at":"2026-11-29T08:00:00Z","#,
    );
    let prepared = prepare(TOPIC, payload.as_bytes(), AT, 10);
    let event = &prepared.events[0].1;
    assert_eq!(event.event_id, "0190f4c4-8c2e-7a51-9a5e-0c4b2f7e6d21");
    assert_eq!(event.observed_at.unwrap().seconds, 1_795_939_200);
    assert!(!event.observed_at_assumed);
}

#[test]
fn arrays_get_one_id_per_position_and_refusals_name_the_position() {
    let spot = r#"{"parking_spot_status":{"site_id":"P1","spot_id":"1","state":"PARKING_SPOT_STATE_FREE"}}"#;
    let payload = format!(
        "[{},{},{spot},{}]",
        bin(""),
        bin(""),
        bin(r#""device_id":"WT-02-kitchen","#)
    );
    let prepared = prepare(TOPIC, payload.as_bytes(), AT, 10);
    assert_eq!(prepared.events.len(), 2);
    assert_ne!(prepared.events[0].1.event_id, prepared.events[1].1.event_id);
    assert_eq!(
        reasons(&prepared),
        vec![
            (2, ReasonCode::KindNotAllowed, "parking_spot_status"),
            (3, ReasonCode::Inconsistent, "device_id"),
        ]
    );
}

#[test]
fn payloads_that_are_not_the_contract_are_refused_whole_with_the_json_path() {
    let prepared = prepare(TOPIC, br#"{"bin_reading":{"fill_level":"full"}}"#, AT, 10);
    assert!(prepared.events.is_empty());
    assert_eq!(
        reasons(&prepared),
        vec![(0, ReasonCode::InvalidFormat, "bin_reading.fill_level")]
    );
    assert!(prepared.refused[0].message.contains("fill_level"));
    let prepared = prepare(TOPIC, b"fill=40%", AT, 10);
    assert!(prepared.refused[0].message.contains("not JSON"));
    let prepared = prepare(TOPIC, b"[]", AT, 10);
    assert_eq!(reasons(&prepared)[0].1, ReasonCode::MissingPayload);
    let many = format!("[{}]", vec![bin(""); 3].join(","));
    let prepared = prepare(TOPIC, many.as_bytes(), AT, 2);
    assert!(prepared.events.is_empty());
    assert!(
        prepared.refused[0].message.contains("at most 2"),
        "{prepared:?}"
    );
}

#[test]
fn answers_sort_into_refusals_and_retries() {
    let payload = format!("[{},{},{}]", bin(""), bin(""), bin(""));
    let prepared = prepare(TOPIC, payload.as_bytes(), AT, 10);
    let answer = |outcome| EventAnswer {
        event_id: String::new(),
        outcome,
    };
    let answers = vec![
        answer(EventOutcome::Accepted),
        answer(EventOutcome::Retryable {
            reason: ReasonCode::Overloaded,
            message: "full".into(),
        }),
        answer(EventOutcome::Rejected {
            reason: ReasonCode::OutOfRange,
            field: "bin_reading.fill_level".into(),
            message: "m".into(),
        }),
    ];
    let settled = settle(&prepared.events, &answers);
    assert_eq!(settled.retry, vec![1]);
    assert_eq!(settled.rejected.len(), 1);
    assert_eq!(settled.rejected[0].index, 2);
    assert_eq!(
        settled.rejected[0].event_id, prepared.events[2].1.event_id,
        "the derived id is reported"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&rejection_payload(&settled.rejected)).unwrap();
    assert_eq!(json["results"][0]["reason"], "REASON_CODE_OUT_OF_RANGE");
    assert_eq!(json["results"][0]["field"], "bin_reading.fill_level");
    assert_eq!(json["rejected"], 1);
}
