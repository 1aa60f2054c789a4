//! SLO math, free of I/O: the latency histogram kept in hourly rollups (and, later, windows and budgets).

pub mod histogram;
