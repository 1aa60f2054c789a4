//! SLOs: windows, maintenance windows, and the evaluation of every objective with its error budget and burn
//! rates (the latency histogram and the stored maintenance types live in `records`). The arithmetic is pure
//! (`arithmetic`, over counts); `evaluate` reads the store, and `report` explains the numbers in a report.

pub mod arithmetic;
pub mod board;
pub mod evaluate;
pub mod ledger;
pub mod maintenance;
pub mod model;
pub mod refresher;
pub mod report;
pub mod window;

pub use board::{SloBoard, SloSnapshot};
pub use evaluate::{
    evaluate, evaluate_names, evaluate_preloaded, maintenance_windows, maintenance_windows_of,
    rollup_span, SloError,
};
pub use ledger::SloLedger;
pub use maintenance::{MaintenanceSource, MaintenanceWindow};
pub use model::{
    AvailabilitySlo, BurnRates, ErrorBudget, LatencySlo, RestartsSlo, RetroactiveMaintenance,
    SloMethod, SloStatus, SloWindow, TargetSlo,
};
pub use refresher::SloRefresher;
