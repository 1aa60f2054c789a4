-- hale's whole schema. Times are Unix epoch milliseconds (INTEGER): compact, fast to index and to range-scan.
-- Durations are microseconds. Append-only: a change to this schema is a new migration.

-- Every health check, from the background monitor and from on-demand checks alike.
CREATE TABLE health_checks (
    id            INTEGER PRIMARY KEY,
    checked_at_ms INTEGER NOT NULL,
    service       TEXT    NOT NULL,
    outcome       TEXT    NOT NULL CHECK (outcome IN ('up', 'down', 'timeout', 'circuit_open', 'error')),
    http_status   INTEGER,
    latency_us    INTEGER,
    error         TEXT,
    breaker_state TEXT    NOT NULL CHECK (breaker_state IN ('closed', 'open', 'half_open')),
    source        TEXT    NOT NULL DEFAULT 'monitor' CHECK (source IN ('monitor', 'on_demand'))
);
-- SLO windows and history pages read one service over a time range, newest first.
CREATE INDEX health_checks_by_service_time ON health_checks (service, checked_at_ms);
-- Retention prunes by time across all services.
CREATE INDEX health_checks_by_time ON health_checks (checked_at_ms);

-- One row per service and hour, kept far longer than raw checks: the SLO engine reads these.
-- latency_buckets is a compact histogram (see src/store/rollups.rs) fine enough for a p95 within 1%.
CREATE TABLE health_check_hourly (
    service         TEXT    NOT NULL,
    hour_ms         INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    good            INTEGER NOT NULL,
    latency_sum_us  INTEGER NOT NULL,
    latency_max_us  INTEGER NOT NULL,
    latency_buckets BLOB    NOT NULL,
    PRIMARY KEY (service, hour_ms)
) WITHOUT ROWID;
CREATE INDEX health_check_hourly_by_time ON health_check_hourly (hour_ms);

-- What auto-heal did (or chose not to do) and how it went.
CREATE TABLE heal_events (
    id          INTEGER PRIMARY KEY,
    at_ms       INTEGER NOT NULL,
    service     TEXT    NOT NULL,
    action      TEXT    NOT NULL CHECK (action IN ('restart', 'start', 'stop', 'suppressed')),
    reason      TEXT    NOT NULL,
    outcome     TEXT    NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'skipped')),
    attempt     INTEGER NOT NULL DEFAULT 1,
    duration_us INTEGER,
    detail      TEXT
);
-- "restarts per week" counts one service's restarts over a time range.
CREATE INDEX heal_events_by_service_time ON heal_events (service, at_ms);

-- An alert is one incident, identified by its fingerprint, fired once and resolved once.
CREATE TABLE alerts (
    id                  INTEGER PRIMARY KEY,
    fingerprint         TEXT    NOT NULL,
    service             TEXT    NOT NULL,
    rule                TEXT    NOT NULL,
    level               TEXT    NOT NULL CHECK (level IN ('info', 'warning', 'critical')),
    status              TEXT    NOT NULL CHECK (status IN ('firing', 'resolved')),
    summary             TEXT    NOT NULL,
    fired_at_ms         INTEGER NOT NULL,
    resolved_at_ms      INTEGER,
    last_notified_at_ms INTEGER,
    notify_count        INTEGER NOT NULL DEFAULT 0
);
-- At most one firing alert per fingerprint: the cooldown logic relies on it.
CREATE UNIQUE INDEX alerts_one_firing_per_fingerprint ON alerts (fingerprint) WHERE status = 'firing';
CREATE INDEX alerts_by_service_time ON alerts (service, fired_at_ms);

-- Each attempt to deliver an alert to a channel.
CREATE TABLE alert_deliveries (
    id       INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel  TEXT    NOT NULL,
    at_ms    INTEGER NOT NULL,
    ok       INTEGER NOT NULL CHECK (ok IN (0, 1)),
    error    TEXT
);
CREATE INDEX alert_deliveries_by_alert ON alert_deliveries (alert_id);

-- The current state of every circuit breaker, so a restart neither resets nor extends it.
CREATE TABLE breakers (
    name                  TEXT    PRIMARY KEY,
    state                 TEXT    NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
    consecutive_failures  INTEGER NOT NULL,
    consecutive_successes INTEGER NOT NULL,
    retry_at_ms           INTEGER,
    updated_at_ms         INTEGER NOT NULL
) WITHOUT ROWID;

-- Every breaker transition, for the history and the dashboards.
CREATE TABLE breaker_transitions (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    from_state TEXT    NOT NULL,
    to_state   TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    at_ms      INTEGER NOT NULL
);
CREATE INDEX breaker_transitions_by_name_time ON breaker_transitions (name, at_ms);
