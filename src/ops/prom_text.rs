//! A small, strict reader of the Prometheus text exposition format (version 0.0.4), so `hale verify` can check
//! a `/metrics` answer without `promtool`: line syntax, metric and label names, escapes, values, one `# TYPE`
//! per family before its samples, families not split, no duplicate series, non-negative counters, and each
//! histogram's buckets (an `le` label, counts rising with `le`, a `+Inf` bucket equal to `_count`). It checks
//! what a scraper would reject; it does not lint names and help texts as `promtool check metrics` does.

use std::collections::{BTreeMap, HashMap, HashSet};

/// A family's declared type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

impl MetricType {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "counter" => Some(Self::Counter),
            "gauge" => Some(Self::Gauge),
            "histogram" => Some(Self::Histogram),
            "summary" => Some(Self::Summary),
            "untyped" => Some(Self::Untyped),
            _ => None,
        }
    }
}

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A whole exposition, read and checked.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    /// Every family with a `# TYPE` line, and its type.
    pub types: BTreeMap<String, MetricType>,
    pub samples: Vec<Sample>,
}

/// What is wrong, and on which line (1-based; 0 for a problem of the whole text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl Exposition {
    /// The value of the sample with this name and exactly these labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| {
                s.name == name
                    && s.labels.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
    }

    /// The sum of the samples with this name whose labels include these (the other labels are summed
    /// over); `None` when no sample matches.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.value)
            .reduce(|a, b| a + b)
    }

    /// True when the family is declared or has a sample.
    pub fn has_family(&self, name: &str) -> bool {
        self.types.contains_key(name) || self.samples.iter().any(|s| s.name == name)
    }
}

/// Reads and checks a text exposition.
pub fn parse(text: &str) -> Result<Exposition, ParseError> {
    let mut exposition = Exposition::default();
    let mut helps: HashSet<String> = HashSet::new();
    // Families whose samples have ended (another family's line came after them).
    let mut closed: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut seen: HashSet<(String, BTreeMap<String, String>)> = HashSet::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let error = |message: String| ParseError {
            line: number,
            message,
        };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            let keyword = words.next().unwrap_or_default();
            if keyword != "HELP" && keyword != "TYPE" {
                continue;
            }
            let name = words.next().unwrap_or_default();
            if !is_metric_name(name) {
                return Err(error(format!(
                    "{keyword} names {name:?}, not a metric name"
                )));
            }
            if closed.contains(name) {
                return Err(error(format!(
                    "{keyword} for {name} after its samples ended: a family's lines must stay together"
                )));
            }
            if keyword == "HELP" {
                if !helps.insert(name.to_owned()) {
                    return Err(error(format!("a second HELP for {name}")));
                }
            } else {
                let raw = words.next().unwrap_or_default().trim();
                let kind = MetricType::parse(raw).ok_or_else(|| {
                    error(format!("TYPE of {name} is {raw:?}, not a metric type"))
                })?;
                if exposition
                    .samples
                    .iter()
                    .any(|s| family_of(&s.name, &exposition.types) == name)
                {
                    return Err(error(format!("TYPE for {name} after its first sample")));
                }
                if exposition.types.insert(name.to_owned(), kind).is_some() {
                    return Err(error(format!("a second TYPE for {name}")));
                }
            }
            switch_family(&mut current, &mut closed, name);
            continue;
        }
        let sample = parse_sample(line).map_err(error)?;
        let family = family_of(&sample.name, &exposition.types).to_owned();
        if closed.contains(&family) {
            return Err(error(format!(
                "a sample of {family} after its family ended: a family's lines must stay together"
            )));
        }
        switch_family(&mut current, &mut closed, &family);
        let kind = exposition
            .types
            .get(&family)
            .copied()
            .unwrap_or(MetricType::Untyped);
        check_sample_kind(&sample, &family, kind).map_err(error)?;
        if !seen.insert((sample.name.clone(), sample.labels.clone())) {
            return Err(error(format!(
                "the series {} appears twice",
                describe(&sample)
            )));
        }
        first_line.entry(family).or_insert(number);
        exposition.samples.push(sample);
    }
    check_histograms(&exposition, &first_line)?;
    Ok(exposition)
}

fn switch_family(current: &mut Option<String>, closed: &mut HashSet<String>, name: &str) {
    if current.as_deref() != Some(name) {
        if let Some(previous) = current.take() {
            closed.insert(previous);
        }
        *current = Some(name.to_owned());
    }
}

/// The family a sample belongs to: a histogram's or summary's `_bucket`, `_sum` and `_count` series belong to
/// the declared base name.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, MetricType>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if matches!(
                types.get(base),
                Some(MetricType::Histogram | MetricType::Summary)
            ) {
                return base;
            }
        }
    }
    name
}

fn check_sample_kind(sample: &Sample, family: &str, kind: MetricType) -> Result<(), String> {
    match kind {
        MetricType::Counter if sample.value < 0.0 || sample.value.is_nan() => Err(format!(
            "counter {} has the value {}, below zero",
            describe(sample),
            sample.value
        )),
        MetricType::Histogram if sample.name == family => Err(format!(
            "histogram {family} has a sample without _bucket, _sum or _count"
        )),
        MetricType::Histogram if sample.name.ends_with("_bucket") => {
            match sample.labels.get("le") {
                Some(le) if parse_value(le).is_some() => Ok(()),
                Some(le) => Err(format!("{} has le={le:?}, not a number", describe(sample))),
                None => Err(format!("{} has no le label", describe(sample))),
            }
        }
        _ => Ok(()),
    }
}

/// Each histogram series: buckets rise with `le`, and the `+Inf` bucket equals `_count`.
fn check_histograms(
    exposition: &Exposition,
    first_line: &HashMap<String, usize>,
) -> Result<(), ParseError> {
    for (family, kind) in &exposition.types {
        if *kind != MetricType::Histogram {
            continue;
        }
        let error = |message: String| ParseError {
            line: first_line.get(family).copied().unwrap_or(0),
            message,
        };
        let bucket_name = format!("{family}_bucket");
        let count_name = format!("{family}_count");
        // Series key: the labels without `le`.
        let mut buckets: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for sample in exposition.samples.iter().filter(|s| s.name == bucket_name) {
            let mut key = sample.labels.clone();
            let le = key
                .remove("le")
                .and_then(|le| parse_value(&le))
                .unwrap_or(f64::NAN);
            buckets.entry(key).or_default().push((le, sample.value));
        }
        for (key, mut series) in buckets {
            series.sort_by(|a, b| a.0.total_cmp(&b.0));
            if series.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(error(format!(
                    "histogram {family}{} has bucket counts that fall as le rises",
                    labels_text(&key)
                )));
            }
            let Some(&(le, inf)) = series.last().filter(|(le, _)| le.is_infinite()) else {
                return Err(error(format!(
                    "histogram {family}{} has no le=\"+Inf\" bucket",
                    labels_text(&key)
                )));
            };
            debug_assert!(le.is_infinite());
            let count = exposition
                .samples
                .iter()
                .find(|s| s.name == count_name && s.labels == key)
                .map(|s| s.value);
            if count != Some(inf) {
                return Err(error(format!(
                    "histogram {family}{}: the +Inf bucket ({inf}) is not equal to _count ({})",
                    labels_text(&key),
                    count.map_or("missing".to_owned(), |c| c.to_string())
                )));
            }
        }
    }
    Ok(())
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("{name:?} is not a metric name"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner).map_err(|e| format!("{name}: {e}"))?;
        labels = parsed;
        rest = after;
    }
    let mut fields = rest.split_whitespace();
    let raw_value = fields
        .next()
        .ok_or_else(|| format!("{name} has no value"))?;
    let value = parse_value(raw_value)
        .ok_or_else(|| format!("{name} has the value {raw_value:?}, not a number"))?;
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("{name} has the timestamp {timestamp:?}, not an integer"))?;
    }
    if let Some(extra) = fields.next() {
        return Err(format!(
            "{name} has unexpected text {extra:?} after its value"
        ));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Reads `name="value",...}` and returns the labels and the text after the closing brace.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while chars.peek().is_some_and(|(_, c)| *c == ' ') {
            chars.next();
        }
        match chars.peek() {
            Some((i, '}')) => return Ok((labels, &text[i + 1..])),
            None => return Err("the label set has no closing brace".to_owned()),
            _ => {}
        }
        let mut key = String::new();
        for (_, c) in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        let key = key.trim().to_owned();
        if !is_label_name(&key) {
            return Err(format!("{key:?} is not a label name"));
        }
        if chars.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("the value of label {key} is not quoted"));
        }
        let mut value = String::new();
        loop {
            match chars.next().map(|(_, c)| c) {
                Some('\\') => match chars.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    other => {
                        return Err(format!(
                            "label {key} has the escape \\{}, not \\n, \\\\ or \\\"",
                            other.map(String::from).unwrap_or_default()
                        ))
                    }
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => return Err(format!("the value of label {key} is not closed")),
            }
        }
        if labels.insert(key.clone(), value).is_some() {
            return Err(format!("label {key} appears twice"));
        }
        match chars.peek().map(|(_, c)| *c) {
            Some(',') => {
                chars.next();
            }
            Some('}') => {}
            _ => return Err(format!("label {key} is followed by neither , nor }}")),
        }
    }
}

fn parse_value(raw: &str) -> Option<f64> {
    match raw {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(","))
}

fn describe(sample: &Sample) -> String {
    format!("{}{}", sample.name, labels_text(&sample.labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "# HELP up 1 when up.\n# TYPE up gauge\nup{service=\"a\",path=\"x\\\"y\\\\z\\n\"} 1\n\
        # TYPE req_seconds histogram\nreq_seconds_bucket{le=\"0.1\"} 2\nreq_seconds_bucket{le=\"+Inf\"} 3\n\
        req_seconds_sum 0.4\nreq_seconds_count 3\n# TYPE hits_total counter\nhits_total 7 1700000000000\n";

    #[test]
    fn a_valid_exposition_is_read_with_its_values() {
        let exposition = parse(GOOD).unwrap();
        assert_eq!(
            exposition.value("up", &[("service", "a"), ("path", "x\"y\\z\n")]),
            Some(1.0)
        );
        assert_eq!(exposition.value("hits_total", &[]), Some(7.0));
        assert_eq!(exposition.types["req_seconds"], MetricType::Histogram);
        assert!(exposition.has_family("req_seconds"));
        assert!(!exposition.has_family("missing"));
    }

    #[test]
    fn a_sum_adds_the_series_whose_labels_include_the_given_ones() {
        let exposition =
            parse("x{a=\"1\",b=\"p\"} 2\nx{a=\"1\",b=\"q\"} 3\nx{a=\"2\",b=\"p\"} 5\n").unwrap();
        assert_eq!(exposition.sum("x", &[("a", "1")]), Some(5.0));
        assert_eq!(exposition.sum("x", &[]), Some(10.0));
        assert_eq!(exposition.sum("x", &[("a", "3")]), None);
        assert_eq!(exposition.sum("y", &[]), None);
    }

    fn error_of(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn broken_expositions_are_refused_with_the_line_and_reason() {
        assert_eq!(
            error_of("# TYPE broken counter\nbroken{a=\"1\"} one\n"),
            "line 2: broken has the value \"one\", not a number"
        );
        assert_eq!(
            error_of("up{a=\"1\" 1\n"),
            "line 1: up: label a is followed by neither , nor }"
        );
        assert_eq!(
            error_of("up{a=1} 1\n"),
            "line 1: up: the value of label a is not quoted"
        );
        assert_eq!(error_of("9up 1\n"), "line 1: \"9up\" is not a metric name");
        assert_eq!(
            error_of("# TYPE x counter\nx -1\n"),
            "line 2: counter x has the value -1, below zero"
        );
        assert_eq!(
            error_of("x 1\ny 1\nx{a=\"b\"} 2\n"),
            "line 3: a sample of x after its family ended: a family's lines must stay together"
        );
        assert_eq!(error_of("x 1\nx 2\n"), "line 2: the series x appears twice");
        assert_eq!(
            error_of("# TYPE x gauge\n# TYPE x gauge\n"),
            "line 2: a second TYPE for x"
        );
        assert_eq!(
            error_of("# TYPE x histogram\nx_bucket{le=\"1\"} 2\nx_sum 1\nx_count 2\n"),
            "line 2: histogram x has no le=\"+Inf\" bucket"
        );
        assert_eq!(
            error_of(
                "# TYPE x histogram\nx_bucket{le=\"1\"} 2\nx_bucket{le=\"+Inf\"} 1\nx_sum 1\nx_count 1\n"
            ),
            "line 2: histogram x has bucket counts that fall as le rises"
        );
        assert_eq!(
            error_of("# TYPE x histogram\nx_bucket{le=\"+Inf\"} 3\nx_sum 1\nx_count 2\n"),
            "line 2: histogram x: the +Inf bucket (3) is not equal to _count (2)"
        );
    }

    #[test]
    fn hales_own_metrics_are_accepted() {
        let metrics = crate::metrics::ServiceMetrics::new(crate::kind::ServiceKind::BossApi);
        metrics.request_finished("GET", "/health", 200, std::time::Duration::from_millis(3));
        let text = metrics.render().unwrap();
        let exposition = parse(&text).unwrap();
        assert_eq!(
            exposition.value("service_up", &[("service", "boss-api")]),
            Some(1.0)
        );
    }
}
