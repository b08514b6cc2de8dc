//! SQL text built only from fixed fragments, with every caller value kept
//! apart as a bound argument (`?`, escaped by the `clickhouse` crate).
//!
//! Nothing a caller sends is ever passed to [`Sql::push`]: that takes
//! `&'static str`, so only literals compiled into this service (and names
//! chosen from the catalogue, which are literals too) reach the text. The
//! database name comes from configuration and is validated at start-up.

/// A value bound to a `?`.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Str(String),
    Int(i64),
    Float(f64),
}

/// A query under construction.
#[derive(Debug, Clone, Default)]
pub struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends fixed SQL text (a literal of this crate; never `?`).
    pub fn push(&mut self, fragment: &'static str) -> &mut Self {
        debug_assert!(!fragment.contains('?'), "placeholders come from arg()");
        self.text.push_str(fragment);
        self
    }

    /// Appends the configured database name and a table name from the
    /// catalogue: `db.table`.
    pub fn table(&mut self, database: &Database, table: &'static str) -> &mut Self {
        self.text.push_str(&database.0);
        self.text.push('.');
        self.text.push_str(table);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn arg(&mut self, value: Arg) -> &mut Self {
        self.text.push('?');
        self.args.push(value);
        self
    }

    pub fn str(&mut self, value: &str) -> &mut Self {
        self.arg(Arg::Str(value.to_string()))
    }

    pub fn int(&mut self, value: i64) -> &mut Self {
        self.arg(Arg::Int(value))
    }

    /// A UTC time bound as Unix seconds.
    pub fn time(&mut self, secs: i64) -> &mut Self {
        self.push("toDateTime(").int(secs).push(", 'UTC')")
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn args(&self) -> &[Arg] {
        &self.args
    }
}

/// A database name that passed validation (letters, digits, `_`).
#[derive(Debug, Clone)]
pub struct Database(String);

impl Database {
    pub fn new(name: &str) -> Result<Self, String> {
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            Ok(Self(name.to_string()))
        } else {
            Err(format!(
                "invalid database name {name:?}: use letters, digits and _ only"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_never_enter_the_text() {
        let db = Database::new("citybrain").unwrap();
        let mut sql = Sql::new();
        sql.push("SELECT 1 FROM ")
            .table(&db, "bin_latest")
            .push(" WHERE village = ")
            .str("' OR 1=1 --")
            .push(" AND observed_at >= ")
            .time(1_714_521_600);
        assert_eq!(
            sql.text(),
            "SELECT 1 FROM citybrain.bin_latest WHERE village = ? AND observed_at >= toDateTime(?, 'UTC')"
        );
        assert_eq!(sql.args()[0], Arg::Str("' OR 1=1 --".into()));
        assert!(Database::new("a; DROP TABLE x").is_err());
        assert!(Database::new("1db").is_err());
    }
}
