-- Alert deliveries gain the state `superseded`: a notice still waiting when a later notice about the same
-- alert (rule and target) to the same channel arrived. The later one carries the alert's current state, so
-- the older one is not sent; its row stays, marked, and is never deleted before retention. SQLite cannot
-- change a CHECK constraint in place: the table is rebuilt with the same columns and rows.
CREATE TABLE alert_deliveries_new (
    id                 INTEGER PRIMARY KEY,
    alert_event_id     INTEGER REFERENCES alert_events (id) ON DELETE SET NULL,
    channel            TEXT    NOT NULL,
    state              TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead', 'superseded')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    created_at_ms      INTEGER NOT NULL,
    last_attempt_at_ms INTEGER,
    payload            TEXT    NOT NULL,
    error              TEXT
);
INSERT INTO alert_deliveries_new (id, alert_event_id, channel, state, attempts, created_at_ms,
                                  last_attempt_at_ms, payload, error)
SELECT id, alert_event_id, channel, state, attempts, created_at_ms, last_attempt_at_ms, payload, error
FROM alert_deliveries;
DROP TABLE alert_deliveries;
ALTER TABLE alert_deliveries_new RENAME TO alert_deliveries;
CREATE INDEX alert_deliveries_by_state ON alert_deliveries (state, created_at_ms);
