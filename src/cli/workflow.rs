//! `hale workflow list|start|status|approve|reject|cancel`: the Boss API's workflow routes for a person at a
//! terminal, over HTTP to the running hale (`--url`, or the config's `listen.boss_api`; the bearer token from
//! `HALE_TOKEN`, never printed). Exit 0 on success, 1 when hale cannot be reached or refuses, 2 for bad flags
//! or inputs (also when the Boss API answers 400 or 422); `status --follow` exits 0 only for a run that ended
//! `succeeded`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::AUTHORIZATION;
use serde_json::{json, Map, Value};

use crate::cli::mcp::{env_token, listen_addr_of};
use crate::cli::{fail, EXIT_BAD_INPUT};
use crate::config::DEFAULT_CONFIG_PATH;
use crate::kind::ServiceKind;
use crate::ops::base_url;

/// How long one request to the Boss API may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `--follow` reads the run again.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);
/// The run states after which nothing changes.
const ENDED: [&str; 5] = [
    "succeeded",
    "failed",
    "timed_out",
    "cancelled",
    "interrupted",
];
/// The widest a step's output or error is shown in the table.
const CELL_WIDTH: usize = 72;

/// `hale workflow ...`.
#[derive(Debug, clap::Args)]
pub struct WorkflowArgs {
    #[command(subcommand)]
    pub what: WorkflowCommand,
    /// The Boss API's base URL (default: `http://` and the config's `listen.boss_api`).
    #[arg(long, env = "HALE_BOSS_URL", global = true)]
    pub url: Option<String>,
    /// The JSON config file, for the Boss API's address.
    #[arg(long, env = "HALE_CONFIG", default_value = DEFAULT_CONFIG_PATH, global = true)]
    pub config: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum WorkflowCommand {
    /// The configured workflows: steps, risk, whether a run needs approval, concurrency.
    List {
        /// The JSON of `GET /workflows` instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Start a run (the bearer token with the operate role from HALE_TOKEN); prints its id and state.
    Start {
        /// The workflow's id.
        id: String,
        /// An input as NAME=VALUE, typed by the workflow's declared input type (integer, number, boolean
        /// parsed); repeat for more. Given after `--inputs-json`, so it wins over it.
        #[arg(long = "input", value_name = "NAME=VALUE")]
        inputs: Vec<String>,
        /// Inputs as one JSON object.
        #[arg(long, value_name = "JSON")]
        inputs_json: Option<String>,
        /// Why the run is started: kept with it.
        #[arg(long, default_value = "")]
        reason: String,
        /// An Idempotency-Key: a second start with the same key gives the same run.
        #[arg(long, value_name = "IDEMPOTENCY_KEY")]
        key: Option<String>,
        /// Then show the run live until it ends (exit 0 when it succeeded).
        #[arg(long)]
        follow: bool,
    },
    /// A run's steps (state, attempts, latest error, output), approvals and state; or, with `--workflow`, a
    /// workflow's status.
    Status {
        /// The run's id.
        #[arg(required_unless_present = "workflow", conflicts_with = "workflow")]
        run_id: Option<i64>,
        /// A workflow's definition, latest run and counts instead of one run.
        #[arg(long, value_name = "ID")]
        workflow: Option<String>,
        /// Redraw every second until the run ends; exit 0 when it ended succeeded, 1 otherwise.
        #[arg(long, conflicts_with = "json")]
        follow: bool,
        /// The JSON of the route instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Approve the open approval of a waiting run.
    Approve(RunAction),
    /// Reject the open approval of a waiting run (the run ends cancelled).
    Reject(RunAction),
    /// Cancel a run that has not ended.
    Cancel(RunAction),
}

#[derive(Debug, clap::Args)]
pub struct RunAction {
    /// The run's id.
    pub run_id: i64,
    /// Why: kept with the run.
    #[arg(long)]
    pub reason: Option<String>,
}

/// Why a command stopped: the message and the exit status.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn bad_input(message: String) -> Self {
        Self {
            code: EXIT_BAD_INPUT,
            message,
        }
    }

    fn exit(&self) -> ExitCode {
        fail(self.code, &self.message)
    }
}

/// The running hale's Boss API.
struct Boss {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Boss {
    fn new(args: &WorkflowArgs) -> Result<Self, Failure> {
        let base = match &args.url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => listen_addr_of(&args.config, ServiceKind::BossApi)
                .and_then(base_url)
                .map_err(Failure::bad_input)?,
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| Failure {
                code: 1,
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(Self {
            base,
            token: env_token(),
            http,
        })
    }

    async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
            .map(|(_, body)| body)
    }

    async fn post(
        &self,
        path: &str,
        body: &Value,
        key: Option<&str>,
    ) -> Result<(u16, Value), Failure> {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        self.send(request).await
    }

    async fn send(&self, mut request: reqwest::RequestBuilder) -> Result<(u16, Value), Failure> {
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = request.send().await.map_err(|e| Failure {
            code: 1,
            message: if e.is_connect() || e.is_timeout() {
                format!("hale is not answering at {} (is it running?)", self.base)
            } else {
                format!("cannot reach hale at {}: {}", self.base, e.without_url())
            },
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| Failure {
            code: 1,
            message: format!("hale at {} broke off its answer: {e}", self.base),
        })?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok((status, body));
        }
        let message = body["error"]["message"]
            .as_str()
            .map_or_else(|| format!("hale answered {status}"), str::to_owned);
        Err(Failure {
            code: if status == 400 || status == 422 {
                EXIT_BAD_INPUT
            } else {
                1
            },
            message,
        })
    }
}

pub(super) async fn run(args: WorkflowArgs) -> ExitCode {
    match command(args).await {
        Ok(code) => code,
        Err(failure) => failure.exit(),
    }
}

async fn command(args: WorkflowArgs) -> Result<ExitCode, Failure> {
    let boss = Boss::new(&args)?;
    let colour = crate::ops::status::colour_wanted();
    match args.what {
        WorkflowCommand::List { json } => {
            let list = boss.get("/workflows").await?;
            if json {
                print_json(&list);
            } else {
                print!("{}", render_list(&list));
            }
            Ok(ExitCode::SUCCESS)
        }
        WorkflowCommand::Start {
            id,
            inputs,
            inputs_json,
            reason,
            key,
            follow,
        } => {
            let list = boss.get("/workflows").await?;
            let declared = declared_inputs(&list, &id)?;
            let inputs = typed_inputs(&declared, inputs_json.as_deref(), &inputs)?;
            let (status, run) = boss
                .post(
                    &format!("/workflow/{}/start", segment(&id)),
                    &json!({"inputs": inputs, "reason": reason}),
                    key.as_deref(),
                )
                .await?;
            let run_id = run["id"].as_i64().unwrap_or(0);
            let state = run["state"].as_str().unwrap_or("?");
            let existing = if status == 200 {
                " (an existing run with this key)"
            } else {
                ""
            };
            println!("run {run_id} of {id}: {state}{existing}");
            if follow {
                follow_run(&boss, run_id, colour).await
            } else {
                Ok(ExitCode::SUCCESS)
            }
        }
        WorkflowCommand::Status {
            run_id,
            workflow,
            follow,
            json,
        } => match (run_id, workflow) {
            (_, Some(workflow)) => {
                let status = boss
                    .get(&format!("/workflow/{}/status", segment(&workflow)))
                    .await?;
                if json {
                    print_json(&status);
                } else {
                    print!("{}", render_workflow_status(&status, colour));
                }
                Ok(ExitCode::SUCCESS)
            }
            (Some(run_id), None) if follow => follow_run(&boss, run_id, colour).await,
            (Some(run_id), None) => {
                let detail = boss.get(&format!("/runs/{run_id}")).await?;
                if json {
                    print_json(&detail);
                } else {
                    print!("{}", render_run(&detail, colour));
                }
                Ok(ExitCode::SUCCESS)
            }
            (None, None) => Err(Failure::bad_input(
                "name a run id, or a workflow with --workflow".to_owned(),
            )),
        },
        WorkflowCommand::Approve(action) => act(&boss, "approve", &action).await,
        WorkflowCommand::Reject(action) => act(&boss, "reject", &action).await,
        WorkflowCommand::Cancel(action) => act(&boss, "cancel", &action).await,
    }
}

/// `approve`, `reject` or `cancel` of a run.
async fn act(boss: &Boss, verb: &str, action: &RunAction) -> Result<ExitCode, Failure> {
    let (_, answer) = boss
        .post(
            &format!("/runs/{}/{verb}", action.run_id),
            &json!({"reason": action.reason}),
            None,
        )
        .await?;
    let run = action.run_id;
    match verb {
        "cancel" => println!(
            "run {run}: {}",
            answer["state"].as_str().unwrap_or("cancel asked")
        ),
        _ => println!(
            "run {run}: step {} {}",
            answer["step"].as_str().unwrap_or("?"),
            answer["decision"].as_str().unwrap_or(verb)
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Shows the run until it ends: the screen redrawn on a terminal, else printed each time it changes.
async fn follow_run(boss: &Boss, run_id: i64, colour: bool) -> Result<ExitCode, Failure> {
    let terminal = std::io::stdout().is_terminal();
    let mut last = String::new();
    loop {
        let detail = boss.get(&format!("/runs/{run_id}")).await?;
        let screen = render_run(&detail, colour);
        if screen != last {
            let mut out = std::io::stdout().lock();
            let clear = if terminal { "\x1b[2J\x1b[H" } else { "" };
            let separator = if !terminal && !last.is_empty() {
                "\n"
            } else {
                ""
            };
            let _ = write!(out, "{clear}{separator}{screen}");
            let _ = out.flush();
            last = screen;
        }
        let state = detail["run"]["state"].as_str().unwrap_or("");
        if ENDED.contains(&state) {
            return Ok(if state == "succeeded" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// A workflow id as one path segment (ids are names, but a typo with `/` must not reach another route).
fn segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn print_json(value: &Value) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(_) => println!("{value}"),
    }
}

/// The declared inputs (name → type) of workflow `id` in `GET /workflows`.
fn declared_inputs(list: &Value, id: &str) -> Result<BTreeMap<String, String>, Failure> {
    let workflow = list
        .as_array()
        .and_then(|all| all.iter().find(|w| w["id"] == id))
        .ok_or_else(|| Failure {
            code: 1,
            message: format!("no workflow named {id:?}; `hale workflow list` lists them"),
        })?;
    Ok(workflow["inputs"]
        .as_object()
        .map(|inputs| {
            inputs
                .iter()
                .map(|(name, spec)| {
                    let kind = spec["type"].as_str().unwrap_or("string").to_owned();
                    (name.clone(), kind)
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The inputs of a start: `--inputs-json`, then each `--input NAME=VALUE` typed by its declared type (an
/// undeclared name goes as a string, for the Boss API to refuse by name).
fn typed_inputs(
    declared: &BTreeMap<String, String>,
    inputs_json: Option<&str>,
    pairs: &[String],
) -> Result<Map<String, Value>, Failure> {
    let mut inputs = match inputs_json {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(Failure::bad_input(
                    "--inputs-json: not a JSON object".to_owned(),
                ))
            }
            Err(e) => return Err(Failure::bad_input(format!("--inputs-json: {e}"))),
        },
    };
    for pair in pairs {
        let Some((name, text)) = pair.split_once('=') else {
            return Err(Failure::bad_input(format!(
                "--input {pair:?}: write NAME=VALUE"
            )));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(Failure::bad_input(format!(
                "--input {pair:?}: the name is empty"
            )));
        }
        let kind = declared.get(name).map_or("string", String::as_str);
        let value = typed_value(kind, text).ok_or_else(|| {
            Failure::bad_input(format!(
                "--input {name}: {text:?} is not {}; the input {name} is declared {kind}",
                match kind {
                    "integer" => "an integer",
                    "number" => "a number",
                    _ => "true or false",
                }
            ))
        })?;
        inputs.insert(name.to_owned(), value);
    }
    Ok(inputs)
}

fn typed_value(kind: &str, text: &str) -> Option<Value> {
    match kind {
        "integer" => text.trim().parse::<i64>().ok().map(Value::from),
        "number" => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        "boolean" => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Some(Value::Bool(true)),
            "false" | "no" | "0" => Some(Value::Bool(false)),
            _ => None,
        },
        _ => Some(Value::String(text.to_owned())),
    }
}

/// A cell painter for one column: its index and the function.
type Painted<'a> = Option<(usize, &'a dyn Fn(&str) -> String)>;

/// Rows as columns padded to their widest cell (padded before painting, so colour codes never break the
/// alignment); the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>], painted: Painted<'_>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: &[&str], paint: bool| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            let padding = " ".repeat(width.saturating_sub(cell.chars().count()));
            let shown = match painted {
                Some((column, f)) if paint && column == i => f(cell),
                _ => (*cell).to_owned(),
            };
            text.push_str(&shown);
            if i != last {
                text.push_str(&padding);
                text.push_str("  ");
            }
        }
        format!("{}\n", text.trim_end())
    };
    let mut out = line(header, false);
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        out.push_str(&line(&cells, true));
    }
    out
}

fn render_list(list: &Value) -> String {
    let workflows = list.as_array().cloned().unwrap_or_default();
    if workflows.is_empty() {
        return "no workflows configured (the config's workflows.definitions)\n".to_owned();
    }
    let rows: Vec<Vec<String>> = workflows
        .iter()
        .map(|w| {
            let steps = w["steps"]
                .as_array()
                .map(|steps| {
                    steps
                        .iter()
                        .map(|s| format!("{}({})", text(&s["id"]), text(&s["kind"])))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let c = &w["concurrency"];
            let mut concurrency = format!(
                "{} {}",
                c["limit"].as_u64().unwrap_or(1),
                c["on_conflict"].as_str().unwrap_or("queue")
            );
            if let Some(key) = c["key"].as_str() {
                let _ = write!(concurrency, " per {key}");
            }
            let inputs = w["inputs"]
                .as_object()
                .map(|inputs| {
                    inputs
                        .iter()
                        .map(|(name, spec)| {
                            let optional = if spec["required"] == false { "?" } else { "" };
                            format!("{name}{optional}:{}", text(&spec["type"]))
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            vec![
                text(&w["id"]),
                text(&w["risk"]),
                if w["approval_required"] == true {
                    "yes".to_owned()
                } else {
                    "no".to_owned()
                },
                concurrency,
                if inputs.is_empty() {
                    "-".to_owned()
                } else {
                    inputs
                },
                steps,
            ]
        })
        .collect();
    table(
        &[
            "WORKFLOW",
            "RISK",
            "APPROVAL",
            "CONCURRENCY",
            "INPUTS",
            "STEPS",
        ],
        &rows,
        None,
    )
}

/// A JSON string as it is, anything else as JSON, null as `-`.
fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An RFC 3339 time as `YYYY-MM-DD HH:MM:SSZ`.
fn time(value: &Value) -> String {
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(
            || text(value),
            |t| {
                t.with_timezone(&Utc)
                    .format("%Y-%m-%d %H:%M:%SZ")
                    .to_string()
            },
        )
}

/// The first line of `text`, cut to `CELL_WIDTH` characters.
fn first_line(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let mut cut: String = line.chars().take(CELL_WIDTH).collect();
    if line.chars().count() > CELL_WIDTH || text.trim().lines().count() > 1 {
        cut.push('…');
    }
    cut
}

/// What a step gave, in a line: a command's stdout, a string, or the JSON.
fn output_line(output: &Value) -> String {
    match output {
        Value::Null => String::new(),
        Value::String(s) => first_line(s),
        Value::Object(o) => match o.get("stdout").and_then(Value::as_str) {
            Some(stdout) if !stdout.trim().is_empty() => first_line(stdout),
            _ => first_line(&output.to_string()),
        },
        other => first_line(&other.to_string()),
    }
}

fn paint(colour: bool, state: &str) -> String {
    let code = match state {
        "succeeded" | "approved" | "automatic" => "32",
        "failed" | "timed_out" | "interrupted" | "rejected" | "expired" => "31",
        "running" | "waiting" | "queued" | "open" => "33",
        _ => return state.to_owned(),
    };
    if colour {
        format!("\x1b[{code}m{state}\x1b[0m")
    } else {
        state.to_owned()
    }
}

/// One run: its state line, its steps and its approvals.
fn render_run(detail: &Value, colour: bool) -> String {
    let run = &detail["run"];
    let state = run["state"].as_str().unwrap_or("?");
    let mut out = String::new();
    let _ = write!(
        out,
        "run {} of {}: {}",
        text(&run["id"]),
        text(&run["workflow"]),
        paint(colour, state)
    );
    if let Some(reason) = run["wait_reason"].as_str() {
        let _ = write!(out, " for {reason}");
        if !run["wake_at"].is_null() {
            let until = if reason == "approval" {
                "expires"
            } else {
                "wakes"
            };
            let _ = write!(out, " ({until} {})", time(&run["wake_at"]));
        }
    }
    out.push('\n');
    if let Some(reason) = run["reason"].as_str().filter(|r| !r.is_empty()) {
        let _ = writeln!(out, "reason: {reason}");
    }
    let _ = writeln!(
        out,
        "created {}, started {}, finished {}, deadline {}",
        time(&run["created_at"]),
        time(&run["started_at"]),
        time(&run["finished_at"]),
        time(&run["deadline"])
    );
    if let Some(error) = run["error"].as_str() {
        let _ = writeln!(out, "error: {error}");
    }
    out.push('\n');
    // A sleeping run is stored at the step after its sleep: the sleep is the step it waits at.
    let at = match run["step_index"].as_u64().unwrap_or(0) {
        after if run["wait_reason"] == "sleep" => after.saturating_sub(1),
        at => at,
    };
    let ended = ENDED.contains(&state);
    let steps = detail["steps"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = steps
        .iter()
        .map(|step| {
            let attempts = step["attempts"].as_array().cloned().unwrap_or_default();
            let latest = attempts.last();
            let index = step["index"].as_u64().unwrap_or(0);
            let step_state = match latest {
                _ if index == at && !ended => match latest {
                    Some(a) if a["state"] == "running" => "running".to_owned(),
                    _ => state.to_owned(),
                },
                Some(a) => a["state"].as_str().unwrap_or("?").to_owned(),
                None if ended => "not run".to_owned(),
                None => "pending".to_owned(),
            };
            let detail = match latest {
                Some(a) if !a["error"].is_null() => {
                    format!("error: {}", first_line(&text(&a["error"])))
                }
                Some(a) => output_line(&a["output"]),
                None => String::new(),
            };
            vec![
                text(&step["id"]),
                text(&step["kind"]),
                text(&step["risk"]),
                step_state,
                attempts.len().to_string(),
                detail,
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "STEP",
            "KIND",
            "RISK",
            "STATE",
            "ATTEMPTS",
            "OUTPUT / LATEST ERROR",
        ],
        &rows,
        Some((3, &|cell: &str| paint(colour, cell))),
    ));
    let approvals = detail["approvals"].as_array().cloned().unwrap_or_default();
    if !approvals.is_empty() {
        out.push_str("\napprovals:\n");
        for a in &approvals {
            let decision = a["decision"].as_str().unwrap_or("open");
            let _ = write!(
                out,
                "  step {} ({} risk): {}",
                text(&a["step"]),
                text(&a["risk"]),
                paint(colour, decision)
            );
            if a["decision"].is_null() {
                let _ = write!(out, ", expires {}", time(&a["expires_at"]));
            } else {
                let _ = write!(out, " at {}", time(&a["decided_at"]));
                if let Some(by) = a["decided_by_role"].as_str() {
                    let _ = write!(out, " by {by}");
                }
            }
            if let Some(reason) = a["reason"].as_str() {
                let _ = write!(out, " ({reason})");
            }
            out.push('\n');
        }
    }
    out
}

/// A workflow's status: what it is, its counts and its latest run.
fn render_workflow_status(status: &Value, colour: bool) -> String {
    let w = &status["workflow"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "workflow {}: {} risk, approval {}",
        text(&w["id"]),
        text(&w["risk"]),
        if w["approval_required"] == true {
            "required"
        } else {
            "not required"
        }
    );
    if let Some(description) = w["description"].as_str() {
        let _ = writeln!(out, "{description}");
    }
    let counts = status["counts"]
        .as_object()
        .map(|c| {
            c.iter()
                .map(|(state, n)| format!("{state} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "none".to_owned());
    let _ = writeln!(out, "runs: {counts}");
    let latest = &status["latest_run"];
    if latest.is_null() {
        out.push_str("latest run: none\n");
    } else {
        let _ = write!(
            out,
            "latest run: {} {}",
            text(&latest["id"]),
            paint(colour, latest["state"].as_str().unwrap_or("?"))
        );
        if let Some(step) = latest["step"].as_str() {
            let _ = write!(out, " at step {step}");
        }
        let _ = writeln!(out, ", created {}", time(&latest["created_at"]));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn declared() -> BTreeMap<String, String> {
        [
            ("n", "integer"),
            ("x", "number"),
            ("on", "boolean"),
            ("s", "string"),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect()
    }

    #[test]
    fn inputs_are_typed_by_their_declared_type_and_win_over_the_json() {
        let pairs: Vec<String> = ["n=3", "x=2.5", "on=true", "s=12", "other=a=b"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        let inputs = typed_inputs(&declared(), Some(r#"{"n": 1, "kept": [1]}"#), &pairs)
            .ok()
            .unwrap();
        assert_eq!(
            Value::Object(inputs),
            json!({"n": 3, "x": 2.5, "on": true, "s": "12", "other": "a=b", "kept": [1]})
        );
    }

    #[test]
    fn a_bad_input_is_named_with_its_type() {
        let bad = typed_inputs(&declared(), None, &["n=three".to_owned()])
            .err()
            .unwrap();
        assert_eq!(bad.code, EXIT_BAD_INPUT);
        assert!(bad.message.contains("--input n") && bad.message.contains("integer"));
        for pair in ["on=maybe", "x=NaN", "novalue", "=1"] {
            assert!(
                typed_inputs(&declared(), None, &[pair.to_owned()]).is_err(),
                "{pair}"
            );
        }
        assert!(typed_inputs(&declared(), Some("[1]"), &[]).is_err());
    }

    #[test]
    fn a_waiting_run_shows_the_step_it_waits_at_and_the_open_approval() {
        let detail = json!({
            "run": {"id": 4, "workflow": "risky", "state": "waiting", "wait_reason": "approval",
                    "wake_at": "2026-12-05T18:00:00Z", "step_index": 1, "reason": "test",
                    "created_at": "2026-12-05T10:00:00Z", "deadline": "2026-12-05T11:00:00Z"},
            "steps": [
                {"index": 0, "id": "hello", "kind": "command", "risk": "low",
                 "attempts": [{"attempt": 1, "state": "succeeded", "output": {"exit_code": 0, "stdout": "hi\nthere\n"}}]},
                {"index": 1, "id": "root", "kind": "command", "risk": "high", "attempts": []}
            ],
            "approvals": [{"step": "root", "risk": "high", "decision": null, "expires_at": "2026-12-05T18:00:00Z"}]
        });
        let screen = render_run(&detail, false);
        assert!(
            screen
                .starts_with("run 4 of risky: waiting for approval (expires 2026-12-05 18:00:00Z)"),
            "{screen}"
        );
        assert!(
            screen
                .lines()
                .any(|l| l.starts_with("hello") && l.contains("succeeded") && l.ends_with("hi…")),
            "{screen}"
        );
        assert!(
            screen
                .lines()
                .any(|l| l.starts_with("root") && l.contains("waiting")),
            "{screen}"
        );
        assert!(
            screen.contains("step root (high risk): open, expires 2026-12-05 18:00:00Z"),
            "{screen}"
        );
        let coloured = render_run(&detail, true);
        assert!(coloured.contains("\x1b[32msucceeded\x1b[0m"), "{coloured}");
    }

    #[test]
    fn a_workflow_id_stays_one_path_segment() {
        assert_eq!(segment("restart-api_2"), "restart-api_2");
        assert_eq!(segment("../status"), "%2E%2E%2Fstatus");
    }
}
