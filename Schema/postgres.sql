-- Herald's PostgreSQL projection (`herald project --postgres URL`): the same content as the
-- SQLite projection (Schema/herald.sql), in a schema of its own (`herald` by default).
-- Tools/gen-schema embeds this file and the seed into Sources/HeraldPostgres/PostgresSchema.swift.
-- Herald runs it in one transaction, with search_path set to the schema: first the part above
-- the line `-- @seed`, then the seed (Schema/seed/layout-e-v1.1.1.sql) exactly as it is, then the
-- part below. The seed's tables (`triggers`, `kv_trigger_details`, `dead_letter_trigger_details`)
-- are never altered; what Herald needs beside them is in tables of its own.
-- Schema/projection.md ("PostgreSQL") explains every type and every difference from SQLite.

-- Registry: the tables the seed references ------------------------------------------------

CREATE TABLE admin_users (
    id UUID PRIMARY KEY,
    email TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    created_position BIGINT NOT NULL
);

CREATE TABLE apps (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    created_position BIGINT NOT NULL
);

CREATE TABLE scripts (
    id UUID PRIMARY KEY,
    app_id UUID NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    runtime TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    created_position BIGINT NOT NULL
);
CREATE INDEX idx_scripts_app ON scripts (app_id);

-- Every id ever created, of any kind: ids are never reused, also after deletion.
CREATE TABLE used_ids (
    id UUID PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('admin_user', 'app', 'script', 'trigger')),
    created_position BIGINT NOT NULL
);

-- @seed

-- Beside the seed's `triggers`: the log positions of a trigger's registration and last update
-- (`registered_position` is the trigger's rank in the canonical delivery order).
CREATE TABLE trigger_positions (
    trigger_id UUID PRIMARY KEY REFERENCES triggers(id) ON DELETE CASCADE,
    registered_position BIGINT NOT NULL UNIQUE,
    updated_position BIGINT NOT NULL CHECK (updated_position >= registered_position)
);

-- Dispatch (the outbox) ---------------------------------------------------------------------
-- Times are the log's: `ts`, `due_at` are milliseconds since the Unix epoch; `finished_at`
-- and every `*position` are log positions.

CREATE TABLE deliveries (
    source_position BIGINT NOT NULL,
    trigger_id UUID NOT NULL,
    trigger_rank BIGINT NOT NULL,
    app_id UUID NOT NULL,
    script_id UUID NOT NULL,
    source_kind TEXT NOT NULL CHECK (source_kind IN ('kv', 'dead_letter', 'http', 'manual')),
    depth BIGINT NOT NULL CHECK (depth >= 0),
    retry_max_attempts BIGINT NOT NULL,
    retry_backoff TEXT NOT NULL CHECK (retry_backoff IN ('exponential', 'linear', 'constant')),
    retry_base_ms BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'dead', 'cancelled')),
    attempts BIGINT NOT NULL CHECK (attempts >= 0),
    due_at BIGINT CHECK ((status = 'pending') = (due_at IS NOT NULL)),
    last_error TEXT,
    finished_at BIGINT CHECK ((status = 'pending') = (finished_at IS NULL)),
    budget_base BIGINT NOT NULL DEFAULT 0 CHECK (budget_base >= 0 AND budget_base <= attempts),
    PRIMARY KEY (source_position, trigger_id)
);
CREATE INDEX idx_deliveries_pending_due ON deliveries (due_at) WHERE status = 'pending';
CREATE INDEX idx_deliveries_finished ON deliveries (status, source_position, trigger_rank)
    WHERE status = 'dead' OR status = 'cancelled';

CREATE TABLE delivery_counts (
    status TEXT PRIMARY KEY CHECK (status IN ('pending', 'succeeded', 'dead', 'cancelled')),
    count BIGINT NOT NULL CHECK (count >= 0)
);
INSERT INTO delivery_counts (status, count) VALUES ('pending', 0), ('succeeded', 0), ('dead', 0), ('cancelled', 0);

CREATE TABLE delivery_attempts (
    source_position BIGINT NOT NULL,
    trigger_id UUID NOT NULL,
    attempt BIGINT NOT NULL CHECK (attempt >= 1),
    position BIGINT NOT NULL UNIQUE,
    ts BIGINT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'error')),
    error TEXT,
    retryable BOOLEAN NOT NULL,
    duration_ms BIGINT NOT NULL CHECK (duration_ms >= 0),
    next_due_at BIGINT,
    PRIMARY KEY (source_position, trigger_id, attempt),
    FOREIGN KEY (source_position, trigger_id) REFERENCES deliveries (source_position, trigger_id)
);

CREATE TABLE dead_letters (
    position BIGINT PRIMARY KEY,
    ts BIGINT NOT NULL,
    source_position BIGINT NOT NULL,
    trigger_id UUID NOT NULL,
    app_id UUID NOT NULL,
    script_id UUID NOT NULL,
    source_kind TEXT NOT NULL CHECK (source_kind IN ('kv', 'dead_letter', 'http', 'manual')),
    depth BIGINT NOT NULL CHECK (depth >= 1),
    last_error TEXT,
    FOREIGN KEY (source_position, trigger_id) REFERENCES deliveries (source_position, trigger_id)
);
CREATE INDEX idx_dead_letters_delivery ON dead_letters (source_position, trigger_id);

CREATE TABLE operator_actions (
    position BIGINT PRIMARY KEY,
    ts BIGINT NOT NULL,
    type TEXT NOT NULL CHECK (type IN ('delivery.redriven', 'delivery.cancelled', 'delivery.invoked')),
    by_admin_user_id UUID NOT NULL,
    reason TEXT,
    trigger_id UUID CHECK ((type = 'delivery.invoked') = (trigger_id IS NOT NULL)),
    payload TEXT CHECK ((type = 'delivery.invoked') = (payload IS NOT NULL))
);

CREATE TABLE operator_action_deliveries (
    position BIGINT NOT NULL REFERENCES operator_actions (position),
    source_position BIGINT NOT NULL,
    trigger_id UUID NOT NULL,
    PRIMARY KEY (position, source_position, trigger_id),
    FOREIGN KEY (source_position, trigger_id) REFERENCES deliveries (source_position, trigger_id)
);
CREATE INDEX idx_operator_action_deliveries_delivery ON operator_action_deliveries (source_position, trigger_id);

-- The engine snapshot (the dispatcher's state at `position`, Herald's snapshot format with its
-- checksum): a catch-up restores from it and replays only the records after it.
CREATE TABLE engine_snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position BIGINT NOT NULL CHECK (position >= 0),
    state BYTEA NOT NULL
);

-- The last applied log position, moved in the same transaction as the rows it covers, only
-- from the position the writer read (`WHERE position = previous`, exactly one row).
CREATE TABLE checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position BIGINT NOT NULL CHECK (position >= 0),
    last_ts BIGINT,
    schema_version INTEGER NOT NULL
);
INSERT INTO checkpoint (id, position, last_ts, schema_version) VALUES (1, 0, NULL, 1);
