//! The Kafka record of an event: what every producer of event records
//! writes (ingest, tools that replay) and every consumer reads (the sink).
//!
//! - Topic: the kind's feed topic ([`crate::feed::Feed::topic`]) with the
//!   deployment's prefix.
//! - Key: `"<tenant>/<device_id>"` ([`key`]), so a device's events stay in
//!   order on one partition, and a client's retry of an event lands on the
//!   partition that already holds the first copy.
//! - Value: an `IngestedEvent` protobuf (the event plus tenant, source and
//!   receive time).
//! - Headers ([`headers`]): `kind`, `schema`, `tenant`.

use crate::feed::{Kind, SCHEMA_VERSION};

/// Header names set on every event record.
pub mod header {
    /// The payload kind, as [`crate::feed::Kind::as_str`].
    pub const KIND: &str = "kind";
    /// The contract version, [`crate::feed::SCHEMA_VERSION`].
    pub const SCHEMA: &str = "schema";
    /// The tenant that sent the event.
    pub const TENANT: &str = "tenant";
}

/// The record key of a device's events.
pub fn key(tenant: &str, device_id: &str) -> String {
    let mut key = String::with_capacity(tenant.len() + 1 + device_id.len());
    key.push_str(tenant);
    key.push('/');
    key.push_str(device_id);
    key
}

/// The headers of an event record, as (name, value) pairs.
pub fn headers(kind: Kind, tenant: &str) -> [(&'static str, &[u8]); 3] {
    [
        (header::KIND, kind.as_str().as_bytes()),
        (header::SCHEMA, SCHEMA_VERSION.as_bytes()),
        (header::TENANT, tenant.as_bytes()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_headers_name_tenant_device_kind_and_schema() {
        assert_eq!(key("lucheng", "HBY-CP-03:1"), "lucheng/HBY-CP-03:1");
        let headers = headers(Kind::MeterSample, "lucheng");
        assert_eq!(headers[0], ("kind", &b"meter_sample"[..]));
        assert_eq!(headers[1], ("schema", &b"citybrain.events.v1"[..]));
        assert_eq!(headers[2], ("tenant", &b"lucheng"[..]));
    }
}
