//! The test kit: what every suite that drives the real servers shares.
//!
//! The suites run the real servers: the stack's broker and ClickHouse (which
//! `make test` starts through `deploy/local/stack.sh`), and, where a test
//! must stop, freeze or restart one, a private Tansu or ClickHouse process
//! of its own ([`process`]). Services run in-process on port 0 through
//! their public `serve` functions ([`services`]) or as their real binaries
//! ([`process::spawn_service`]). Every test works under its own topic prefix
//! ([`kafka::TestTopics`]) and database ([`clickhouse::TestDatabase`],
//! dropped when the test ends however it ends), so tests never see each
//! other's events. Topics are not deleted: see [`kafka::TestTopics`] for the
//! broker bug that makes deleting them crash librdkafka clients.
//!
//! - [`samples`]: one valid event of every kind;
//! - [`http`]: the one HTTP client (admin ports, the query API);
//! - [`mqtt`]: device registries, a paho-mqtt device, the bridge's config;
//! - [`eventually`]: polling for a condition with a deadline (no fixed sleeps).

pub mod clickhouse;
pub mod grafana;
pub mod http;
pub mod kafka;
pub mod mqtt;
pub mod process;
pub mod services;

pub use citybrain_proto::feed::{Feed, Kind};
pub use citybrain_samples as samples;
pub use clickhouse::TestDatabase;
pub use kafka::{TestTopics, feed_topics, header, read_topics, stored_events};
pub use process::{
    BrokerStorage, ChildProcess, PrivateBroker, PrivateClickHouse, PrivateMosquitto,
};
pub use services::{
    RunningIngest, RunningQuery, RunningSink, ingest_all, ingest_client, ingest_config,
    query_config, sink_config, start_ingest, with_key,
};

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// A key allowed to send every kind.
pub const FULL_KEY: &str = "test-key-full-0123456789abcdef";
/// A key allowed to send parking kinds only.
pub const PARKING_ONLY_KEY: &str = "test-key-parking-0123456789abcdef";
/// The tenant both keys belong to.
pub const TENANT: &str = "lucheng-test";
/// A key of another tenant, allowed everything.
pub const OTHER_TENANT_KEY: &str = "test-key-other-tenant-0123456789";
pub const OTHER_TENANT: &str = "other-town";

/// The stack's broker (`CITYBRAIN_KAFKA_BROKERS`, default the local stack's).
pub fn stack_brokers() -> String {
    std::env::var("CITYBRAIN_KAFKA_BROKERS")
        .unwrap_or_else(|_| citybrain_config::KafkaConfig::DEFAULT_BROKERS.into())
}

/// The stack's ClickHouse HTTP URL (`CITYBRAIN_CLICKHOUSE_URL`).
pub fn stack_clickhouse_url() -> String {
    std::env::var("CITYBRAIN_CLICKHOUSE_URL")
        .unwrap_or_else(|_| citybrain_config::ClickHouseConfig::DEFAULT_URL.into())
}

/// A fresh topic prefix, e.g. `t3f9a1c2e.`.
pub fn unique_prefix() -> String {
    format!("t{}.", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A fresh scratch directory under the system temp dir.
pub fn scratch_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "citybrain-{label}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// A key file with the test keys above, in `dir`.
pub fn write_key_file(dir: &Path) -> PathBuf {
    let path = dir.join("api-keys.toml");
    let text = format!(
        r#"
[[keys]]
name = "test-full"
tenant = "{TENANT}"
source = "test-suite"
kinds = ["*"]
sha256 = "{full}"

[[keys]]
name = "test-parking"
tenant = "{TENANT}"
source = "parking-vendor"
kinds = ["parking_site_counts", "parking_spot_status"]
sha256 = "{parking}"

[[keys]]
name = "test-other-tenant"
tenant = "{OTHER_TENANT}"
source = "other-vendor"
kinds = ["*"]
sha256 = "{other}"
"#,
        full = hex(FULL_KEY),
        parking = hex(PARKING_ONLY_KEY),
        other = hex(OTHER_TENANT_KEY),
    );
    std::fs::write(&path, text).expect("write key file");
    path
}

fn hex(key: &str) -> String {
    citybrain_keys::digest(key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Polls `condition` every 50 ms until it holds or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
