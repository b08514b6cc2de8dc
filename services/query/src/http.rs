//! The HTTP/JSON API over the query core, CSV export and the OpenAPI
//! description. Routes are listed once in [`ROUTES`]; the router is built
//! from that list and a test checks it against `openapi.json`.

use crate::{
    core::{AggregateRequest, LiveRequest, QueryCore, TopRequest, TrackRequest},
    error::QueryError,
    metrics::{self, Endpoint},
    table::Table,
};
use axum::{
    Json, Router,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use citybrain_keys::{API_KEY_HEADER, KeyStore};
use futures::StreamExt;
use std::{collections::BTreeMap, time::Instant};

/// The OpenAPI description served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route the HTTP API serves (all GET).
pub const ROUTES: &[&str] = &[
    "/openapi.json",
    "/v1/catalog",
    "/v1/live/{view}",
    "/v1/aggregates/{metric}",
    "/v1/aggregates/{metric}/csv",
    "/v1/top/{metric}",
    "/v1/vehicles/{vehicle_id}/track",
];

/// Query parameters that are not filters.
const RESERVED: &[&str] = &[
    "from",
    "to",
    "bucket",
    "group_by",
    "order_by",
    "n",
    "max_points",
];

#[derive(Clone)]
struct AppState {
    core: QueryCore,
    keys: KeyStore,
}

type Params = Query<Vec<(String, String)>>;

pub fn router(core: QueryCore, keys: KeyStore) -> Router {
    let mut router = Router::new();
    for route in ROUTES {
        router = match *route {
            "/openapi.json" => router.route(route, get(openapi)),
            "/v1/catalog" => router.route(route, get(catalog)),
            "/v1/live/{view}" => router.route(route, get(live)),
            "/v1/aggregates/{metric}" => router.route(route, get(aggregate)),
            "/v1/aggregates/{metric}/csv" => router.route(route, get(export)),
            "/v1/top/{metric}" => router.route(route, get(top)),
            "/v1/vehicles/{vehicle_id}/track" => router.route(route, get(track)),
            other => unreachable!("route {other} has no handler"),
        };
    }
    router.with_state(AppState { core, keys })
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn catalog(State(state): State<AppState>, headers: HeaderMap) -> Response {
    observe(Endpoint::Catalog, async {
        tenant(&state, &headers)?;
        Ok(Json(crate::describe_catalog()).into_response())
    })
    .await
}

async fn live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(view): Path<String>,
    Query(params): Params,
) -> Response {
    observe(Endpoint::Live, async {
        let tenant = tenant(&state, &headers)?;
        let req = LiveRequest {
            view,
            filters: filters_of(&params)?,
        };
        table_response(Endpoint::Live, state.core.live(&tenant, &req).await?)
    })
    .await
}

async fn aggregate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(metric): Path<String>,
    Query(params): Params,
) -> Response {
    observe(Endpoint::Aggregate, async {
        let tenant = tenant(&state, &headers)?;
        let req = aggregate_request(metric, &params)?;
        table_response(
            Endpoint::Aggregate,
            state.core.aggregate(&tenant, &req).await?,
        )
    })
    .await
}

async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(metric): Path<String>,
    Query(params): Params,
) -> Response {
    observe(Endpoint::Export, async {
        let tenant = tenant(&state, &headers)?;
        let req = aggregate_request(metric, &params)?;
        let stream = state.core.export(&tenant, &req).await?;
        let stream = stream.map(|chunk| {
            chunk.map_err(|err| {
                tracing::warn!(error = %err, "CSV export cut off");
                std::io::Error::other(err.to_string())
            })
        });
        let disposition = format!("attachment; filename=\"{}.csv\"", sanitized(&req.metric));
        let mut response = Response::new(Body::from_stream(stream));
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        );
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            h.insert(header::CONTENT_DISPOSITION, value);
        }
        Ok(response)
    })
    .await
}

async fn top(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(metric): Path<String>,
    Query(params): Params,
) -> Response {
    observe(Endpoint::Top, async {
        let tenant = tenant(&state, &headers)?;
        let map = single_values(&params)?;
        let req = TopRequest {
            metric,
            from: time_param(&map, "from")?,
            to: time_param(&map, "to")?,
            group_by: map.get("group_by").cloned(),
            order_by: map.get("order_by").cloned(),
            n: number_param(&map, "n")?,
            filters: filters_of(&params)?,
        };
        table_response(Endpoint::Top, state.core.top(&tenant, &req).await?)
    })
    .await
}

async fn track(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(vehicle_id): Path<String>,
    Query(params): Params,
) -> Response {
    observe(Endpoint::Track, async {
        let tenant = tenant(&state, &headers)?;
        let map = single_values(&params)?;
        if let Some((name, _)) = filters_of(&params)?.first() {
            return Err(QueryError::invalid(
                name,
                "unknown parameter; use from, to, max_points",
            ));
        }
        let req = TrackRequest {
            vehicle_id,
            from: time_param(&map, "from")?,
            to: time_param(&map, "to")?,
            max_points: number_param(&map, "max_points")?,
        };
        table_response(Endpoint::Track, state.core.track(&tenant, &req).await?)
    })
    .await
}

fn aggregate_request(
    metric: String,
    params: &[(String, String)],
) -> Result<AggregateRequest, QueryError> {
    let map = single_values(params)?;
    Ok(AggregateRequest {
        metric,
        from: time_param(&map, "from")?,
        to: time_param(&map, "to")?,
        bucket: map.get("bucket").cloned().ok_or_else(|| {
            QueryError::invalid("bucket", "required (5m, hour, day, week or month)")
        })?,
        group_by: map.get("group_by").cloned(),
        filters: filters_of(params)?,
    })
}

/// Times the request and records it under `endpoint`, then answers.
async fn observe(
    endpoint: Endpoint,
    work: impl std::future::Future<Output = Result<Response, QueryError>>,
) -> Response {
    let started = Instant::now();
    let result = work.await;
    let outcome = result.as_ref().map_or_else(QueryError::outcome, |_| "ok");
    metrics::request_finished("http", endpoint, outcome, started.elapsed());
    match result {
        Ok(response) => response,
        Err(err) => {
            tracing::debug!(endpoint = endpoint.label(), error = %err, "request failed");
            err.into_response()
        }
    }
}

fn table_response(endpoint: Endpoint, table: Table) -> Result<Response, QueryError> {
    metrics::rows_returned(endpoint, table.rows.len());
    Ok((StatusCode::OK, Json(table)).into_response())
}

/// The caller's tenant, from the `x-api-key` header.
fn tenant(state: &AppState, headers: &HeaderMap) -> Result<String, QueryError> {
    let key = headers
        .get(API_KEY_HEADER)
        .ok_or(QueryError::MissingApiKey)?
        .to_str()
        .map_err(|_| QueryError::UnknownApiKey)?;
    state
        .keys
        .authenticate(key)
        .map(|p| p.tenant.clone())
        .ok_or(QueryError::UnknownApiKey)
}

/// Parameters that are not reserved are filters; each at most once.
fn filters_of(params: &[(String, String)]) -> Result<Vec<(String, String)>, QueryError> {
    let filters: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .cloned()
        .collect();
    for (i, (name, _)) in filters.iter().enumerate() {
        if filters[..i].iter().any(|(other, _)| other == name) {
            return Err(QueryError::invalid(name, "given more than once"));
        }
    }
    Ok(filters)
}

fn single_values(params: &[(String, String)]) -> Result<BTreeMap<String, String>, QueryError> {
    let mut map = BTreeMap::new();
    for (k, v) in params {
        if RESERVED.contains(&k.as_str()) && map.insert(k.clone(), v.clone()).is_some() {
            return Err(QueryError::invalid(k, "given more than once"));
        }
    }
    Ok(map)
}

fn time_param(map: &BTreeMap<String, String>, name: &'static str) -> Result<i64, QueryError> {
    let text = map
        .get(name)
        .ok_or_else(|| QueryError::invalid(name, "required"))?;
    crate::time::parse(text).map_err(|reason| QueryError::invalid(name, reason))
}

fn number_param(
    map: &BTreeMap<String, String>,
    name: &'static str,
) -> Result<Option<u32>, QueryError> {
    map.get(name)
        .map(|text| {
            text.trim()
                .parse::<u32>()
                .map_err(|_| QueryError::invalid(name, "expected a whole number"))
        })
        .transpose()
}

/// A file name from a metric name (which the core already validated).
fn sanitized(name: &str) -> String {
    name.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}
