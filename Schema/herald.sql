-- Herald's SQLite projection: the single source of truth for its DDL.
-- Tools/gen-schema embeds this file into Sources/HeraldStore/ProjectionSchema.swift (a test checks they agree),
-- so the binary needs no source tree at run time. Schema/projection.md explains every
-- difference from the PostgreSQL seed (Schema/seed/layout-e-v1.1.1.sql).
PRAGMA user_version = 6;

-- Registry -------------------------------------------------------------------

CREATE TABLE admin_users (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    email TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_position INTEGER NOT NULL
);

CREATE TABLE apps (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_position INTEGER NOT NULL
);

CREATE TABLE scripts (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    runtime TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_position INTEGER NOT NULL
);
CREATE INDEX idx_scripts_app ON scripts (app_id);

-- Every id ever created, of any kind: ids are never reused, also after deletion.
CREATE TABLE used_ids (
    id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('admin_user', 'app', 'script', 'trigger')),
    created_position INTEGER NOT NULL
) WITHOUT ROWID;

-- Layout E (seed v1.1.1) --------------------------------------------------------

CREATE TABLE triggers (
    id TEXT PRIMARY KEY NOT NULL CHECK (length(id) = 36),
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    script_id TEXT NOT NULL REFERENCES scripts(id) ON DELETE CASCADE,
    kind TEXT NOT NULL CHECK (kind IN ('kv', 'dead_letter')),
    enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    dispatch_mode TEXT NOT NULL DEFAULT 'async'
        CHECK (dispatch_mode IN ('sync', 'async')),
    retry_max_attempts INTEGER NOT NULL,
    retry_backoff TEXT NOT NULL
        CHECK (retry_backoff IN ('exponential', 'linear', 'constant')),
    retry_base_ms INTEGER NOT NULL,
    registered_by_principal TEXT NOT NULL REFERENCES admin_users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    registered_position INTEGER NOT NULL UNIQUE,
    -- The position of its last trigger.updated (its registration's when never updated): a
    -- delivery created after it saw the trigger as this row is.
    updated_position INTEGER NOT NULL CHECK (updated_position >= registered_position)
);

CREATE INDEX idx_triggers_app_kind_enabled
    ON triggers (app_id, kind)
    WHERE enabled = 1;
CREATE INDEX idx_triggers_script ON triggers (script_id);
CREATE INDEX idx_triggers_principal ON triggers (registered_by_principal);

CREATE TABLE kv_trigger_details (
    trigger_id TEXT PRIMARY KEY NOT NULL REFERENCES triggers(id) ON DELETE CASCADE,
    collection_glob TEXT NOT NULL,
    ops TEXT NOT NULL CHECK (json_valid(ops) AND json_type(ops) = 'array')
);

CREATE TABLE dead_letter_trigger_details (
    trigger_id TEXT PRIMARY KEY NOT NULL REFERENCES triggers(id) ON DELETE CASCADE,
    source_filter TEXT,
    trigger_id_filter TEXT,
    script_id_filter TEXT
);

-- Dispatch (the outbox) ---------------------------------------------------------

-- One row per delivery, keyed (source_position, trigger_id). No foreign key to triggers:
-- a delivery outlives its trigger (it is cancelled, not deleted). The CHECKs on the outbox
-- tables spell lists of three or more values with OR: SQLite evaluates `x IN (a, b, c)` by
-- building a temporary index every time a statement runs, and these rows are written for
-- every delivery and attempt.
CREATE TABLE deliveries (
    source_position INTEGER NOT NULL,
    trigger_id TEXT NOT NULL,
    trigger_rank INTEGER NOT NULL,
    app_id TEXT NOT NULL,
    script_id TEXT NOT NULL,
    source_kind TEXT NOT NULL CHECK (source_kind = 'kv' OR source_kind = 'dead_letter' OR source_kind = 'http' OR source_kind = 'manual'),
    depth INTEGER NOT NULL CHECK (depth >= 0),
    retry_max_attempts INTEGER NOT NULL,
    retry_backoff TEXT NOT NULL CHECK (retry_backoff = 'exponential' OR retry_backoff = 'linear' OR retry_backoff = 'constant'),
    retry_base_ms INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status = 'pending' OR status = 'succeeded' OR status = 'dead' OR status = 'cancelled'),
    attempts INTEGER NOT NULL CHECK (attempts >= 0),
    due_at INTEGER CHECK ((status = 'pending') = (due_at IS NOT NULL)),
    last_error TEXT,
    finished_at INTEGER CHECK ((status = 'pending') = (finished_at IS NULL)),
    -- Attempts when it was last redriven (0: never); its retry budget counts from there.
    budget_base INTEGER NOT NULL DEFAULT 0 CHECK (budget_base >= 0 AND budget_base <= attempts),
    PRIMARY KEY (source_position, trigger_id)
) WITHOUT ROWID;
CREATE INDEX idx_deliveries_pending_due ON deliveries (due_at) WHERE status = 'pending';
-- Dead and cancelled deliveries in canonical order: `deliveries --status dead` and redrive
-- selections read these few rows, not the whole table.
CREATE INDEX idx_deliveries_finished ON deliveries (status, source_position, trigger_rank)
    WHERE status = 'dead' OR status = 'cancelled';

-- Deliveries per status, moved with every batch of rows: `herald status` reads four rows
-- instead of counting the table.
CREATE TABLE delivery_counts (
    status TEXT PRIMARY KEY NOT NULL CHECK (status = 'pending' OR status = 'succeeded' OR status = 'dead' OR status = 'cancelled'),
    count INTEGER NOT NULL CHECK (count >= 0)
) WITHOUT ROWID;
INSERT INTO delivery_counts (status, count) VALUES ('pending', 0), ('succeeded', 0), ('dead', 0), ('cancelled', 0);

-- One row per delivery.attempted record.
CREATE TABLE delivery_attempts (
    source_position INTEGER NOT NULL,
    trigger_id TEXT NOT NULL,
    attempt INTEGER NOT NULL CHECK (attempt >= 1),
    position INTEGER NOT NULL UNIQUE,
    ts INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'error')),
    error TEXT,
    retryable INTEGER NOT NULL CHECK (retryable IN (0, 1)),
    duration_ms INTEGER NOT NULL CHECK (duration_ms >= 0),
    next_due_at INTEGER,
    PRIMARY KEY (source_position, trigger_id, attempt),
    FOREIGN KEY (source_position, trigger_id) REFERENCES deliveries (source_position, trigger_id)
) WITHOUT ROWID;

-- One row per dead-letter event (a delivery that died), at the position of its last attempt.
CREATE TABLE dead_letters (
    position INTEGER PRIMARY KEY NOT NULL,
    ts INTEGER NOT NULL,
    source_position INTEGER NOT NULL,
    trigger_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    script_id TEXT NOT NULL,
    source_kind TEXT NOT NULL CHECK (source_kind = 'kv' OR source_kind = 'dead_letter' OR source_kind = 'http' OR source_kind = 'manual'),
    depth INTEGER NOT NULL CHECK (depth >= 1),
    last_error TEXT,
    FOREIGN KEY (source_position, trigger_id) REFERENCES deliveries (source_position, trigger_id)
);
CREATE INDEX idx_dead_letters_delivery ON dead_letters (source_position, trigger_id);

-- One row per operator action (delivery.redriven, delivery.cancelled, delivery.invoked): who,
-- when, why. The deliveries a redrive or cancel listed are in operator_action_deliveries; an
-- invoke's delivery is (position, trigger_id).
CREATE TABLE operator_actions (
    position INTEGER PRIMARY KEY NOT NULL,
    ts INTEGER NOT NULL,
    type TEXT NOT NULL CHECK (type = 'delivery.redriven' OR type = 'delivery.cancelled' OR type = 'delivery.invoked'),
    by_admin_user_id TEXT NOT NULL CHECK (length(by_admin_user_id) = 36),
    reason TEXT,
    trigger_id TEXT CHECK ((type = 'delivery.invoked') = (trigger_id IS NOT NULL)),
    payload TEXT CHECK ((type = 'delivery.invoked') = (payload IS NOT NULL))
);

CREATE TABLE operator_action_deliveries (
    position INTEGER NOT NULL REFERENCES operator_actions (position),
    source_position INTEGER NOT NULL,
    trigger_id TEXT NOT NULL,
    PRIMARY KEY (position, source_position, trigger_id),
    FOREIGN KEY (source_position, trigger_id) REFERENCES deliveries (source_position, trigger_id)
) WITHOUT ROWID;
CREATE INDEX idx_operator_action_deliveries_delivery ON operator_action_deliveries (source_position, trigger_id);

-- The engine snapshot: the dispatcher's whole state at `position` (registry, redrivable and
-- pending deliveries; the `Dispatcher` snapshot format, with a checksum), so a restart reads one
-- value and replays only the records after it. `position` is at or before the checkpoint: a
-- restore replays the records between the two from the log. A cache of the log, never the truth.
CREATE TABLE engine_snapshot (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    position INTEGER NOT NULL CHECK (position >= 0),
    state BLOB NOT NULL
);

-- The last applied log position; committed in the same transaction as the rows it covers.
CREATE TABLE checkpoint (
    id INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    position INTEGER NOT NULL CHECK (position >= 0),
    last_ts INTEGER
);
INSERT INTO checkpoint (id, position, last_ts) VALUES (1, 0, NULL);
