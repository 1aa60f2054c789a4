//! The report as JSON: the `Report` structure as is, `version` 1 (docs/reports.md documents every field).
//! Fields are added, never renamed or removed, without a new version.

use crate::slo::report::Report;

pub fn render(report: &Report) -> String {
    // Plain data (strings, numbers, times): serialising it cannot fail.
    serde_json::to_string_pretty(report).map_or_else(
        |e| {
            serde_json::json!({ "version": report.version, "error": e.to_string() }).to_string()
                + "\n"
        },
        |text| text + "\n",
    )
}
