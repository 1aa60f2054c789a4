//! SLO math, free of I/O: the latency histogram kept in hourly rollups (and, later, windows and budgets);
//! `report` reads the store to explain them in a report.

pub mod histogram;
pub mod model;
pub mod report;

pub use model::{
    AvailabilitySlo, BurnRates, ErrorBudget, LatencySlo, RestartsSlo, SloMethod, SloStatus,
    SloWindow, TargetSlo,
};
