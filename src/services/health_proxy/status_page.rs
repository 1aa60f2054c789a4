//! `GET /`: a server-rendered status page with no script and no external asset: the health score, each
//! target's current state (the monitor's latest results; nothing is checked for the page), its SLO status
//! and error budget left over the SLO window (the numbers `/slo` gives), any retroactive maintenance
//! window, uptime bars from the rollups (90 daily bars, or 48 hourly ones while the database holds less
//! than a week of history), the p95 over the SLO window, restarts this week and the alerts firing.
//! It refreshes itself every 30 s and carries a Content-Security-Policy that allows inline styles and
//! nothing else.

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};

use crate::answers::status_page as answer;
use crate::services::health_proxy::HealthProxyState;
use crate::services::Core;

/// The page as HTML, from what `answers::status_page::gather` read (the markup lives in `status_html`).
pub use crate::services::health_proxy::status_html::render;

/// Allows the page's inline styles and inline SVG (`data:` images), nothing else: no script at all.
pub const STATUS_PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Status page.
///
/// An HTML page for people: the health score, each target's state, its SLO status (met, at risk, breached,
/// no data) and error budget left, any retroactive maintenance window, 90 days of daily uptime (48 hourly
/// bars while there is less than a week of history), the p95 over the SLO window, restarts this week and
/// the alerts firing. No script and no external asset; it refreshes
/// every 30 s. Nothing is checked for it: it shows the monitor's latest results.
#[utoipa::path(
    tag = "health",
    responses((status = 200, description = "The status page", content_type = "text/html", body = String, example = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="30">
<title>hale status</title>
</head>
<body>
<header><h1>hale status <span class="badge pass">ALL UP</span></h1><p class="meta">Health score <span class="score" id="score">100.0</span> / 100; 2 of 2 targets up. Updated 2026-11-26 12:00 UTC; this page refreshes every 30 s.</p></header>
<main>
<h2>Targets</h2>
<section class="target"><h3><span class="name">api</span> <span class="badge pass">up</span></h3><p class="meta">Last check 2026-11-26 12:00 UTC in 12.5 ms. 90-day uptime 99.933%; p95 over 7 days 48.7 ms (target 200 ms); restarts this week: 1.</p></section>
<section class="target"><h3><span class="name">db</span> <span class="badge pass">up</span></h3><p class="meta">Last check 2026-11-26 12:00 UTC in 0.9 ms. 90-day uptime 100.000%; p95 over 7 days 1.2 ms (target 200 ms); restarts this week: 0.</p></section>
<h2>Active alerts</h2>
<p class="muted">No alert is firing.</p>
</main>
</body>
</html>
"#))
)]
#[get("/")]
pub async fn status_page(
    core: web::Data<Core>,
    state: web::Data<HealthProxyState>,
) -> HttpResponse {
    let page = answer::gather(&core.store, &core.config, &state.monitor, core.clock.now()).await;
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, STATUS_PAGE_CSP))
        .body(render(&page))
}
