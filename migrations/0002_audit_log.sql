-- Every request that tried to change something, allowed or refused: who (role, client), what (service,
-- method, route, target), how it ended (status, outcome) and its request id. Read by GET /audit and
-- `hale audit`; pruned with the raw health checks (storage.retention_days).
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at_ms      INTEGER NOT NULL,
    service    TEXT    NOT NULL,
    role       TEXT    CHECK (role IN ('read', 'operate', 'admin')),
    client     TEXT    NOT NULL,
    method     TEXT    NOT NULL,
    route      TEXT    NOT NULL,
    target     TEXT,
    status     INTEGER NOT NULL,
    outcome    TEXT    NOT NULL CHECK (outcome IN ('done', 'failed', 'unauthorized', 'forbidden', 'rate_limited')),
    request_id TEXT    NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (at_ms);
