-- Checks as they arrive, in time order, until the writer settles them into `checks` and `checks_hourly`
-- (src/store/settle.rs). `checks` is keyed by target first, so with a week of history each target's newest
-- rows sit in a leaf page of their own, and writing every check there dirties one page of `checks` and one
-- of `checks_hourly` per check: thousands of 4 KiB pages a second at 10,000 targets, each written to the
-- WAL and again by the next checkpoint. Here new rows land on the last pages of a table keyed by time, and a
-- settle every `storage.settle_interval_s` moves them in target order: each target's leaf of `checks` is
-- written once per settle, for all its checks since the last one.
--
-- `checks_hourly` is keyed by hour first now, so the current hour's rows of every target are a few
-- neighbouring pages that each settle rewrites, instead of one leaf per target. Reads of one target's hours
-- go through the index on (target_id, hour_ms), which changes only when a target's hour gets its first
-- row: a settle updates rows in place.
--
-- Same columns and codes as `checks`. `seq` tells apart checks of one target in the same millisecond among
-- the recent rows; a settle renumbers a row only when `checks` already holds that (target, time, seq).
CREATE TABLE checks_recent (
    checked_at_ms INTEGER NOT NULL,
    target_id     INTEGER NOT NULL,
    seq           INTEGER NOT NULL DEFAULT 0,
    state         INTEGER NOT NULL CHECK ((state & 7) <= 4 AND ((state >> 3) & 3) <= 2 AND (state >> 5) <= 1),
    http_status   INTEGER,
    latency_us    INTEGER,
    error_id      INTEGER,
    PRIMARY KEY (checked_at_ms, target_id, seq)
) WITHOUT ROWID;

-- The view scripts read shows every check, settled or not.
DROP VIEW health_checks;
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
FROM (SELECT target_id, checked_at_ms, seq, state, http_status, latency_us, error_id FROM checks
      UNION ALL
      SELECT target_id, checked_at_ms, seq, state, http_status, latency_us, error_id FROM checks_recent) AS c
JOIN targets AS t ON t.id = c.target_id
LEFT JOIN check_errors AS e ON e.id = c.error_id;

-- Rows written through the view are history a script adds: straight into `checks`, as before.
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
    DELETE FROM checks_recent WHERE checked_at_ms = OLD.checked_at_ms AND target_id = OLD.target_id AND seq = OLD.seq;
END;

-- `checks_hourly`, keyed by (hour_ms, target_id). The view and its triggers name the table: dropped first,
-- made again after.
DROP VIEW health_check_hourly;
CREATE TABLE checks_hourly_by_hour (
    hour_ms         INTEGER NOT NULL,
    target_id       INTEGER NOT NULL,
    total           INTEGER NOT NULL,
    good            INTEGER NOT NULL,
    latency_sum_us  INTEGER NOT NULL,
    latency_max_us  INTEGER NOT NULL,
    latency_buckets BLOB    NOT NULL,
    PRIMARY KEY (hour_ms, target_id)
) WITHOUT ROWID;
INSERT INTO checks_hourly_by_hour (hour_ms, target_id, total, good, latency_sum_us, latency_max_us, latency_buckets)
SELECT hour_ms, target_id, total, good, latency_sum_us, latency_max_us, latency_buckets
FROM checks_hourly ORDER BY hour_ms, target_id;
DROP TABLE checks_hourly;
ALTER TABLE checks_hourly_by_hour RENAME TO checks_hourly;
-- One target's hours: the SLO ledger's rebuild, reports and `/slo` of one target.
CREATE INDEX checks_hourly_by_target ON checks_hourly (target_id, hour_ms);

CREATE VIEW health_check_hourly AS
SELECT t.name AS service, h.hour_ms AS hour_ms, h.total AS total, h.good AS good,
       h.latency_sum_us AS latency_sum_us, h.latency_max_us AS latency_max_us,
       h.latency_buckets AS latency_buckets
FROM checks_hourly AS h JOIN targets AS t ON t.id = h.target_id;

CREATE TRIGGER health_check_hourly_insert INSTEAD OF INSERT ON health_check_hourly
BEGIN
    INSERT OR IGNORE INTO targets (name) VALUES (NEW.service);
    INSERT INTO checks_hourly (target_id, hour_ms, total, good, latency_sum_us, latency_max_us, latency_buckets)
    SELECT t.id, NEW.hour_ms, NEW.total, NEW.good, NEW.latency_sum_us, NEW.latency_max_us, NEW.latency_buckets
    FROM targets AS t WHERE t.name = NEW.service
    ON CONFLICT (hour_ms, target_id) DO UPDATE SET
        total = excluded.total, good = excluded.good, latency_sum_us = excluded.latency_sum_us,
        latency_max_us = excluded.latency_max_us, latency_buckets = excluded.latency_buckets;
END;

CREATE TRIGGER health_check_hourly_update INSTEAD OF UPDATE ON health_check_hourly
BEGIN
    UPDATE checks_hourly
    SET total = NEW.total, good = NEW.good, latency_sum_us = NEW.latency_sum_us,
        latency_max_us = NEW.latency_max_us, latency_buckets = NEW.latency_buckets
    WHERE hour_ms = OLD.hour_ms AND target_id = (SELECT id FROM targets WHERE name = OLD.service);
END;

CREATE TRIGGER health_check_hourly_delete INSTEAD OF DELETE ON health_check_hourly
BEGIN
    DELETE FROM checks_hourly
    WHERE hour_ms = OLD.hour_ms AND target_id = (SELECT id FROM targets WHERE name = OLD.service);
END;
