-- A heal may now be a reconnect: the target of an MCP server (`mcp:<name>`) is healed by connecting to the
-- server again (a stdio server is restarted). SQLite cannot change a CHECK constraint in place, so
-- `heal_events` is rebuilt with the same columns and indexes and one more allowed action.
CREATE TABLE heal_events_new (
    id                INTEGER PRIMARY KEY,
    target            TEXT    NOT NULL,
    trigger           TEXT    NOT NULL CHECK (trigger IN ('automatic', 'manual', 'workflow')),
    action            TEXT    NOT NULL CHECK (action IN ('restart_child', 'command', 'reconnect', 'none')),
    started_at_ms     INTEGER NOT NULL,
    finished_at_ms    INTEGER NOT NULL,
    outcome           TEXT    NOT NULL CHECK (outcome IN ('healed', 'failed', 'skipped_cooldown', 'skipped_budget',
                                                        'skipped_mass_failure', 'skipped_busy', 'skipped_held',
                                                        'skipped_config_error', 'skipped_no_action')),
    verify_latency_us INTEGER,
    error             TEXT
);
INSERT INTO heal_events_new (id, target, trigger, action, started_at_ms, finished_at_ms, outcome,
                             verify_latency_us, error)
    SELECT id, target, trigger, action, started_at_ms, finished_at_ms, outcome, verify_latency_us, error
    FROM heal_events;
DROP TABLE heal_events;
ALTER TABLE heal_events_new RENAME TO heal_events;
CREATE INDEX heal_events_by_target_time ON heal_events (target, started_at_ms);
CREATE INDEX heal_events_by_time ON heal_events (started_at_ms);
