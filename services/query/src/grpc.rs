//! The gRPC API over the query core.

use crate::{
    core::{self, QueryCore},
    error::QueryError,
    metrics::{self, Endpoint},
    table::{ColumnKind, Table, Value},
};
use citybrain_keys::{API_KEY_HEADER, KeyStore};
use citybrain_proto::query::v1 as pb;
use std::time::Instant;
use tonic::{Request, Response, Status};

pub struct QueryHandler {
    core: QueryCore,
    keys: KeyStore,
}

impl QueryHandler {
    pub fn new(core: QueryCore, keys: KeyStore) -> Self {
        Self { core, keys }
    }

    fn tenant<T>(&self, request: &Request<T>) -> Result<String, QueryError> {
        let key = request
            .metadata()
            .get(API_KEY_HEADER)
            .ok_or(QueryError::MissingApiKey)?
            .to_str()
            .map_err(|_| QueryError::UnknownApiKey)?;
        self.keys
            .authenticate(key)
            .map(|p| p.tenant.clone())
            .ok_or(QueryError::UnknownApiKey)
    }
}

async fn observe(
    endpoint: Endpoint,
    work: impl std::future::Future<Output = Result<Table, QueryError>>,
) -> Result<Response<pb::Table>, Status> {
    let started = Instant::now();
    let result = work.await;
    let outcome = result.as_ref().map_or_else(QueryError::outcome, |_| "ok");
    metrics::request_finished("grpc", endpoint, outcome, started.elapsed());
    let table = result?;
    metrics::rows_returned(endpoint, table.rows.len());
    Ok(Response::new(to_proto(table)))
}

fn seconds(field: &'static str, ts: Option<prost_types::Timestamp>) -> Result<i64, QueryError> {
    ts.map(|t| t.seconds)
        .ok_or_else(|| QueryError::invalid(field, "required"))
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

#[tonic::async_trait]
impl pb::query_service_server::QueryService for QueryHandler {
    async fn live(&self, request: Request<pb::LiveRequest>) -> Result<Response<pb::Table>, Status> {
        observe(Endpoint::Live, async {
            let tenant = self.tenant(&request)?;
            let r = request.into_inner();
            let req = core::LiveRequest {
                view: r.view,
                filters: r.filters.into_iter().collect(),
            };
            self.core.live(&tenant, &req).await
        })
        .await
    }

    async fn aggregate(
        &self,
        request: Request<pb::AggregateRequest>,
    ) -> Result<Response<pb::Table>, Status> {
        observe(Endpoint::Aggregate, async {
            let tenant = self.tenant(&request)?;
            let r = request.into_inner();
            let req = core::AggregateRequest {
                metric: r.metric,
                from: seconds("from", r.from)?,
                to: seconds("to", r.to)?,
                bucket: r.bucket,
                group_by: non_empty(r.group_by),
                filters: r.filters.into_iter().collect(),
            };
            self.core.aggregate(&tenant, &req).await
        })
        .await
    }

    async fn top(&self, request: Request<pb::TopRequest>) -> Result<Response<pb::Table>, Status> {
        observe(Endpoint::Top, async {
            let tenant = self.tenant(&request)?;
            let r = request.into_inner();
            let req = core::TopRequest {
                metric: r.metric,
                from: seconds("from", r.from)?,
                to: seconds("to", r.to)?,
                group_by: non_empty(r.group_by),
                order_by: non_empty(r.order_by),
                n: Some(r.n).filter(|n| *n > 0),
                filters: r.filters.into_iter().collect(),
            };
            self.core.top(&tenant, &req).await
        })
        .await
    }

    async fn track(
        &self,
        request: Request<pb::TrackRequest>,
    ) -> Result<Response<pb::Table>, Status> {
        observe(Endpoint::Track, async {
            let tenant = self.tenant(&request)?;
            let r = request.into_inner();
            let req = core::TrackRequest {
                vehicle_id: r.vehicle_id,
                from: seconds("from", r.from)?,
                to: seconds("to", r.to)?,
                max_points: Some(r.max_points).filter(|n| *n > 0),
            };
            self.core.track(&tenant, &req).await
        })
        .await
    }
}

/// The protobuf form of a table.
pub fn to_proto(table: Table) -> pb::Table {
    use pb::value::Kind;
    pb::Table {
        columns: table
            .columns
            .into_iter()
            .map(|c| pb::Column {
                name: c.name,
                r#type: match c.kind {
                    ColumnKind::String => pb::ColumnType::String,
                    ColumnKind::Int => pb::ColumnType::Int,
                    ColumnKind::Float => pb::ColumnType::Float,
                    ColumnKind::Time => pb::ColumnType::Time,
                } as i32,
            })
            .collect(),
        rows: table
            .rows
            .into_iter()
            .map(|row| pb::Row {
                values: row
                    .into_iter()
                    .map(|v| pb::Value {
                        kind: match v {
                            Value::Null => None,
                            Value::Str(s) => Some(Kind::StringValue(s)),
                            Value::Int(i) => Some(Kind::IntValue(i)),
                            Value::Float(f) if f.is_finite() => Some(Kind::FloatValue(f)),
                            Value::Float(_) => None,
                            Value::Time(secs) => Some(Kind::TimeValue(prost_types::Timestamp {
                                seconds: secs,
                                nanos: 0,
                            })),
                        },
                    })
                    .collect(),
            })
            .collect(),
    }
}
