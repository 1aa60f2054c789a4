-- Boss API's workflow runs, their step attempts and their approvals. Every state change is written at once,
-- in its own short transaction (never through the batching writer), so a restart finds each run where it
-- was. Times are milliseconds since the Unix epoch.
--
-- A run keeps the copy of its definition it started with (`definition`, JSON), so a config change never
-- alters a run in progress. `step_index` is the step it is at. `concurrency_limit` is copied from the
-- definition so the queue can be served without it. `idempotency_key` is unique per workflow; `body_hash`
-- tells a repeated start (same body) from a conflicting one.
CREATE TABLE workflow_runs (
    id                INTEGER PRIMARY KEY,
    workflow          TEXT    NOT NULL,
    definition        TEXT    NOT NULL,
    inputs            TEXT    NOT NULL,
    reason            TEXT    NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'waiting', 'succeeded', 'failed', 'timed_out', 'cancelled', 'interrupted')),
    wait_reason       TEXT    CHECK (wait_reason IN ('backoff', 'sleep', 'approval')),
    wake_at_ms        INTEGER,
    step_index        INTEGER NOT NULL DEFAULT 0,
    concurrency_key   TEXT,
    concurrency_limit INTEGER NOT NULL CHECK (concurrency_limit >= 1),
    idempotency_key   TEXT,
    body_hash         TEXT,
    deadline_ms       INTEGER NOT NULL,
    resumes           INTEGER NOT NULL DEFAULT 0,
    retry_of          INTEGER REFERENCES workflow_runs (id),
    error             TEXT,
    created_ms        INTEGER NOT NULL,
    started_ms        INTEGER,
    finished_ms       INTEGER,
    CHECK ((state = 'waiting') = (wait_reason IS NOT NULL))
);
CREATE UNIQUE INDEX workflow_runs_by_idempotency_key ON workflow_runs (workflow, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- The queue (oldest first) and the runs in progress.
CREATE INDEX workflow_runs_by_state ON workflow_runs (state, id);
CREATE INDEX workflow_runs_by_workflow ON workflow_runs (workflow, id);

-- One row per attempt of a step. `output` is the step's output as JSON, cut at a cap (`output_truncated`).
CREATE TABLE workflow_attempts (
    id               INTEGER PRIMARY KEY,
    run_id           INTEGER NOT NULL REFERENCES workflow_runs (id),
    step_index       INTEGER NOT NULL,
    step_id          TEXT    NOT NULL,
    attempt          INTEGER NOT NULL CHECK (attempt >= 1),
    state            TEXT    NOT NULL CHECK (state IN ('running', 'succeeded', 'failed', 'interrupted')),
    started_ms       INTEGER NOT NULL,
    finished_ms      INTEGER,
    output           TEXT,
    output_truncated INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    UNIQUE (run_id, step_index, attempt)
);
CREATE INDEX workflow_attempts_running ON workflow_attempts (state) WHERE state = 'running';

-- One row per approval a run asked for (or was given automatically, `decision = 'automatic'`).
CREATE TABLE workflow_approvals (
    id              INTEGER PRIMARY KEY,
    run_id          INTEGER NOT NULL REFERENCES workflow_runs (id),
    step_index      INTEGER NOT NULL,
    step_id         TEXT    NOT NULL,
    risk            TEXT    NOT NULL CHECK (risk IN ('low', 'medium', 'high', 'critical')),
    requested_ms    INTEGER NOT NULL,
    expires_ms      INTEGER NOT NULL,
    decided_ms      INTEGER,
    decision        TEXT    CHECK (decision IN ('approved', 'rejected', 'expired', 'automatic')),
    decided_by_role TEXT    CHECK (decided_by_role IN ('read', 'operate', 'admin')),
    reason          TEXT,
    UNIQUE (run_id, step_index)
);
