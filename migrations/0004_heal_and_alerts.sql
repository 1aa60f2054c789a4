-- Auto-heal, supervised children and the alert manager. The first migration's placeholder tables for heal
-- events, alerts and deliveries were never written to; they are replaced by the shapes the features use.
-- Times are Unix epoch milliseconds, durations microseconds, as in 0001.

DROP TABLE alert_deliveries;
DROP TABLE alerts;
DROP TABLE heal_events;

-- Every heal attempt, including the ones a protection refused: cooldown and the hourly budget are counted
-- from these rows, so restarting hale cannot reset them.
CREATE TABLE heal_events (
    id                INTEGER PRIMARY KEY,
    target            TEXT    NOT NULL,
    trigger           TEXT    NOT NULL CHECK (trigger IN ('automatic', 'manual', 'workflow')),
    action            TEXT    NOT NULL CHECK (action IN ('restart_child', 'command', 'none')),
    started_at_ms     INTEGER NOT NULL,
    finished_at_ms    INTEGER NOT NULL,
    outcome           TEXT    NOT NULL CHECK (outcome IN ('healed', 'failed', 'skipped_cooldown', 'skipped_budget',
                                                        'skipped_mass_failure', 'skipped_busy', 'skipped_held',
                                                        'skipped_config_error', 'skipped_no_action')),
    verify_latency_us INTEGER,
    error             TEXT
);
-- Cooldown and budget read one target's recent attempts; the API and retention read by time.
CREATE INDEX heal_events_by_target_time ON heal_events (target, started_at_ms);
CREATE INDEX heal_events_by_time ON heal_events (started_at_ms);

-- One row per start of a supervised child. `cause` says why it was started: the first start of a run of
-- hale, a restart after it exited by itself, or a restart asked by auto-heal. The pid and its kernel start
-- time let the next hale tell a child left behind by a killed hale from an unrelated process with a reused pid.
CREATE TABLE child_runs (
    id               INTEGER PRIMARY KEY,
    target           TEXT    NOT NULL,
    pid              INTEGER NOT NULL,
    proc_start_ticks INTEGER,
    started_at_ms    INTEGER NOT NULL,
    cause            TEXT    NOT NULL CHECK (cause IN ('start', 'exited', 'heal')),
    exited_at_ms     INTEGER,
    exit_code        INTEGER,
    exit_signal      INTEGER
);
CREATE INDEX child_runs_by_target_time ON child_runs (target, started_at_ms);
CREATE INDEX child_runs_running ON child_runs (exited_at_ms) WHERE exited_at_ms IS NULL;

-- One alert per (rule, target) incident: fired once, resolved once. While it fires, repeats are counted in
-- `suppressed` instead of notified; `last_notified_at_ms` carries the cooldown across restarts of hale.
CREATE TABLE alerts (
    id                  INTEGER PRIMARY KEY,
    rule                TEXT    NOT NULL,
    target              TEXT    NOT NULL,
    level               TEXT    NOT NULL CHECK (level IN ('info', 'warning', 'critical')),
    state               TEXT    NOT NULL CHECK (state IN ('firing', 'resolved')),
    summary             TEXT    NOT NULL,
    fired_at_ms         INTEGER NOT NULL,
    last_notified_at_ms INTEGER,
    resolved_at_ms      INTEGER,
    suppressed          INTEGER NOT NULL DEFAULT 0
);
-- At most one firing alert per (rule, target): the cooldown logic relies on it.
CREATE UNIQUE INDEX alerts_one_firing ON alerts (rule, target) WHERE state = 'firing';
CREATE INDEX alerts_by_time ON alerts (fired_at_ms);

-- Everything that happened to an alert: fired, escalated, repeated (notified again after its cooldown),
-- suppressed (a repeat inside the cooldown), inhibited (held back by a critical alert of its target), resolved.
CREATE TABLE alert_events (
    id       INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    at_ms    INTEGER NOT NULL,
    kind     TEXT    NOT NULL CHECK (kind IN ('fired', 'escalated', 'repeated', 'suppressed', 'inhibited', 'resolved')),
    level    TEXT    NOT NULL CHECK (level IN ('info', 'warning', 'critical')),
    summary  TEXT    NOT NULL
);
CREATE INDEX alert_events_by_alert ON alert_events (alert_id, at_ms);
CREATE INDEX alert_events_by_time ON alert_events (at_ms);

-- One notice to one channel. Pending until delivered; a notice that still fails after its retries is kept
-- as a dead letter with its payload (never a secret: URLs and passwords stay in the config).
CREATE TABLE alert_deliveries (
    id                 INTEGER PRIMARY KEY,
    alert_event_id     INTEGER REFERENCES alert_events (id) ON DELETE SET NULL,
    channel            TEXT    NOT NULL,
    state              TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    created_at_ms      INTEGER NOT NULL,
    last_attempt_at_ms INTEGER,
    payload            TEXT    NOT NULL,
    error              TEXT
);
CREATE INDEX alert_deliveries_by_state ON alert_deliveries (state, created_at_ms);
