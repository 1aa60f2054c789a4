//! `GET /`: a server-rendered status page with no script and no external asset: the health score, each
//! target's current state (the monitor's latest results; nothing is checked for the page), its SLO status
//! and error budget left over the SLO window (the numbers `/slo` gives), any retroactive maintenance
//! window, uptime bars from the rollups (90 daily bars, or 48 hourly ones while the database holds less
//! than a week of history), the p95 over the SLO window, restarts this week, the alerts firing and, when
//! workflows are configured, the workflow runs in progress (running or waiting, newest first).
//! It refreshes itself every 30 s and carries a Content-Security-Policy that allows inline styles and
//! nothing else. Above `FULL_PAGE_UP_TO` targets it is paged (`?page=N`): a summary, the targets that need
//! attention, and one page of targets as compact rows.
//!
//! Nothing is computed per request: the SLOs are the refresher's last pass, the database reads are kept
//! (`answers::status_page::PageReads`; their whole reads, at start and hourly, are made in the background
//! by the `PageReader` worker, and until the first one is done the page shows the current states with a
//! note that the history is loading), what the pages show is gathered once per `PAGE_MAX_AGE`, and each
//! page as rendered is kept for `PAGE_MAX_AGE` (and until the next SLO pass) with its gzip copy and
//! `ETag` (`kept`), like `/slo`'s JSON pages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{get, web, HttpRequest, HttpResponse};

use crate::answers::status_page::{self as answer, PageParams, StatusPage};
use crate::http::{ApiError, ErrorBody};
use crate::services::health_proxy::kept::{Bounded, KeptBody};
use crate::services::health_proxy::HealthProxyState;
use crate::services::Core;

/// The page as HTML, from what `answers::status_page::gather` read (the markup lives in `status_html`).
pub use crate::services::health_proxy::status_html::{render, render_view};

/// How long a rendered page is sent again as it is: the monitor's latest results on it are at most this
/// old. On the process's monotonic time: a page is about the present, whatever hale's clock says.
pub const PAGE_MAX_AGE: Duration = Duration::from_secs(1);

/// How many of the status page's pages are kept at once (the others are rendered when asked for).
pub const PAGES_KEPT: usize = 32;
/// How many of `/slo`'s pages (distinct `limit` and `offset`) are kept at once.
pub const SLO_PAGES_KEPT: usize = 32;

/// Answers kept as sent, each with its gzip copy and `ETag`: the status page's pages (for `PAGE_MAX_AGE`,
/// and only for the SLO pass they show) and `/slo`'s pages (for one SLO pass). Both are bounded: only
/// valid page numbers exist, and at most `PAGES_KEPT` and `SLO_PAGES_KEPT` are kept.
#[derive(Debug)]
pub struct Rendered {
    pages: Mutex<Bounded<u32>>,
    /// Set while one request renders a page again: the others send the kept one meanwhile.
    rendering: AtomicBool,
    /// What the pages were last rendered from, for `PAGE_MAX_AGE` and one SLO pass: the other pages of
    /// the same moment are rendered from it without gathering again.
    gathered: Mutex<Option<(Instant, u64, Arc<StatusPage>)>>,
    slo_pages: Mutex<Bounded<(u32, u32)>>,
    /// What the page's database reads were when kept; the `PageReader` worker makes their whole reads.
    pub reads: Arc<answer::PageReads>,
}

impl Default for Rendered {
    fn default() -> Self {
        Self::new(Arc::new(answer::PageReads::default()))
    }
}

impl Rendered {
    /// Pages kept from `reads`, which a `PageReader` keeps read.
    pub fn new(reads: Arc<answer::PageReads>) -> Self {
        Self {
            pages: Mutex::new(Bounded::new(PAGES_KEPT)),
            rendering: AtomicBool::new(false),
            gathered: Mutex::new(None),
            slo_pages: Mutex::new(Bounded::new(SLO_PAGES_KEPT)),
            reads,
        }
    }
}

fn locked<T>(slot: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

impl Rendered {
    /// `/slo`'s page (`limit` entries after the first `offset`) for the SLO pass `generation`, serialized
    /// and compressed once per pass (generation 0, an answer evaluated before the first pass, is never
    /// kept).
    pub fn slo_page(
        &self,
        generation: u64,
        key: (u32, u32),
        body: impl FnOnce() -> Result<Vec<u8>, serde_json::Error>,
    ) -> Result<Arc<KeptBody>, serde_json::Error> {
        if generation != 0 {
            if let Some(kept) = locked(&self.slo_pages)
                .get(&key)
                .filter(|k| k.generation == generation)
            {
                return Ok(kept.clone());
            }
        }
        let kept = Arc::new(KeptBody::new(generation, Bytes::from(body()?)));
        if generation != 0 {
            locked(&self.slo_pages).keep(key, kept.clone());
        }
        Ok(kept)
    }

    /// Page `number` to send: the kept one when it is younger than `PAGE_MAX_AGE` and shows the latest SLO
    /// pass, or, older, while another request renders a page again. Err: this caller renders it, and
    /// keeps it with the `Rendering` it holds.
    fn page(&self, number: u32, generation: Option<u64>) -> Result<Arc<KeptBody>, Rendering<'_>> {
        let pages = locked(&self.pages);
        let Some(k) = pages.get(&number) else {
            return Err(Rendering::claim(self));
        };
        if Some(k.generation) == generation && k.at.elapsed() < PAGE_MAX_AGE {
            return Ok(k.clone());
        }
        if self.rendering.swap(true, Ordering::AcqRel) {
            return Ok(k.clone());
        }
        Err(Rendering(self, true))
    }

    /// What the pages show, gathered at most once per `PAGE_MAX_AGE` and SLO pass.
    async fn gathered(
        &self,
        core: &Core,
        state: &HealthProxyState,
        generation: Option<u64>,
    ) -> Arc<StatusPage> {
        if let Some((at, g, page)) = locked(&self.gathered).as_ref() {
            if Some(*g) == generation && at.elapsed() < PAGE_MAX_AGE {
                return page.clone();
            }
        }
        let page = Arc::new(
            answer::gather(
                &core.store,
                &core.config,
                &state.monitor,
                &state.slo,
                &self.reads,
                core.clock.now(),
            )
            .await,
        );
        if let Some(g) = generation {
            *locked(&self.gathered) = Some((Instant::now(), g, page.clone()));
        }
        page
    }
}

/// A request rendering a page again; the others send their kept page until it is dropped. The flag is
/// released on drop only by the request that set it.
struct Rendering<'a>(&'a Rendered, bool);

impl<'a> Rendering<'a> {
    fn claim(rendered: &'a Rendered) -> Self {
        let claimed = !rendered.rendering.swap(true, Ordering::AcqRel);
        Rendering(rendered, claimed)
    }

    fn keep(self, number: u32, body: Arc<KeptBody>) {
        locked(&self.0.pages).keep(number, body);
    }
}

impl Drop for Rendering<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.rendering.store(false, Ordering::Release);
        }
    }
}

/// Allows the page's inline styles and inline SVG (`data:` images), nothing else: no script at all.
pub const STATUS_PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Status page.
///
/// An HTML page for people. Up to 50 targets: the health score, each target's state, its SLO status (met,
/// at risk, breached, no data) and error budget left, any retroactive maintenance window, 90 days of daily
/// uptime (48 hourly bars while there is less than a week of history), the p95 over the SLO window,
/// restarts this week and the alerts firing.
///
/// More than 50 targets, one page of 50 at a time (`page`, 1 first): the score and the targets counted
/// by state and by SLO status; "needs attention", the first 25 targets that are not up or whose SLO is at
/// risk or breached, on every page (then "and N more", with links to `/health/all` and `/slo`); the
/// page's targets as table rows (state, SLO, availability, budget left, p95, uptime and a compact strip of
/// the same bars), with previous and next links; the first 25 firing alerts (then a link to
/// `/alerts/active`).
///
/// No script and no external asset; it refreshes every 30 s. Nothing is checked or rendered for a
/// request: each page is rendered at most once a second and per SLO pass, kept with its gzip copy (sent
/// to a request that accepts gzip) and an `ETag` (`If-None-Match` gets `304`).
#[utoipa::path(
    tag = "health",
    params(PageParams),
    responses(
        (status = 200, description = "The status page", content_type = "text/html", body = String, example = r#"<!DOCTYPE html>
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
"#),
        (status = 304, description = "The page the request's `If-None-Match` names is still current"),
        (status = 400, description = "`page` is not a page number; the message names it", body = ErrorBody),
    )
)]
#[get("/")]
pub async fn status_page(
    req: HttpRequest,
    core: web::Data<Core>,
    state: web::Data<HealthProxyState>,
    query: web::Query<PageParams>,
) -> Result<HttpResponse, ApiError> {
    let number = answer::page_number(&query, state.monitor.targets().len())?;
    let generation = state.slo.latest().map(|s| s.generation);
    let kept = match state.answers.page(number, generation) {
        Ok(kept) => {
            state
                .slo
                .nudge_if_older(core.clock.now(), crate::answers::slo::SNAPSHOT_MAX_AGE);
            kept
        }
        Err(rendering) => {
            let page = state.answers.gathered(&core, &state, generation).await;
            let body = Bytes::from(render_view(&page, number));
            let kept = Arc::new(KeptBody::new(generation.unwrap_or(0), body));
            if generation.is_some() {
                rendering.keep(number, kept.clone());
            }
            kept
        }
    };
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, STATUS_PAGE_CSP));
    Ok(kept.send(&req, response))
}
