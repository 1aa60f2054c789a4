-- Every call of an MCP tool through the MCP WebBridge (`POST /tools/{name}`), written by the batching writer.
-- `tool` is the name the call was made with (`server__tool` when two servers list the same name); `outcome`
-- is one of `mcp_tool_calls_total`'s outcomes. `latency_us` is none when nothing was sent (invalid
-- arguments, server not ready, breaker open). `arguments` and `result` are kept only for servers with
-- `log_arguments: true`, cut at 64 KiB; `error` says why a call failed and never quotes the arguments.
-- Kept as long as the raw checks (`storage.retention_days`).
CREATE TABLE tool_calls (
    id             INTEGER PRIMARY KEY,
    at_ms          INTEGER NOT NULL,
    server         TEXT    NOT NULL,
    tool           TEXT    NOT NULL,
    outcome        TEXT    NOT NULL CHECK (outcome IN ('ok', 'tool_error', 'invalid', 'not_ready', 'breaker_open', 'timeout', 'too_large', 'upstream_error')),
    latency_us     INTEGER,
    request_id     TEXT    NOT NULL,
    role           TEXT    CHECK (role IN ('read', 'operate', 'admin')),
    argument_bytes INTEGER NOT NULL,
    error          TEXT,
    arguments      TEXT,
    result         TEXT
);
CREATE INDEX tool_calls_by_time ON tool_calls (at_ms);
CREATE INDEX tool_calls_by_tool ON tool_calls (tool, at_ms);
CREATE INDEX tool_calls_by_server ON tool_calls (server, at_ms);
