//! Grafana's ClickHouse macros, expanded the way the plugin does, so that
//! dashboard SQL can be run outside Grafana (the dashboards test on 18.16,
//! the current-ClickHouse test on chdb).

use std::collections::BTreeMap;

/// The values picked for a dashboard's variables: `None` means "All".
pub type Choices = BTreeMap<String, Option<Vec<String>>>;

/// The dashboard's time range, Unix seconds.
pub struct TimeRange {
    pub from: u64,
    pub to: u64,
}

pub fn expand(sql: &str, choices: &Choices, range: &TimeRange) -> String {
    let mut text = expand_conditional_all(sql, choices);
    for (name, value) in choices {
        let values = value.clone().unwrap_or_default();
        let quoted = values
            .iter()
            .map(|v| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
            .collect::<Vec<_>>()
            .join(",");
        text = text.replace(&format!("${{{name}:singlequote}}"), &quoted);
        text = text.replace(&format!("${{{name}}}"), &values.join(","));
        text = replace_bare_variable(&text, name, &values.join(","));
    }
    text = replace_calls(&text, "$__timeFilter(", |column| {
        format!(
            "({column} >= toDateTime({}) AND {column} <= toDateTime({}))",
            range.from, range.to
        )
    });
    text.replace("$__fromTime", &format!("toDateTime({})", range.from))
        .replace("$__toTime", &format!("toDateTime({})", range.to))
        .replace("$__interval_s", "300")
}

/// `$__conditionalAll(condition, $var)`: the condition, or `1=1` when the
/// variable is set to All.
fn expand_conditional_all(sql: &str, choices: &Choices) -> String {
    replace_calls(sql, "$__conditionalAll(", |args| {
        let split = args.rfind(',').expect("two arguments");
        let (condition, variable) = (&args[..split], args[split + 1..].trim());
        let name = variable
            .trim_start_matches('$')
            .trim_matches(|c| c == '{' || c == '}');
        match choices.get(name) {
            Some(Some(_)) => condition.trim().to_string(),
            _ => "1=1".to_string(),
        }
    })
}

fn replace_bare_variable(text: &str, name: &str, value: &str) -> String {
    let needle = format!("${name}");
    let mut out = String::new();
    let mut rest = text;
    while let Some(pos) = rest.find(&needle) {
        let after = &rest[pos + needle.len()..];
        out.push_str(&rest[..pos]);
        if after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            out.push_str(&needle);
        } else {
            out.push_str(value);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Replaces `prefix(args)` calls, with balanced parentheses, by `f(args)`.
fn replace_calls(text: &str, prefix: &str, f: impl Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(prefix) {
        out.push_str(&rest[..start]);
        let after = &rest[start + prefix.len()..];
        let mut depth = 1;
        let mut end = 0;
        for (i, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i;
                        break;
                    }
                }
                _ => {}
            }
        }
        assert_eq!(depth, 0, "unbalanced {prefix}");
        out.push_str(&f(&after[..end]));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn macros_expand_like_the_plugin() {
    let choices: Choices = BTreeMap::from([
        ("tenant".to_string(), Some(vec!["lucheng".to_string()])),
        ("site".to_string(), None),
        (
            "village".to_string(),
            Some(vec!["武疃村".to_string(), "O'Brien".to_string()]),
        ),
    ]);
    let range = TimeRange { from: 10, to: 20 };
    assert_eq!(
        expand(
            "WHERE tenant_id = '${tenant}' AND $__timeFilter(bucket) AND $__conditionalAll(site IN (${site:singlequote}), $site) AND $__conditionalAll(village IN (${village:singlequote}), $village)",
            &choices,
            &range
        ),
        "WHERE tenant_id = 'lucheng' AND (bucket >= toDateTime(10) AND bucket <= toDateTime(20)) AND 1=1 AND village IN ('武疃村','O\\'Brien')"
    );
}
