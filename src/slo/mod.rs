//! SLO math, free of I/O: the latency histogram kept in hourly rollups (and, later, windows and budgets).

pub mod histogram;
pub mod model;

pub use model::{
    AvailabilitySlo, BurnRates, ErrorBudget, LatencySlo, RestartsSlo, SloMethod, SloStatus,
    SloWindow, TargetSlo,
};
