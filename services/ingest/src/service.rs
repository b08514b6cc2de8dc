//! The gRPC `IngestService`: authenticate, check the limits of each request,
//! answer per event (`batch.rs`).
//!
//! Three calls share that: `Ingest` (one batch, one answer), `IngestBatches`
//! (a stream of batches, each answered once it is stored, in order) and the
//! older `IngestStream` (a stream of batches, one answer at the end). The
//! byte limit of a request message is enforced before the message is read,
//! in `transport.rs`; calls are counted there too.

use crate::batch::{Answering, Answers};
use crate::config::BatchLimits;
use crate::error::IngestError;
use crate::producer::EventProducer;
use crate::validate::Limits;
use citybrain_keys::{API_KEY_HEADER, KeyStore, Principal};
use citybrain_proto::ingest::v1::{
    IngestRequest, IngestResponse, ingest_service_server::IngestService,
};
use std::collections::HashSet;
use std::pin::Pin;
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming, metadata::MetadataMap};

/// Handles ingest calls. Cheap to clone.
#[derive(Clone)]
pub struct IngestHandler {
    keys: KeyStore,
    producer: EventProducer,
    limits: BatchLimits,
    validation: Limits,
}

/// The answers of an IngestBatches call, one per request.
pub type AnswerStream = Pin<Box<dyn Stream<Item = Result<IngestResponse, Status>> + Send>>;

impl IngestHandler {
    pub fn new(
        keys: KeyStore,
        producer: EventProducer,
        limits: BatchLimits,
        validation: Limits,
    ) -> Self {
        Self {
            keys,
            producer,
            limits,
            validation,
        }
    }

    fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, IngestError> {
        self.authenticate_key(metadata.get(API_KEY_HEADER).map(|value| value.as_bytes()))
    }

    /// The caller of the key presented (gRPC metadata or HTTP header).
    pub(crate) fn authenticate_key(&self, value: Option<&[u8]>) -> Result<Principal, IngestError> {
        let value = value.ok_or(IngestError::MissingApiKey)?;
        let printable = value.iter().all(|b| (0x20..0x7f).contains(b));
        let presented = std::str::from_utf8(value)
            .ok()
            .filter(|_| printable)
            .ok_or(IngestError::MalformedApiKey)?
            .trim();
        if presented.is_empty() {
            return Err(IngestError::MissingApiKey);
        }
        self.keys
            .authenticate(presented)
            .cloned()
            .ok_or(IngestError::UnknownApiKey)
    }

    pub(crate) fn limits(&self) -> &BatchLimits {
        &self.limits
    }

    pub(crate) fn answering<'a>(&'a self, who: &'a Principal) -> Answering<'a> {
        Answering {
            producer: &self.producer,
            validation: &self.validation,
            max_event_bytes: self.limits.max_event_bytes,
            who,
        }
    }

    /// The limits of one request that the wire does not enforce (its bytes
    /// are checked as they arrive, by `transport::Guarded`), given the
    /// events earlier requests of its stream carried.
    pub(crate) fn check_request(
        &self,
        request: &IngestRequest,
        earlier: usize,
    ) -> Result<(), IngestError> {
        let count = request.events.len();
        if count > self.limits.max_batch_events {
            return Err(IngestError::TooManyEvents {
                count,
                limit: self.limits.max_batch_events,
            });
        }
        if earlier + count > self.limits.max_stream_events {
            return Err(IngestError::StreamTooLong {
                limit: self.limits.max_stream_events,
                earlier,
            });
        }
        Ok(())
    }

    /// IngestBatches: answers each request once it is stored, until the
    /// client closes the stream, a request breaks a limit, or the client is
    /// gone. The answer of a request is sent before the next one is read;
    /// nothing is stored once no one can be told.
    async fn answer_batches(
        self,
        who: Principal,
        mut requests: Streaming<IngestRequest>,
        answers: mpsc::Sender<Result<IngestResponse, Status>>,
    ) {
        let answering = self.answering(&who);
        let mut accepted = HashSet::new();
        let mut events = 0;
        for batch in 0u32.. {
            let next = tokio::select! {
                () = answers.closed() => return,
                next = requests.message() => next,
            };
            let checked = match next {
                Ok(Some(request)) => self.check_request(&request, events).map(|()| request),
                Ok(None) => return,
                Err(status) => Err(IngestError::Stream(status)),
            };
            let request = match checked {
                Ok(request) => request,
                Err(err) => {
                    log_refusal("IngestBatches", &err);
                    let _ = answers.send(Err(err.into())).await;
                    return;
                }
            };
            events += request.events.len();
            if answers.is_closed() {
                return;
            }
            let mut response = answering
                .batch(request.events, 0, &mut accepted)
                .await
                .into_response();
            response.batch = batch;
            if answers.send(Ok(response)).await.is_err() {
                return;
            }
        }
    }
}

#[tonic::async_trait]
impl IngestService for IngestHandler {
    async fn ingest(
        &self,
        request: Request<IngestRequest>,
    ) -> Result<Response<IngestResponse>, Status> {
        let result = async {
            let who = self.authenticate(request.metadata())?;
            let batch = request.into_inner();
            self.check_request(&batch, 0)?;
            self.answering(&who)
                .batch(batch.events, 0, &mut HashSet::new())
                .await
                .respond()
        }
        .await;
        reply("Ingest", result)
    }

    type IngestBatchesStream = AnswerStream;

    async fn ingest_batches(
        &self,
        request: Request<Streaming<IngestRequest>>,
    ) -> Result<Response<AnswerStream>, Status> {
        let who = match self.authenticate(request.metadata()) {
            Ok(who) => who,
            Err(err) => {
                log_refusal("IngestBatches", &err);
                return Err(err.into());
            }
        };
        // One answer waits to be read while the next batch is stored; a
        // client that reads none stops ingest from reading its batches.
        let (answers, receiver) = mpsc::channel(1);
        tokio::spawn(
            self.clone()
                .answer_batches(who, request.into_inner(), answers),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn ingest_stream(
        &self,
        request: Request<Streaming<IngestRequest>>,
    ) -> Result<Response<IngestResponse>, Status> {
        let result = async {
            let who = self.authenticate(request.metadata())?;
            let answering = self.answering(&who);
            let mut requests = request.into_inner();
            let mut answers = Answers::default();
            let mut accepted = HashSet::new();
            while let Some(batch) = requests.message().await.map_err(IngestError::Stream)? {
                let earlier = answers.results.len();
                self.check_request(&batch, earlier)?;
                let first = earlier as u32;
                answers.extend(answering.batch(batch.events, first, &mut accepted).await);
            }
            answers.respond()
        }
        .await;
        reply("IngestStream", result)
    }
}

fn reply<T>(method: &'static str, result: Result<T, IngestError>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(|err| {
        log_refusal(method, &err);
        err.into()
    })
}

fn log_refusal(method: &'static str, err: &IngestError) {
    if err.is_retryable() {
        tracing::warn!(method, error = %err, "call answered retryable");
    } else {
        tracing::debug!(method, error = %err, "call refused");
    }
}
