//! hale keeps a handful of HTTP services healthy and proves it with numbers.
//! The modules, in reading order: the command line and the app that wires everything, then the parts.

pub mod alerts;
pub mod answers;
pub mod app;
pub mod auth;
pub mod backoff;
pub mod breaker;
pub mod cli;
pub mod clock;
pub mod config;
pub mod events;
pub mod export;
pub mod heal;
pub mod history;
pub mod http;
pub mod kind;
pub mod limits;
pub mod markdown;
pub mod mcp;
pub mod metrics;
pub mod ops;
pub mod probe;
pub mod process;
pub mod records;
pub mod selfwatch;
pub mod services;
pub mod slo;
pub mod store;
pub mod supervise;
pub mod telemetry;
pub mod worker;
pub mod workflows;
