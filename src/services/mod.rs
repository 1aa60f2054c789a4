//! The three HTTP services: their routes, their OpenAPI documents, how each is assembled and the state
//! their handlers share. The handlers translate HTTP into calls of `crate::answers` and back.

mod assembly;
mod boss_api;
mod common;
pub mod health_proxy;
mod mcp_bridge;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use actix_web::http::Method;
use actix_web::App;
use utoipa::openapi::OpenApi;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::AppExt;

use crate::answers::{self, AnswerError, Verb};
use crate::auth::{Role, Tokens};
use crate::clock::Clock;
use crate::config::Config;
use crate::http::ApiError;
use crate::kind::ServiceKind;
use crate::store::writer::CheckWriter;
use crate::store::Store;

pub use assembly::{assemble, AssembleError, Assembled, ServiceState, Shared};
pub use boss_api::BossApiState;
pub use health_proxy::HealthProxyState;
pub use mcp_bridge::McpBridgeState;

/// What the handlers of every service share, built once in `app.rs`. A service's own state (the Health
/// Proxy's monitor, later the MCP registry or the workflow queue) is registered next to it, by that service.
#[derive(Debug, Clone)]
pub struct Core {
    pub config: Arc<Config>,
    pub store: Store,
    pub writer: CheckWriter,
    pub clock: Arc<dyn Clock>,
    pub started_at: Instant,
    /// The role tokens in force (never printed: `Debug` shows only which roles have one).
    pub tokens: Arc<Tokens>,
}

/// Registers the documented routes of one service.
pub(crate) fn routes(kind: ServiceKind) -> fn(&mut ServiceConfig) {
    match kind {
        ServiceKind::HealthProxy => health_proxy::configure,
        ServiceKind::McpBridge => mcp_bridge::configure,
        ServiceKind::BossApi => boss_api::configure,
    }
}

/// The role each route needs where it is not `read`, from the list of answers (`crate::answers::ANSWERS`):
/// the guard enforces it and the OpenAPI document states it.
pub fn route_roles(kind: ServiceKind) -> HashMap<(Method, String), Role> {
    answers::catalog::served_by(kind)
        // A change is always listed, even one the guard lets `read` through (its handler asks for more):
        // a change missing from the table would pass the guard unchecked.
        .filter(|answer| answer.role != Role::Read || answer.verb == Verb::Post)
        .map(|answer| ((method(answer.verb), answer.route.to_owned()), answer.role))
        .collect()
}

fn method(verb: Verb) -> Method {
    match verb {
        Verb::Get => Method::GET,
        Verb::Post => Method::POST,
    }
}

impl From<AnswerError> for ApiError {
    fn from(e: AnswerError) -> Self {
        match e {
            AnswerError::BadInput(message) => Self::BadRequest(message),
            AnswerError::NotFound(message) => Self::NotFound(message),
            AnswerError::Forbidden(message) => Self::Forbidden(message),
            AnswerError::Refused(message) => Self::Unprocessable(message),
            AnswerError::Conflict(message) => Self::Conflict(message),
            AnswerError::Unavailable(message) => Self::Unavailable(message),
            AnswerError::Internal(source) => Self::Internal(source),
        }
    }
}

/// The OpenAPI document of one service: collected from its handlers, with every operation's access
/// written out from the same table the guard enforces (`route_roles`).
pub fn openapi(kind: ServiceKind) -> OpenApi {
    document_access(collected(kind), &route_roles(kind))
}

/// The committed form of a service's OpenAPI document: pretty JSON with a final newline.
pub fn openapi_text(kind: ServiceKind) -> Result<String, String> {
    openapi(kind)
        .to_pretty_json()
        .map(|text| text + "\n")
        .map_err(|e| format!("cannot encode the {kind} OpenAPI document: {e}"))
}

/// The document as the handlers' annotations give it.
fn collected(kind: ServiceKind) -> OpenApi {
    let (_, doc) = App::new()
        .into_utoipa_app()
        .openapi(base_document(kind))
        .configure(routes(kind))
        .split_for_parts();
    doc
}

/// Adds to every operation what the guard in front of all routes does: its security requirement (a read
/// may come without a token from loopback; a change needs a bearer token of its role) and the answers
/// the guard gives (401, 403, 429), unless the handler documents them itself.
fn document_access(mut doc: OpenApi, roles: &HashMap<(Method, String), Role>) -> OpenApi {
    use utoipa::openapi::security::SecurityRequirement;
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

    let error = |description: String| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            (Method::GET, &mut item.get),
            (Method::POST, &mut item.post),
            (Method::PUT, &mut item.put),
            (Method::PATCH, &mut item.patch),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else {
                continue;
            };
            let role = roles
                .get(&(method, path.clone()))
                .copied()
                .unwrap_or(Role::Read);
            let bearer = SecurityRequirement::new("bearer", Vec::<String>::new());
            operation.security = Some(if role == Role::Read {
                // `{}`: no token needed (from loopback, unless `auth.open_reads_on_loopback` is off).
                vec![SecurityRequirement::default(), bearer]
            } else {
                vec![bearer]
            });
            let responses = &mut operation.responses.responses;
            responses.entry("401".to_owned()).or_insert_with(|| {
                error("No valid bearer token (a read from another host, or a change)".to_owned())
            });
            responses.entry("403".to_owned()).or_insert_with(|| {
                error(format!(
                    "The token's role is weaker than {role}, or no {role} token is configured"
                ))
            });
            responses.entry("429".to_owned()).or_insert_with(|| {
                error("Over the rate limit of this route's group; `Retry-After` says when to try again".to_owned())
            });
        }
    }
    doc
}

fn base_document(kind: ServiceKind) -> OpenApi {
    use utoipa::openapi::{ComponentsBuilder, InfoBuilder, LicenseBuilder, OpenApiBuilder};
    use utoipa::{PartialSchema, ToSchema};

    let description = match kind {
        ServiceKind::HealthProxy => {
            "Probes every configured service with timeouts, circuit breakers and a short cache, keeps their \
             history and answers how healthy everything is."
        }
        ServiceKind::McpBridge => {
            "Connects to Model Context Protocol servers and exposes their tools over HTTP."
        }
        ServiceKind::BossApi => "Starts and tracks workflows on a persistent task queue.",
    };
    let mut components = ComponentsBuilder::new();
    let mut schemas = Vec::new();
    crate::http::ErrorBody::schemas(&mut schemas);
    components = components.schema(
        crate::http::ErrorBody::name(),
        crate::http::ErrorBody::schema(),
    );
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    let components = components.security_scheme(
        "bearer",
        utoipa::openapi::security::SecurityScheme::Http(
            utoipa::openapi::security::HttpBuilder::new()
                .scheme(utoipa::openapi::security::HttpAuthScheme::Bearer)
                .description(Some(
                    "A role token (read, operate or admin) from the `auth.tokens` section of the config",
                ))
                .build(),
        ),
    );
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(kind.title())
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(description))
                .license(Some(
                    LicenseBuilder::new().name("MIT OR Apache-2.0").build(),
                )),
        )
        .components(Some(components.build()))
        .build()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every (method, route) a service's handlers document, as the router serves them.
    fn documented(kind: ServiceKind) -> BTreeSet<(String, String)> {
        let mut routes = BTreeSet::new();
        for (path, item) in &collected(kind).paths.paths {
            for (method, present) in [
                ("GET", item.get.is_some()),
                ("POST", item.post.is_some()),
                ("PUT", item.put.is_some()),
                ("PATCH", item.patch.is_some()),
                ("DELETE", item.delete.is_some()),
            ] {
                if present {
                    routes.insert((method.to_owned(), path.clone()));
                }
            }
        }
        routes
    }

    #[test]
    fn every_route_is_an_answer_and_every_answer_is_a_route() {
        for kind in ServiceKind::ALL {
            let listed: BTreeSet<(String, String)> = answers::catalog::served_by(kind)
                .map(|a| (a.verb.as_str().to_owned(), a.route.to_owned()))
                .collect();
            let served = documented(kind);
            let unlisted: Vec<_> = served.difference(&listed).collect();
            let unserved: Vec<_> = listed.difference(&served).collect();
            assert!(
                unlisted.is_empty(),
                "{kind} serves routes missing from answers::ANSWERS: {unlisted:?}"
            );
            assert!(
                unserved.is_empty(),
                "answers::ANSWERS lists routes {kind} does not serve: {unserved:?}"
            );
        }
    }

    #[test]
    fn each_answer_error_keeps_its_status_and_message() {
        use actix_web::ResponseError;

        let cases = [
            (
                AnswerError::BadInput("limit: \"0\" is not a number".into()),
                400,
            ),
            (AnswerError::NotFound("no target named \"x\"".into()), 404),
            (
                AnswerError::Forbidden("retroactive: needs admin".into()),
                403,
            ),
            (AnswerError::Refused("ends_at: in the past".into()), 422),
            (
                AnswerError::Unavailable("backup failed: disk full".into()),
                503,
            ),
        ];
        for (error, status) in cases {
            let message = error.to_string();
            let api = ApiError::from(error);
            assert_eq!(api.status_code().as_u16(), status, "{message}");
            assert_eq!(api.to_string(), message);
        }
        let internal = ApiError::from(AnswerError::internal(std::io::Error::other("disk on fire")));
        assert_eq!(internal.status_code().as_u16(), 500);
        // The cause goes to the log, never to the body.
        assert_eq!(internal.to_string(), "internal server error");
        let source = std::error::Error::source(&internal).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("disk on fire"));
    }
}
