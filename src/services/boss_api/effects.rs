//! What workflow steps act through (`workflows::steps::Effects`), made of the parts running in this
//! process: the Health Proxy's targets, breakers and auto-heal, the MCP WebBridge's tools and the alert
//! channels. A part this process does not run (`hale serve --only boss-api`) fails the step at once with a
//! message that says which.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{json, Map, Value};

use crate::alerts::{Announcement, AnnouncementRule, Announcer};
use crate::breaker::BreakerState;
use crate::config::TargetUrl;
use crate::heal::{HealError, Healer};
use crate::mcp::{CallContext, CallError, McpRegistry, ServerState};
use crate::probe::Monitor;
use crate::records::{HealOutcome, HealTrigger};
use crate::workflows::steps::{Effects, Failure, HttpTarget, StepContext, StepResult};
use crate::workflows::FailureClass;

/// The parts of this process that workflow steps use.
#[derive(Debug, Clone, Default)]
pub struct LiveEffects {
    pub monitor: Option<Arc<Monitor>>,
    pub healer: Option<Arc<Healer>>,
    pub tools: Option<Arc<McpRegistry>>,
    pub announcer: Option<Announcer>,
}

const NO_HEALTH_PROXY: &str =
    "the Health Proxy does not run in this process (hale serve --only), so its targets cannot be used";

impl LiveEffects {
    async fn announce(
        &self,
        rule: AnnouncementRule,
        message: &str,
        context: &StepContext,
    ) -> StepResult {
        let announcer = self.announcer.as_ref().ok_or_else(|| {
            Failure::fatal(
                "the alert channels do not run in this process (they belong to the Health Proxy)",
            )
        })?;
        let description = if context.step_id.is_empty() {
            format!("workflow {} run {}", context.workflow, context.run_id)
        } else {
            format!(
                "workflow {} run {} step {}",
                context.workflow, context.run_id, context.step_id
            )
        };
        let receipt = announcer
            .announce(Announcement {
                rule,
                target: context.workflow.clone(),
                level: rule.default_level(),
                summary: message.to_owned(),
                description,
                channels: None,
            })
            .await
            .map_err(|e| Failure::fatal(e.to_string()))?;
        Ok(json!({
            "alert_id": receipt.alert_id,
            "channels": receipt.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        }))
    }
}

impl Effects for LiveEffects {
    fn watches(&self, target: &str) -> Result<(), Failure> {
        let monitor = self
            .monitor
            .as_ref()
            .ok_or_else(|| Failure::fatal(NO_HEALTH_PROXY))?;
        monitor
            .target(target)
            .map(|_| ())
            .ok_or_else(|| Failure::fatal(format!("no target named {target:?}")))
    }

    fn http_target(&self, target: &str) -> Result<HttpTarget, Failure> {
        let monitor = self
            .monitor
            .as_ref()
            .ok_or_else(|| Failure::fatal(NO_HEALTH_PROXY))?;
        let found = monitor
            .target(target)
            .ok_or_else(|| Failure::fatal(format!("no target named {target:?}")))?;
        let TargetUrl::Http(url) = &found.config.url else {
            return Err(Failure::fatal(format!(
                "target {target:?} is not checked over HTTP, so an http step cannot reach it"
            )));
        };
        let mut base = url.clone();
        base.set_path("/");
        base.set_query(None);
        base.set_fragment(None);
        Ok(HttpTarget {
            base,
            breaker_open: found.breaker.state() == BreakerState::Open,
        })
    }

    fn heal<'a>(&'a self, target: &'a str, _context: &'a StepContext) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let healer = self
                .healer
                .as_ref()
                .ok_or_else(|| Failure::fatal(NO_HEALTH_PROXY))?;
            let (id, record) = healer
                .heal_stored(target, HealTrigger::Workflow, true)
                .await
                .map_err(|e| match e {
                    HealError::UnknownTarget(_) | HealError::InMaintenance { .. } => {
                        Failure::fatal(e.to_string())
                    }
                })?;
            let output = json!({
                "heal_event_id": id,
                "outcome": record.outcome.as_str(),
                "action": record.action.as_str(),
                "verify_latency_ms": record.verify_latency.map(|d| d.as_millis() as u64),
            });
            if record.outcome == HealOutcome::Healed {
                Ok(output)
            } else {
                Err(Failure::fatal(format!(
                    "the heal of {target} ended {}{}",
                    record.outcome.as_str(),
                    record.error.map(|e| format!(": {e}")).unwrap_or_default()
                )))
            }
        })
    }

    fn call_tool<'a>(
        &'a self,
        tool: &'a str,
        arguments: Map<String, Value>,
        context: &'a StepContext,
    ) -> BoxFuture<'a, StepResult> {
        Box::pin(async move {
            let tools = self.tools.as_ref().ok_or_else(|| {
                Failure::fatal("the MCP WebBridge does not run in this process (hale serve --only)")
            })?;
            let call = CallContext {
                request_id: format!("workflow-run-{}-{}", context.run_id, context.step_id),
                role: Some("operate"),
            };
            match tools.call(tool, arguments, call).await {
                Ok(outcome) if outcome.is_error => Err(Failure::fatal(format!(
                    "tool {tool} answered with an error: {}",
                    outcome.result
                ))),
                Ok(outcome) => Ok(outcome.result),
                Err(e) => Err(match &e {
                    CallError::Timeout { .. } => Failure::of(FailureClass::Timeout, e.to_string()),
                    CallError::NotReady { .. } => Failure::of(FailureClass::Connect, e.to_string()),
                    CallError::BreakerOpen { .. } => {
                        Failure::of(FailureClass::BreakerOpen, e.to_string())
                    }
                    CallError::Upstream { .. } => {
                        Failure::of(FailureClass::ServerError, e.to_string())
                    }
                    CallError::UnknownTool(_) => {
                        // A server still connecting has not listed its tools yet: worth a retry.
                        let waiting: Vec<String> = tools
                            .servers()
                            .into_iter()
                            .filter(|s| s.state != ServerState::Ready)
                            .map(|s| s.name)
                            .collect();
                        if waiting.is_empty() {
                            Failure::fatal(e.to_string())
                        } else {
                            Failure::of(
                                FailureClass::Connect,
                                format!("{e} (not connected yet: {})", waiting.join(", ")),
                            )
                        }
                    }
                    CallError::Invalid(_)
                    | CallError::UnusableSchema(_)
                    | CallError::TooLarge { .. } => Failure::fatal(e.to_string()),
                }),
            }
        })
    }

    fn notify<'a>(
        &'a self,
        message: &'a str,
        context: &'a StepContext,
    ) -> BoxFuture<'a, StepResult> {
        Box::pin(self.announce(AnnouncementRule::WorkflowNotify, message, context))
    }

    fn alert_interrupted<'a>(
        &'a self,
        message: &'a str,
        context: &'a StepContext,
    ) -> BoxFuture<'a, StepResult> {
        Box::pin(self.announce(AnnouncementRule::WorkflowRunInterrupted, message, context))
    }

    fn hold(&self, target: &str) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        let healer = self.healer.as_ref()?;
        healer
            .hold(target)
            .ok()
            .map(|guard| Box::new(guard) as Box<dyn std::any::Any + Send + Sync>)
    }
}
