import HeraldCore

/// The SQLite projection of the log: Layout E, the registry tables and the outbox
/// (`deliveries`, `delivery_attempts`, `dead_letters`), plus the checkpoint.
///
/// Rows and checkpoint commit in one transaction, so the projection always describes
/// exactly positions 1…checkpoint.
/// ```swift
/// let projection = try Projection(path: "herald-data/projection.sqlite")
/// try projection.apply(batch)            // [(position, record, effects)] + registry after
/// let snapshot = try projection.loadDispatcher()
/// ```
public final class Projection: ProjectionStore, EngineSnapshotStore, @unchecked Sendable {
    /// One applied record (see ``HeraldCore/ProjectionStep``).
    public typealias Step = ProjectionStep

    /// The underlying connection.
    public let database: SQLiteDatabase
    /// Where a damaged engine snapshot is told (it is then dropped and the rows are read; see
    /// ``loadSnapshot()``). The data directory passes its own diagnostics; the engine its logger.
    public var diagnostics: (@Sendable (String) -> Void)?
    /// False when opened `readOnly`: nothing is ever written.
    let writable: Bool
    /// Prepared statements by their SQL literal's address: a lookup hashes one pointer, not
    /// the few hundred bytes of the text (this ran for every row written).
    private var statements: [UnsafeRawPointer: SQLiteStatement] = [:]

    /// Opens the projection at `path`, creating the schema when the file is new.
    /// A database of another schema version is refused.
    ///
    /// `readOnly`: opens an existing projection for reading only (no schema, no pragma that
    /// writes), so reads work on a read-only data directory and never race a writer.
    /// `immutable`: see `SQLiteDatabase(path:readOnly:immutable:)`.
    public init(path: String, readOnly: Bool = false, immutable: Bool = false) throws {
        database = try SQLiteDatabase(path: path, readOnly: readOnly, immutable: immutable)
        writable = !readOnly
        if readOnly {
            let version = try database.rows("PRAGMA user_version").first?.first?.integer ?? 0
            if version == 0, try database.rows("SELECT count(*) FROM sqlite_master").first?.first?.integer == 0 {
                // A writer opened it and has not committed the schema yet.
                throw StoreError.notCreatedYet(path: path)
            }
            guard version == ProjectionSchema.version else {
                throw StoreError.schemaVersion(path: path, found: version, expected: ProjectionSchema.version)
            }
            return
        }
        try database.execute("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=16384; PRAGMA cache_size=-65536;")
        var version = try database.rows("PRAGMA user_version").first?.first?.integer ?? 0
        if version == 0 {
            // Checked again under the write lock: two processes opening a new projection at once
            // (`herald run` and `herald verify`) must not both create the schema.
            version = try database.transaction {
                let now = try database.rows("PRAGMA user_version").first?.first?.integer ?? 0
                guard now == 0 else { return now }
                let tables = try database.rows("SELECT count(*) FROM sqlite_master WHERE type = 'table'").first?.first?.integer ?? 0
                guard tables == 0 else {
                    throw StoreError.foreignDatabase(path: path)
                }
                try database.execute(ProjectionSchema.sql)
                return ProjectionSchema.version
            }
        }
        if version != ProjectionSchema.version {
            // An older one is rebuilt by the data directory (`DataDirectory.openProjection`).
            throw StoreError.schemaVersion(path: path, found: version, expected: ProjectionSchema.version)
        }
    }

    private func statement(_ sql: StaticString) throws -> SQLiteStatement {
        let key = UnsafeRawPointer(sql.utf8Start)
        if let cached = statements[key] { return cached }
        let prepared = try database.prepare(sql.description)
        statements[key] = prepared
        return prepared
    }

    /// The database file.
    public var location: String { database.path }

    /// The last applied position.
    public func checkpointPosition() throws -> UInt64 {
        try checkpoint().position
    }

    /// The last applied position and its ts.
    public func checkpoint() throws -> (position: UInt64, lastTs: Int64?) {
        let row = try database.rows("SELECT position, last_ts FROM checkpoint WHERE id = 1").first
        guard let row, row.count == 2, let position = row[0].integer, position >= 0 else {
            throw StoreError.damaged(path: database.path, reason: "the checkpoint row is missing or invalid")
        }
        return (UInt64(position), row[1].integer)
    }

    /// Applies steps in one transaction, moving the checkpoint to the last step's position.
    /// `registry` is the registry after the last step (for trigger rows after updates).
    public func apply(_ steps: [Step], registryAfter registry: Registry) throws {
        guard let first = steps.first, let last = steps.last else { return }
        try database.transaction {
            // Another process may have projected these positions meanwhile (`herald run`'s
            // background projection beside `herald project`): refuse rather than apply twice.
            let (checkpoint, _) = try checkpoint()
            guard checkpoint == first.position - 1 else {
                throw StoreError.checkpointMoved(path: database.path, expected: first.position - 1, found: checkpoint)
            }
            let created = Self.finalStates(of: steps)
            var counts = DeliveryCounts()
            for step in steps {
                try applyRecord(step, registry: registry)
                for effect in step.effects {
                    try applyEffect(effect, created: created)
                }
                counts.absorb(step.effects)
            }
            for status in DeliveryStatus.allCases where counts[status] != 0 {
                try statement("UPDATE delivery_counts SET count = count + ? WHERE status = ?")
                    .run([.integer(counts[status]), .text(status.wireName)])
            }
            try statement("UPDATE checkpoint SET position = ?, last_ts = ? WHERE id = 1")
                .run([.integer(Int64(bitPattern: last.position)), .integer(last.record.ts)])
        }
    }

    /// Fills the empty projection with what a compacted log starts from (see
    /// ``HeraldCore/ProjectionStore/seed(from:)``): registry tables and used ids, the retained
    /// deliveries with their attempts and dead-letter events, the counts, the engine snapshot,
    /// and the checkpoint at `state.start - 1`. Operator actions before the start are not
    /// kept (the retained deliveries' stories name them).
    public func seed(from state: CompactedState) throws {
        let registry = state.dispatcher.registry
        let position = state.start - 1
        try database.transaction {
            let (checkpoint, _) = try checkpoint()
            guard checkpoint == 0 else { throw StoreError.checkpointMoved(path: database.path, expected: 0, found: checkpoint) }
            for user in registry.adminUsers.values.sorted(by: { $0.id < $1.id }) {
                try statement("INSERT INTO admin_users (id, email, created_at, created_position) VALUES (?, ?, ?, ?)")
                    .run([.id(user.id), .text(user.email), .integer(user.createdTs), .integer(Int64(bitPattern: user.createdPosition))])
            }
            for app in registry.apps.values.sorted(by: { $0.id < $1.id }) {
                try statement("INSERT INTO apps (id, name, created_at, created_position) VALUES (?, ?, ?, ?)")
                    .run([.id(app.id), .text(app.name), .integer(app.createdTs), .integer(Int64(bitPattern: app.createdPosition))])
            }
            for s in registry.scripts.values.sorted(by: { $0.id < $1.id }) {
                try statement("""
                    INSERT INTO scripts (id, app_id, name, runtime, source, created_at, created_position)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """).run([.id(s.id), .id(s.appID), .text(s.name), .text(s.runtime), .text(s.source),
                              .integer(s.createdTs), .integer(Int64(bitPattern: s.createdPosition))])
            }
            for used in state.usedIDs {
                try usedID(used.id, kind: used.kind.wireName, position: Int64(bitPattern: used.createdPosition))
            }
            for trigger in registry.triggers.values.sorted(by: { $0.id < $1.id }) {
                try insertTrigger(trigger)
                if trigger.updatedPosition != trigger.registeredPosition {
                    try updateTrigger(trigger, ts: trigger.updatedTs, position: Int64(bitPattern: trigger.updatedPosition))
                }
            }
            for timeline in state.timelines {
                guard let delivery = timeline.current else { continue }
                try applyEffect(.created(delivery), created: [:])
                for event in timeline.events {
                    switch event {
                    case .attempt(let a):
                        try insertAttempt(a.attempt, position: a.position, ts: a.ts, nextDueAt: a.nextDueAt)
                    case .dead(let e, _):
                        try applyEffect(.deadLetter(e), created: [:])
                    case .cancelled, .redriven:
                        break
                    }
                }
            }
            for status in DeliveryStatus.allCases {
                try statement("UPDATE delivery_counts SET count = ? WHERE status = ?")
                    .run([.integer(state.counts[status]), .text(status.wireName)])
            }
            try statement("UPDATE checkpoint SET position = ?, last_ts = ? WHERE id = 1")
                .run([.integer(Int64(bitPattern: position)), state.dispatcher.lastTs.map { .integer($0) } ?? .null])
            try database.prepare("INSERT OR REPLACE INTO engine_snapshot (id, position, state) VALUES (1, ?, ?)")
                .run([.integer(Int64(bitPattern: position)), .blob(state.dispatcher.snapshotBytes())])
        }
    }

    /// Removes the history a compacted log no longer holds (see
    /// ``HeraldCore/ProjectionStore/prune(to:)``).
    public func prune(to state: CompactedState) throws {
        let start = Int64(bitPattern: state.start)
        let keptBefore = state.timelines.filter { $0.id.sourcePosition < state.start }
        try database.transaction {
            let held = try database.rows("SELECT count(*) FROM deliveries WHERE source_position < ?", [.integer(start)]).first?.first?.integer ?? 0
            let actions = try database.rows("SELECT count(*) FROM operator_actions WHERE position < ?", [.integer(start)]).first?.first?.integer ?? 0
            guard held > Int64(keptBefore.count) || actions > 0 else { return }
            try database.execute("CREATE TEMP TABLE IF NOT EXISTS herald_kept (source_position INTEGER NOT NULL, trigger_id TEXT NOT NULL, PRIMARY KEY (source_position, trigger_id)) WITHOUT ROWID")
            try database.execute("DELETE FROM herald_kept")
            let insert = try database.prepare("INSERT INTO herald_kept (source_position, trigger_id) VALUES (?, ?)")
            for timeline in keptBefore {
                try insert.run([.integer(Int64(bitPattern: timeline.id.sourcePosition)), .id(timeline.id.triggerID)])
            }
            let dropped = "source_position < ? AND NOT EXISTS (SELECT 1 FROM herald_kept k WHERE k.source_position = t.source_position AND k.trigger_id = t.trigger_id)"
            try database.prepare("DELETE FROM operator_action_deliveries WHERE position < ?").run([.integer(start)])
            try database.prepare("DELETE FROM operator_actions WHERE position < ?").run([.integer(start)])
            try database.prepare("DELETE FROM delivery_attempts AS t WHERE \(dropped)").run([.integer(start)])
            try database.prepare("DELETE FROM dead_letters AS t WHERE \(dropped)").run([.integer(start)])
            try database.prepare("DELETE FROM deliveries AS t WHERE \(dropped)").run([.integer(start)])
            try database.execute("DELETE FROM herald_kept")
        }
    }

    private func applyRecord(_ step: Step, registry: Registry) throws {
        let position = Int64(bitPattern: step.position)
        let ts = step.record.ts
        switch step.record.body {
        case .adminUserCreated(let id, let email):
            try statement("INSERT INTO admin_users (id, email, created_at, created_position) VALUES (?, ?, ?, ?)")
                .run([.id(id), .text(email), .integer(ts), .integer(position)])
            try usedID(id, kind: "admin_user", position: position)
        case .adminUserDeleted(let id):
            try statement("DELETE FROM admin_users WHERE id = ?").run([.id(id)])
        case .appCreated(let id, let name):
            try statement("INSERT INTO apps (id, name, created_at, created_position) VALUES (?, ?, ?, ?)")
                .run([.id(id), .text(name), .integer(ts), .integer(position)])
            try usedID(id, kind: "app", position: position)
        case .appDeleted(let id):
            try statement("DELETE FROM apps WHERE id = ?").run([.id(id)])
        case .scriptRegistered(let s):
            try statement("""
                INSERT INTO scripts (id, app_id, name, runtime, source, created_at, created_position)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """).run([.id(s.scriptID), .id(s.appID), .text(s.name), .text(s.runtime), .text(s.source),
                          .integer(ts), .integer(position)])
            try usedID(s.scriptID, kind: "script", position: position)
        case .scriptDeleted(let id):
            try statement("DELETE FROM scripts WHERE id = ?").run([.id(id)])
        case .triggerRegistered(let r):
            let trigger = Registry.Trigger(r, registeredPosition: step.position, ts: ts)
            try insertTrigger(trigger)
            try usedID(r.triggerID, kind: "trigger", position: position)
        case .triggerUpdated(let update):
            // The registry after the batch holds the final state; a trigger deleted later in
            // the same batch is removed by its own step.
            guard let trigger = registry.triggers[update.triggerID] ?? registry.removedTriggers
                .last(where: { $0.trigger.id == update.triggerID })?.trigger else { return }
            try updateTrigger(trigger, ts: ts, position: position)
        case .triggerDeleted(let id):
            try statement("DELETE FROM triggers WHERE id = ?").run([.id(id)])
        case .kv, .deliveryAttempted:
            break
        case .deliveryRedriven(let action), .deliveryCancelled(let action):
            try statement("""
                INSERT INTO operator_actions (position, ts, type, by_admin_user_id, reason) VALUES (?, ?, ?, ?, ?)
                """).run([.integer(position), .integer(ts), .text(step.record.body.type.wireName), .id(action.by),
                          action.reason.map { .text($0) } ?? .null])
            for id in action.deliveries {
                try statement("INSERT INTO operator_action_deliveries (position, source_position, trigger_id) VALUES (?, ?, ?)")
                    .run([.integer(position), .integer(Int64(bitPattern: id.sourcePosition)), .id(id.triggerID)])
            }
        case .deliveryInvoked(let invocation):
            try statement("""
                INSERT INTO operator_actions (position, ts, type, by_admin_user_id, trigger_id, payload)
                VALUES (?, ?, 'delivery.invoked', ?, ?, ?)
                """).run([.integer(position), .integer(ts), .id(invocation.by), .id(invocation.triggerID),
                          .text(invocation.payload.description)])
        }
    }

    private func usedID(_ id: HeraldID, kind: String, position: Int64) throws {
        try statement("INSERT INTO used_ids (id, kind, created_position) VALUES (?, ?, ?)")
            .run([.id(id), .text(kind), .integer(position)])
    }

    private func insertTrigger(_ t: Registry.Trigger) throws {
        try statement("""
            INSERT INTO triggers (id, app_id, script_id, kind, enabled, dispatch_mode, retry_max_attempts,
                retry_backoff, retry_base_ms, registered_by_principal, created_at, updated_at, registered_position,
                updated_position)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).run([.id(t.id), .id(t.appID), .id(t.scriptID), .text(t.kind.description), .bool(t.enabled),
                      .text(t.dispatchMode.description), .integer(t.retry.maxAttempts),
                      .text(t.retry.backoff.description), .integer(t.retry.baseMs), .id(t.registeredBy),
                      .integer(t.createdTs), .integer(t.updatedTs), .integer(Int64(bitPattern: t.registeredPosition)),
                      .integer(Int64(bitPattern: t.registeredPosition))])
        try writeDetails(t, insert: true)
    }

    /// Writes the state as of this step: with several updates in one batch, each writes its
    /// own fields from the record applied to the row, so the final row is the registry's.
    private func updateTrigger(_ t: Registry.Trigger, ts: Int64, position: Int64) throws {
        try statement("""
            UPDATE triggers SET enabled = ?, retry_max_attempts = ?, retry_backoff = ?, retry_base_ms = ?,
                updated_at = ?, updated_position = ? WHERE id = ?
            """).run([.bool(t.enabled), .integer(t.retry.maxAttempts), .text(t.retry.backoff.description),
                      .integer(t.retry.baseMs), .integer(ts), .integer(position), .id(t.id)])
        try writeDetails(t, insert: false)
    }

    private func writeDetails(_ t: Registry.Trigger, insert: Bool) throws {
        if let kv = t.kv {
            let ops = Projection.opsText(kv.ops)
            let sql: StaticString = insert
                ? "INSERT INTO kv_trigger_details (collection_glob, ops, trigger_id) VALUES (?, ?, ?)"
                : "UPDATE kv_trigger_details SET collection_glob = ?, ops = ? WHERE trigger_id = ?"
            try statement(sql).run([.text(kv.collectionGlob), .text(ops), .id(t.id)])
        }
        if let dl = t.deadLetter {
            let sql: StaticString = insert
                ? "INSERT INTO dead_letter_trigger_details (source_filter, trigger_id_filter, script_id_filter, trigger_id) VALUES (?, ?, ?, ?)"
                : "UPDATE dead_letter_trigger_details SET source_filter = ?, trigger_id_filter = ?, script_id_filter = ? WHERE trigger_id = ?"
            try statement(sql).run([dl.sourceFilter.map { .text($0.description) } ?? .null,
                                    dl.triggerIDFilter.map { .id($0) } ?? .null,
                                    dl.scriptIDFilter.map { .id($0) } ?? .null, .id(t.id)])
        }
    }

    /// The state at the end of `steps` of each delivery they create. Such a delivery's row is
    /// written once, in that state, when it is created, instead of inserted and then updated
    /// by each later attempt or cancellation in the same transaction (in the live engine most
    /// deliveries are created and attempted within one background pass). The committed rows
    /// are the same. Only looked up, never iterated: nothing depends on its order.
    public static func finalStates(of steps: [Step]) -> [DeliveryID: Delivery] {
        // Newest first: the first state met for an id is its last; it is kept once the
        // delivery's creation shows it was born in this batch. A batch without attempts or
        // cancellations (a rebuild of a log of events) hashes nothing.
        var latest: [DeliveryID: Delivery] = [:]
        var created: [DeliveryID: Delivery] = [:]
        for step in steps.reversed() {
            for effect in step.effects.reversed() {
                switch effect {
                case .attempted(let d, _, _, _), .cancelled(let d), .redriven(let d, _):
                    if latest[d.id] == nil { latest[d.id] = d }
                case .created(let d):
                    if !latest.isEmpty, let final = latest[d.id] { created[d.id] = final }
                case .deadLetter:
                    break
                }
            }
        }
        return created
    }

    private func applyEffect(_ effect: DispatchEffect, created: [DeliveryID: Delivery]) throws {
        switch effect {
        case .created(let new):
            let d = created.isEmpty ? new : created[new.id] ?? new
            try statement("""
                INSERT INTO deliveries (source_position, trigger_id, trigger_rank, app_id, script_id, source_kind,
                    depth, retry_max_attempts, retry_backoff, retry_base_ms, status, attempts, due_at, last_error,
                    finished_at, budget_base)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).run([.integer(Int64(bitPattern: d.id.sourcePosition)), .id(d.id.triggerID),
                          .integer(Int64(bitPattern: d.triggerRank)), .id(d.appID), .id(d.scriptID),
                          .text(d.sourceKind.description), .integer(d.depth), .integer(d.retry.maxAttempts),
                          .text(d.retry.backoff.description), .integer(d.retry.baseMs), .text(d.status.description),
                          .integer(d.attempts), d.dueAt.map { .integer($0) } ?? .null,
                          d.lastError.map { .text($0) } ?? .null,
                          d.finishedAt.map { .integer(Int64(bitPattern: $0)) } ?? .null, .integer(d.budgetBase)])
        case .attempted(let d, let a, let position, let ts):
            if created.isEmpty || created[d.id] == nil { try updateDelivery(d) }
            try insertAttempt(a, position: position, ts: ts, nextDueAt: d.dueAt)
        case .cancelled(let d), .redriven(let d, _):
            if created.isEmpty || created[d.id] == nil { try updateDelivery(d) }
        case .deadLetter(let e):
            try statement("""
                INSERT INTO dead_letters (position, ts, source_position, trigger_id, app_id, script_id, source_kind,
                    depth, last_error)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """).run([.integer(Int64(bitPattern: e.position)), .integer(e.ts),
                          .integer(Int64(bitPattern: e.delivery.sourcePosition)), .id(e.triggerID), .id(e.appID),
                          .id(e.scriptID), .text(e.sourceKind.description), .integer(e.depth),
                          e.lastError.map { .text($0) } ?? .null])
        }
    }

    private func insertAttempt(_ a: DeliveryAttempt, position: UInt64, ts: Int64, nextDueAt: Int64?) throws {
        try statement("""
            INSERT INTO delivery_attempts (source_position, trigger_id, attempt, position, ts, outcome, error,
                retryable, duration_ms, next_due_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """).run([.integer(Int64(bitPattern: a.sourcePosition)), .id(a.triggerID), .integer(a.attempt),
                      .integer(Int64(bitPattern: position)), .integer(ts), .text(a.outcome.description),
                      a.error.map { .text($0) } ?? .null, .bool(a.retryable), .integer(a.durationMs),
                      nextDueAt.map { .integer($0) } ?? .null])
    }

    private func updateDelivery(_ d: Delivery) throws {
        try statement("""
            UPDATE deliveries SET status = ?, attempts = ?, due_at = ?, last_error = ?, finished_at = ?, budget_base = ?
            WHERE source_position = ? AND trigger_id = ?
            """).run([.text(d.status.description), .integer(d.attempts), d.dueAt.map { .integer($0) } ?? .null,
                      d.lastError.map { .text($0) } ?? .null,
                      d.finishedAt.map { .integer(Int64(bitPattern: $0)) } ?? .null, .integer(d.budgetBase),
                      .integer(Int64(bitPattern: d.id.sourcePosition)), .id(d.id.triggerID)])
    }
}

extension SQLiteValue {
    static func bool(_ value: Bool) -> SQLiteValue { .integer(value ? 1 : 0) }
}
