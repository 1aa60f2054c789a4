//! The access layer of every service, inside `observe`: per client and route group rate limits, bearer
//! tokens checked against the role each route needs, and one audit row for every request that tries to
//! change something. Which role each route needs is declared once, in the list of answers
//! (`answers::ANSWERS`, turned into this layer's table by `services::route_roles`); this layer only
//! enforces it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

use crate::auth::{Role, Tokens};
use crate::http::access_log::AccessLog;
use crate::http::rate_limit::{RateGroup, RateLimits};
use crate::http::{ApiError, HttpContext, RequestId};
use crate::kind::ServiceKind;
use crate::records::{AuditOutcome, AuditRecord};

/// The role the caller's token proved, put in the request's extensions for handlers whose answer depends on
/// the role as well as the route (a retroactive maintenance window needs admin on an operate route). None:
/// no token (an open loopback read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub role: Option<Role>,
}

impl Caller {
    /// The role the caller of `req` proved; none without a token (or before the guard ran).
    pub fn role_of(req: &impl HttpMessage) -> Option<Role> {
        req.extensions().get::<Self>().and_then(|c| c.role)
    }
}

/// What a route needs: the role that may call it and the rate-limit bucket it draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutePolicy {
    pub role: Role,
    pub group: RateGroup,
}

/// Everything the access layer of one service needs, shared by its worker threads.
#[derive(Debug)]
pub struct Guard {
    pub kind: ServiceKind,
    pub tokens: Arc<Tokens>,
    pub open_reads_on_loopback: bool,
    pub limits: Option<RateLimits>,
    /// Where audit rows go (and how 429 lines are sampled), shared by every service; none in benches that
    /// run the middleware alone.
    pub access: Option<Arc<AccessLog>>,
    /// The role of every route that needs more than `read` (method and pattern), from the list of answers:
    /// every route that changes something, and reads such as the audit log.
    pub roles: HashMap<(Method, String), Role>,
}

impl Guard {
    /// What a request needs. None for a method the route does not have: the router answers it (405).
    pub fn policy(&self, method: &Method, route: &str) -> Option<RoutePolicy> {
        let key = (method.clone(), route.to_owned());
        if !changes_something(method) {
            return Some(RoutePolicy {
                role: self.roles.get(&key).copied().unwrap_or(Role::Read),
                group: read_group(route),
            });
        }
        self.roles.get(&key).map(|role| RoutePolicy {
            role: *role,
            group: if route == TOOL_CALL_ROUTE {
                RateGroup::ToolCall
            } else if route == MCP_ROUTE {
                // An MCP session is several messages (initialize, the list, the calls), mostly reads.
                RateGroup::Read
            } else {
                RateGroup::Write
            },
        })
    }
}

/// The MCP WebBridge's tool call: rate-limited per client and tool.
const TOOL_CALL_ROUTE: &str = "/tools/{name}";
/// hale's own MCP server.
const MCP_ROUTE: &str = "/mcp";

/// The bucket of a read: what monitors and scrapers poll, `/health/all`, or any other read.
fn read_group(route: &str) -> RateGroup {
    match route {
        "/health" | "/healthz" | "/metrics" | "/openapi.json" | "/docs" => RateGroup::Ops,
        _ if route.starts_with("/docs/") => RateGroup::Ops,
        "/health/all" => RateGroup::Check,
        _ => RateGroup::Read,
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one that is not valid.
    Unauthorized(String),
    /// A valid token of a weaker role, or no token configured for the role needed.
    Forbidden(String),
}

/// Decides whether a caller may use a route: pure, so every combination is tested without HTTP.
/// Returns the role the caller proved (none for an open loopback read).
pub fn authorize(
    needed: Role,
    presented: Option<&str>,
    from_loopback: bool,
    open_reads_on_loopback: bool,
    tokens: &Tokens,
    what: &str,
) -> Result<Option<Role>, Denied> {
    if let Some(token) = presented {
        return match tokens.role_of(token) {
            None => Err(Denied::Unauthorized(
                "the bearer token is not valid".to_owned(),
            )),
            Some(role) if role >= needed => Ok(Some(role)),
            Some(role) => Err(Denied::Forbidden(format!(
                "{what} needs the {needed} role; this token grants {role}"
            ))),
        };
    }
    if needed == Role::Read && from_loopback && open_reads_on_loopback {
        return Ok(None);
    }
    let configured = Role::ALL
        .into_iter()
        .filter(|role| *role >= needed)
        .any(|role| tokens.has(role));
    if !configured {
        return Err(Denied::Forbidden(format!(
            "{what} needs an {needed} token and none is configured: set auth.tokens.{needed} to {{\"env\": \"NAME\"}} or {{\"file\": \"PATH\"}} and restart hale (docs/operations.md#tokens-and-roles)"
        )));
    }
    Err(Denied::Unauthorized(format!(
        "{what} needs the {needed} role: send Authorization: Bearer <token>"
    )))
}

/// Reads `Authorization: Bearer <token>`; `Err` when the header is there but not a bearer token.
fn bearer(req: &ServiceRequest) -> Result<Option<&str>, ()> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let (scheme, token) = value.split_once(' ').ok_or(())?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(());
    }
    Ok(Some(token.trim()))
}

fn changes_something(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The access middleware (install inside `observe` with `actix_web::middleware::from_fn(guard)`).
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(ctx) = req.app_data::<web::Data<HttpContext>>().cloned() else {
        return Ok(req.error_response(ApiError::Internal("the service has no HTTP context".into())));
    };
    let Some(guard) = ctx.guard.clone() else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    };
    // The pattern of the route the path belongs to (whatever the method): routing has not run yet.
    let Some(route) = req.match_pattern() else {
        // No such path: the router answers 404. Unknown paths still draw from the read bucket.
        return limited_or_next(&guard, &ctx, req, next, RateGroup::Read, "unmatched").await;
    };
    let method = req.method().clone();
    // None for a method this path does not have: no role to check, the router answers 405 (and the
    // attempt is still rate-limited and audited).
    let policy = guard.policy(&method, &route);
    let group = policy.map_or(RateGroup::Write, |p| p.group);
    let client = req
        .peer_addr()
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let audited = changes_something(&method);
    let request_id = RequestId::of(&req);

    // The role a presented token grants, whatever the route needs: the audit row records it.
    let presented = bearer(&req);
    let token_role = presented
        .ok()
        .flatten()
        .and_then(|token| guard.tokens.role_of(token));

    let mut decision: Result<Option<Role>, ApiError> = Ok(None);
    if let Some(limits) = &guard.limits {
        let checked = match group {
            // The tool is the path's last segment (routing has not run yet, so no match info).
            RateGroup::ToolCall => {
                limits.check_tool(client, req.path().rsplit('/').next().unwrap_or(""))
            }
            _ => limits.check(group, client),
        };
        if let Err(retry_after) = checked {
            ctx.metrics.rate_limited(&route);
            decision = Err(ApiError::RateLimited {
                retry_after_s: retry_after.as_secs().max(1),
            });
        }
    }
    if let (Ok(_), Some(policy)) = (&decision, policy) {
        let what = format!("{method} {route}");
        decision = match presented {
            Err(()) => Err(ApiError::Unauthorized(
                "the Authorization header is not a bearer token: send Authorization: Bearer <token>"
                    .to_owned(),
            )),
            Ok(presented) => authorize(
                policy.role,
                presented,
                client.is_loopback(),
                guard.open_reads_on_loopback,
                &guard.tokens,
                &what,
            )
            .map_err(|denied| match denied {
                Denied::Unauthorized(m) => ApiError::Unauthorized(m),
                Denied::Forbidden(m) => ApiError::Forbidden(m),
            }),
        };
    }

    let res = match decision {
        Ok(_) => {
            req.extensions_mut().insert(Caller { role: token_role });
            next.call(req).await?.map_into_boxed_body()
        }
        Err(refusal) => req.error_response(refusal),
    };
    if audited {
        let status = res.status();
        let outcome = match status.as_u16() {
            401 => AuditOutcome::Unauthorized,
            403 => AuditOutcome::Forbidden,
            429 => AuditOutcome::RateLimited,
            _ if status.is_success() => AuditOutcome::Done,
            _ => AuditOutcome::Failed,
        };
        let target = res.request().match_info().get("target").map(str::to_owned);
        let record = AuditRecord {
            at: chrono::Utc::now(),
            service: guard.kind,
            role: token_role.map(Role::as_str),
            client: client.to_string(),
            method: method.as_str().to_owned(),
            route: route.clone(),
            target,
            status: status.as_u16(),
            outcome,
            request_id,
            count: 1,
        };
        // Refusals, rate limits and methods the route does not have (nothing could change) are counted per
        // client and minute; an allowed request is a row of its own, except a tool call: the bridge stores
        // each call in `tool_calls` (with its request id and role), and the audit log counts them per minute;
        // so are the messages to hale's own MCP server, mostly reads (a heal it makes is in `heal_events`).
        let aggregate = policy.is_none()
            || group == RateGroup::ToolCall
            || route == MCP_ROUTE
            || matches!(
                outcome,
                AuditOutcome::Unauthorized | AuditOutcome::Forbidden | AuditOutcome::RateLimited
            );
        if let Some(access) = &guard.access {
            access.record(record, aggregate).await;
        }
    }
    Ok(res)
}

async fn limited_or_next(
    guard: &Guard,
    ctx: &HttpContext,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    group: RateGroup,
    route: &str,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if let Some(limits) = &guard.limits {
        let client = req
            .peer_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let checked = match group {
            // The tool is the path's last segment (routing has not run yet, so no match info).
            RateGroup::ToolCall => {
                limits.check_tool(client, req.path().rsplit('/').next().unwrap_or(""))
            }
            _ => limits.check(group, client),
        };
        if let Err(retry_after) = checked {
            ctx.metrics.rate_limited(route);
            return Ok(req.error_response(ApiError::RateLimited {
                retry_after_s: retry_after.as_secs().max(1),
            }));
        }
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_boxed_body)
}
