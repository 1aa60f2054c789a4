//! `hale slo report`: each target's SLOs over a window, with what explains them (daily availability, the
//! worst hours, restarts, heals, alerts), as Markdown, JSON (`version` 1) or one self-contained HTML file.
//! Works on the database alone, opened read-only: hale need not run. `data` reads, the others render.

pub mod data;
pub mod html;
pub mod json;
pub mod markdown;
#[cfg(test)]
pub mod sample;
pub mod svg;

pub use data::{build, open_database, parse_window, Report, ReportError, TargetReport, Verdict};

/// The formats a report renders to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    Markdown,
    Json,
    Html,
}

/// The report in one format.
pub fn render(report: &Report, format: ReportFormat) -> String {
    match format {
        ReportFormat::Markdown => markdown::render(report),
        ReportFormat::Json => json::render(report),
        ReportFormat::Html => html::render(report),
    }
}
