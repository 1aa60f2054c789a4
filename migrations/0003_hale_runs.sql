-- Every start of hale on this database, and how it ended: a run without `ended_at_ms` was killed or crashed
-- (or is the one running now). Restarts of hale itself count as restarts, like those of a target.
CREATE TABLE hale_runs (
    id            INTEGER PRIMARY KEY,
    started_at_ms INTEGER NOT NULL,
    pid           INTEGER NOT NULL,
    version       TEXT    NOT NULL,
    -- Set by a graceful stop; NULL while running, and forever for a run that was killed or crashed.
    ended_at_ms   INTEGER,
    -- Checks the database did not take during the run (dropped or unwritten at the stop).
    lost_checks   INTEGER
);
CREATE INDEX hale_runs_by_start ON hale_runs (started_at_ms);
