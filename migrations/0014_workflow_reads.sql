-- Indexes for the reads of the workflow runs (the Boss API's routes and status, the engine's concurrency
-- groups) and for their retention, so that none of them scans a table. The timers (`due_waits`, `next_wake`)
-- need none: the (state, id) index of 0013 finds the waiting runs, and only those are sorted.

-- A (workflow, concurrency key) group's runs in progress (`in_progress`, `group_in_progress`, the queue's
-- group check) and a workflow's runs per state (`state_counts`, read from the index alone).
CREATE INDEX workflow_runs_by_group ON workflow_runs (workflow, concurrency_key, state);

-- A workflow's last finished run and its failures of the last 24 h (`summary`).
CREATE INDEX workflow_runs_finished_by_workflow ON workflow_runs (workflow, finished_ms)
    WHERE finished_ms IS NOT NULL;

-- Finished runs older than the retention cut.
CREATE INDEX workflow_runs_by_finished ON workflow_runs (finished_ms) WHERE finished_ms IS NOT NULL;

-- The retries of a run: the foreign key check when a run is deleted, and the link cleared before it.
CREATE INDEX workflow_runs_by_retry_of ON workflow_runs (retry_of) WHERE retry_of IS NOT NULL;

-- Open approvals, oldest first.
CREATE INDEX workflow_approvals_open ON workflow_approvals (requested_ms) WHERE decision IS NULL;
