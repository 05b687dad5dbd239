import HeraldCore
import HeraldStore

/// The projection of the log in PostgreSQL: the seed's Layout E tables as the migration
/// creates them, Herald's registry and outbox tables beside them, and the checkpoint, all in
/// one schema of their own (`Schema/postgres.sql`). The same rows as the SQLite
/// ``HeraldStore/Projection``, for readers that want them in the database they already run.
///
/// ```swift
/// let store = try PostgresProjection(url: "postgresql://herald@db:5432/app", schema: "herald")
/// try store.apply(steps, registryAfter: registry)   // one transaction, checkpoint included
/// ```
///
/// A writer holds a session advisory lock on its schema for as long as it is open: a second
/// writer is refused when it opens (``PostgresStoreError/busy(location:schema:holder:)``). Beyond that
/// lock, each batch moves the checkpoint only from the position it read
/// (`UPDATE … WHERE position = previous`, exactly one row), so two projectors can never
/// interleave their batches.
public final class PostgresProjection: ProjectionStore, EngineSnapshotStore, @unchecked Sendable {
    public let connection: PostgresConnection
    /// The schema the tables are in.
    public let schema: String
    /// False when opened read-only: nothing is ever written, no lock is taken.
    public let writable: Bool
    /// Where a damaged engine snapshot is told (the state is then replayed from the log).
    public var diagnostics: (@Sendable (String) -> Void)?

    /// Opens (and, for a writer, creates) the projection in `schema` at `url`.
    /// - Throws: ``PostgresStoreError`` for a bad schema name, a schema of other tables or
    ///   another version, a second writer; ``PostgresError`` for the server's own errors.
    public init(url: String, schema: String = "herald", readOnly: Bool = false) throws {
        try Self.checkName(schema)
        connection = try PostgresConnection(url: url)
        self.schema = schema
        writable = !readOnly
        try connection.execute("SET search_path TO \(schema)")
        if writable {
            try Self.lockForWriting(connection, schema: schema)
            try create()
            // Deliveries an attempt, a cancel or a redrive changed, per batch, then merged into
            // `deliveries` by one UPDATE (emptied by each commit).
            try connection.execute("""
                CREATE TEMP TABLE IF NOT EXISTS herald_delivery_updates (
                    source_position BIGINT NOT NULL, trigger_id UUID NOT NULL, status TEXT NOT NULL,
                    attempts BIGINT NOT NULL, due_at BIGINT, last_error TEXT, finished_at BIGINT,
                    budget_base BIGINT NOT NULL) ON COMMIT DELETE ROWS
                """)
        } else {
            guard try tableCount() > 0 else { throw PostgresStoreError.missing(location: connection.location, schema: schema) }
            try checkVersion()
        }
    }

    /// `[a-z_][a-z0-9_]*`, at most 63 bytes: a name that needs no quoting anywhere.
    public static func checkName(_ schema: String) throws {
        let bytes = Array(schema.utf8)
        let valid = !bytes.isEmpty && bytes.count <= 63 && bytes.enumerated().allSatisfy { index, byte in
            (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F || (index > 0 && byte >= 0x30 && byte <= 0x39)
        }
        guard valid else { throw PostgresStoreError.badSchemaName(schema) }
    }

    /// How long a writer waits for another's lock before it gives up. A projector killed in the
    /// middle of a statement holds its lock until its server process notices the closed
    /// connection, when that statement ends: a restart right after a crash waits for that.
    public static let lockWaitMs = 5_000

    /// Takes the writer's session lock on `schema` (waiting up to ``lockWaitMs``), or throws
    /// ``PostgresStoreError/busy(location:schema:holder:)``, naming the server process that holds it.
    public static func lockForWriting(_ connection: PostgresConnection, schema: String) throws {
        // Named in pg_stat_activity, so a refused writer can tell who holds the lock.
        try connection.execute("SET application_name = 'herald'")
        // The server waits (lock_timeout), not this process: one round trip.
        try connection.execute("SET lock_timeout = \(lockWaitMs)")
        do {
            try connection.run("SELECT pg_advisory_lock(hashtext($1))", [.text("herald projector " + schema)])
        } catch {
            guard error.sqlState == "55P03" else { throw error }  // lock_not_available
            // Who holds it: a one-bigint advisory key is filed as (classid, objid) = (high, low) 32 bits.
            let holder = try? connection.run("""
                SELECT a.pid, coalesce(host(a.client_addr), 'a local socket'), a.application_name, a.backend_start
                FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                  AND l.objid::bigint = (hashtext($1)::bigint & 4294967295)
                """, [.text("herald projector " + schema)]).rows.first.map { row in
                    "server process \(row[0] ?? "?") (\(row[2].map { $0.isEmpty ? "" : $0 + ", " } ?? "")from \(row[1] ?? "?"), connected since \(row[3] ?? "?"))"
                }
            throw PostgresStoreError.busy(location: connection.location, schema: schema, holder: holder)
        }
        try connection.execute("SET lock_timeout = 0")
    }

    private func tableCount() throws -> Int {
        let (rows, _) = try connection.run("SELECT count(*) FROM information_schema.tables WHERE table_schema = $1", [.text(schema)])
        return rows.first?.first.flatMap { $0 }.flatMap { Int($0) } ?? 0
    }

    /// Creates the schema and its tables when they are not there (one transaction, under a
    /// transaction lock, so two processes starting at once do not both create them).
    private func create() throws {
        try connection.transaction {
            try connection.run("SELECT pg_advisory_xact_lock(hashtext($1))", [.text("herald schema " + schema)])
            if try tableCount() == 0 {
                try connection.execute("CREATE SCHEMA IF NOT EXISTS \(schema)")
                let lines = PostgresSchema.herald.split(separator: "\n", omittingEmptySubsequences: false)
                let parts = lines.split(separator: "-- @seed", omittingEmptySubsequences: false)
                    .map { $0.joined(separator: "\n") }
                guard parts.count == 2 else {
                    throw PostgresStoreError.damaged(location: connection.location, schema: schema,
                                                     reason: "the embedded DDL has no single `-- @seed` line")
                }
                try connection.execute(parts[0])
                try connection.execute(PostgresSchema.seed)
                try connection.execute(parts[1])
            }
        }
        try checkVersion()
    }

    private func checkVersion() throws {
        // A schema of other tables: no checkpoint table, or one without a schema_version column.
        let (found, _) = try connection.run("""
            SELECT count(*) FROM information_schema.columns
            WHERE table_schema = $1 AND table_name = 'checkpoint' AND column_name = 'schema_version'
            """, [.text(schema)])
        guard found.first?.first == "1" else {
            throw PostgresStoreError.foreignSchema(location: connection.location, schema: schema)
        }
        let (rows, _) = try connection.run("SELECT schema_version FROM \(schema).checkpoint WHERE id = 1")
        guard let text = rows.first?.first ?? nil, let version = Int(text) else {
            throw PostgresStoreError.damaged(location: connection.location, schema: schema, reason: "the checkpoint row is missing")
        }
        guard version == PostgresSchema.version else {
            throw PostgresStoreError.schemaVersion(location: connection.location, schema: schema, found: version,
                                                   expected: PostgresSchema.version)
        }
    }

    public var location: String { "\(connection.location) (schema \(schema))" }

    // MARK: - Checkpoint

    public func checkpointPosition() throws -> UInt64 {
        try checkpoint().position
    }

    /// The last applied position and its ts.
    public func checkpoint(lockingRow: Bool = false) throws -> (position: UInt64, lastTs: Int64?) {
        let sql = "SELECT position, last_ts FROM checkpoint WHERE id = 1" + (lockingRow ? " FOR UPDATE" : "")
        let (rows, _) = try connection.run(sql)
        guard let row = rows.first, let text = row[0], let position = UInt64(text) else {
            throw PostgresStoreError.damaged(location: connection.location, schema: schema, reason: "the checkpoint row is missing or invalid")
        }
        return (position, row[1].flatMap { Int64($0) })
    }

    // MARK: - Writing

    /// Applies `steps` in one transaction and moves the checkpoint to the last one's position.
    /// The outbox rows go in by COPY (new deliveries, attempts, dead letters) and one
    /// `UPDATE … FROM` for the deliveries that changed; registry records, rare, one statement each.
    /// Fills the empty projection with what a compacted log starts from (the rows
    /// `Projection.seed(from:)` writes to SQLite) and the engine snapshot, in one transaction.
    public func seed(from state: CompactedState) throws {
        precondition(writable, "seed on a PostgresProjection opened read-only")
        var batch = Batch()
        do {
            try batch.seed(state)
        } catch let failure as Batch.Unstorable {
            throw PostgresStoreError.unstorable(location: connection.location, schema: schema, position: failure.position,
                                                column: failure.column)
        }
        try connection.transaction {
            let (checkpoint, _) = try checkpoint(lockingRow: true)
            guard checkpoint == 0 else { throw StoreError.checkpointMoved(path: location, expected: 0, found: checkpoint) }
            try connection.copy(into: "deliveries", columns: Batch.deliveryColumns, batch.created)
            for statement in batch.statements {
                try connection.run(statement.sql, statement.values)
            }
            try connection.copy(into: "delivery_attempts", columns: Batch.attemptColumns, batch.attempts)
            try connection.copy(into: "dead_letters", columns: Batch.deadLetterColumns, batch.deadLetters)
            for status in DeliveryStatus.allCases {
                try connection.run("UPDATE delivery_counts SET count = $1 WHERE status = $2",
                                   [.int(batch.counts[status]), .text(status.wireName)])
            }
            try connection.run("UPDATE checkpoint SET position = $1, last_ts = $2 WHERE id = 1",
                               [.int(Int64(bitPattern: state.start - 1)), state.dispatcher.lastTs.map { .int($0) } ?? .null])
            // In the same transaction: a seeded schema always has the state to go on from.
            try connection.run("INSERT INTO engine_snapshot (id, position, state) VALUES (1, $1, $2) "
                               + "ON CONFLICT (id) DO UPDATE SET position = excluded.position, state = excluded.state",
                               [.int(Int64(bitPattern: state.start - 1)), .bytes(state.dispatcher.snapshotBytes())])
        }
    }

    /// Removes the history a compacted log no longer holds (the SQL of `Projection.prune(to:)`).
    public func prune(to state: CompactedState) throws {
        precondition(writable, "prune on a PostgresProjection opened read-only")
        let start = PostgresValue.int(Int64(bitPattern: state.start))
        let keptBefore = state.timelines.filter { $0.id.sourcePosition < state.start }
        var kept = CopyRows()
        for timeline in keptBefore {
            kept.int(Int64(bitPattern: timeline.id.sourcePosition))
            try kept.text(timeline.id.triggerID.description)
            kept.endRow()
        }
        try connection.transaction {
            let held = try connection.run("SELECT count(*) FROM deliveries WHERE source_position < $1", [start]).rows.first?.first.flatMap { $0 }.flatMap { Int($0) } ?? 0
            let actions = try connection.run("SELECT count(*) FROM operator_actions WHERE position < $1", [start]).rows.first?.first.flatMap { $0 }.flatMap { Int($0) } ?? 0
            guard held > keptBefore.count || actions > 0 else { return }
            try connection.execute("CREATE TEMP TABLE IF NOT EXISTS herald_kept (source_position BIGINT NOT NULL, trigger_id UUID NOT NULL) ON COMMIT DELETE ROWS")
            try connection.copy(into: "herald_kept", columns: "source_position, trigger_id", kept)
            let dropped = "t.source_position < $1 AND NOT EXISTS (SELECT 1 FROM herald_kept k WHERE k.source_position = t.source_position AND k.trigger_id = t.trigger_id)"
            try connection.run("DELETE FROM operator_action_deliveries WHERE position < $1", [start])
            try connection.run("DELETE FROM operator_actions WHERE position < $1", [start])
            try connection.run("DELETE FROM delivery_attempts t WHERE \(dropped)", [start])
            try connection.run("DELETE FROM dead_letters t WHERE \(dropped)", [start])
            try connection.run("DELETE FROM deliveries t WHERE \(dropped)", [start])
        }
    }

    public func apply(_ steps: [ProjectionStep], registryAfter registry: Registry) throws {
        guard let first = steps.first, let last = steps.last else { return }
        precondition(writable, "apply on a PostgresProjection opened read-only")
        var batch = Batch()
        do {
            try batch.add(steps, registry: registry)
        } catch let failure as Batch.Unstorable {
            throw PostgresStoreError.unstorable(location: connection.location, schema: schema, position: failure.position,
                                                column: failure.column)
        }
        try connection.transaction {
            // The row lock first: a second writer waits here, then finds the checkpoint moved.
            let (checkpoint, _) = try checkpoint(lockingRow: true)
            guard checkpoint == first.position - 1 else {
                throw StoreError.checkpointMoved(path: location, expected: first.position - 1, found: checkpoint)
            }
            try connection.copy(into: "deliveries", columns: Batch.deliveryColumns, batch.created)
            for statement in batch.statements {
                try connection.run(statement.sql, statement.values)
            }
            try connection.copy(into: "delivery_attempts", columns: Batch.attemptColumns, batch.attempts)
            try connection.copy(into: "dead_letters", columns: Batch.deadLetterColumns, batch.deadLetters)
            if batch.updates.count > 0 {
                try connection.copy(into: "herald_delivery_updates", columns: Batch.updateColumns, batch.updates)
                try connection.run("""
                    UPDATE deliveries d SET status = u.status, attempts = u.attempts, due_at = u.due_at,
                        last_error = u.last_error, finished_at = u.finished_at, budget_base = u.budget_base
                    FROM herald_delivery_updates u
                    WHERE d.source_position = u.source_position AND d.trigger_id = u.trigger_id
                    """)
            }
            for status in DeliveryStatus.allCases where batch.counts[status] != 0 {
                try connection.run("UPDATE delivery_counts SET count = count + $1 WHERE status = $2",
                                   [.int(batch.counts[status]), .text(status.wireName)])
            }
            let moved = try connection.run("UPDATE checkpoint SET position = $1, last_ts = $2 WHERE id = 1 AND position = $3",
                                           [.int(Int64(bitPattern: last.position)), .int(last.record.ts),
                                            .int(Int64(bitPattern: checkpoint))]).affected
            guard moved == 1 else {
                throw StoreError.checkpointMoved(path: location, expected: checkpoint, found: try self.checkpoint().position)
            }
        }
    }

    // MARK: - Engine snapshot

    /// The engine snapshot at or before the checkpoint; with none (or a damaged one, told to
    /// ``diagnostics``) the empty state at position 0, so a restore replays the log through the
    /// checkpoint. Never `nil`: this store keeps no rows a dispatcher could be rebuilt from alone.
    public func loadSnapshot() throws -> Dispatcher? {
        let (rows, _) = try connection.run("SELECT s.position, s.state, c.position FROM engine_snapshot s, checkpoint c")
        guard let row = rows.first, let hex = row[1] else { return Dispatcher() }
        do {
            guard let bytes = Self.bytes(ofHex: hex) else {
                throw PostgresStoreError.damaged(location: connection.location, schema: schema, reason: "engine_snapshot.state is not BYTEA hex output")
            }
            let snapshot = try Dispatcher(snapshotBytes: bytes)
            guard String(snapshot.position) == row[0], let checkpoint = row[2].flatMap({ UInt64($0) }),
                  snapshot.position <= checkpoint else {
                throw PostgresStoreError.damaged(location: connection.location, schema: schema,
                                                 reason: "engine_snapshot of position \(snapshot.position) is filed at \(row[0] ?? "NULL")")
            }
            return snapshot
        } catch {
            diagnostics?("warning: \(location): engine_snapshot does not decode (\(error)); the state is replayed from the log")
            return Dispatcher()
        }
    }

    /// Reached only when the checkpoint is past the log's end (``loadSnapshot()`` answers otherwise).
    public func loadDispatcher() throws -> Dispatcher {
        throw PostgresStoreError.damaged(location: connection.location, schema: schema,
                                         reason: "its checkpoint (position \(try checkpointPosition())) is past the log's end: it belongs to another log")
    }

    public func saveSnapshot(of dispatcher: Dispatcher) throws {
        guard writable else { return }
        let (rows, _) = try connection.run("SELECT position FROM engine_snapshot WHERE id = 1")
        if let saved = rows.first?.first.flatMap({ $0 }).flatMap({ UInt64($0) }), saved >= dispatcher.position { return }
        guard dispatcher.position <= (try checkpointPosition()) else { return }
        try connection.run("""
            INSERT INTO engine_snapshot (id, position, state) VALUES (1, $1, $2)
            ON CONFLICT (id) DO UPDATE SET position = excluded.position, state = excluded.state
            WHERE engine_snapshot.position < excluded.position
            """, [.int(Int64(bitPattern: dispatcher.position)), .bytes(dispatcher.snapshotBytes())])
    }

    /// `BYTEA`'s text output (`\x0a1b…`) as bytes; nil for anything else.
    static func bytes(ofHex text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count >= 2, digits[0] == 0x5C, digits[1] == 0x78, digits.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: c - 0x30
            case 0x61...0x66: c - 0x61 + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(digits.count / 2 - 1)
        var index = 2
        while index < digits.count {
            guard let high = nibble(digits[index]), let low = nibble(digits[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    // MARK: - Reading

    public func deadLetter(at position: UInt64) throws -> DeadLetterEvent? {
        let (rows, _) = try connection.run("""
            SELECT ts, source_position, trigger_id, app_id, script_id, source_kind, depth, last_error
            FROM dead_letters WHERE position = $1
            """, [.int(Int64(bitPattern: position))])
        guard let r = rows.first else { return nil }
        guard let ts = r[0].flatMap({ Int64($0) }), let source = r[1].flatMap({ UInt64($0) }),
              let trigger = r[2].flatMap(HeraldID.init), let app = r[3].flatMap(HeraldID.init),
              let script = r[4].flatMap(HeraldID.init), let kind = r[5].flatMap(SourceKind.init(name:)),
              let depth = r[6].flatMap({ Int64($0) }) else {
            throw PostgresStoreError.damaged(location: connection.location, schema: schema,
                                             reason: "the dead_letters row at position \(position) is invalid")
        }
        return DeadLetterEvent(position: position, ts: ts, delivery: DeliveryID(sourcePosition: source, triggerID: trigger),
                               appID: app, sourceKind: kind, triggerID: trigger, scriptID: script, depth: depth, lastError: r[7])
    }

    public func forEachDelivery(matching selection: DeliverySelection, _ body: (Delivery) throws -> Void) throws {
        var left = selection.limit ?? .max
        guard left > 0 else { return }
        var failure: Error?
        try connection.run("SELECT \(Batch.deliveryColumns) FROM deliveries ORDER BY source_position, trigger_rank", [],
                           streaming: true) { row in
            guard failure == nil, left > 0 else { return }
            do {
                let delivery = try self.delivery(row)
                guard selection.matches(delivery) else { return }
                left -= 1
                try body(delivery)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// A deliveries row (columns as ``Batch/deliveryColumns`` lists them), every field checked.
    func delivery(_ r: [String?]) throws -> Delivery {
        func int(_ i: Int) -> Int64? { r[i].flatMap { Int64($0) } }
        guard r.count == 16, let source = r[0].flatMap({ UInt64($0) }), let trigger = r[1].flatMap(HeraldID.init),
              let rank = r[2].flatMap({ UInt64($0) }), let app = r[3].flatMap(HeraldID.init),
              let script = r[4].flatMap(HeraldID.init), let kind = r[5].flatMap(SourceKind.init(name:)),
              let depth = int(6), let maxAttempts = int(7), let backoff = r[8].flatMap(Backoff.init(name:)),
              let base = int(9), let status = r[10].flatMap(DeliveryStatus.init(name:)), let attempts = int(11),
              let budget = int(15) else {
            throw PostgresStoreError.damaged(location: connection.location, schema: schema,
                                             reason: "a deliveries row holds an invalid value: \(r.map { $0 ?? "NULL" })")
        }
        return Delivery(id: DeliveryID(sourcePosition: source, triggerID: trigger), appID: app, scriptID: script,
                        sourceKind: kind, depth: depth, retry: RetryConfig(maxAttempts: maxAttempts, backoff: backoff, baseMs: base),
                        triggerRank: rank, status: status, attempts: attempts, dueAt: int(12), lastError: r[13],
                        finishedAt: r[14].flatMap { UInt64($0) }, budgetBase: budget)
    }

    /// Deliveries per status, from `delivery_counts`.
    public func summary(now: Int64) throws -> DeliverySummary {
        var counts = DeliveryCounts()
        for row in try connection.run("SELECT status, count FROM delivery_counts").rows {
            guard let status = row[0].flatMap(DeliveryStatus.init(name:)), let count = row[1].flatMap({ Int64($0) }) else {
                throw PostgresStoreError.damaged(location: connection.location, schema: schema, reason: "delivery_counts holds an invalid row")
            }
            counts[status] = count
        }
        let due = try connection.run("SELECT count(*) FILTER (WHERE due_at <= $1), min(due_at) FROM deliveries WHERE status = 'pending'",
                                     [.int(now)]).rows.first
        return DeliverySummary(position: try checkpointPosition(), counts: counts,
                               dueNow: due?[0].flatMap { Int64($0) } ?? 0, nextDueAt: due?[1].flatMap { Int64($0) })
    }
}

/// Errors of the PostgreSQL projection (the server's own errors are ``PostgresError``).
public enum PostgresStoreError: Error, Sendable, CustomStringConvertible {
    case badSchemaName(String)
    /// Another writer holds the schema.
    case busy(location: String, schema: String, holder: String?)
    /// Opened for reading, but nothing was projected there yet.
    case missing(location: String, schema: String)
    /// The schema holds tables that are not a Herald projection.
    case foreignSchema(location: String, schema: String)
    case schemaVersion(location: String, schema: String, found: Int, expected: Int)
    case damaged(location: String, schema: String, reason: String)
    /// A value PostgreSQL cannot store (text with U+0000).
    case unstorable(location: String, schema: String, position: UInt64, column: String)

    public var description: String {
        switch self {
        case .badSchemaName(let name):
            "--postgres-schema \"\(name)\": a schema name is 1 to 63 of a-z, 0-9 and _, not starting with a digit"
        case .busy(let location, let schema, let holder):
            "PostgreSQL \(location): another Herald projector is writing schema \(schema) (\(holder.map { "held by " + $0 } ?? "it holds its advisory lock")); nothing was written. Stop it, or project into another schema."
        case .missing(let location, let schema):
            "PostgreSQL \(location): schema \(schema) holds no Herald projection; create it with `herald project --postgres URL`."
        case .foreignSchema(let location, let schema):
            "PostgreSQL \(location): schema \(schema) holds tables but no Herald checkpoint; refusing to touch it (choose another --postgres-schema)."
        case .schemaVersion(let location, let schema, let found, let expected):
            "PostgreSQL \(location): schema \(schema) has projection schema version \(found), this Herald uses \(expected); rebuild it with `herald project --postgres URL --rebuild`."
        case .damaged(let location, let schema, let reason):
            "PostgreSQL \(location): the projection in schema \(schema) is damaged: \(reason). Rebuild it with `herald project --postgres URL --rebuild`."
        case .unstorable(let location, let schema, let position, let column):
            "PostgreSQL \(location): the record at position \(position) puts U+0000 into \(column), which PostgreSQL text cannot store; schema \(schema) stays at the position before its batch."
        }
    }
}
