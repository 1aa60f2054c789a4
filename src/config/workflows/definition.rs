//! Workflow definitions (`workflows.definitions`): their types, read from JSON with unknown fields refused,
//! and their validation, with errors that name the JSON path (`$.workflows.definitions[0].steps[2].timeout_s`).
//! A `Workflow` can only be built by `Definitions::from_json`, so every one in hand is valid: its ids are
//! names, its templates name declared inputs and earlier steps, its literal targets exist, and each step
//! carries its risk.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::workflows::risk::{self, Risk, RiskConfig, RiskLevel, StepSummary};
use crate::config::workflows::template::{JsonTemplate, Scope, Template};
use crate::config::{refuse_token_variables, Config, HttpMethod, Invalid, RunConfig, TokenSource};

/// The longest id of a workflow, a step or an input.
pub const MAX_NAME_LEN: usize = 64;
/// The longest deadline of a run and timeout of a step: a week.
pub const MAX_DURATION_S: u64 = 7 * 24 * 3600;
/// How much of a command's output is kept, at most.
pub const MAX_OUTPUT_CAP_BYTES: u64 = 16 * 1024 * 1024;

/// What the engine needs to know of the rest of the config to check definitions: the targets (and which
/// are critical) and the environment variables that hold role tokens.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Each target's name and whether it is critical.
    pub targets: Vec<(String, bool)>,
    /// (role, variable) for every token read from the environment.
    pub token_variables: Vec<(&'static str, String)>,
}

impl Environment {
    pub fn of(config: &Config) -> Self {
        Self {
            targets: config
                .services
                .iter()
                .map(|t| (t.name.as_str().to_owned(), t.critical))
                .collect(),
            token_variables: config
                .auth
                .sources()
                .into_iter()
                .filter_map(|(role, source)| match source {
                    Some(TokenSource::Env(var)) => Some((role, var.clone())),
                    _ => None,
                })
                .collect(),
        }
    }

    fn target(&self, name: &str) -> Option<bool> {
        self.targets
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, critical)| *critical)
    }
}

/// Every workflow of the config, valid, and the risk rules they were scored with.
#[derive(Debug, Clone, PartialEq)]
pub struct Definitions {
    workflows: Vec<Workflow>,
    risk: RiskConfig,
    max_running: u32,
}

impl Default for Definitions {
    fn default() -> Self {
        Self {
            workflows: Vec::new(),
            risk: RiskConfig::default(),
            max_running: DEFAULT_MAX_RUNNING,
        }
    }
}

/// How many runs may be running at once, across workflows, unless the section says.
pub const DEFAULT_MAX_RUNNING: u32 = 4;

/// The `workflows` section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default)]
    definitions: Vec<Value>,
    #[serde(default)]
    risk: RiskConfig,
    /// The global cap on running runs; more wait in the queue.
    #[serde(default = "default_max_running")]
    max_running: u32,
}

fn default_max_running() -> u32 {
    DEFAULT_MAX_RUNNING
}

impl Definitions {
    /// Reads and checks the `workflows` section (`{}`, or `{"definitions": [...], "risk": {...}}`).
    pub fn from_json(value: &Value, env: &Environment) -> Result<Self, Invalid> {
        let section: Section = typed(value, "workflows")?;
        section.risk.validate("workflows.risk")?;
        range(
            "workflows",
            "max_running",
            u64::from(section.max_running),
            1,
            1_000,
        )?;
        let mut workflows: Vec<Workflow> = Vec::with_capacity(section.definitions.len());
        for (i, raw) in section.definitions.iter().enumerate() {
            let at = format!("workflows.definitions[{i}]");
            let workflow = Workflow::from_json(raw, &at, env, &section.risk)?;
            if workflows.iter().any(|w| w.id == workflow.id) {
                return Err(Invalid::at(
                    format!("{at}.id"),
                    format!(
                        "{} is the id of an earlier workflow; ids are unique",
                        workflow.id
                    ),
                ));
            }
            workflows.push(workflow);
        }
        Ok(Self {
            workflows,
            risk: section.risk,
            max_running: section.max_running,
        })
    }

    /// The global cap on running runs.
    pub fn max_running(&self) -> u32 {
        self.max_running
    }

    pub fn get(&self, id: &str) -> Option<&Workflow> {
        self.workflows.iter().find(|w| w.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Workflow> {
        self.workflows.iter()
    }

    pub fn risk(&self) -> &RiskConfig {
        &self.risk
    }
}

/// One workflow, valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflow {
    pub id: String,
    pub description: Option<String>,
    pub inputs: BTreeMap<String, InputSpec>,
    pub deadline: Duration,
    pub concurrency: Concurrency,
    pub steps: Vec<Step>,
    /// The definition as written: the copy a run keeps, so a config change never alters a run in progress.
    pub source: Value,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkflow {
    id: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    inputs: BTreeMap<String, InputSpec>,
    #[serde(default = "default_deadline_s")]
    deadline_s: u64,
    #[serde(default)]
    concurrency: Concurrency,
    steps: Vec<Value>,
}

fn default_deadline_s() -> u64 {
    3600
}

/// A declared input of a workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    #[serde(rename = "type")]
    pub kind: InputType,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    String,
    Integer,
    Number,
    Boolean,
}

impl InputType {
    fn accepts(self, value: &Value) -> bool {
        match self {
            Self::String => value.is_string(),
            Self::Integer => value.is_i64() || value.is_u64(),
            Self::Number => value.is_number(),
            Self::Boolean => value.is_boolean(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::String => "a string",
            Self::Integer => "an integer",
            Self::Number => "a number",
            Self::Boolean => "true or false",
        }
    }
}

/// How many runs of a workflow may be in progress (running or waiting) at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Concurrency {
    /// Per workflow, or per value of `key` when given.
    pub limit: u32,
    /// An input whose value makes the group (such as the target): runs for different targets do not wait
    /// for each other.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub on_conflict: OnConflict,
}

impl Default for Concurrency {
    fn default() -> Self {
        Self {
            limit: 1,
            key: None,
            on_conflict: OnConflict::Queue,
        }
    }
}

/// What a start does when its group is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// Wait in the queue for a free slot.
    Queue,
    /// Refuse the start (409).
    Reject,
    /// Cancel the group's running runs, then start.
    CancelRunning,
}

/// One step, valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: String,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub retry_on: Vec<FailureClass>,
    pub on_failure: OnFailure,
    /// May run again after hale stopped during it (declared, or the step kind's default).
    pub idempotent: bool,
    pub risk: Risk,
    pub action: Action,
}

/// The fields every step has; the rest belong to its kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommon {
    id: String,
    kind: StepKind,
    #[serde(default)]
    timeout_s: Option<u64>,
    #[serde(default)]
    retry: RetryPolicy,
    #[serde(default)]
    retry_on: Option<Vec<FailureClass>>,
    #[serde(default)]
    on_failure: OnFailure,
    #[serde(default)]
    idempotent: Option<bool>,
}

const COMMON_FIELDS: &[&str] = &[
    "id",
    "kind",
    "timeout_s",
    "retry",
    "retry_on",
    "on_failure",
    "idempotent",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Http,
    WaitHealthy,
    Command,
    Sleep,
    Heal,
    McpTool,
    Notify,
    Approval,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::WaitHealthy => "wait_healthy",
            Self::Command => "command",
            Self::Sleep => "sleep",
            Self::Heal => "heal",
            Self::McpTool => "mcp_tool",
            Self::Notify => "notify",
            Self::Approval => "approval",
        }
    }

    fn default_timeout_s(self) -> u64 {
        match self {
            Self::WaitHealthy => 300,
            Self::Sleep | Self::Approval => MAX_DURATION_S,
            _ => 60,
        }
    }
}

/// How a failed attempt is tried again: `attempts` in all, waiting `initial_backoff_ms`, then `factor` times
/// longer per retry, at most `cap_s`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial_backoff_ms: u64,
    pub factor: f64,
    pub cap_s: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 1,
            initial_backoff_ms: 1_000,
            factor: 2.0,
            cap_s: 60,
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0: the one after the first attempt).
    pub fn delay(&self, retry: u32) -> Duration {
        let cap = Duration::from_secs(self.cap_s);
        let first = Duration::from_millis(self.initial_backoff_ms);
        let scale = self.factor.powi(i32::try_from(retry).unwrap_or(i32::MAX));
        // A factor of 1..=10 only grows; past the cap (or past what f64 holds) the cap is the answer.
        let ms = self.initial_backoff_ms as f64 * scale;
        if !ms.is_finite() || ms >= cap.as_millis() as f64 {
            return cap.max(first);
        }
        Duration::from_millis(ms as u64).min(cap).max(first)
    }

    fn validate(&self, at: &str) -> Result<(), Invalid> {
        range(at, "attempts", u64::from(self.attempts), 1, 100)?;
        range(
            at,
            "initial_backoff_ms",
            self.initial_backoff_ms,
            10,
            3_600_000,
        )?;
        if !(1.0..=10.0).contains(&self.factor) {
            return Err(Invalid::at(
                format!("{at}.factor"),
                format!("{} is out of range 1..=10", self.factor),
            ));
        }
        range(at, "cap_s", self.cap_s, 1, 86_400)?;
        if self.cap_s.saturating_mul(1000) < self.initial_backoff_ms {
            return Err(Invalid::at(
                format!("{at}.cap_s"),
                format!(
                    "{} s is shorter than initial_backoff_ms ({} ms)",
                    self.cap_s, self.initial_backoff_ms
                ),
            ));
        }
        Ok(())
    }
}

/// A failure that may be tried again, when the step lists it in `retry_on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    Timeout,
    Connect,
    #[serde(rename = "5xx")]
    ServerError,
    BreakerOpen,
    NonzeroExit,
}

impl FailureClass {
    /// The class as `retry_on` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::ServerError => "5xx",
            Self::BreakerOpen => "breaker_open",
            Self::NonzeroExit => "nonzero_exit",
        }
    }
}

/// Failures retried when a step does not say: the passing ones, not a command's own verdict.
pub const DEFAULT_RETRY_ON: [FailureClass; 4] = [
    FailureClass::Timeout,
    FailureClass::Connect,
    FailureClass::ServerError,
    FailureClass::BreakerOpen,
];

/// What a run does when a step has failed for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    #[default]
    Fail,
    Continue,
}

/// What a step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A request to a target's base URL, through its circuit breaker.
    Http {
        target: Template,
        method: HttpMethod,
        path: Template,
        body: Option<JsonTemplate>,
        /// Accepted statuses; any 2xx when empty.
        expect_status: Vec<u16>,
    },
    /// Until the target passed `consecutive` checks in a row.
    WaitHealthy {
        target: Template,
        consecutive: u32,
    },
    /// A program run directly (no shell): argv, cwd, env and inherited variables as in a target's `run`.
    Command {
        argv: Vec<Template>,
        run: RunConfig,
        output_cap_bytes: u64,
        /// After SIGTERM to its process group on timeout, how long before SIGKILL.
        kill_grace: Duration,
    },
    Sleep {
        duration: Duration,
    },
    /// A heal of the target, through auto-heal's protections.
    Heal {
        target: Template,
    },
    McpTool {
        tool: String,
        arguments: JsonTemplate,
    },
    /// A message through the alert channels.
    Notify {
        message: Template,
    },
    /// Waits for a person with the operate token to approve or reject.
    Approval {
        message: Option<Template>,
    },
}

impl Action {
    pub fn kind(&self) -> StepKind {
        match self {
            Self::Http { .. } => StepKind::Http,
            Self::WaitHealthy { .. } => StepKind::WaitHealthy,
            Self::Command { .. } => StepKind::Command,
            Self::Sleep { .. } => StepKind::Sleep,
            Self::Heal { .. } => StepKind::Heal,
            Self::McpTool { .. } => StepKind::McpTool,
            Self::Notify { .. } => StepKind::Notify,
            Self::Approval { .. } => StepKind::Approval,
        }
    }

    /// Every template of the step, with its path below the step (`.argv[1]`).
    fn templates(&self) -> Vec<(String, &Template)> {
        fn one<'t>(field: &str, t: &'t Template) -> Vec<(String, &'t Template)> {
            vec![(format!(".{field}"), t)]
        }
        match self {
            Self::Http { target, path, .. } => {
                let mut all = one("target", target);
                all.extend(one("path", path));
                all
            }
            Self::WaitHealthy { target, .. } | Self::Heal { target } => one("target", target),
            Self::Command { argv, .. } => argv
                .iter()
                .enumerate()
                .map(|(i, t)| (format!(".argv[{i}]"), t))
                .collect(),
            Self::Notify { message } => one("message", message),
            Self::Approval { message } => message.iter().flat_map(|m| one("message", m)).collect(),
            Self::Sleep { .. } | Self::McpTool { .. } => Vec::new(),
        }
    }

    /// The JSON bodies with templates inside, with their field.
    fn json_templates(&self) -> Vec<(&'static str, &JsonTemplate)> {
        match self {
            Self::Http { body: Some(b), .. } => vec![("body", b)],
            Self::McpTool { arguments, .. } => vec![("arguments", arguments)],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    target: String,
    #[serde(default)]
    method: HttpMethod,
    #[serde(default = "root_path")]
    path: String,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    expect_status: Vec<u16>,
}

fn root_path() -> String {
    "/".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWaitHealthy {
    target: String,
    #[serde(default = "default_consecutive")]
    consecutive: u32,
}

fn default_consecutive() -> u32 {
    3
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    argv: Vec<String>,
    #[serde(default)]
    cwd: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    inherit_env: Vec<String>,
    #[serde(default = "default_output_cap")]
    output_cap_bytes: u64,
    #[serde(default = "default_kill_grace_s")]
    kill_grace_s: u64,
}

fn default_output_cap() -> u64 {
    64 * 1024
}

fn default_kill_grace_s() -> u64 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSleep {
    duration_s: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeal {
    target: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMcpTool {
    tool: String,
    #[serde(default)]
    arguments: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotify {
    message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApproval {
    #[serde(default)]
    message: Option<String>,
}

/// Shells that would run a command line hale cannot see into (`sh -c "..."`).
const SHELLS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "ksh", "fish", "csh", "tcsh", "ash",
];

impl Workflow {
    /// Reads the copy of its definition a run keeps, against today's targets and risk rules.
    pub fn from_copy(value: &Value, env: &Environment, risk: &RiskConfig) -> Result<Self, Invalid> {
        Self::from_json(value, "definition", env, risk)
    }

    fn from_json(
        value: &Value,
        at: &str,
        env: &Environment,
        risk_config: &RiskConfig,
    ) -> Result<Self, Invalid> {
        let raw: RawWorkflow = typed(value, at)?;
        check_name(&format!("{at}.id"), &raw.id)?;
        for name in raw.inputs.keys() {
            check_name(&format!("{at}.inputs.{name}"), name)?;
        }
        range(at, "deadline_s", raw.deadline_s, 1, MAX_DURATION_S)?;
        range(
            &format!("{at}.concurrency"),
            "limit",
            u64::from(raw.concurrency.limit),
            1,
            1_000,
        )?;
        if let Some(key) = &raw.concurrency.key {
            if !raw.inputs.contains_key(key) {
                return Err(Invalid::at(
                    format!("{at}.concurrency.key"),
                    format!("{key:?} is not a declared input of this workflow"),
                ));
            }
        }
        if raw.steps.is_empty() {
            return Err(Invalid::at(
                format!("{at}.steps"),
                "a workflow needs at least one step",
            ));
        }
        // Ids first, so a template may be told a step it names comes later.
        let mut ids: Vec<String> = Vec::with_capacity(raw.steps.len());
        for (i, step) in raw.steps.iter().enumerate() {
            let id_at = format!("{at}.steps[{i}].id");
            let id = step
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| Invalid::at(&id_at, "every step needs an id (a string)"))?;
            check_name(&id_at, id)?;
            if ids.iter().any(|earlier| earlier == id) {
                return Err(Invalid::at(
                    id_at,
                    format!("{id} is the id of an earlier step; step ids are unique in a workflow"),
                ));
            }
            ids.push(id.to_owned());
        }
        let input_names: Vec<&str> = raw.inputs.keys().map(String::as_str).collect();
        let step_names: Vec<&str> = ids.iter().map(String::as_str).collect();
        let mut steps = Vec::with_capacity(raw.steps.len());
        for (i, value) in raw.steps.iter().enumerate() {
            let scope = Scope {
                inputs: &input_names,
                steps: &step_names,
                current: i,
            };
            steps.push(Step::from_json(
                value,
                &format!("{at}.steps[{i}]"),
                scope,
                env,
                risk_config,
            )?);
        }
        Ok(Self {
            id: raw.id,
            description: raw.description,
            inputs: raw.inputs,
            deadline: Duration::from_secs(raw.deadline_s),
            concurrency: raw.concurrency,
            steps,
            source: value.clone(),
        })
    }

    /// The run's risk: its highest step's.
    pub fn risk(&self) -> Option<&Risk> {
        risk::highest(self.steps.iter().map(|s| &s.risk))
    }

    /// The first step at or above `level`: where a run waits for its approval.
    pub fn first_step_at(&self, level: RiskLevel) -> Option<usize> {
        self.steps.iter().position(|s| s.risk.level >= level)
    }

    /// Checks the inputs of a start against the declaration: each given one declared and of its type,
    /// each required one given. The error names the field (`inputs.target`).
    pub fn check_inputs(&self, given: &Map<String, Value>) -> Result<(), InputError> {
        for (name, value) in given {
            let Some(spec) = self.inputs.get(name) else {
                return Err(InputError {
                    field: format!("inputs.{name}"),
                    reason: format!("{} declares no input {name:?}", self.id),
                });
            };
            if !spec.kind.accepts(value) {
                return Err(InputError {
                    field: format!("inputs.{name}"),
                    reason: format!("expected {}, found {value}", spec.kind.name()),
                });
            }
        }
        if let Some((name, _)) = self
            .inputs
            .iter()
            .find(|(name, spec)| spec.required && !given.contains_key(*name))
        {
            return Err(InputError {
                field: format!("inputs.{name}"),
                reason: "a required input is missing".to_owned(),
            });
        }
        Ok(())
    }

    /// The value of the concurrency key among `inputs` (as text), when the workflow has one.
    pub fn concurrency_key(&self, inputs: &Map<String, Value>) -> Option<String> {
        let key = self.concurrency.key.as_ref()?;
        inputs.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

/// Inputs a start cannot run with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InputError {
    pub field: String,
    pub reason: String,
}

impl Step {
    fn from_json(
        value: &Value,
        at: &str,
        scope: Scope<'_>,
        env: &Environment,
        risk_config: &RiskConfig,
    ) -> Result<Self, Invalid> {
        let Some(map) = value.as_object() else {
            return Err(Invalid::at(at, "a step is an object"));
        };
        let (common, rest): (Map<String, Value>, Map<String, Value>) = map
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(k, _)| COMMON_FIELDS.contains(&k.as_str()));
        let common: RawCommon = typed(&Value::Object(common), at)?;
        let rest = Value::Object(rest);
        let kind = common.kind;
        let unknown_kind_field = |e: Invalid| -> Invalid {
            if e.reason.starts_with("unknown field") {
                Invalid {
                    reason: format!("{} (in a {} step)", e.reason, kind.as_str()),
                    ..e
                }
            } else {
                e
            }
        };
        let action = match kind {
            StepKind::Http => {
                let r: RawHttp = typed(&rest, at).map_err(unknown_kind_field)?;
                if r.body.is_some() && matches!(r.method, HttpMethod::Get | HttpMethod::Head) {
                    return Err(Invalid::at(
                        format!("{at}.body"),
                        format!("a {} request has no body", r.method.as_str()),
                    ));
                }
                if let Some(i) = r
                    .expect_status
                    .iter()
                    .position(|s| !(100..=599).contains(s))
                {
                    return Err(Invalid::at(
                        format!("{at}.expect_status[{i}]"),
                        format!("{} is not an HTTP status (100..=599)", r.expect_status[i]),
                    ));
                }
                let path = template(&format!("{at}.path"), &r.path)?;
                if !r.path.starts_with('/') && !r.path.starts_with("{{") {
                    return Err(Invalid::at(
                        format!("{at}.path"),
                        format!(
                            "{:?} must start with '/': it is appended to the target's base URL",
                            r.path
                        ),
                    ));
                }
                Action::Http {
                    target: template(&format!("{at}.target"), &r.target)?,
                    method: r.method,
                    path,
                    body: r
                        .body
                        .as_ref()
                        .map(|b| json_template(&format!("{at}.body"), b))
                        .transpose()?,
                    expect_status: r.expect_status,
                }
            }
            StepKind::WaitHealthy => {
                let r: RawWaitHealthy = typed(&rest, at).map_err(unknown_kind_field)?;
                range(at, "consecutive", u64::from(r.consecutive), 1, 100)?;
                Action::WaitHealthy {
                    target: template(&format!("{at}.target"), &r.target)?,
                    consecutive: r.consecutive,
                }
            }
            StepKind::Command => {
                let r: RawCommand = typed(&rest, at).map_err(unknown_kind_field)?;
                let mut run = RunConfig::process(r.argv.clone(), r.cwd, r.env);
                run.inherit_env = r.inherit_env;
                // The same checks as a target's `run` block: argv, cwd, env names, inherited names.
                run.validate(at)?;
                let tokens: Vec<(&str, &str)> = env
                    .token_variables
                    .iter()
                    .map(|(role, var)| (*role, var.as_str()))
                    .collect();
                refuse_token_variables(
                    &[(format!("{at}.inherit_env"), &run.inherit_env)],
                    &tokens,
                )?;
                refuse_shell(at, &r.argv)?;
                range(
                    at,
                    "output_cap_bytes",
                    r.output_cap_bytes,
                    1,
                    MAX_OUTPUT_CAP_BYTES,
                )?;
                range(at, "kill_grace_s", r.kill_grace_s, 1, 600)?;
                let argv = r
                    .argv
                    .iter()
                    .enumerate()
                    .map(|(i, a)| template(&format!("{at}.argv[{i}]"), a))
                    .collect::<Result<_, _>>()?;
                Action::Command {
                    argv,
                    run,
                    output_cap_bytes: r.output_cap_bytes,
                    kill_grace: Duration::from_secs(r.kill_grace_s),
                }
            }
            StepKind::Sleep => {
                let r: RawSleep = typed(&rest, at).map_err(unknown_kind_field)?;
                range(at, "duration_s", r.duration_s, 1, MAX_DURATION_S)?;
                Action::Sleep {
                    duration: Duration::from_secs(r.duration_s),
                }
            }
            StepKind::Heal => {
                let r: RawHeal = typed(&rest, at).map_err(unknown_kind_field)?;
                Action::Heal {
                    target: template(&format!("{at}.target"), &r.target)?,
                }
            }
            StepKind::McpTool => {
                let r: RawMcpTool = typed(&rest, at).map_err(unknown_kind_field)?;
                if r.tool.trim().is_empty() {
                    return Err(Invalid::at(
                        format!("{at}.tool"),
                        "a tool's name cannot be empty",
                    ));
                }
                Action::McpTool {
                    tool: r.tool,
                    arguments: json_template(
                        &format!("{at}.arguments"),
                        &Value::Object(r.arguments),
                    )?,
                }
            }
            StepKind::Notify => {
                let r: RawNotify = typed(&rest, at).map_err(unknown_kind_field)?;
                if r.message.trim().is_empty() {
                    return Err(Invalid::at(
                        format!("{at}.message"),
                        "a notice needs a message",
                    ));
                }
                Action::Notify {
                    message: template(&format!("{at}.message"), &r.message)?,
                }
            }
            StepKind::Approval => {
                let r: RawApproval = typed(&rest, at).map_err(unknown_kind_field)?;
                Action::Approval {
                    message: r
                        .message
                        .as_deref()
                        .map(|m| template(&format!("{at}.message"), m))
                        .transpose()?,
                }
            }
        };
        for (field, t) in action.templates() {
            t.check(scope)
                .map_err(|reason| Invalid::at(format!("{at}{field}"), reason))?;
        }
        for (field, t) in action.json_templates() {
            t.check(scope)
                .map_err(|(below, reason)| Invalid::at(format!("{at}.{field}{below}"), reason))?;
        }
        let critical = check_targets(at, &action, env)?;
        let timeout_s = common.timeout_s.unwrap_or(kind.default_timeout_s());
        range(at, "timeout_s", timeout_s, 1, MAX_DURATION_S)?;
        common.retry.validate(&format!("{at}.retry"))?;
        let retry_on = common.retry_on.unwrap_or_else(|| DEFAULT_RETRY_ON.to_vec());
        let idempotent = common.idempotent.unwrap_or(match &action {
            Action::Http { method, .. } => matches!(method, HttpMethod::Get | HttpMethod::Head),
            Action::WaitHealthy { .. } | Action::Sleep { .. } => true,
            _ => false,
        });
        let risk = risk::score(&summary(&action, critical), risk_config);
        Ok(Self {
            id: common.id,
            timeout: Duration::from_secs(timeout_s),
            retry: common.retry,
            retry_on,
            on_failure: common.on_failure,
            idempotent,
            risk,
            action,
        })
    }

    pub fn kind(&self) -> StepKind {
        self.action.kind()
    }

    /// Whether a failure of this class is tried again (while attempts remain).
    pub fn retries(&self, class: FailureClass) -> bool {
        self.retry_on.contains(&class)
    }
}

/// A step's targets written literally must exist; returns whether the step's (literal) target is critical.
fn check_targets(at: &str, action: &Action, env: &Environment) -> Result<bool, Invalid> {
    let target = match action {
        Action::Http { target, .. }
        | Action::WaitHealthy { target, .. }
        | Action::Heal { target } => target,
        _ => return Ok(false),
    };
    let Some(name) = target.literal() else {
        // Known only at run time: the engine checks it then, and scores the heal of a critical one.
        return Ok(false);
    };
    env.target(name).ok_or_else(|| {
        Invalid::at(
            format!("{at}.target"),
            format!(
                "{name:?} is not a configured target ({})",
                known_targets(env)
            ),
        )
    })
}

/// The configured targets' names for a message: the first ten, then how many in all.
fn known_targets(env: &Environment) -> String {
    const SHOWN: usize = 10;
    let names: Vec<&str> = env
        .targets
        .iter()
        .take(SHOWN)
        .map(|(n, _)| n.as_str())
        .collect();
    match env.targets.len() {
        0 => "none are configured".to_owned(),
        n if n > SHOWN => format!("{}, ... {n} in all", names.join(", ")),
        _ => names.join(", "),
    }
}

fn summary(action: &Action, critical: bool) -> StepSummary<'_> {
    match action {
        Action::Http { method, path, .. } => StepSummary::Http {
            method: *method,
            path: path.source(),
        },
        Action::Command { run, .. } => StepSummary::Command { argv: &run.argv },
        Action::Heal { target } => StepSummary::Heal {
            target: target.source(),
            critical,
        },
        Action::McpTool { tool, .. } => StepSummary::McpTool { tool },
        _ => StepSummary::Harmless,
    }
}

/// `sh -c "..."` would hide the real command from the risk rules and bring back the shell argv avoids.
fn refuse_shell(at: &str, argv: &[String]) -> Result<(), Invalid> {
    let program = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or_default();
    if SHELLS.contains(&program)
        && argv
            .iter()
            .skip(1)
            .any(|a| a.starts_with('-') && a.contains('c'))
    {
        return Err(Invalid::at(
            format!("{at}.argv"),
            format!(
                "{program} -c runs a command line through a shell; write the program and its arguments in argv instead"
            ),
        ));
    }
    Ok(())
}

/// Ids of workflows, steps and inputs: letters, digits, '-' and '_' (no '.', which templates use).
fn check_name(at: &str, name: &str) -> Result<(), Invalid> {
    let reason = if name.is_empty() {
        "a name cannot be empty".to_owned()
    } else if name.len() > MAX_NAME_LEN {
        format!("{name:?} is longer than {MAX_NAME_LEN} characters")
    } else if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_')))
    {
        format!("{name:?} contains {bad:?}; use letters, digits, '-' or '_'")
    } else {
        return Ok(());
    };
    Err(Invalid::at(at, reason))
}

fn range(at: &str, field: &str, value: u64, low: u64, high: u64) -> Result<(), Invalid> {
    if (low..=high).contains(&value) {
        Ok(())
    } else {
        Err(Invalid::at(
            format!("{at}.{field}"),
            format!("{value} is out of range {low}..={high}"),
        ))
    }
}

fn template(at: &str, text: &str) -> Result<Template, Invalid> {
    Template::parse(text).map_err(|reason| Invalid::at(at, reason))
}

fn json_template(at: &str, value: &Value) -> Result<JsonTemplate, Invalid> {
    JsonTemplate::parse(value)
        .map_err(|(below, reason)| Invalid::at(format!("{at}{below}"), reason))
}

/// Deserializes `value`, naming the path of a field serde refuses below `at`.
fn typed<T: serde::de::DeserializeOwned>(value: &Value, at: &str) -> Result<T, Invalid> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let below = e.path().to_string();
        let path = if below == "." || below.is_empty() {
            at.to_owned()
        } else if below.starts_with('[') {
            format!("{at}{below}")
        } else {
            format!("{at}.{below}")
        };
        Invalid::at(path, e.inner().to_string())
    })
}

#[cfg(test)]
mod tests;
