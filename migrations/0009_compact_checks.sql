-- A compact store for health checks: about 25 bytes per check in the file instead of about 100.
--  * Targets are integer ids; each name is stored once, in `targets`.
--  * A check is one row of `checks`, a WITHOUT ROWID table keyed by (target_id, checked_at_ms, seq): no rowid,
--    no second index. Per-target reads are range scans of the key; retention deletes per target by key range.
--  * Outcome, breaker state and source are small integers in one column (the codes below).
--  * Error texts are interned in `check_errors` and referenced by id.
--  * Times stay Unix epoch milliseconds: SQLite stores an integer in 1, 2, 3, 4, 6 or 8 bytes, and any offset
--    that keeps millisecond precision over more than 24 days needs 6 bytes, as the epoch milliseconds do.
-- The views `health_checks` and `health_check_hourly` keep the old columns for scripts and `sqlite3` users;
-- INSTEAD OF triggers make them writable too.
--
-- Codes (src/store/codes.rs), packed into the one column `state` = outcome | breaker << 3 | source << 5:
--   outcome (bits 0-2):  0 up, 1 down, 2 timeout, 3 circuit_open, 4 error
--   breaker (bits 3-4):  0 closed, 1 open, 2 half_open
--   source  (bit 5):     0 monitor, 1 on_demand
-- The usual check (up, closed, monitor) has state 0, which SQLite stores in its record header alone.
--
-- Existing rows are not copied here: the old table is renamed `health_checks_legacy` and hale copies it in
-- chunks right after the migrations, logging its progress, then drops it (src/store/compact.rs).

CREATE TABLE targets (
    id   INTEGER PRIMARY KEY,
    name TEXT    NOT NULL UNIQUE
);

-- Error texts of checks, each stored once. `last_used_ms` is the newest check that used it: retention deletes
-- the texts no kept check can refer to.
CREATE TABLE check_errors (
    id           INTEGER PRIMARY KEY,
    message      TEXT    NOT NULL UNIQUE,
    last_used_ms INTEGER NOT NULL
);

-- `seq` tells apart checks of one target in the same millisecond (0 for the first, almost always).
CREATE TABLE checks (
    target_id     INTEGER NOT NULL,
    checked_at_ms INTEGER NOT NULL,
    seq           INTEGER NOT NULL DEFAULT 0,
    state         INTEGER NOT NULL CHECK ((state & 7) <= 4 AND ((state >> 3) & 3) <= 2 AND (state >> 5) <= 1),
    http_status   INTEGER,
    latency_us    INTEGER,
    error_id      INTEGER,
    PRIMARY KEY (target_id, checked_at_ms, seq)
) WITHOUT ROWID;

-- One row per target and hour of scheduled checks, as `health_check_hourly` was, keyed by target id.
CREATE TABLE checks_hourly (
    target_id       INTEGER NOT NULL,
    hour_ms         INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    good            INTEGER NOT NULL,
    latency_sum_us  INTEGER NOT NULL,
    latency_max_us  INTEGER NOT NULL,
    latency_buckets BLOB    NOT NULL,
    PRIMARY KEY (target_id, hour_ms)
) WITHOUT ROWID;
-- Reports and SLO windows read every target over a span of hours.
CREATE INDEX checks_hourly_by_time ON checks_hourly (hour_ms);

-- Every name that has checks or rollups gets its id (the old index gives the distinct names cheaply).
INSERT OR IGNORE INTO targets (name) SELECT DISTINCT service FROM health_check_hourly;
INSERT OR IGNORE INTO targets (name) SELECT DISTINCT service FROM health_checks;

INSERT INTO checks_hourly (target_id, hour_ms, total, good, latency_sum_us, latency_max_us, latency_buckets)
SELECT t.id, h.hour_ms, h.total, h.good, h.latency_sum_us, h.latency_max_us, h.latency_buckets
FROM health_check_hourly AS h JOIN targets AS t ON t.name = h.service;
DROP TABLE health_check_hourly;

-- The raw checks wait for the copy; their indexes only slow it down.
DROP INDEX health_checks_by_service_time;
DROP INDEX health_checks_by_time;
ALTER TABLE health_checks RENAME TO health_checks_legacy;

CREATE VIEW health_checks AS
SELECT c.checked_at_ms AS checked_at_ms,
       t.name AS service,
       CASE c.state & 7 WHEN 0 THEN 'up' WHEN 1 THEN 'down' WHEN 2 THEN 'timeout' WHEN 3 THEN 'circuit_open'
                      WHEN 4 THEN 'error' END AS outcome,
       c.http_status AS http_status,
       c.latency_us AS latency_us,
       e.message AS error,
       CASE (c.state >> 3) & 3 WHEN 0 THEN 'closed' WHEN 1 THEN 'open' WHEN 2 THEN 'half_open' END AS breaker_state,
       CASE c.state >> 5 WHEN 0 THEN 'monitor' WHEN 1 THEN 'on_demand' END AS source,
       c.target_id AS target_id,
       c.seq AS seq
FROM checks AS c
JOIN targets AS t ON t.id = c.target_id
LEFT JOIN check_errors AS e ON e.id = c.error_id;

CREATE TRIGGER health_checks_insert INSTEAD OF INSERT ON health_checks
BEGIN
    INSERT OR IGNORE INTO targets (name) VALUES (NEW.service);
    INSERT INTO check_errors (message, last_used_ms) SELECT NEW.error, NEW.checked_at_ms WHERE NEW.error IS NOT NULL
        ON CONFLICT (message) DO UPDATE SET last_used_ms = max(last_used_ms, excluded.last_used_ms);
    INSERT INTO checks (target_id, checked_at_ms, seq, state, http_status, latency_us, error_id)
    SELECT t.id, NEW.checked_at_ms,
           (SELECT coalesce(max(seq) + 1, 0) FROM checks WHERE target_id = t.id AND checked_at_ms = NEW.checked_at_ms),
           CASE NEW.outcome WHEN 'up' THEN 0 WHEN 'down' THEN 1 WHEN 'timeout' THEN 2 WHEN 'circuit_open' THEN 3
                            WHEN 'error' THEN 4 END
           | (CASE coalesce(NEW.breaker_state, 'closed') WHEN 'closed' THEN 0 WHEN 'open' THEN 1 WHEN 'half_open' THEN 2 END << 3)
           | (CASE coalesce(NEW.source, 'monitor') WHEN 'monitor' THEN 0 WHEN 'on_demand' THEN 1 END << 5),
           NEW.http_status, NEW.latency_us,
           (SELECT id FROM check_errors WHERE message = NEW.error)
    FROM targets AS t WHERE t.name = NEW.service;
END;

CREATE TRIGGER health_checks_delete INSTEAD OF DELETE ON health_checks
BEGIN
    DELETE FROM checks WHERE target_id = OLD.target_id AND checked_at_ms = OLD.checked_at_ms AND seq = OLD.seq;
END;

CREATE VIEW health_check_hourly AS
SELECT t.name AS service, h.hour_ms AS hour_ms, h.total AS total, h.good AS good,
       h.latency_sum_us AS latency_sum_us, h.latency_max_us AS latency_max_us,
       h.latency_buckets AS latency_buckets
FROM checks_hourly AS h JOIN targets AS t ON t.id = h.target_id;

CREATE TRIGGER health_check_hourly_insert INSTEAD OF INSERT ON health_check_hourly
BEGIN
    INSERT OR IGNORE INTO targets (name) VALUES (NEW.service);
    INSERT OR REPLACE INTO checks_hourly (target_id, hour_ms, total, good, latency_sum_us, latency_max_us, latency_buckets)
    SELECT t.id, NEW.hour_ms, NEW.total, NEW.good, NEW.latency_sum_us, NEW.latency_max_us, NEW.latency_buckets
    FROM targets AS t WHERE t.name = NEW.service;
END;

CREATE TRIGGER health_check_hourly_update INSTEAD OF UPDATE ON health_check_hourly
BEGIN
    UPDATE checks_hourly
    SET total = NEW.total, good = NEW.good, latency_sum_us = NEW.latency_sum_us,
        latency_max_us = NEW.latency_max_us, latency_buckets = NEW.latency_buckets
    WHERE target_id = (SELECT id FROM targets WHERE name = OLD.service) AND hour_ms = OLD.hour_ms;
END;

CREATE TRIGGER health_check_hourly_delete INSTEAD OF DELETE ON health_check_hourly
BEGIN
    DELETE FROM checks_hourly
    WHERE target_id = (SELECT id FROM targets WHERE name = OLD.service) AND hour_ms = OLD.hour_ms;
END;
