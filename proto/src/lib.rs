//! The citybrain event contract.
//!
//! The `.proto` files beside this crate are the source of truth and the
//! vendor-facing documentation; this crate generates the Rust types and the
//! ingest gRPC client and server from them, and names the Kafka topics each
//! payload kind travels on ([`feed`]).

pub mod codec;
pub mod feed;
pub mod json;
pub mod record;
pub mod time;

pub use time::timestamp;

/// `citybrain.events.v1`: the envelope and the typed payloads.
pub mod events {
    pub mod v1 {
        tonic::include_proto!("citybrain.events.v1");
    }
}

/// `citybrain.ingest.v1`: the ingest gRPC service.
pub mod ingest {
    pub mod v1 {
        tonic::include_proto!("citybrain.ingest.v1");
        include!(concat!(env!("OUT_DIR"), "/clients/citybrain.ingest.v1.rs"));
    }
}

/// `citybrain.query.v1`: the query gRPC service.
pub mod query {
    pub mod v1 {
        tonic::include_proto!("citybrain.query.v1");
        include!(concat!(env!("OUT_DIR"), "/clients/citybrain.query.v1.rs"));
    }
}

/// Encoded `FileDescriptorSet` of the whole contract, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/citybrain_descriptor.bin"));
