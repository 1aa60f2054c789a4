//! The Health Proxy, assembled: the monitor, and beside it the targets' children, heals, alerts, their
//! delivery, the maintenance calendar and the SLO gauges, each with its metrics in the service's registry.

use std::sync::Arc;

use actix_web::web;

use crate::alerts::{AlertEngine, Dispatcher};
use crate::answers::status_page::PageReader;
use crate::heal::{HealLoop, Healer};
use crate::metrics::{AlertMetrics, HealMetrics, HealthMetrics, SloMetrics};
use crate::probe::Monitor;
use crate::services::health_proxy::{HealthProxyState, Rendered};
use crate::services::{AssembleError, Assembled, ServiceState, Shared};
use crate::slo::maintenance::MaintenanceCalendar;
use crate::slo::{SloBoard, SloRefresher};
use crate::supervise::Supervisor;
use crate::worker::Worker;

/// Builds the Health Proxy's state and its workers, in the order they stop.
pub async fn assemble(shared: &Shared) -> Result<Assembled, AssembleError> {
    let core = &shared.core;
    let config = &core.config;
    let registry = shared.metrics.registry();
    let health_metrics = HealthMetrics::register(&shared.metrics, &shared.start_labels);
    let monitor = Arc::new(
        Monitor::new(
            config,
            core.store.clone(),
            core.writer.clone(),
            health_metrics,
            shared.events.clone(),
            core.clock.clone(),
        )
        .await?
        .with_mcp(shared.mcp.clone()),
    );
    let heal_metrics = HealMetrics::register(registry);
    heal_metrics.start_series(&shared.start_labels);
    let alert_metrics = AlertMetrics::register(registry);
    alert_metrics.start_series(&shared.start_labels);
    let supervisor = Arc::new(Supervisor::new(
        config,
        core.store.clone(),
        shared.events.clone(),
        core.clock.clone(),
        heal_metrics.clone(),
    ));
    let dispatcher = Arc::new(Dispatcher::new(
        config.alerts.channels.clone(),
        core.store.clone(),
        core.clock.clone(),
        alert_metrics.clone(),
    ));
    // One calendar for both, so a window posted to the API reaches them with one read.
    let maintenance = Arc::new(MaintenanceCalendar::new(
        core.store.clone(),
        config,
        core.clock.clone(),
    ));
    let healer = Arc::new(Healer::new(
        config,
        monitor.clone(),
        supervisor.clone(),
        core.store.clone(),
        shared.events.clone(),
        core.clock.clone(),
        heal_metrics,
        maintenance.clone(),
    ));
    let engine = Arc::new(AlertEngine::new(
        config,
        core.store.clone(),
        &shared.events,
        core.clock.clone(),
        dispatcher.clone(),
        alert_metrics,
        maintenance.clone(),
    ));
    // Keeps every target's SLO (for `/slo` and the status page) and the `slo_*` gauges up to date.
    let slo = Arc::new(SloBoard::new());
    let slo_refresher = Arc::new(SloRefresher::new(
        config.clone(),
        core.store.clone(),
        core.clock.clone(),
        SloMetrics::register(registry),
        slo.clone(),
        core.writer.clone(),
    ));
    // Producers first, so they stop first: heals and alerts follow the monitor's events, delivery drains
    // what the alerts send, and the children stop after everything that could restart them or report on
    // them.
    // The status page's whole reads (90 days of rollups) in the background, from start: no request waits
    // for them. It feeds nothing, so it stops first.
    let answers = Arc::new(Rendered::default());
    let page_reader = Arc::new(PageReader::new(
        answers.reads.clone(),
        core.store.clone(),
        core.clock.clone(),
    ));
    let workers: Vec<Arc<dyn Worker>> = vec![
        page_reader,
        monitor.clone(),
        Arc::new(HealLoop::new(healer.clone())),
        engine,
        slo_refresher,
        dispatcher.clone(),
        supervisor.clone(),
    ];
    Ok(Assembled {
        state: ServiceState::HealthProxy(web::Data::new(HealthProxyState {
            monitor,
            healer,
            supervisor,
            maintenance,
            dispatcher,
            slo,
            answers,
        })),
        workers,
    })
}
