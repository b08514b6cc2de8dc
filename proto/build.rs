//! Compiles the contract with `protox` (pure Rust), so a fresh machine needs
//! no system `protoc`. The encoded descriptor set is kept for gRPC reflection.

use prost::Message;
use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "citybrain/events/v1/event.proto",
    "citybrain/events/v1/charging.proto",
    "citybrain/events/v1/parking.proto",
    "citybrain/events/v1/vehicle.proto",
    "citybrain/events/v1/sanitation.proto",
    "citybrain/events/v1/service_request.proto",
    "citybrain/ingest/v1/ingest.proto",
    "citybrain/query/v1/query.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=citybrain");
    let descriptors = protox::compile(PROTOS, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("citybrain_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    // Messages and servers; the servers answer an undecodable request as the
    // client's error (src/codec.rs).
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .codec_path("crate::codec::RequestCodec")
        .compile_fds(descriptors.clone())?;
    // Clients, with prost's own codec, into `clients/`: every message is the
    // one generated above.
    let clients = out_dir.join("clients");
    std::fs::create_dir_all(&clients)?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(false)
        .extern_path(".citybrain", "crate")
        .out_dir(clients)
        .compile_fds(descriptors)?;
    Ok(())
}
