-- Maintenance windows declared after the fact: a window posted with `retroactive: true` (admin only) may
-- start more than `slo.maintenance_grace_minutes` in the past and so remove checks already made from the
-- SLO. It is flagged so that /slo, the report and the status page can say so.
ALTER TABLE maintenance_windows ADD COLUMN retroactive INTEGER NOT NULL DEFAULT 0 CHECK (retroactive IN (0, 1));
