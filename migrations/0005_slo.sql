-- SLOs: maintenance windows and a small key/value table for one-off upgrades of stored data.
-- Times are Unix epoch milliseconds, as in 0001.

-- A stretch of time when a target (or every target, target NULL) is expected to be down: its scheduled
-- checks in the window are not valid for the SLO. Windows from the config file are not copied here; this
-- table holds the ones posted to the API.
CREATE TABLE maintenance_windows (
    id            INTEGER PRIMARY KEY,
    target        TEXT,
    starts_at_ms  INTEGER NOT NULL,
    ends_at_ms    INTEGER NOT NULL,
    reason        TEXT    NOT NULL,
    source        TEXT    NOT NULL CHECK (source IN ('config', 'api')),
    created_at_ms INTEGER NOT NULL,
    CHECK (ends_at_ms > starts_at_ms)
);
-- "Active or ended since" lists and the SLO engine read by end time.
CREATE INDEX maintenance_windows_by_end ON maintenance_windows (ends_at_ms);

-- Facts about the stored data itself, such as "rollups count scheduled checks only" (set once the hourly
-- rollups written by older versions, which counted on-demand checks too, were rebuilt from raw checks).
CREATE TABLE hale_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
