//! `GET /`: a server-rendered status page with no script and no external asset: the health score, each
//! target's current state (the monitor's latest results; nothing is checked for the page), its SLO status
//! and error budget left over the SLO window (the numbers `/slo` gives), any retroactive maintenance
//! window, uptime bars from the rollups (90 daily bars, or 48 hourly ones while the database holds less
//! than a week of history), the p95 over the SLO window, restarts this week and the alerts firing.
//! It refreshes itself every 30 s and carries a Content-Security-Policy that allows inline styles and
//! nothing else.
//!
//! Nothing is computed per request: the SLOs are the refresher's last pass, the database reads are kept
//! (`answers::status_page::PageReads`), and the page as rendered is kept for `PAGE_MAX_AGE` (and until the
//! next SLO pass), like `/slo`'s JSON body.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{get, web, HttpResponse};

use crate::answers::status_page as answer;
use crate::services::health_proxy::HealthProxyState;
use crate::services::Core;

/// The page as HTML, from what `answers::status_page::gather` read (the markup lives in `status_html`).
pub use crate::services::health_proxy::status_html::render;

/// How long a rendered page is sent again as it is: the monitor's latest results on it are at most this
/// old. On the process's monotonic time: a page is about the present, whatever hale's clock says.
pub const PAGE_MAX_AGE: Duration = Duration::from_secs(1);

/// Answers kept as sent: the status page (for `PAGE_MAX_AGE`, and only for the SLO pass it shows) and
/// `/slo`'s body (for one SLO pass).
#[derive(Debug, Default)]
pub struct Rendered {
    page: Mutex<Option<Kept>>,
    /// Set while one request renders the page again: the others send the kept one meanwhile.
    rendering: AtomicBool,
    slo_all: Mutex<Option<Kept>>,
    /// What the page's database reads were when kept.
    pub reads: answer::PageReads,
}

#[derive(Debug, Clone)]
struct Kept {
    at: Instant,
    generation: u64,
    body: Bytes,
}

impl Rendered {
    fn kept(slot: &Mutex<Option<Kept>>) -> std::sync::MutexGuard<'_, Option<Kept>> {
        slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `/slo`'s body for the SLO pass `generation`, serialized once per pass (generation 0, an answer
    /// evaluated before the first pass, is never kept).
    pub fn slo_all(
        &self,
        generation: u64,
        body: impl FnOnce() -> Result<Vec<u8>, serde_json::Error>,
    ) -> Result<Bytes, serde_json::Error> {
        if let Some(kept) = Self::kept(&self.slo_all)
            .as_ref()
            .filter(|k| k.generation == generation && generation != 0)
        {
            return Ok(kept.body.clone());
        }
        let body = Bytes::from(body()?);
        if generation != 0 {
            *Self::kept(&self.slo_all) = Some(Kept {
                at: Instant::now(),
                generation,
                body: body.clone(),
            });
        }
        Ok(body)
    }

    /// The page to send: the kept one when it is younger than `PAGE_MAX_AGE` and shows the latest SLO
    /// pass, or, older, while another request renders it again. Err: this caller renders it, and keeps it
    /// with the `Rendering` it holds.
    fn page(&self, generation: Option<u64>) -> Result<Bytes, Rendering<'_>> {
        let kept = Self::kept(&self.page);
        let Some(k) = kept.as_ref() else {
            return Err(Rendering(self));
        };
        if Some(k.generation) == generation && k.at.elapsed() < PAGE_MAX_AGE {
            return Ok(k.body.clone());
        }
        if self.rendering.swap(true, Ordering::AcqRel) {
            return Ok(k.body.clone());
        }
        Err(Rendering(self))
    }
}

/// A request rendering the page again; the others send the kept page until it is dropped.
struct Rendering<'a>(&'a Rendered);

impl Rendering<'_> {
    fn keep(self, generation: u64, body: Bytes) {
        *Rendered::kept(&self.0.page) = Some(Kept {
            at: Instant::now(),
            generation,
            body,
        });
    }
}

impl Drop for Rendering<'_> {
    fn drop(&mut self) {
        self.0.rendering.store(false, Ordering::Release);
    }
}

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
    let generation = state.slo.latest().map(|s| s.generation);
    let body = match state.answers.page(generation) {
        Ok(body) => {
            state
                .slo
                .nudge_if_older(core.clock.now(), crate::answers::slo::SNAPSHOT_MAX_AGE);
            body
        }
        Err(rendering) => {
            let page = answer::gather(
                &core.store,
                &core.config,
                &state.monitor,
                &state.slo,
                &state.answers.reads,
                core.clock.now(),
            )
            .await;
            let body = Bytes::from(render(&page));
            if let Some(generation) = generation {
                rendering.keep(generation, body.clone());
            }
            body
        }
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, STATUS_PAGE_CSP))
        .body(body)
}
