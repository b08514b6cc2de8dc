//! Whole-call answers as the README and ingest.proto promise them, through
//! the real ingest over gRPC: a request message over 4 MiB — and over tonic's
//! old 8 MiB limit — is RESOURCE_EXHAUSTED naming the limit, in every call;
//! one that does not decode is INVALID_ARGUMENT saying what failed to decode;
//! a compressed one is UNIMPLEMENTED; nothing of a refused request is
//! stored, and every refused call is counted with its status.

use citybrain_proto::events::v1::{Event, event::Payload};
use citybrain_proto::ingest::v1::{IngestRequest, IngestResponse};
use citybrain_tests::samples;
use citybrain_tests::*;
use prost::Message as _;
use std::time::{Duration, SystemTime};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::{Code, Status, transport::Channel};

const MIB: usize = 1024 * 1024;

/// A request of about `bytes` encoded bytes: events with long notes (never
/// validated: the request is refused before it is read).
fn request_of(bytes: usize) -> IngestRequest {
    let now = SystemTime::now();
    let per_event = 10_000;
    let events = (0..bytes / per_event + 1)
        .map(|_| {
            let mut event = samples::event(Kind::ServiceRequest, now);
            if let Some(Payload::ServiceRequest(request)) = event.payload.as_mut() {
                request.note = "n".repeat(per_event);
            }
            event
        })
        .collect();
    let request = IngestRequest { events };
    assert!(request.encoded_len() > bytes);
    request
}

fn valid_batch(n: usize) -> IngestRequest {
    let now = SystemTime::now();
    IngestRequest {
        events: (0..n)
            .map(|_| samples::event(Kind::BinReading, now))
            .collect(),
    }
}

fn assert_names_the_limit(status: &Status, what: &str) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{what}: {status:?}");
    assert!(
        status.message().contains("at most 4194304 bytes"),
        "{what}: {}",
        status.message()
    );
}

#[tokio::test]
async fn a_request_over_4_mib_is_resource_exhausted_naming_the_limit_in_every_call() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let ingest = start_ingest(&brokers, &prefix, "ingest-4mib").await;
    let mut client = ingest_client(&ingest).await;

    for (bytes, what) in [(5 * MIB, "5 MiB"), (9 * MIB, "9 MiB, over tonic's 8 MiB")] {
        let status = client
            .ingest(with_key(request_of(bytes), FULL_KEY))
            .await
            .expect_err(what);
        assert_names_the_limit(&status, what);
    }

    // Streams: the valid batch before the oversized one is answered
    // (IngestBatches) or stored (IngestStream), then the call is refused.
    let stream = tokio_stream::iter(vec![valid_batch(2), request_of(9 * MIB), valid_batch(2)]);
    let mut answers = client
        .ingest_batches(with_key(stream, FULL_KEY))
        .await
        .expect("the stream opens")
        .into_inner();
    let first = answers.message().await.expect("first answer").unwrap();
    assert_eq!((first.batch, first.accepted), (0, 2));
    let status = answers.message().await.expect_err("then the refusal");
    assert_names_the_limit(&status, "IngestBatches, 9 MiB");

    let stream = tokio_stream::iter(vec![valid_batch(2), request_of(5 * MIB)]);
    let status = client
        .ingest_stream(with_key(stream, FULL_KEY))
        .await
        .expect_err("IngestStream");
    assert_names_the_limit(&status, "IngestStream, 5 MiB");

    let stored = stored_events(&brokers, &prefix, 4, Duration::from_secs(2));
    assert_eq!(
        stored.len(),
        4,
        "only the two valid batches before the refusals are stored"
    );
    let metrics = ingest.admin_get("/metrics").await.body;
    for method in ["Ingest", "IngestBatches", "IngestStream"] {
        let expected = if method == "Ingest" { 2 } else { 1 };
        let series = format!(
            r#"citybrain_ingest_requests_total{{method="{method}",code="resource_exhausted"}} {expected}"#
        );
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
    ingest.shutdown().await.unwrap();
}

/// Sends bytes as they are and decodes the answer: what a vendor's broken
/// encoder would put on the wire.
#[derive(Clone, Default)]
struct RawCodec;

struct RawEncoder;
struct AnswerDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = IngestResponse;
    type Encoder = RawEncoder;
    type Decoder = AnswerDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> AnswerDecoder {
        AnswerDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        use prost::bytes::BufMut;
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for AnswerDecoder {
    type Item = IngestResponse;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<IngestResponse>, Status> {
        IngestResponse::decode(buf)
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// A request whose first event's device_id is not UTF-8.
fn undecodable() -> Vec<u8> {
    let mut event: Event = samples::event(Kind::BinReading, SystemTime::now());
    event.device_id = "BIN-QJ-044-unique-marker".into();
    let mut wire = IngestRequest {
        events: vec![event],
    }
    .encode_to_vec();
    let at = wire
        .windows(6)
        .position(|w| w == b"unique")
        .expect("device id on the wire");
    wire[at] = 0xff;
    wire
}

async fn raw_grpc(ingest: &RunningIngest) -> tonic::client::Grpc<Channel> {
    let channel = Channel::from_shared(ingest.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic::client::Grpc::new(channel)
}

#[tokio::test]
async fn an_undecodable_request_is_invalid_argument_saying_what_failed() {
    let brokers = stack_brokers();
    let prefix = unique_prefix();
    let _topics = TestTopics::feeds(&brokers, &prefix, 1).await;
    let ingest = start_ingest(&brokers, &prefix, "ingest-decode").await;
    let mut grpc = raw_grpc(&ingest).await;
    let say_what = |status: &Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        for words in ["does not decode", "device_id", "UTF-8"] {
            assert!(status.message().contains(words), "{}", status.message());
        }
    };

    grpc.ready().await.unwrap();
    let status = grpc
        .unary(
            with_key(undecodable(), FULL_KEY),
            PathAndQuery::from_static("/citybrain.ingest.v1.IngestService/Ingest"),
            RawCodec,
        )
        .await
        .expect_err("Ingest refuses it");
    say_what(&status);

    let valid = valid_batch(3).encode_to_vec();
    grpc.ready().await.unwrap();
    let mut answers = grpc
        .streaming(
            with_key(tokio_stream::iter(vec![valid, undecodable()]), FULL_KEY),
            PathAndQuery::from_static("/citybrain.ingest.v1.IngestService/IngestBatches"),
            RawCodec,
        )
        .await
        .expect("the stream opens")
        .into_inner();
    let first = answers.message().await.unwrap().expect("the valid batch");
    assert_eq!(first.accepted, 3);
    let status = answers.message().await.expect_err("then the refusal");
    say_what(&status);

    // A compressed request: ingest reads uncompressed messages only.
    let mut request = with_key(valid_batch(1).encode_to_vec(), FULL_KEY);
    request
        .metadata_mut()
        .insert("grpc-encoding", "gzip".parse().unwrap());
    grpc.ready().await.unwrap();
    let status = grpc
        .unary(
            request,
            PathAndQuery::from_static("/citybrain.ingest.v1.IngestService/Ingest"),
            RawCodec,
        )
        .await
        .expect_err("compressed");
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");

    let stored = stored_events(&brokers, &prefix, 3, Duration::from_secs(2));
    assert_eq!(stored.len(), 3, "only the valid batch is stored");
    let metrics = ingest.admin_get("/metrics").await.body;
    for series in [
        r#"citybrain_ingest_requests_total{method="Ingest",code="invalid_argument"} 1"#,
        r#"citybrain_ingest_requests_total{method="IngestBatches",code="invalid_argument"} 1"#,
        r#"citybrain_ingest_requests_total{method="Ingest",code="unimplemented"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} in\n{metrics}");
    }
    ingest.shutdown().await.unwrap();
}
