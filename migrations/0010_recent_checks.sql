-- Checks as they arrive, in time order, until the writer settles them into `checks` and `checks_hourly`
-- (src/store/settle.rs). `checks` is keyed by target first, so with a week of history each target's newest
-- rows sit in a leaf page of their own, and writing every check there dirties one page of `checks` and one
-- of `checks_hourly` per check: thousands of 4 KiB pages a second at 10,000 targets, each written to the
-- WAL and again by the next checkpoint. Here new rows land on the last pages of a table keyed by time, and a
-- settle every `storage.settle_interval_s` moves them in target order: each target's leaves are written once
-- per settle, for all its checks since the last one.
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
