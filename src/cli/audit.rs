//! `hale audit`: the audit log read from the database directly, as a table or as JSON.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::{fail, EXIT_BAD_INPUT};

pub(super) async fn run(db: &Path, since: Option<String>, limit: u32, json: bool) -> ExitCode {
    use crate::answers::audit::{audit_entries, AuditParams};
    let params = AuditParams {
        since,
        limit: Some(limit.to_string()),
    };
    let (since, limit) = match params.parse() {
        Ok(parsed) => parsed,
        Err(e) => return fail(EXIT_BAD_INPUT, &e),
    };
    let store = match crate::store::Store::open_read_only(db).await {
        Ok(store) => store,
        Err(e) => return fail(EXIT_BAD_INPUT, &e.to_string()),
    };
    let entries = match audit_entries(&store, since, limit).await {
        Ok(entries) => entries,
        Err(e) => return fail(1, &format!("cannot read the audit log: {e}")),
    };
    store.close().await;
    if json {
        match serde_json::to_string_pretty(&entries) {
            Ok(text) => println!("{text}"),
            Err(e) => return fail(1, &format!("cannot print the audit log: {e}")),
        }
        return ExitCode::SUCCESS;
    }
    if entries.is_empty() {
        println!("no audit rows");
        return ExitCode::SUCCESS;
    }
    println!(
        "{:<24} {:<12} {:<8} {:<16} {:<7} {:<28} {:>6} {:<13} {:>7} request id",
        "time", "service", "role", "client", "method", "route", "status", "outcome", "count"
    );
    for e in entries {
        let route = match &e.target {
            Some(target) => format!("{} ({target})", e.route),
            None => e.route.clone(),
        };
        println!(
            "{:<24} {:<12} {:<8} {:<16} {:<7} {:<28} {:>6} {:<13} {:>7} {}",
            e.at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            e.service,
            e.role.as_deref().unwrap_or("-"),
            e.client,
            e.method,
            route,
            e.status,
            e.outcome.as_str(),
            e.count,
            e.request_id
        );
    }
    ExitCode::SUCCESS
}
