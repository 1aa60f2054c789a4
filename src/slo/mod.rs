//! SLOs: windows, maintenance windows (their stored types and the latency histogram live in `records`), and the evaluation of
//! every objective with its error budget and burn rates. The math is pure; `evaluate` reads the store, and
//! `report` explains the numbers in a report.

pub mod evaluate;
pub mod maintenance;
pub mod model;
pub mod refresher;
pub mod report;
pub mod window;

pub use evaluate::{
    evaluate, evaluate_names, evaluate_preloaded, maintenance_windows, rollup_span, SloError,
};
pub use maintenance::{MaintenanceSource, MaintenanceWindow};
pub use model::{
    AvailabilitySlo, BurnRates, ErrorBudget, LatencySlo, RestartsSlo, RetroactiveMaintenance,
    SloMethod, SloStatus, SloWindow, TargetSlo,
};
pub use refresher::SloRefresher;
