//! The query core both APIs call: validates a request against the catalogue
//! and the limits, builds its SQL (tenant always bound) and runs it.

use crate::{
    catalog::{self, Bucket, Scope, Shape},
    config::Limits,
    error::QueryError,
    live::{self, FilterKind, FilterValue},
    sql::{Database, Sql},
    store::Store,
    table::Table,
};
use axum::body::Bytes;
use futures::Stream;

/// Longest filter value accepted (characters).
const MAX_VALUE_CHARS: usize = 256;
/// Track points when the caller names no budget.
const DEFAULT_TRACK_POINTS: u32 = 1_000;
/// Top-N rows when the caller names no n.
const DEFAULT_TOP_N: u32 = 10;

#[derive(Debug, Clone, Default)]
pub struct LiveRequest {
    pub view: String,
    pub filters: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct AggregateRequest {
    pub metric: String,
    pub from: i64,
    pub to: i64,
    pub bucket: String,
    /// None or "" for the metric's default; "none" for no dimensions.
    pub group_by: Option<String>,
    pub filters: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct TopRequest {
    pub metric: String,
    pub from: i64,
    pub to: i64,
    pub group_by: Option<String>,
    pub order_by: Option<String>,
    pub n: Option<u32>,
    pub filters: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default)]
pub struct TrackRequest {
    pub vehicle_id: String,
    pub from: i64,
    pub to: i64,
    pub max_points: Option<u32>,
}

#[derive(Clone)]
pub struct QueryCore {
    store: Store,
    database: Database,
    limits: Limits,
}

impl QueryCore {
    pub fn new(store: Store, database: Database, limits: Limits) -> Self {
        Self {
            store,
            database,
            limits,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub async fn live(&self, tenant: &str, req: &LiveRequest) -> Result<Table, QueryError> {
        let view = live::view(&req.view).ok_or_else(|| {
            QueryError::invalid(
                "view",
                format!(
                    "unknown view {:?}; choose from {}",
                    req.view,
                    live::view_names()
                ),
            )
        })?;
        let mut filters = Vec::new();
        for (name, value) in &req.filters {
            let filter = view.filter(name).ok_or_else(|| {
                QueryError::invalid(
                    name,
                    format!(
                        "unknown filter for {}; it filters by {}",
                        view.name,
                        view.filter_names()
                    ),
                )
            })?;
            let value = match filter.kind {
                FilterKind::Equals => FilterValue::Text(check_value(name, value)?),
                FilterKind::AtLeast => FilterValue::Number(
                    value
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite())
                        .ok_or_else(|| QueryError::invalid(name, "expected a number"))?,
                ),
            };
            filters.push((filter, value));
        }
        let sql = live::live_sql(view, &self.database, tenant, &filters, self.row_probe());
        self.rows_within_limit(&sql).await
    }

    pub async fn aggregate(
        &self,
        tenant: &str,
        req: &AggregateRequest,
    ) -> Result<Table, QueryError> {
        let (sql, _) = self.aggregate_sql(tenant, req, self.row_probe())?;
        self.rows_within_limit(&sql).await
    }

    /// The aggregate as CSV with a header row, streamed.
    pub async fn export(
        &self,
        tenant: &str,
        req: &AggregateRequest,
    ) -> Result<impl Stream<Item = Result<Bytes, QueryError>> + Send + use<>, QueryError> {
        let max = self.limits.max_export_rows;
        let (sql, _) = self.aggregate_sql(tenant, req, max as i64 + 1)?;
        self.store.csv(&sql, max).await
    }

    fn aggregate_sql(
        &self,
        tenant: &str,
        req: &AggregateRequest,
        limit: i64,
    ) -> Result<(Sql, Bucket), QueryError> {
        let metric = metric(&req.metric)?;
        let bucket = Bucket::parse(&req.bucket).ok_or_else(|| {
            QueryError::invalid(
                "bucket",
                format!(
                    "unknown bucket {:?}; choose from {}",
                    req.bucket,
                    Bucket::NAMES
                ),
            )
        })?;
        let (from, to) = self.range(req.from, req.to, Some(bucket))?;
        let shape = Shape {
            metric,
            group_by: group_by(metric, req.group_by.as_deref())?,
            filters: filters(metric, &req.filters)?,
            order_by: None,
            limit,
        };
        let scope = Scope {
            database: &self.database,
            tenant,
            from,
            to,
            bucket: Some(bucket),
        };
        Ok((catalog::aggregate_sql(&shape, &scope), bucket))
    }

    pub async fn top(&self, tenant: &str, req: &TopRequest) -> Result<Table, QueryError> {
        let metric = metric(&req.metric)?;
        let (from, to) = self.range(req.from, req.to, None)?;
        let order_name = req
            .order_by
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or(metric.default_order_by);
        let order_by = metric.measure(order_name).ok_or_else(|| {
            QueryError::invalid(
                "order_by",
                format!(
                    "unknown measure {order_name:?}; choose from {}",
                    metric.measure_names()
                ),
            )
        })?;
        let n = req
            .n
            .filter(|n| *n > 0)
            .unwrap_or(DEFAULT_TOP_N.min(self.limits.max_top_n));
        if n > self.limits.max_top_n {
            return Err(QueryError::Limit {
                limit: "CITYBRAIN_QUERY_MAX_TOP_N",
                message: format!(
                    "n is {n}; at most {} rows can be ranked",
                    self.limits.max_top_n
                ),
            });
        }
        let group_by = group_by(metric, req.group_by.as_deref())?;
        if group_by.is_empty() {
            return Err(QueryError::invalid(
                "group_by",
                "top-N needs at least one dimension",
            ));
        }
        let shape = Shape {
            metric,
            group_by,
            filters: filters(metric, &req.filters)?,
            order_by: Some(order_by),
            limit: i64::from(n),
        };
        let scope = Scope {
            database: &self.database,
            tenant,
            from,
            to,
            bucket: None,
        };
        self.store
            .table(&catalog::aggregate_sql(&shape, &scope))
            .await
    }

    pub async fn track(&self, tenant: &str, req: &TrackRequest) -> Result<Table, QueryError> {
        let vehicle = check_value("vehicle_id", &req.vehicle_id)?;
        if req.to <= req.from {
            return Err(QueryError::invalid("to", "must be after from"));
        }
        let max_days = self.limits.max_track_days;
        if req.to - req.from > max_days as i64 * 86_400 {
            return Err(QueryError::Limit {
                limit: "CITYBRAIN_QUERY_MAX_TRACK_DAYS",
                message: format!("a track may span at most {max_days} days"),
            });
        }
        let budget = req
            .max_points
            .filter(|p| *p > 0)
            .unwrap_or(DEFAULT_TRACK_POINTS.min(self.limits.max_track_points));
        if budget > self.limits.max_track_points {
            return Err(QueryError::Limit {
                limit: "CITYBRAIN_QUERY_MAX_TRACK_POINTS",
                message: format!(
                    "max_points is {budget}; at most {} points can be returned",
                    self.limits.max_track_points
                ),
            });
        }
        if budget < 3 {
            return Err(QueryError::invalid(
                "max_points",
                "at least 3 (first, middle, last)",
            ));
        }
        let budget = i64::from(budget);
        // Keep the first point, every k-th after it and the last: with
        // k = ceil((n - 1) / (budget - 2)) that is at most `budget` points.
        // Array functions keep the order on every server version, where a
        // row number over a sorted subquery would depend on the pipeline.
        let mut sql = Sql::new();
        sql.push(
            "SELECT toDateTime(p.2, 'UTC') AS observed_at, p.3 AS latitude, p.4 AS longitude, \
             p.5 AS speed_kmh, p.6 AS route_id, p.7 AS trip_id FROM (SELECT \
             arraySort(x -> x.1, groupArray((toUInt64(observed_at) * 1000 + observed_ms, observed_at, \
             ifNull(latitude, 0), ifNull(longitude, 0), speed_kmh, route_id, trip_id))) AS pts, \
             if(length(pts) <= ",
        )
        .int(budget)
        .push(", 1, intDiv(length(pts) - 1 + ")
        .int(budget - 3)
        .push(", ")
        .int(budget - 2)
        .push(
            ")) AS k, arrayFilter((x, i) -> (i - 1) % k = 0 OR i = length(pts), pts, arrayEnumerate(pts)) AS kept FROM ",
        )
        .table(&self.database, "raw_vehicle_position")
        .push(" FINAL WHERE tenant_id = ")
        .str(tenant)
        .push(" AND vehicle_id = ")
        .str(vehicle)
        .push(" AND observed_at >= ")
        .time(req.from)
        .push(" AND observed_at < ")
        .time(req.to)
        .push(") ARRAY JOIN kept AS p");
        self.store.table(&sql).await
    }

    /// Checks the range against the limits and widens it to whole
    /// source buckets (5 minutes for 5m buckets, else hours).
    fn range(&self, from: i64, to: i64, bucket: Option<Bucket>) -> Result<(i64, i64), QueryError> {
        if to <= from {
            return Err(QueryError::invalid("to", "must be after from"));
        }
        let step = bucket.map_or(3_600, Bucket::source_step);
        let from = from.div_euclid(step) * step;
        let to = (to + step - 1).div_euclid(step) * step;
        let r = &self.limits.max_range_days;
        let (days, limit, what) = match bucket {
            Some(Bucket::FiveMinutes) => (
                r.five_minutes,
                "CITYBRAIN_QUERY_MAX_RANGE_5M_DAYS",
                "5m buckets",
            ),
            Some(Bucket::Hour) => (
                r.hour,
                "CITYBRAIN_QUERY_MAX_RANGE_HOUR_DAYS",
                "hour buckets",
            ),
            Some(Bucket::Day) => (r.day, "CITYBRAIN_QUERY_MAX_RANGE_DAY_DAYS", "day buckets"),
            Some(Bucket::Week) => (
                r.week,
                "CITYBRAIN_QUERY_MAX_RANGE_WEEK_DAYS",
                "week buckets",
            ),
            Some(Bucket::Month) | None => (
                r.month,
                "CITYBRAIN_QUERY_MAX_RANGE_MONTH_DAYS",
                "month buckets and top-N",
            ),
        };
        if to - from > days as i64 * 86_400 {
            return Err(QueryError::Limit {
                limit,
                message: format!(
                    "the range spans {:.1} days; {what} allow at most {days} days",
                    (to - from) as f64 / 86_400.0
                ),
            });
        }
        if let Some(bucket) = bucket {
            let buckets = (to - from + bucket.nominal_secs() - 1) / bucket.nominal_secs();
            if buckets as u64 > self.limits.max_buckets {
                return Err(QueryError::Limit {
                    limit: "CITYBRAIN_QUERY_MAX_BUCKETS",
                    message: format!(
                        "the range holds {buckets} {} buckets; at most {} are allowed",
                        bucket.name(),
                        self.limits.max_buckets
                    ),
                });
            }
        }
        Ok((from, to))
    }

    /// One row more than allowed, to tell "exactly the limit" from "over".
    fn row_probe(&self) -> i64 {
        self.limits.max_rows as i64 + 1
    }

    async fn rows_within_limit(&self, sql: &Sql) -> Result<Table, QueryError> {
        let table = self.store.table(sql).await?;
        if table.rows.len() > self.limits.max_rows {
            return Err(QueryError::Limit {
                limit: "CITYBRAIN_QUERY_MAX_ROWS",
                message: format!(
                    "the answer has more than {} rows; narrow the range, the filters or group_by, or export CSV",
                    self.limits.max_rows
                ),
            });
        }
        Ok(table)
    }
}

fn metric(name: &str) -> Result<&'static catalog::Metric, QueryError> {
    catalog::metric(name).ok_or_else(|| {
        QueryError::invalid(
            "metric",
            format!(
                "unknown metric {name:?}; choose from {}",
                catalog::metric_names()
            ),
        )
    })
}

fn group_by(
    metric: &'static catalog::Metric,
    spec: Option<&str>,
) -> Result<Vec<&'static catalog::Dim>, QueryError> {
    let spec = spec.map(str::trim).unwrap_or("");
    if spec.is_empty() {
        return Ok(metric
            .default_group_by
            .iter()
            .filter_map(|name| metric.dimension(name))
            .collect());
    }
    if spec == "none" {
        return Ok(Vec::new());
    }
    let mut dims: Vec<&'static catalog::Dim> = Vec::new();
    for name in spec.split(',').map(str::trim) {
        let dim = metric.dimension(name).ok_or_else(|| {
            QueryError::invalid(
                "group_by",
                format!(
                    "unknown dimension {name:?} for {}; choose from {} (or none)",
                    metric.name,
                    metric.dimension_names()
                ),
            )
        })?;
        if dims.iter().any(|d| d.name == dim.name) {
            return Err(QueryError::invalid(
                "group_by",
                format!("{name} is listed twice"),
            ));
        }
        dims.push(dim);
    }
    Ok(dims)
}

fn filters<'a>(
    metric: &'static catalog::Metric,
    given: &'a [(String, String)],
) -> Result<Vec<(&'static catalog::Dim, &'a str)>, QueryError> {
    given
        .iter()
        .map(|(name, value)| {
            let dim = metric.dimension(name).ok_or_else(|| {
                QueryError::invalid(
                    name,
                    format!(
                        "unknown filter for {}; it filters by {}",
                        metric.name,
                        metric.dimension_names()
                    ),
                )
            })?;
            Ok((dim, check_value(name, value)?))
        })
        .collect()
}

/// A filter value: any text (Unicode included) up to a length, without
/// control characters. Quotes and backslashes are fine: values are bound.
fn check_value<'a>(field: &str, value: &'a str) -> Result<&'a str, QueryError> {
    if value.is_empty() {
        return Err(QueryError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > MAX_VALUE_CHARS {
        return Err(QueryError::invalid(
            field,
            format!("longer than {MAX_VALUE_CHARS} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(QueryError::invalid(field, "contains control characters"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_checked_not_escaped_by_hand() {
        assert_eq!(
            check_value("site", "北门 ' OR 1=1 --").unwrap(),
            "北门 ' OR 1=1 --"
        );
        assert!(check_value("site", "a\0b").is_err());
        assert!(check_value("site", "").is_err());
        assert!(check_value("site", &"x".repeat(300)).is_err());
    }

    #[test]
    fn group_by_accepts_only_catalogue_names() {
        let m = catalog::metric("charging_energy").unwrap();
        assert_eq!(group_by(m, None).unwrap().len(), 1);
        assert!(group_by(m, Some("none")).unwrap().is_empty());
        assert_eq!(group_by(m, Some("site, connector")).unwrap().len(), 2);
        assert!(group_by(m, Some("site; DROP TABLE x")).is_err());
        assert!(group_by(m, Some("site,site")).is_err());
    }
}
