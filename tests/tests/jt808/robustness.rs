//! Garbage bytes, wrong checksums, a frame that never ends, strangers and
//! messages before authentication: answered or closed cleanly, never a
//! crash, never a stored position (and a control that would see one).

use crate::harness::*;
use crate::terminal::{self, Terminal, Version};
use citybrain_tests::*;
use std::time::Duration;

/// Every message on the vehicles topic under `prefix`, waiting for
/// `expected` (and a little longer, to catch any extra).
async fn vehicle_records(brokers: &str, prefix: &str, expected: usize) -> usize {
    let topics = vec![format!("{prefix}{}", Feed::Vehicles.topic())];
    let brokers = brokers.to_string();
    tokio::task::spawn_blocking(move || {
        read_topics(
            &brokers,
            &topics,
            expected,
            Duration::from_secs(30),
            Duration::from_secs(3),
        )
        .len()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_strangers_and_early_messages_never_store_a_position() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let dir = scratch_dir("jt808-robust");
    let ingest = RunningIngest::start(ingest_config(&brokers, &prefix, write_key_file(&dir))).await;
    let mut config = gateway_config(&ingest.endpoint(), &dir);
    config.idle_timeout = Duration::from_secs(2);
    let gateway = RunningJt808::start(config).await;
    let at = now() - 60;

    // Garbage, a frame with a wrong checksum and a frame that never ends:
    // no answer to any of them, and the connection still serves.
    let mut t = Terminal::connect(gateway.addr, SHUTTLE, Version::V2013).await;
    t.send_raw(b"\x00\x01\x02 not a frame at all \xff\xfe")
        .await;
    let mut bad = t.frame(terminal::LOCATION, 1, &report(at, 0).body());
    let at_checksum = bad.len() - 2;
    assert_ne!(
        bad[at_checksum - 1],
        0x7d,
        "the checksum is not escaped here"
    );
    bad[at_checksum] ^= 0x01;
    t.send_raw(&bad).await;
    t.send_raw(&[0x7e]).await;
    t.send_raw(&vec![0x55; 10_000]).await;
    // A valid report before authentication: refused, and it is the first
    // answer on this connection.
    assert_eq!(
        t.request(terminal::LOCATION, &report(at, 1).body()).await,
        1
    );
    let batch = terminal::batch(&[report(at - 60, 2), report(at - 50, 3)]);
    assert_eq!(t.request(terminal::BATCH, &batch).await, 1);
    assert_eq!(t.request(terminal::HEARTBEAT, &[]).await, 1);
    assert_eq!(t.authenticate("not-the-code").await, 1, "never registered");
    assert_eq!(
        t.request(terminal::LOCATION, &report(at, 4).body()).await,
        1
    );

    // A terminal the registry does not know, and a known one with a
    // plate that is not its vehicle's.
    let mut stranger = Terminal::connect(gateway.addr, "13800000000", Version::V2019).await;
    let (result, code) = stranger.register(PLATE_A).await;
    assert_eq!((result, code.as_str()), (2, ""), "no such vehicle, no code");
    assert_eq!(stranger.authenticate("anything").await, 1);
    assert_eq!(
        stranger
            .request(terminal::LOCATION, &report(at, 5).body())
            .await,
        1
    );
    let mut truck = Terminal::connect(gateway.addr, TRUCK, Version::V2019).await;
    assert_eq!(
        truck.register(PLATE_A).await.0,
        2,
        "the plate is not ST-01's"
    );

    // Something that does not speak JT/T 808: closed, cleanly.
    let mut http = Terminal::connect(gateway.addr, SHUTTLE, Version::V2013).await;
    http.send_raw(b"GET / HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await;
    for _ in 0..40 {
        http.send_raw(&[0x7e, 1, 2, 3, 0x7e]).await;
    }
    assert!(
        http.closed_within(Duration::from_secs(10)).await,
        "garbage closes"
    );
    // A silent connection is closed after the idle timeout (2 s here).
    let mut silent = Terminal::connect(gateway.addr, SHUTTLE, Version::V2013).await;
    assert!(
        silent.closed_within(Duration::from_secs(15)).await,
        "idle closes"
    );

    for (series, at_least) in [
        (
            "citybrain_jt808_frame_errors_total{reason=\"checksum\"}",
            1.0,
        ),
        (
            "citybrain_jt808_frame_errors_total{reason=\"oversized\"}",
            1.0,
        ),
        (
            "citybrain_jt808_frame_errors_total{reason=\"too_short\"}",
            31.0,
        ),
        (
            "citybrain_jt808_messages_total{id=\"0x0200\",outcome=\"refused\"}",
            3.0,
        ),
        (
            "citybrain_jt808_registrations_total{result=\"unknown_terminal\"}",
            1.0,
        ),
        (
            "citybrain_jt808_registrations_total{result=\"plate_mismatch\"}",
            1.0,
        ),
        (
            "citybrain_jt808_connections_closed_total{reason=\"garbage\"}",
            1.0,
        ),
        (
            "citybrain_jt808_connections_closed_total{reason=\"idle\"}",
            1.0,
        ),
    ] {
        let value = gateway.metric(series).await;
        assert!(
            value >= at_least,
            "{series} = {value}, expected at least {at_least}"
        );
    }
    assert_eq!(
        vehicle_records(&brokers, &prefix, 0).await,
        0,
        "nothing stored"
    );

    // The control: the same gateway stores a report of an authenticated
    // terminal, and the read above would have seen it. (`t` has idled out.)
    let mut t = Terminal::connect(gateway.addr, SHUTTLE, Version::V2013).await;
    let (result, code) = t.register(PLATE_A).await;
    assert_eq!(result, 0);
    assert_eq!(t.authenticate(&code).await, 0);
    assert_eq!(
        t.request(terminal::LOCATION, &report(at, 6).body()).await,
        0
    );
    assert_eq!(vehicle_records(&brokers, &prefix, 1).await, 1);

    gateway.shutdown().await;
    ingest.shutdown().await.expect("ingest stops");
    let _ = std::fs::remove_dir_all(&dir);
}
