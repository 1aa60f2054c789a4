//! Boss API's runbook workflows: definitions and their validation (`definition`), the templates inside
//! steps (`template`) and the risk of each step (`risk`). Runs are kept by `store::workflows`; the engine
//! that executes them comes on top of these parts.

pub mod engine;
pub mod steps;

pub use crate::config::workflows::definition::{
    Action, Concurrency, Definitions, Environment, FailureClass, InputError, InputSpec, InputType,
    OnConflict, OnFailure, RetryPolicy, Step, StepKind, Workflow,
};
pub use crate::config::workflows::risk::{Risk, RiskConfig, RiskLevel};
pub use crate::config::workflows::template::{
    JsonTemplate, Reference, RenderError, Scope, Template, Values,
};

/// A stable hash of a start's body (its inputs and reason), for idempotent starts: the same key with the
/// same body finds the run it started, with another body is refused. SHA-256 of the JSON text with object
/// keys sorted, as 64 hex digits: two bodies cannot be made to share it.
pub fn body_hash(body: &serde_json::Value) -> String {
    use sha2::{Digest, Sha256};
    let mut text = String::new();
    canonical(body, &mut text);
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `value` as JSON text with every object's keys in sorted order, whatever order the map keeps.
fn canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    canonical(v, out);
                }
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_body_hash_follows_content_not_key_order() {
        let a = body_hash(&json!({"inputs": {"target": "api", "n": 1}, "reason": "deploy"}));
        let b = body_hash(&json!({"reason": "deploy", "inputs": {"n": 1, "target": "api"}}));
        let c = body_hash(&json!({"reason": "deploy", "inputs": {"n": 2, "target": "api"}}));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 64);
    }
}
