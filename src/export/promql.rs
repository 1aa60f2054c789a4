//! A loose PromQL reader, enough to list the series names a query reads: dashboards and rule files are
//! checked against the metric catalog with it, so a renamed metric fails a test instead of a panel.

/// Words that are PromQL syntax, not series names.
const KEYWORDS: [&str; 12] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
];

/// Aggregation operators, which may be followed by `by (...)` before their parenthesis.
const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// The series names a query reads (metric names and recording-rule names such as `slo:objective:ratio`),
/// in order of first use. Skips label matchers, string literals, grouping clauses, durations, function
/// names (a word followed by `(`), keywords and Grafana variables (`$target`, `${datasource}`).
pub fn series_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names: Vec<String> = Vec::new();
    let mut i = 0;
    // Inside `{...}` (label matchers) or `[...]` (range, subquery): nothing there is a series name.
    let mut braces = 0usize;
    let mut brackets = 0usize;
    // After `by`/`without`/`on`/`ignoring`/`group_*`, the next parenthesis holds label names.
    let mut label_list_next = false;
    let mut label_list_depth: Option<usize> = None;
    let mut parens = 0usize;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                let quote = c;
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    if chars[i] == '\\' && quote != '`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                continue;
            }
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            '(' => {
                parens += 1;
                if label_list_next {
                    label_list_depth = Some(parens);
                    label_list_next = false;
                }
            }
            ')' => {
                if label_list_depth == Some(parens) {
                    label_list_depth = None;
                }
                parens = parens.saturating_sub(1);
            }
            '$' => {
                // A Grafana variable: `$name` or `${name}`.
                i += 1;
                if chars.get(i) == Some(&'{') {
                    while i < chars.len() && chars[i] != '}' {
                        i += 1;
                    }
                    i += 1;
                } else {
                    while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                        i += 1;
                    }
                }
                continue;
            }
            _ => {}
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) {
            // A number (or a duration such as 5m, or 1e3): skip the whole token.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
            let lower = word.to_ascii_lowercase();
            if braces > 0 || brackets > 0 || label_list_depth.is_some() {
                continue;
            }
            if [
                "by",
                "without",
                "on",
                "ignoring",
                "group_left",
                "group_right",
            ]
            .contains(&lower.as_str())
            {
                label_list_next = next == Some('(');
                continue;
            }
            if KEYWORDS.contains(&lower.as_str())
                || AGGREGATIONS.contains(&lower.as_str())
                || lower == "nan"
                || next == Some('(')
            {
                continue;
            }
            if !names.contains(&word) {
                names.push(word);
            }
            continue;
        }
        i += 1;
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_metric_and_rule_names_only() {
        let expr = r#"histogram_quantile(0.95, sum by (target, le) (rate(health_check_duration_seconds_bucket{source="monitor",target=~"$target"}[$__rate_interval])))"#;
        assert_eq!(series_names(expr), ["health_check_duration_seconds_bucket"]);
        let expr = r#"slo:sli_error:ratio_rate5m{sloth_id="a"} / on(sloth_id, sloth_slo) group_left slo:error_budget:ratio{sloth_id="a"}"#;
        assert_eq!(
            series_names(expr),
            ["slo:sli_error:ratio_rate5m", "slo:error_budget:ratio"]
        );
        assert_eq!(
            series_names("count(target_up == 0) or vector(0)"),
            ["target_up"]
        );
        assert_eq!(
            series_names(
                "max(up{job=\"hale\"}) without (instance) > 1e3 and bool process_open_fds"
            ),
            ["up", "process_open_fds"]
        );
        assert_eq!(
            series_names("sum by (service) (rate(errors_total[5m])) / max without (x) (up)"),
            ["errors_total", "up"]
        );
        assert_eq!(
            series_names("increase(restarts_total[7d] offset 1h) >= 3"),
            ["restarts_total"]
        );
    }
}
