//! Templates in workflow steps: `{{inputs.NAME}}` and `{{steps.ID.output...}}` in paths, bodies, argv,
//! targets and messages. A template is parsed once when the definition loads, its references are checked
//! against the declared inputs and the earlier steps, and rendering (pure) fills them from given values.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// What a `{{...}}` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// `{{inputs.NAME}}`: a run's input.
    Input(String),
    /// `{{steps.ID.output}}` or `{{steps.ID.output.a.0.b}}`: an earlier step's output, or a value inside it
    /// (object keys and array indexes, one per segment, like a JSON pointer written with dots).
    StepOutput { step: String, path: Vec<String> },
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Input(name) => write!(f, "inputs.{name}"),
            Self::StepOutput { step, path } => {
                write!(f, "steps.{step}.output")?;
                for segment in path {
                    write!(f, ".{segment}")?;
                }
                Ok(())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Ref(Reference),
}

/// A string with references, parsed. Text outside `{{ }}` is kept as written; there is no escape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

/// What a template may name where it stands: the workflow's declared inputs, and its steps in order with
/// the index of the step the template belongs to (only steps before it have an output yet).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    pub inputs: &'a [&'a str],
    pub steps: &'a [&'a str],
    pub current: usize,
}

/// The values a run renders with: its inputs and the outputs of the steps that finished.
#[derive(Debug, Clone, Copy)]
pub struct Values<'a> {
    pub inputs: &'a serde_json::Map<String, Value>,
    pub outputs: &'a BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{{{{{0}}}}} has no value in this run")]
    Missing(Reference),
}

impl Template {
    /// Parses `source`; an unclosed `{{` or a reference of another form is refused with the reason.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(format!("{source:?}: a {{{{ is never closed by }}}}"));
            };
            parts.push(Part::Ref(parse_reference(after[..close].trim())?));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self {
            source: source.to_owned(),
            parts,
        })
    }

    /// The text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The text when it holds no reference: it renders to itself.
    pub fn literal(&self) -> Option<&str> {
        self.references()
            .next()
            .is_none()
            .then_some(self.source.as_str())
    }

    pub fn references(&self) -> impl Iterator<Item = &Reference> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref(r) => Some(r),
            Part::Text(_) => None,
        })
    }

    /// Refuses a reference to an undeclared input, or to a step that is unknown, this one or a later one.
    pub fn check(&self, scope: Scope<'_>) -> Result<(), String> {
        self.references()
            .try_for_each(|r| check_reference(r, scope))
    }

    /// The text with every reference replaced by its value: a string as it is, anything else as JSON.
    pub fn render(&self, values: Values<'_>) -> Result<String, RenderError> {
        let mut out = String::with_capacity(self.source.len());
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Ref(r) => match lookup(r, values)? {
                    Value::String(s) => out.push_str(s),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        Ok(out)
    }

    /// The value itself when the whole template is one reference (so a number stays a number in a JSON
    /// body); otherwise the rendered text.
    fn render_value(&self, values: Values<'_>) -> Result<Value, RenderError> {
        match self.parts.as_slice() {
            [Part::Ref(r)] => lookup(r, values).cloned(),
            _ => self.render(values).map(Value::String),
        }
    }
}

fn parse_reference(inner: &str) -> Result<Reference, String> {
    let segments: Vec<&str> = inner.split('.').collect();
    let bad = |why: &str| {
        Err(format!(
            "{{{{{inner}}}}}: {why}; a reference is {{{{inputs.NAME}}}} or {{{{steps.ID.output}}}} (then .key or .index to reach inside)"
        ))
    };
    if segments.iter().any(|s| s.is_empty()) {
        return bad("an empty name");
    }
    match segments.as_slice() {
        ["inputs", name] => Ok(Reference::Input((*name).to_owned())),
        ["inputs", ..] => bad("an input is one name"),
        ["steps", step, "output", path @ ..] => Ok(Reference::StepOutput {
            step: (*step).to_owned(),
            path: path.iter().map(|s| (*s).to_owned()).collect(),
        }),
        ["steps", ..] => bad("a step is read through its output"),
        _ => bad("unknown reference"),
    }
}

fn check_reference(reference: &Reference, scope: Scope<'_>) -> Result<(), String> {
    match reference {
        Reference::Input(name) if scope.inputs.contains(&name.as_str()) => Ok(()),
        Reference::Input(name) => Err(format!(
            "{{{{{reference}}}}} names the input {name:?}, which the workflow does not declare (inputs: {})",
            list(scope.inputs)
        )),
        Reference::StepOutput { step, .. } => {
            match scope.steps.iter().position(|s| s == step) {
                Some(i) if i < scope.current => Ok(()),
                Some(i) if i == scope.current => Err(format!(
                    "{{{{{reference}}}}} names this step's own output; only an earlier step's output exists here"
                )),
                Some(_) => Err(format!(
                    "{{{{{reference}}}}} names the step {step:?}, which runs later; only an earlier step's output exists here"
                )),
                None => Err(format!(
                    "{{{{{reference}}}}} names the step {step:?}, which the workflow does not have"
                )),
            }
        }
    }
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

fn lookup<'v>(reference: &Reference, values: Values<'v>) -> Result<&'v Value, RenderError> {
    let missing = || RenderError::Missing(reference.clone());
    match reference {
        Reference::Input(name) => values.inputs.get(name).ok_or_else(missing),
        Reference::StepOutput { step, path } => {
            let mut value = values.outputs.get(step).ok_or_else(missing)?;
            for segment in path {
                value = match value {
                    Value::Object(map) => map.get(segment),
                    Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
                    _ => None,
                }
                .ok_or_else(missing)?;
            }
            Ok(value)
        }
    }
}

/// A JSON value (a request body, a tool's arguments) whose strings are templates. Keys are kept as written.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonTemplate {
    Plain(Value),
    Text(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// Parses every string in `value`; a bad one is refused with its path below `value` (`.a[2]`).
    pub fn parse(value: &Value) -> Result<Self, (String, String)> {
        match value {
            Value::String(s) => Template::parse(s)
                .map(Self::Text)
                .map_err(|e| (String::new(), e)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| Self::parse(v).map_err(|(at, e)| (format!("[{i}]{at}"), e)))
                .collect::<Result<_, _>>()
                .map(Self::Array),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| {
                    Self::parse(v)
                        .map(|t| (k.clone(), t))
                        .map_err(|(at, e)| (format!(".{k}{at}"), e))
                })
                .collect::<Result<_, _>>()
                .map(Self::Object),
            other => Ok(Self::Plain(other.clone())),
        }
    }

    /// Checks every template inside, naming the first bad one's path below the value.
    pub fn check(&self, scope: Scope<'_>) -> Result<(), (String, String)> {
        match self {
            Self::Plain(_) => Ok(()),
            Self::Text(t) => t.check(scope).map_err(|e| (String::new(), e)),
            Self::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, t)| t.check(scope).map_err(|(at, e)| (format!("[{i}]{at}"), e))),
            Self::Object(fields) => fields
                .iter()
                .try_for_each(|(k, t)| t.check(scope).map_err(|(at, e)| (format!(".{k}{at}"), e))),
        }
    }

    /// The value with every template rendered; a string that is one whole reference takes the referenced
    /// value as it is (a number stays a number).
    pub fn render(&self, values: Values<'_>) -> Result<Value, RenderError> {
        Ok(match self {
            Self::Plain(v) => v.clone(),
            Self::Text(t) => t.render_value(values)?,
            Self::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|t| t.render(values))
                    .collect::<Result<_, _>>()?,
            ),
            Self::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), t.render(values)?)))
                    .collect::<Result<_, RenderError>>()?,
            ),
        })
    }

    /// Every template inside, in order.
    pub fn templates(&self) -> Vec<&Template> {
        match self {
            Self::Plain(_) => Vec::new(),
            Self::Text(t) => vec![t],
            Self::Array(items) => items.iter().flat_map(Self::templates).collect(),
            Self::Object(fields) => fields.iter().flat_map(|(_, t)| t.templates()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const INPUTS: &[&str] = &["target", "count"];
    const STEPS: &[&str] = &["drain", "restart", "verify"];

    fn scope(current: usize) -> Scope<'static> {
        Scope {
            inputs: INPUTS,
            steps: STEPS,
            current,
        }
    }

    fn values() -> (serde_json::Map<String, Value>, BTreeMap<String, Value>) {
        let inputs = json!({"target": "api", "count": 3});
        let outputs = BTreeMap::from([(
            "drain".to_owned(),
            json!({"status": 200, "body": {"left": [{"id": "c1"}, {"id": "c2"}]}}),
        )]);
        (inputs.as_object().cloned().unwrap_or_default(), outputs)
    }

    #[test]
    fn text_and_references_are_parsed_in_order() {
        let t = Template::parse("/drain?svc={{ inputs.target }}&n={{inputs.count}}!").unwrap();
        let refs: Vec<String> = t.references().map(ToString::to_string).collect();
        assert_eq!(refs, ["inputs.target", "inputs.count"]);
        assert_eq!(t.literal(), None);
        assert_eq!(
            Template::parse("/plain }} text").unwrap().literal(),
            Some("/plain }} text")
        );
        let deep = Template::parse("{{steps.drain.output.body.left.1.id}}").unwrap();
        assert_eq!(
            deep.references().next(),
            Some(&Reference::StepOutput {
                step: "drain".into(),
                path: vec!["body".into(), "left".into(), "1".into(), "id".into()]
            })
        );
    }

    #[test]
    fn malformed_templates_are_refused_with_the_reason() {
        let cases = [
            ("/x/{{inputs.target", "never closed"),
            ("{{inputs}}", "an input is one name"),
            ("{{inputs.a.b}}", "an input is one name"),
            ("{{steps.drain}}", "read through its output"),
            ("{{steps.drain.result}}", "read through its output"),
            ("{{steps..output}}", "an empty name"),
            ("{{env.HOME}}", "unknown reference"),
            ("{{}}", "an empty name"),
        ];
        for (source, why) in cases {
            let err = Template::parse(source).unwrap_err();
            assert!(err.contains(why), "{source}: {err}");
        }
    }

    #[test]
    fn references_are_checked_against_inputs_and_earlier_steps() {
        let ok = Template::parse("{{inputs.target}} {{steps.drain.output.status}}").unwrap();
        assert_eq!(ok.check(scope(1)), Ok(()));
        let cases = [
            (
                "{{inputs.region}}",
                1,
                "does not declare (inputs: target, count)",
            ),
            ("{{steps.drain.output}}", 0, "this step's own output"),
            ("{{steps.verify.output}}", 1, "which runs later"),
            ("{{steps.nope.output}}", 2, "does not have"),
        ];
        for (source, current, why) in cases {
            let err = Template::parse(source)
                .unwrap()
                .check(scope(current))
                .unwrap_err();
            assert!(err.contains(why), "{source}: {err}");
        }
        let none = Scope {
            inputs: &[],
            steps: STEPS,
            current: 0,
        };
        let err = Template::parse("{{inputs.x}}")
            .unwrap()
            .check(none)
            .unwrap_err();
        assert!(err.ends_with("(inputs: none)"), "{err}");
    }

    #[test]
    fn rendering_fills_values_and_names_a_missing_one() {
        let (inputs, outputs) = values();
        let values = Values {
            inputs: &inputs,
            outputs: &outputs,
        };
        let t = Template::parse("svc={{inputs.target}} n={{inputs.count}} first={{steps.drain.output.body.left.0.id}} s={{steps.drain.output.status}}").unwrap();
        assert_eq!(t.render(values).unwrap(), "svc=api n=3 first=c1 s=200");
        let whole = Template::parse("{{steps.drain.output.body}}").unwrap();
        assert_eq!(
            whole.render(values).unwrap(),
            r#"{"left":[{"id":"c1"},{"id":"c2"}]}"#
        );
        for (source, named) in [
            ("{{inputs.other}}", "inputs.other"),
            ("{{steps.restart.output}}", "steps.restart.output"),
            (
                "{{steps.drain.output.body.left.9}}",
                "steps.drain.output.body.left.9",
            ),
            (
                "{{steps.drain.output.status.x}}",
                "steps.drain.output.status.x",
            ),
        ] {
            let err = Template::parse(source).unwrap().render(values).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("{{{{{named}}}}} has no value in this run")
            );
        }
    }

    #[test]
    fn json_templates_keep_types_and_name_paths() {
        let (inputs, outputs) = values();
        let values = Values {
            inputs: &inputs,
            outputs: &outputs,
        };
        let body = json!({"service": "{{inputs.target}}", "n": "{{inputs.count}}", "note": "n={{inputs.count}}", "keep": [true, 1, null]});
        let t = JsonTemplate::parse(&body).unwrap();
        assert_eq!(t.templates().len(), 3);
        assert_eq!(
            t.render(values).unwrap(),
            json!({"service": "api", "n": 3, "note": "n=3", "keep": [true, 1, null]})
        );
        let bad = JsonTemplate::parse(&json!({"a": [1, "{{inputs.x"]})).unwrap_err();
        assert_eq!(bad.0, ".a[1]");
        let unknown = JsonTemplate::parse(&json!({"a": {"b": "{{inputs.region}}"}})).unwrap();
        let (at, why) = unknown.check(scope(0)).unwrap_err();
        assert_eq!(at, ".a.b");
        assert!(why.contains("region"), "{why}");
    }
}
