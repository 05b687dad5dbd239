import HeraldCore
import HeraldStore

/// One transaction's writes, built from the projector's steps before the transaction opens:
/// the outbox rows as COPY data, the registry's and operator actions' statements in log order.
/// The same rows ``HeraldStore/Projection`` writes to SQLite (its `apply` is the reference).
struct Batch {
    static let deliveryColumns = "source_position, trigger_id, trigger_rank, app_id, script_id, source_kind, depth, "
        + "retry_max_attempts, retry_backoff, retry_base_ms, status, attempts, due_at, last_error, finished_at, budget_base"
    static let attemptColumns = "source_position, trigger_id, attempt, position, ts, outcome, error, retryable, duration_ms, next_due_at"
    static let deadLetterColumns = "position, ts, source_position, trigger_id, app_id, script_id, source_kind, depth, last_error"
    static let updateColumns = "source_position, trigger_id, status, attempts, due_at, last_error, finished_at, budget_base"

    /// New deliveries, in their state at the end of the batch.
    var created = CopyRows()
    var attempts = CopyRows()
    var deadLetters = CopyRows()
    /// The final state of each older delivery the batch changed.
    var updates = CopyRows()
    var statements: [(sql: String, values: [PostgresValue])] = []
    var counts = DeliveryCounts()

    /// A text value PostgreSQL cannot hold (U+0000), at `position` in `column`.
    struct Unstorable: Error {
        var position: UInt64
        var column: String
    }

    /// A `TIMESTAMPTZ` from the log's milliseconds, exactly (no floating point).
    static func timestamp(_ parameter: Int) -> String {
        "TIMESTAMPTZ 'epoch' + $\(parameter)::bigint * INTERVAL '1 millisecond'"
    }

    mutating func add(_ steps: [ProjectionStep], registry: Registry) throws {
        let final = Projection.finalStates(of: steps)
        // Older deliveries changed in this batch: the last state of each, in order of first change.
        var changed: [DeliveryID: Int] = [:]
        var changes: [(delivery: Delivery, position: UInt64)] = []
        for step in steps {
            try record(step, registry: registry)
            for effect in step.effects {
                do {
                    try add(effect, at: step.position, final: final, changed: &changed, changes: &changes)
                } catch is CopyRows.NulCharacter {
                    throw Unstorable(position: step.position, column: Self.column(of: effect))
                }
            }
            counts.absorb(step.effects)
        }
        for (d, position) in changes {
            do {
                updates.int(Int64(bitPattern: d.id.sourcePosition))
                try updates.text(d.id.triggerID.description)
                try updates.text(d.status.description)
                updates.int(d.attempts)
                if let due = d.dueAt { updates.int(due) } else { updates.null() }
                try updates.text(d.lastError)
                if let finished = d.finishedAt { updates.int(Int64(bitPattern: finished)) } else { updates.null() }
                updates.int(d.budgetBase)
                updates.endRow()
            } catch {
                throw Unstorable(position: position, column: "deliveries.last_error")
            }
        }
    }

    static func column(of effect: DispatchEffect) -> String {
        switch effect {
        case .created, .cancelled, .redriven: "deliveries.last_error"
        case .attempted: "delivery_attempts.error"
        case .deadLetter: "dead_letters.last_error"
        }
    }

    private mutating func add(_ effect: DispatchEffect, at position: UInt64, final: [DeliveryID: Delivery],
                              changed: inout [DeliveryID: Int],
                              changes: inout [(delivery: Delivery, position: UInt64)]) throws(CopyRows.NulCharacter) {
        func change(_ d: Delivery) {
            guard final.isEmpty || final[d.id] == nil else { return }  // born in this batch: written once, final
            if let index = changed[d.id] { changes[index] = (d, position) } else {
                changed[d.id] = changes.count
                changes.append((d, position))
            }
        }
        switch effect {
        case .created(let new):
            let d = final.isEmpty ? new : final[new.id] ?? new
            created.int(Int64(bitPattern: d.id.sourcePosition))
            try created.text(d.id.triggerID.description)
            created.int(Int64(bitPattern: d.triggerRank))
            try created.text(d.appID.description)
            try created.text(d.scriptID.description)
            try created.text(d.sourceKind.description)
            created.int(d.depth)
            created.int(d.retry.maxAttempts)
            try created.text(d.retry.backoff.description)
            created.int(d.retry.baseMs)
            try created.text(d.status.description)
            created.int(d.attempts)
            if let due = d.dueAt { created.int(due) } else { created.null() }
            try created.text(d.lastError)
            if let finished = d.finishedAt { created.int(Int64(bitPattern: finished)) } else { created.null() }
            created.int(d.budgetBase)
            created.endRow()
        case .attempted(let d, let a, let position, let ts):
            change(d)
            attempts.int(Int64(bitPattern: a.sourcePosition))
            try attempts.text(a.triggerID.description)
            attempts.int(a.attempt)
            attempts.int(Int64(bitPattern: position))
            attempts.int(ts)
            try attempts.text(a.outcome.description)
            try attempts.text(a.error)
            attempts.bool(a.retryable)
            attempts.int(a.durationMs)
            if let due = d.dueAt { attempts.int(due) } else { attempts.null() }
            attempts.endRow()
        case .cancelled(let d), .redriven(let d, _):
            change(d)
        case .deadLetter(let e):
            deadLetters.int(Int64(bitPattern: e.position))
            deadLetters.int(e.ts)
            deadLetters.int(Int64(bitPattern: e.delivery.sourcePosition))
            try deadLetters.text(e.triggerID.description)
            try deadLetters.text(e.appID.description)
            try deadLetters.text(e.scriptID.description)
            try deadLetters.text(e.sourceKind.description)
            deadLetters.int(e.depth)
            try deadLetters.text(e.lastError)
            deadLetters.endRow()
        }
    }

    /// The position of the record whose statements are being built.
    private var position: UInt64 = 0

    /// Queues a statement; a text value holding U+0000 is refused here, naming the record's
    /// position and the statement's table (C strings would cut it, PostgreSQL cannot store it).
    private mutating func run(_ sql: String, _ values: [PostgresValue]) throws(Unstorable) {
        for value in values {
            if case .text(let text) = value, text.utf8.contains(0) {
                let words = sql.split(whereSeparator: { $0 == " " || $0 == "\n" })
                let table = words.firstIndex { $0 == "INTO" || $0 == "UPDATE" || $0 == "FROM" }
                    .flatMap { words.indices.contains($0 + 1) ? String(words[$0 + 1]) : nil } ?? "a table"
                throw Unstorable(position: position, column: table)
            }
        }
        statements.append((sql, values))
    }

    private static func id(_ id: HeraldID) -> PostgresValue { .text(id.description) }
    private static func id(_ id: HeraldID?) -> PostgresValue { id.map { .text($0.description) } ?? .null }

    /// The registry's and operator actions' rows of one record (see `Projection.applyRecord`).
    private mutating func record(_ step: ProjectionStep, registry: Registry) throws {
        self.position = step.position
        let position = PostgresValue.int(Int64(bitPattern: step.position))
        let ts = PostgresValue.int(step.record.ts)
        func usedID(_ id: HeraldID, _ kind: String) throws {
            try run("INSERT INTO used_ids (id, kind, created_position) VALUES ($1, $2, $3)", [Self.id(id), .text(kind), position])
        }
        switch step.record.body {
        case .adminUserCreated(let id, let email):
            try run("INSERT INTO admin_users (id, email, created_at, created_position) VALUES ($1, $2, \(Self.timestamp(3)), $4)",
                [Self.id(id), .text(email), ts, position])
            try usedID(id, "admin_user")
        case .adminUserDeleted(let id):
            try run("DELETE FROM admin_users WHERE id = $1", [Self.id(id)])
        case .appCreated(let id, let name):
            try run("INSERT INTO apps (id, name, created_at, created_position) VALUES ($1, $2, \(Self.timestamp(3)), $4)",
                [Self.id(id), .text(name), ts, position])
            try usedID(id, "app")
        case .appDeleted(let id):
            try run("DELETE FROM apps WHERE id = $1", [Self.id(id)])
        case .scriptRegistered(let s):
            try run("""
                INSERT INTO scripts (id, app_id, name, runtime, source, created_at, created_position)
                VALUES ($1, $2, $3, $4, $5, \(Self.timestamp(6)), $7)
                """, [Self.id(s.scriptID), Self.id(s.appID), .text(s.name), .text(s.runtime), .text(s.source), ts, position])
            try usedID(s.scriptID, "script")
        case .scriptDeleted(let id):
            try run("DELETE FROM scripts WHERE id = $1", [Self.id(id)])
        case .triggerRegistered(let r):
            let t = Registry.Trigger(r, registeredPosition: step.position, ts: step.record.ts)
            try run("""
                INSERT INTO triggers (id, app_id, script_id, kind, enabled, dispatch_mode, retry_max_attempts, retry_backoff,
                    retry_base_ms, registered_by_principal, created_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \(Self.timestamp(11)), \(Self.timestamp(11)))
                """, [Self.id(t.id), Self.id(t.appID), Self.id(t.scriptID), .text(t.kind.description), .text(t.enabled ? "t" : "f"),
                      .text(t.dispatchMode.description), .int(t.retry.maxAttempts), .text(t.retry.backoff.description),
                      .int(t.retry.baseMs), Self.id(t.registeredBy), ts])
            try run("INSERT INTO trigger_positions (trigger_id, registered_position, updated_position) VALUES ($1, $2, $2)",
                [Self.id(t.id), position])
            try details(t, insert: true)
            try usedID(r.triggerID, "trigger")
        case .triggerUpdated(let update):
            guard let t = registry.triggers[update.triggerID] ?? registry.removedTriggers
                .last(where: { $0.trigger.id == update.triggerID })?.trigger else { return }
            try run("""
                UPDATE triggers SET enabled = $1, retry_max_attempts = $2, retry_backoff = $3, retry_base_ms = $4,
                    updated_at = \(Self.timestamp(5)) WHERE id = $6
                """, [.text(t.enabled ? "t" : "f"), .int(t.retry.maxAttempts), .text(t.retry.backoff.description),
                      .int(t.retry.baseMs), ts, Self.id(t.id)])
            try run("UPDATE trigger_positions SET updated_position = $1 WHERE trigger_id = $2", [position, Self.id(t.id)])
            try details(t, insert: false)
        case .triggerDeleted(let id):
            try run("DELETE FROM triggers WHERE id = $1", [Self.id(id)])
        case .kv, .deliveryAttempted:
            break
        case .deliveryRedriven(let action), .deliveryCancelled(let action):
            try run("INSERT INTO operator_actions (position, ts, type, by_admin_user_id, reason) VALUES ($1, $2, $3, $4, $5)",
                [position, ts, .text(step.record.body.type.wireName), Self.id(action.by), action.reason.map { .text($0) } ?? .null])
            for id in action.deliveries {
                try run("INSERT INTO operator_action_deliveries (position, source_position, trigger_id) VALUES ($1, $2, $3)",
                    [position, .int(Int64(bitPattern: id.sourcePosition)), Self.id(id.triggerID)])
            }
        case .deliveryInvoked(let invocation):
            try run("""
                INSERT INTO operator_actions (position, ts, type, by_admin_user_id, trigger_id, payload)
                VALUES ($1, $2, 'delivery.invoked', $3, $4, $5)
                """, [position, ts, Self.id(invocation.by), Self.id(invocation.triggerID), .text(invocation.payload.description)])
        }
    }

    /// `ops` as a PostgreSQL array literal, in the order SQLite's JSON text lists them.
    static func opsArray(_ ops: OpSet) -> String {
        "{" + ops.ops.map { "\($0)" }.joined(separator: ",") + "}"
    }

    private mutating func details(_ t: Registry.Trigger, insert: Bool) throws {
        if let kv = t.kv {
            try run(insert ? "INSERT INTO kv_trigger_details (collection_glob, ops, trigger_id) VALUES ($1, $2::text[], $3)"
                       : "UPDATE kv_trigger_details SET collection_glob = $1, ops = $2::text[] WHERE trigger_id = $3",
                [.text(kv.collectionGlob), .text(Self.opsArray(kv.ops)), Self.id(t.id)])
        }
        if let dl = t.deadLetter {
            try run(insert ? "INSERT INTO dead_letter_trigger_details (source_filter, trigger_id_filter, script_id_filter, trigger_id) VALUES ($1, $2, $3, $4)"
                       : "UPDATE dead_letter_trigger_details SET source_filter = $1, trigger_id_filter = $2, script_id_filter = $3 WHERE trigger_id = $4",
                [dl.sourceFilter.map { .text($0.description) } ?? .null, Self.id(dl.triggerIDFilter), Self.id(dl.scriptIDFilter), Self.id(t.id)])
        }
    }
}

extension Batch {
    /// The rows of what a compacted log starts from (the same rows `Projection.seed(from:)`
    /// writes to SQLite): registry tables and used ids, the kept deliveries with their
    /// attempts and dead-letter events, and the counts (``counts`` holds them absolutely).
    mutating func seed(_ state: CompactedState) throws {
        let registry = state.dispatcher.registry
        position = state.start - 1
        for user in registry.adminUsers.values.sorted(by: { $0.id < $1.id }) {
            try run("INSERT INTO admin_users (id, email, created_at, created_position) VALUES ($1, $2, \(Self.timestamp(3)), $4)",
                [Self.id(user.id), .text(user.email), .int(user.createdTs), .int(Int64(bitPattern: user.createdPosition))])
        }
        for app in registry.apps.values.sorted(by: { $0.id < $1.id }) {
            try run("INSERT INTO apps (id, name, created_at, created_position) VALUES ($1, $2, \(Self.timestamp(3)), $4)",
                [Self.id(app.id), .text(app.name), .int(app.createdTs), .int(Int64(bitPattern: app.createdPosition))])
        }
        for s in registry.scripts.values.sorted(by: { $0.id < $1.id }) {
            try run("""
                INSERT INTO scripts (id, app_id, name, runtime, source, created_at, created_position)
                VALUES ($1, $2, $3, $4, $5, \(Self.timestamp(6)), $7)
                """, [Self.id(s.id), Self.id(s.appID), .text(s.name), .text(s.runtime), .text(s.source), .int(s.createdTs),
                      .int(Int64(bitPattern: s.createdPosition))])
        }
        for used in state.usedIDs {
            try run("INSERT INTO used_ids (id, kind, created_position) VALUES ($1, $2, $3)",
                [Self.id(used.id), .text(used.kind.wireName), .int(Int64(bitPattern: used.createdPosition))])
        }
        for t in registry.triggers.values.sorted(by: { $0.id < $1.id }) {
            try run("""
                INSERT INTO triggers (id, app_id, script_id, kind, enabled, dispatch_mode, retry_max_attempts, retry_backoff,
                    retry_base_ms, registered_by_principal, created_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \(Self.timestamp(11)), \(Self.timestamp(12)))
                """, [Self.id(t.id), Self.id(t.appID), Self.id(t.scriptID), .text(t.kind.description), .text(t.enabled ? "t" : "f"),
                      .text(t.dispatchMode.description), .int(t.retry.maxAttempts), .text(t.retry.backoff.description),
                      .int(t.retry.baseMs), Self.id(t.registeredBy), .int(t.createdTs), .int(t.updatedTs)])
            try run("INSERT INTO trigger_positions (trigger_id, registered_position, updated_position) VALUES ($1, $2, $3)",
                [Self.id(t.id), .int(Int64(bitPattern: t.registeredPosition)), .int(Int64(bitPattern: t.updatedPosition))])
            try details(t, insert: true)
        }
        var changed: [DeliveryID: Int] = [:]
        var changes: [(delivery: Delivery, position: UInt64)] = []
        for timeline in state.timelines {
            guard let delivery = timeline.current else { continue }
            do {
                try add(.created(delivery), at: position, final: [:], changed: &changed, changes: &changes)
                for event in timeline.events {
                    switch event {
                    case .attempt(let a):
                        attempts.int(Int64(bitPattern: a.attempt.sourcePosition))
                        try attempts.text(a.attempt.triggerID.description)
                        attempts.int(a.attempt.attempt)
                        attempts.int(Int64(bitPattern: a.position))
                        attempts.int(a.ts)
                        try attempts.text(a.attempt.outcome.description)
                        try attempts.text(a.attempt.error)
                        attempts.bool(a.attempt.retryable)
                        attempts.int(a.attempt.durationMs)
                        if let due = a.nextDueAt { attempts.int(due) } else { attempts.null() }
                        attempts.endRow()
                    case .dead(let e, _):
                        try add(.deadLetter(e), at: e.position, final: [:], changed: &changed, changes: &changes)
                    case .cancelled, .redriven:
                        break
                    }
                }
            } catch {
                throw Unstorable(position: delivery.id.sourcePosition, column: "the kept delivery \(delivery.id)")
            }
        }
        counts = state.counts
    }
}
