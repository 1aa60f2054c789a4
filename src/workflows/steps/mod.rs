//! One executor per step kind, free of engine state: a step's rendered action in, and out its output (JSON)
//! or a `Failure`, whose class says whether the step's `retry_on` lets it be tried again. The engine
//! (`workflows::engine`) owns runs, attempts, waits and retries; `sleep` and `approval` are waits the engine
//! keeps itself (their wake time is stored), so they have no executor here. What lies outside the engine's
//! reach (heals, MCP tools, alert channels, the targets' breakers) comes through `Effects`, which the
//! services layer implements from the parts running in this process.

pub mod command;
pub mod http;
pub mod wait_healthy;

#[cfg(test)]
mod tests;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

use crate::workflows::FailureClass;

/// Why an attempt of a step failed: a class the step may retry on (`retry_on`), or none (final), and what
/// happened, in one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub class: Option<FailureClass>,
    pub message: String,
}

impl Failure {
    /// A failure no retry can mend (a bad argument, an unexpected status, a refused heal).
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            class: None,
            message: message.into(),
        }
    }

    /// A failure of `class`: retried when the step lists the class in `retry_on`.
    pub fn of(class: FailureClass, message: impl Into<String>) -> Self {
        Self {
            class: Some(class),
            message: message.into(),
        }
    }
}

/// What one attempt of a step gave.
pub type StepResult = Result<Value, Failure>;

/// A target as an `http` step needs it: where it lives and whether its breaker lets requests through.
#[derive(Debug, Clone)]
pub struct HttpTarget {
    /// The target's base URL (its check URL with path, query and fragment removed).
    pub base: url::Url,
    /// When the target's breaker is open: the step fails at once, retryably (`breaker_open`).
    pub breaker_open: bool,
}

/// Who runs the step, for what it records elsewhere (a heal event, a tool call, a notice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepContext {
    pub workflow: String,
    pub run_id: i64,
    pub step_id: String,
}

/// The parts outside the engine that steps act through. The services layer implements it from the Health
/// Proxy (targets, breakers, auto-heal), the MCP WebBridge and the alert channels running in this process;
/// a part that is not running answers with a fatal failure that says so.
pub trait Effects: Send + Sync + std::fmt::Debug {
    /// Ok when the monitor of this process checks `target` (a `wait_healthy` step counts its checks).
    fn watches(&self, target: &str) -> Result<(), Failure>;

    /// The target of an `http` step.
    fn http_target(&self, target: &str) -> Result<HttpTarget, Failure>;

    /// Heals `target` through auto-heal's protections, as the workflow run holding it.
    fn heal<'a>(&'a self, target: &'a str, context: &'a StepContext) -> BoxFuture<'a, StepResult>;

    /// Calls MCP tool `tool` through the bridge's call path (its breaker, timeout and record).
    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        arguments: Map<String, Value>,
        context: &'a StepContext,
    ) -> BoxFuture<'a, StepResult>;

    /// Sends `message` through the alert channels.
    fn notify<'a>(
        &'a self,
        message: &'a str,
        context: &'a StepContext,
    ) -> BoxFuture<'a, StepResult>;

    /// Raises the alert of a run that ended `interrupted` (hale stopped during a step it cannot run again).
    fn alert_interrupted<'a>(
        &'a self,
        message: &'a str,
        context: &'a StepContext,
    ) -> BoxFuture<'a, StepResult>;

    /// Holds `target` while a run works on it: auto-heal leaves it alone until the hold is dropped. None
    /// when nothing heals targets in this process.
    fn hold(&self, target: &str) -> Option<Box<dyn std::any::Any + Send + Sync>>;
}
