//! The one result shape every endpoint returns: named, typed columns and rows
//! of values. Built from ClickHouse's `JSONCompact` output, serialized as
//! JSON for HTTP and converted to the protobuf `Table` for gRPC.

use serde::{Serialize, Serializer};

/// A result table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Value>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ColumnKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnKind {
    String,
    Int,
    Float,
    /// UTC seconds; RFC 3339 in JSON.
    Time,
}

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Time(i64),
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_none(),
            Value::Str(v) => s.serialize_str(v),
            Value::Int(v) => s.serialize_i64(*v),
            Value::Float(v) if v.is_finite() => s.serialize_f64(*v),
            Value::Float(_) => s.serialize_none(),
            Value::Time(v) => s.serialize_str(&crate::time::format(*v)),
        }
    }
}

impl Table {
    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }

    /// Parses ClickHouse's `JSONCompact` output (`meta` + `data`).
    pub fn from_json_compact(body: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Meta {
            name: String,
            #[serde(rename = "type")]
            kind: String,
        }
        #[derive(serde::Deserialize)]
        struct Body {
            meta: Vec<Meta>,
            data: Vec<Vec<serde_json::Value>>,
        }
        let body: Body = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        let columns: Vec<Column> = body
            .meta
            .into_iter()
            .map(|m| Column {
                kind: kind_of(&m.kind),
                name: m.name,
            })
            .collect();
        let rows = body
            .data
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .zip(&columns)
                    .map(|(v, c)| value_of(v, c.kind))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Table { columns, rows })
    }
}

/// Maps a ClickHouse type name to the column kind.
fn kind_of(clickhouse_type: &str) -> ColumnKind {
    let inner = clickhouse_type
        .strip_prefix("Nullable(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(clickhouse_type);
    if inner.starts_with("DateTime") {
        ColumnKind::Time
    } else if inner.starts_with("Int") || inner.starts_with("UInt") {
        ColumnKind::Int
    } else if inner.starts_with("Float") {
        ColumnKind::Float
    } else {
        ColumnKind::String
    }
}

fn value_of(v: serde_json::Value, kind: ColumnKind) -> Result<Value, String> {
    use serde_json::Value as J;
    Ok(match (v, kind) {
        (J::Null, _) => Value::Null,
        (J::Number(n), ColumnKind::Int) => n
            .as_i64()
            .map(Value::Int)
            .or_else(|| n.as_f64().map(Value::Float))
            .unwrap_or(Value::Null),
        // 64-bit integers arrive quoted.
        (J::String(s), ColumnKind::Int) => s
            .parse::<i64>()
            .map(Value::Int)
            .or_else(|_| s.parse::<f64>().map(Value::Float))
            .map_err(|_| format!("not an integer: {s:?}"))?,
        (J::Number(n), ColumnKind::Float) => n.as_f64().map_or(Value::Null, Value::Float),
        (J::String(s), ColumnKind::Float) => s.parse::<f64>().map_or(Value::Null, Value::Float),
        (J::String(s), ColumnKind::Time) => crate::time::parse_clickhouse(&s)
            .map(Value::Time)
            .ok_or_else(|| format!("not a time: {s:?}"))?,
        (J::String(s), _) => Value::Str(s),
        (other, _) => Value::Str(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_clickhouse_json_compact() {
        let body = br#"{"meta":[{"name":"t","type":"DateTime('UTC')"},{"name":"n","type":"UInt64"},
            {"name":"x","type":"Nullable(Float64)"},{"name":"s","type":"String"}],
            "data":[["2024-05-01 00:00:00","18446744073709551615",null,"a'b"],["2024-05-01 01:00:00",3,0.5,""]],
            "rows":2}"#;
        let table = Table::from_json_compact(body).unwrap();
        assert_eq!(table.column("x"), Some(2));
        assert_eq!(table.columns[0].kind, ColumnKind::Time);
        assert_eq!(table.rows[0][0], Value::Time(1_714_521_600));
        assert_eq!(table.rows[0][1], Value::Float(18446744073709551615.0));
        assert_eq!(table.rows[1][1], Value::Int(3));
        assert_eq!(table.rows[0][2], Value::Null);
        let json = serde_json::to_value(&table).unwrap();
        assert_eq!(json["rows"][1][0], "2024-05-01T01:00:00Z");
        assert_eq!(json["columns"][2]["type"], "float");
        assert_eq!(json["rows"][0][3], "a'b");
    }
}
