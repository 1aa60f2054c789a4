-- Refused (401, 403, 405) and rate-limited (429) attempts are aggregated: one row per service, client, role,
-- method, route and outcome per minute, `count` saying how many attempts it stands for (its `at_ms` and
-- `request_id` are the first one's). An allowed request that tried to change something stays one row, count 1.
ALTER TABLE audit_log ADD COLUMN count INTEGER NOT NULL DEFAULT 1 CHECK (count >= 1);
