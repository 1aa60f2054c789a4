//! The list of every answer, declared once: its name, the role it needs, the route it is served on and by
//! which services. The guard's role table is derived from it (`services::route_roles`), and so are the roles
//! of hale's MCP tools (`mcp::server::HaleTool::role`), so a route and its tool cannot need different roles.

use crate::auth::Role;
use crate::kind::ServiceKind;
use Form::{Html, Json, PrometheusText};
use Role::{Admin, Operate, Read};
use Verb::{Get, Post};

/// One question hale answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// Its name, unique: the name of hale's MCP tool that gives the same answer, where there is one.
    pub name: &'static str,
    /// The weakest role that may ask it.
    pub role: Role,
    pub verb: Verb,
    /// The route pattern, as the router and the OpenAPI document write it (`/heal/{target}`).
    pub route: &'static str,
    /// The services that serve it.
    pub services: &'static [ServiceKind],
    pub form: Form,
}

/// The HTTP method of an answer's route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// A read.
    Get,
    /// A change (a heal, a maintenance window, a backup).
    Post,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }

    /// Whether a request with this verb changes something (and so is audited).
    pub fn changes_something(self) -> bool {
        self == Self::Post
    }
}

/// What an answer is made of: a schema type as JSON (what a tool can return too), a page for people, or
/// the Prometheus text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Json,
    Html,
    PrometheusText,
}

const ALL: &[ServiceKind] = &ServiceKind::ALL;
const HEALTH_PROXY: &[ServiceKind] = &[ServiceKind::HealthProxy];
const BOSS_API: &[ServiceKind] = &[ServiceKind::BossApi];
const MCP_BRIDGE: &[ServiceKind] = &[ServiceKind::McpBridge];

const fn answer(
    name: &'static str,
    role: Role,
    verb: Verb,
    route: &'static str,
    services: &'static [ServiceKind],
    form: Form,
) -> Answer {
    Answer {
        name,
        role,
        verb,
        route,
        services,
        form,
    }
}

/// Changes whose route the guard lets `read` through because the handler decides the role: a tool call
/// needs `operate` unless the tool's server has `call_role: read`; an MCP message to `/mcp` needs `operate`
/// only for the `heal` tool.
pub const ROLE_CHECKED_BY_HANDLER: &[&str] = &["call_tool", "mcp"];

/// Every answer of every service. A change needs at least `operate`; a read needs `read` unless what it
/// shows calls for more.
pub const ANSWERS: &[Answer] = &[
    // The face every service shows.
    answer("health", Read, Get, "/health", ALL, Json),
    answer("metrics", Read, Get, "/metrics", ALL, PrometheusText),
    // Health Proxy: the targets' health.
    answer("status_page", Read, Get, "/", HEALTH_PROXY, Html),
    answer("health_all", Read, Get, "/health/all", HEALTH_PROXY, Json),
    answer(
        "health_history",
        Read,
        Get,
        "/health/history",
        HEALTH_PROXY,
        Json,
    ),
    answer("services", Read, Get, "/services", HEALTH_PROXY, Json),
    // Auto-heal.
    answer("heal_events", Read, Get, "/heal/events", HEALTH_PROXY, Json),
    answer("heal", Operate, Post, "/heal/{target}", HEALTH_PROXY, Json),
    answer("children", Read, Get, "/children", HEALTH_PROXY, Json),
    // Alerts. Dead letters hold what receivers answered, which may quote what was sent to them.
    answer("alerts", Read, Get, "/alerts", HEALTH_PROXY, Json),
    answer(
        "active_alerts",
        Read,
        Get,
        "/alerts/active",
        HEALTH_PROXY,
        Json,
    ),
    answer(
        "dead_letters",
        Operate,
        Get,
        "/alerts/dead-letters",
        HEALTH_PROXY,
        Json,
    ),
    // SLOs and maintenance (a retroactive window needs admin: the answer checks the caller's role).
    answer("slo", Read, Get, "/slo", HEALTH_PROXY, Json),
    answer(
        "slo_target",
        Read,
        Get,
        "/slo/{service}",
        HEALTH_PROXY,
        Json,
    ),
    answer("maintenance", Read, Get, "/maintenance", HEALTH_PROXY, Json),
    answer(
        "declare_maintenance",
        Operate,
        Post,
        "/maintenance",
        HEALTH_PROXY,
        Json,
    ),
    // MCP WebBridge. A call needs operate, which the handler checks, unless the tool's server has
    // `call_role: read`: the guard asks only for read.
    answer("mcp_servers", Read, Get, "/servers", MCP_BRIDGE, Json),
    answer("mcp_tools", Read, Get, "/tools", MCP_BRIDGE, Json),
    answer("tool_calls", Read, Get, "/tools/calls", MCP_BRIDGE, Json),
    answer("call_tool", Read, Post, "/tools/{name}", MCP_BRIDGE, Json),
    // hale's own MCP server (streamable HTTP, stateless): reads need read; its `heal` tool checks for
    // operate on each call. No GET: the server opens no stream of its own (405).
    answer("mcp", Read, Post, "/mcp", MCP_BRIDGE, Json),
    // Boss API: operations.
    answer("healthz", Read, Get, "/healthz", BOSS_API, Json),
    answer("audit", Admin, Get, "/audit", BOSS_API, Json),
    answer("backup", Admin, Post, "/backup", BOSS_API, Json),
    // Boss API: workflows. Every change needs operate.
    answer("boss_status", Read, Get, "/status", BOSS_API, Json),
    answer("workflows", Read, Get, "/workflows", BOSS_API, Json),
    answer(
        "start_workflow",
        Operate,
        Post,
        "/workflow/{id}/start",
        BOSS_API,
        Json,
    ),
    answer(
        "workflow_status",
        Read,
        Get,
        "/workflow/{id}/status",
        BOSS_API,
        Json,
    ),
    answer(
        "workflow_runs",
        Read,
        Get,
        "/workflow/{id}/runs",
        BOSS_API,
        Json,
    ),
    answer("workflow_run", Read, Get, "/runs/{run_id}", BOSS_API, Json),
    answer(
        "cancel_run",
        Operate,
        Post,
        "/runs/{run_id}/cancel",
        BOSS_API,
        Json,
    ),
    answer(
        "retry_run",
        Operate,
        Post,
        "/runs/{run_id}/retry",
        BOSS_API,
        Json,
    ),
    answer(
        "approve_run",
        Operate,
        Post,
        "/runs/{run_id}/approve",
        BOSS_API,
        Json,
    ),
    answer(
        "reject_run",
        Operate,
        Post,
        "/runs/{run_id}/reject",
        BOSS_API,
        Json,
    ),
];

/// The answers one service serves.
pub fn served_by(kind: ServiceKind) -> impl Iterator<Item = &'static Answer> {
    ANSWERS.iter().filter(move |a| a.services.contains(&kind))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_answer_has_a_name_of_its_own() {
        let mut seen = HashSet::new();
        for a in ANSWERS {
            assert!(seen.insert(a.name), "two answers are named {:?}", a.name);
            assert!(
                !a.name.is_empty() && a.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{:?}: a name is lower case words joined by _ (it becomes a tool name)",
                a.name
            );
        }
    }

    #[test]
    fn no_service_serves_two_answers_on_one_route() {
        for kind in ServiceKind::ALL {
            let mut seen = HashSet::new();
            for a in served_by(kind) {
                assert!(
                    seen.insert((a.verb, a.route)),
                    "{kind} serves {} {} twice",
                    a.verb.as_str(),
                    a.route
                );
                assert!(a.route.starts_with('/'), "{}: {:?}", a.name, a.route);
            }
        }
    }

    #[test]
    fn every_change_needs_at_least_operate() {
        for a in ANSWERS
            .iter()
            .filter(|a| a.verb.changes_something() && !ROLE_CHECKED_BY_HANDLER.contains(&a.name))
        {
            assert!(
                a.role >= Role::Operate,
                "{} ({} {}) changes something but needs only {}",
                a.name,
                a.verb.as_str(),
                a.route,
                a.role
            );
        }
    }

    #[test]
    fn every_service_is_served_by_some_answer() {
        for kind in ServiceKind::ALL {
            assert!(served_by(kind).count() > 0, "{kind} serves nothing");
        }
    }
}
