import HeraldCore

extension Projection {
    /// The dispatcher's state as of the checkpoint, from the rows: the registry, the pending
    /// deliveries and the redrivable ones. Restart cost grows with live state, not with
    /// finished work; the engine snapshot (``loadSnapshot()``) is faster still.
    public func loadDispatcher() throws -> Dispatcher {
        // One read transaction: the checkpoint, the registry and the deliveries are one state
        // even while a writer commits passes (each statement alone would see its own).
        try withReadSnapshot { try loadDispatcherFromRows() }
    }

    private func loadDispatcherFromRows() throws -> Dispatcher {
        let (checkpoint, lastTs) = try checkpoint()

        let registry = try loadRegistryRows()

        /// Calls `body` with each delivery of the query's `where` clause.
        func eachDelivery(_ where: String, _ body: (Delivery) throws -> Void) throws {
            let rows = try database.prepare("SELECT \(Projection.deliveryColumns(of: "d")) FROM deliveries d \(`where`)")
            while try rows.step() { try body(try delivery(at: rows)) }
        }
        // Dead and cancelled deliveries an operator may still redrive: their trigger exists.
        var redrivable: [Delivery] = []
        try eachDelivery("JOIN triggers t ON t.id = d.trigger_id WHERE d.status = 'dead' OR d.status = 'cancelled'") {
            redrivable.append($0)
        }
        let created = try deliveryCounts().created
        var dispatcher = Dispatcher(registry: registry, pending: [], position: checkpoint, lastTs: lastTs,
                                    createdCount: UInt64(max(created, 0)), redrivable: redrivable)
        // Pending deliveries straight into the dispatcher, in canonical order: the table's key
        // order (`NOT INDEXED`: not the due-time index) gives them by source position, and only
        // the few of one position are put in trigger order here. No array of every one.
        var group: [Delivery] = []
        func flush() {
            if group.count > 1 { group.sort { $0.triggerRank < $1.triggerRank } }
            for delivery in group { dispatcher.restorePending(delivery) }
            group.removeAll(keepingCapacity: true)
        }
        try eachDelivery("NOT INDEXED WHERE d.status = 'pending' ORDER BY d.source_position") { delivery in
            if let first = group.first, first.id.sourcePosition != delivery.id.sourcePosition { flush() }
            group.append(delivery)
        }
        flush()
        return dispatcher
    }

    /// The engine snapshot: the dispatcher's whole state at a position at or before the
    /// checkpoint (a restore replays the records between the two), or `nil` when there is
    /// none. One that does not decode, or lies past the checkpoint, is a damaged cache, not
    /// damaged data: it is told to ``diagnostics``, deleted (unless read-only), and `nil` is
    /// returned, so the caller restores from the rows and the next save writes a sound one.
    public func loadSnapshot() throws -> Dispatcher? {
        do {
            return try storedSnapshot()
        } catch let error as StoreError {
            guard case .damaged = error else { throw error }
            diagnostics?("warning: \(error); the state is restored from the rows and the log instead"
                         + (writable ? ", and a new snapshot is written at the next catch-up" : ""))
            if writable {
                // Only when it is still the damaged one: a writer may have saved a sound one meanwhile.
                try database.transaction {
                    if (try? storedSnapshot()) == nil { try database.execute("DELETE FROM engine_snapshot") }
                }
            }
            return nil
        }
    }

    /// The engine snapshot as stored, checked against the checkpoint.
    /// - Throws: `StoreError.damaged` when it does not decode (its checksum, its fields) or lies
    ///   past the checkpoint.
    public func storedSnapshot() throws -> Dispatcher? {
        let stored: (position: Int64, bytes: [UInt8], checkpoint: UInt64)? = try withReadSnapshot {
            let row = try database.prepare("SELECT position, state FROM engine_snapshot WHERE id = 1")
            guard try row.step() else { return nil }
            guard case .blob(let bytes) = row.value(at: 1) else {
                throw StoreError.damaged(path: database.path, reason: "engine_snapshot holds a state that is not a blob")
            }
            return (row.int64(at: 0), bytes, try checkpoint().position)
        }
        guard let stored else { return nil }
        let snapshot: Dispatcher
        do {
            snapshot = try Dispatcher(snapshotBytes: stored.bytes)
        } catch {
            throw StoreError.damaged(path: database.path, reason: "engine_snapshot: \(error)")
        }
        guard Int64(bitPattern: snapshot.position) == stored.position, snapshot.position <= stored.checkpoint else {
            throw StoreError.damaged(path: database.path, reason: "engine_snapshot of position \(snapshot.position) is filed "
                                     + "at \(stored.position), the checkpoint is \(stored.checkpoint)")
        }
        return snapshot
    }

    /// Saves `dispatcher` as the engine snapshot, which ``loadSnapshot()`` returns until a
    /// later one replaces it. Only a dispatcher at or before the checkpoint and after the
    /// snapshot there is saved (the projector's, which is at the checkpoint); others are ignored.
    public func saveSnapshot(of dispatcher: Dispatcher) throws {
        if let saved = try snapshotPosition(), saved >= dispatcher.position { return }  // before encoding it
        let bytes = dispatcher.snapshotBytes()
        try database.transaction {
            guard dispatcher.position <= (try checkpoint().position) else { return }
            let saved = try database.rows("SELECT position FROM engine_snapshot WHERE id = 1").first?.first?.integer
            guard saved.map({ $0 < Int64(bitPattern: dispatcher.position) }) ?? true else { return }
            try database.prepare("INSERT OR REPLACE INTO engine_snapshot (id, position, state) VALUES (1, ?, ?)")
                .run([.integer(Int64(bitPattern: dispatcher.position)), .blob(bytes)])
        }
    }

    /// The engine snapshot's position, if there is one (not decoded).
    public func snapshotPosition() throws -> UInt64? {
        try database.rows("SELECT position FROM engine_snapshot WHERE id = 1").first?.first?.integer.map { UInt64(bitPattern: $0) }
    }

    /// Every projected table, in a fixed order, for content comparison.
    public static let contentTables: [(name: String, orderBy: String)] = [
        ("admin_users", "id"), ("apps", "id"), ("scripts", "id"), ("used_ids", "id"),
        ("triggers", "id"), ("kv_trigger_details", "trigger_id"), ("dead_letter_trigger_details", "trigger_id"),
        ("deliveries", "source_position, trigger_id"), ("delivery_attempts", "source_position, trigger_id, attempt"),
        ("dead_letters", "position"), ("operator_actions", "position"),
        ("operator_action_deliveries", "position, source_position, trigger_id"), ("delivery_counts", "status"),
        ("checkpoint", "id"),
    ]

    /// Compares this projection's content with `other`'s, table by table. Returns one line per
    /// difference (at most `limit` per table); empty when identical.
    ///
    /// `history`: this projection followed a log that was since compacted, and `other` was
    /// rebuilt from the compacted log: rows of this one about what the log no longer holds —
    /// deliveries before `history.start` that are not among `history.kept` (`"P:TRIGGER_ID"`),
    /// with their attempts and dead-letter events, and operator actions before it — are not
    /// differences.
    public func differences(from other: Projection, limit: Int = 5,
                            history: (start: UInt64, kept: Set<String>)? = nil) throws -> [String] {
        var report: [String] = []
        for (table, orderBy) in Projection.contentTables {
            let sql = "SELECT * FROM \(table) ORDER BY \(orderBy)"
            let mine = try database.prepare(sql)
            let theirs = try other.database.prepare(sql)
            /// True for a row of this projection that only history explains.
            func historical() -> Bool {
                guard let history else { return false }
                let start = Int64(bitPattern: history.start)
                func delivery(_ column: Int32) -> Bool {
                    guard case .integer(let position) = mine.value(at: column), position < start else { return false }
                    return !history.kept.contains("\(position):\(mine.value(at: column + 1).text ?? "")")
                }
                switch table {
                case "deliveries", "delivery_attempts": return delivery(0)
                case "dead_letters": return delivery(2)
                case "operator_actions", "operator_action_deliveries":
                    if case .integer(let position) = mine.value(at: 0) { return position < start }
                    return false
                default: return false
                }
            }
            var row = 0
            var found = 0
            while found < limit {
                var hasMine = try mine.step()
                // Bound: each round steps past one row of this projection.
                while hasMine && historical() { hasMine = try mine.step() }
                let hasTheirs = try theirs.step()
                if !hasMine && !hasTheirs { break }
                row += 1
                let a = hasMine ? (0..<mine.columnCount).map { mine.value(at: $0) } : nil
                let b = hasTheirs ? (0..<theirs.columnCount).map { theirs.value(at: $0) } : nil
                if a != b {
                    found += 1
                    let left = a.map { $0.map(\.description).joined(separator: ", ") } ?? "(no row)"
                    let right = b.map { $0.map(\.description).joined(separator: ", ") } ?? "(no row)"
                    report.append("\(table) row \(row) (ordered by \(orderBy)): projection has (\(left)), rebuild from the log has (\(right))")
                }
            }
        }
        return report
    }

    /// SQLite's own checks: `PRAGMA integrity_check` and `PRAGMA foreign_key_check`.
    public func integrityProblems() throws -> [String] {
        var problems: [String] = []
        for row in try database.rows("PRAGMA integrity_check") {
            let text = row.first?.text ?? ""
            if text != "ok" { problems.append("integrity_check: \(text)") }
        }
        for row in try database.rows("PRAGMA foreign_key_check") {
            problems.append("foreign_key_check: " + row.map(\.description).joined(separator: ", "))
        }
        return problems
    }
}

extension Projection {
    /// The `ops` column's text, as written by ``Projection`` (`["insert","delete"]`).
    static func opsText(_ ops: OpSet) -> String {
        "[" + ops.ops.map { "\"\($0)\"" }.joined(separator: ",") + "]"
    }

    /// Parses the `ops` column; `nil` unless it is exactly what ``opsText(_:)`` writes for some set.
    static func parseOps(_ text: String) -> OpSet? {
        for raw in UInt8(0)...7 {
            let ops = OpSet(rawValue: raw)
            if opsText(ops).utf8.elementsEqual(text.utf8) { return ops }
        }
        return nil
    }
}

extension Projection {
    /// The dead-letter event recorded at `position`, if any.
    public func deadLetter(at position: UInt64) throws -> DeadLetterEvent? {
        let statement = try database.prepare("""
            SELECT ts, source_position, trigger_id, app_id, script_id, source_kind, depth, last_error
            FROM dead_letters WHERE position = ?
            """)
        try statement.bind(.integer(Int64(bitPattern: position)), at: 1)
        guard try statement.step() else { return nil }
        guard let trigger = statement.text(at: 2).flatMap(HeraldID.init), let app = statement.text(at: 3).flatMap(HeraldID.init),
              let script = statement.text(at: 4).flatMap(HeraldID.init),
              let source = statement.text(at: 5).flatMap(SourceKind.init(name:)), statement.int64(at: 1) >= 0 else {
            throw StoreError.damaged(path: database.path, reason: "dead_letters row at position \(position) is invalid")
        }
        return DeadLetterEvent(position: position, ts: statement.int64(at: 0),
                               delivery: DeliveryID(sourcePosition: UInt64(statement.int64(at: 1)), triggerID: trigger),
                               appID: app, sourceKind: source, triggerID: trigger, scriptID: script,
                               depth: statement.int64(at: 6), lastError: statement.text(at: 7))
    }
}

extension Projection {
    /// The statement that selects `selection`'s deliveries in canonical order (source position,
    /// then trigger registration position), columns as ``deliveryColumns`` lists them: the
    /// filters and the limit are SQL, so rows that do not match are never decoded.
    ///
    /// `rankedBySQL: false` leaves out the trigger order within a source position and the
    /// limit (the caller sorts each position's few rows and stops): the table's own key order
    /// then needs no sort of every row.
    func deliveryRows(matching selection: DeliverySelection, rankedBySQL: Bool = true) throws -> SQLiteStatement {
        var conditions: [String] = []
        var values: [SQLiteValue] = []
        if let app = selection.app { conditions.append("app_id = ?"); values.append(.id(app)) }
        if let trigger = selection.trigger { conditions.append("trigger_id = ?"); values.append(.id(trigger)) }
        if let script = selection.script { conditions.append("script_id = ?"); values.append(.id(script)) }
        // The status inline (one of four fixed names): a bound value would keep SQLite from the
        // partial index of dead and cancelled deliveries.
        if let status = selection.status { conditions.append("status = '\(status.wireName)'") }
        if let from = selection.from { conditions.append("source_position >= ?"); values.append(.integer(Int64(clamping: from))) }
        if let to = selection.to { conditions.append("source_position <= ?"); values.append(.integer(Int64(clamping: to))) }
        if let text = selection.errorContains {
            conditions.append("instr(coalesce(last_error, ''), ?) > 0")
            values.append(.text(text))
        }
        var sql = "SELECT \(Projection.deliveryColumns()) FROM deliveries"
        if !conditions.isEmpty { sql += " WHERE " + conditions.joined(separator: " AND ") }
        if rankedBySQL {
            sql += " ORDER BY source_position, trigger_rank"
            if let limit = selection.limit { sql += " LIMIT ?"; values.append(.integer(Int64(max(limit, 0)))) }
        } else {
            sql += " ORDER BY source_position"
        }
        let rows = try database.prepare(sql)
        for (index, value) in values.enumerated() { try rows.bind(value, at: Int32(index + 1)) }
        return rows
    }

    /// The columns of a deliveries row, in the order the readers below take them (`table`: the
    /// alias to qualify them with).
    private static func deliveryColumns(of table: String? = nil) -> String {
        ["source_position", "trigger_id", "trigger_rank", "app_id", "script_id", "source_kind", "depth",
         "retry_max_attempts", "retry_backoff", "retry_base_ms", "status", "attempts", "due_at", "last_error",
         "finished_at", "budget_base"].map { column in table.map { "\($0).\(column)" } ?? column }.joined(separator: ", ")
    }

    /// Streams the projected deliveries `selection` picks in canonical order, one row at a time.
    public func forEachDelivery(matching selection: DeliverySelection, _ body: (Delivery) throws -> Void) throws {
        let rows = try deliveryRows(matching: selection)
        while try rows.step() { try body(try delivery(at: rows)) }
    }

    /// The delivery of the row `rows` is on (columns as ``deliveryColumns(of:)`` lists them),
    /// every field checked.
    private func delivery(at r: SQLiteStatement) throws -> Delivery {
        guard let source = r.text(at: 5).flatMap(SourceKind.init(name:)),
              let backoff = r.text(at: 8).flatMap(Backoff.init(name:)),
              let status = r.text(at: 10).flatMap(DeliveryStatus.init(name:)) else {
            throw damaged("a deliveries row holds an unknown source_kind, retry_backoff or status")
        }
        return Delivery(
            id: DeliveryID(sourcePosition: try position(r.int64(at: 0), "deliveries.source_position"),
                           triggerID: try id(r, 1, "deliveries.trigger_id")),
            appID: try id(r, 3, "deliveries.app_id"), scriptID: try id(r, 4, "deliveries.script_id"),
            sourceKind: source, depth: r.int64(at: 6),
            retry: RetryConfig(maxAttempts: r.int64(at: 7), backoff: backoff, baseMs: r.int64(at: 9)),
            triggerRank: try position(r.int64(at: 2), "deliveries.trigger_rank"), status: status,
            attempts: r.int64(at: 11), dueAt: r.isNull(at: 12) ? nil : r.int64(at: 12), lastError: r.text(at: 13),
            finishedAt: r.isNull(at: 14) ? nil : try position(r.int64(at: 14), "deliveries.finished_at"),
            budgetBase: r.int64(at: 15))
    }
}

extension Projection {
    /// The kind an id was created as (`app`, `admin_user`, `script`, `trigger`), as of the
    /// checkpoint; `nil` when it was not.
    public func createdKind(of id: HeraldID) throws -> String? {
        let statement = try database.prepare("SELECT kind FROM used_ids WHERE id = ?")
        try statement.bind(.id(id), at: 1)
        return try statement.step() ? statement.text(at: 0) : nil
    }
}

extension Projection {
    /// Deliveries per status, as of the checkpoint (the `delivery_counts` table).
    public func deliveryCounts() throws -> DeliveryCounts {
        var counts = DeliveryCounts()
        var seen = 0
        for row in try database.rows("SELECT status, count FROM delivery_counts") {
            guard let name = row.first?.text, let status = DeliveryStatus(name: name), let count = row.last?.integer,
                  count >= 0 else {
                throw StoreError.damaged(path: database.path, reason: "delivery_counts holds an unknown status or a negative count")
            }
            counts[status] = count
            seen += 1
        }
        guard seen == DeliveryStatus.allCases.count else {
            throw StoreError.damaged(path: database.path, reason: "delivery_counts has \(seen) rows, not one per status")
        }
        return counts
    }

    /// Deliveries per status and the pending ones' due times as of the checkpoint, from the
    /// counters and the due-time index: a few rows read, however many deliveries there are.
    public func summary(now: Int64) throws -> DeliverySummary {
        try withReadSnapshot {
            let position = try checkpointPosition()
            let counts = try deliveryCounts()
            // Due now = pending − due later: the index range after `now` is the short one in
            // practice (retries scheduled ahead), while a backlog can hold millions due now.
            let later = try database.prepare("SELECT count(*) FROM deliveries WHERE status = 'pending' AND due_at > ?")
            try later.bind(.integer(now), at: 1)
            guard try later.step() else { throw StoreError.damaged(path: database.path, reason: "count(*) returned no row") }
            let dueNow = counts.pending - later.int64(at: 0)
            let next = try database.rows("SELECT min(due_at) FROM deliveries WHERE status = 'pending'").first?.first?.integer
            return DeliverySummary(position: position, counts: counts, dueNow: dueNow, nextDueAt: next)
        }
    }

    /// Runs `body` inside one read transaction: every read in it sees one snapshot, whatever
    /// another connection commits meanwhile.
    /// Inside a transaction already, `body` simply runs in it.
    public func withReadSnapshot<T>(_ body: () throws -> T) throws -> T {
        guard !database.inTransaction else { return try body() }
        try database.execute("BEGIN")
        defer { try? database.execute("COMMIT") }
        return try body()
    }

    /// Moves everything in the write-ahead log into the database file and empties it (before
    /// the file is renamed or copied).
    public func checkpointWriteAheadLog() throws {
        try database.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }
}

extension Projection {
    private func damaged(_ reason: String) -> StoreError { .damaged(path: database.path, reason: reason) }

    private func id(_ statement: SQLiteStatement, _ column: Int32, _ what: String) throws -> HeraldID {
        guard let text = statement.text(at: column), let id = HeraldID(text) else { throw damaged("\(what) holds an invalid id") }
        return id
    }

    private func position(_ value: Int64, _ what: String) throws -> UInt64 {
        guard value >= 0 else { throw damaged("\(what) holds a negative position") }
        return UInt64(value)
    }

    /// The registry as of the checkpoint (no deliveries), and the checkpoint: what `herald
    /// triggers` needs, without the pending deliveries ``loadDispatcher()`` restores too.
    public func loadRegistry() throws -> (registry: Registry, position: UInt64) {
        try withReadSnapshot { (try loadRegistryRows(), try checkpointPosition()) }
    }

    /// The registry tables' rows as a ``Registry``.
    func loadRegistryRows() throws -> Registry {
        var apps: [Registry.App] = []
        let appRows = try database.prepare("SELECT id, name, created_at, created_position FROM apps")
        while try appRows.step() {
            apps.append(Registry.App(id: try id(appRows, 0, "apps.id"), name: appRows.text(at: 1) ?? "",
                                     createdPosition: try position(appRows.int64(at: 3), "apps.created_position"),
                                     createdTs: appRows.int64(at: 2)))
        }
        var used: [HeraldID] = []
        let usedRows = try database.prepare("SELECT id FROM used_ids")
        while try usedRows.step() { used.append(try id(usedRows, 0, "used_ids.id")) }
        return Registry(apps: apps, adminUsers: try adminUsers(), scripts: try scripts(), triggers: try triggers(), usedIDs: used)
    }

    /// The admin_users rows (`id`: only that one).
    func adminUsers(id only: HeraldID? = nil) throws -> [Registry.AdminUser] {
        let rows = try database.prepare("SELECT id, email, created_at, created_position FROM admin_users"
                                        + (only == nil ? "" : " WHERE id = ?"))
        if let only { try rows.bind(.id(only), at: 1) }
        var users: [Registry.AdminUser] = []
        while try rows.step() {
            users.append(Registry.AdminUser(id: try id(rows, 0, "admin_users.id"), email: rows.text(at: 1) ?? "",
                                            createdPosition: try position(rows.int64(at: 3), "admin_users.created_position"),
                                            createdTs: rows.int64(at: 2)))
        }
        return users
    }

    /// The scripts rows (`id`: only that one).
    func scripts(id only: HeraldID? = nil) throws -> [Registry.Script] {
        let rows = try database.prepare("SELECT id, app_id, name, runtime, source, created_at, created_position FROM scripts"
                                        + (only == nil ? "" : " WHERE id = ?"))
        if let only { try rows.bind(.id(only), at: 1) }
        var scripts: [Registry.Script] = []
        while try rows.step() {
            scripts.append(Registry.Script(
                id: try id(rows, 0, "scripts.id"), appID: try id(rows, 1, "scripts.app_id"),
                name: rows.text(at: 2) ?? "", runtime: rows.text(at: 3) ?? "", source: rows.text(at: 4) ?? "",
                createdPosition: try position(rows.int64(at: 6), "scripts.created_position"), createdTs: rows.int64(at: 5)))
        }
        return scripts
    }

    /// The triggers rows with their details (`id`: only that one).
    func triggers(id only: HeraldID? = nil) throws -> [Registry.Trigger] {
        let triggerRows = try database.prepare("""
            SELECT t.id, t.app_id, t.script_id, t.kind, t.enabled, t.dispatch_mode, t.retry_max_attempts,
                   t.retry_backoff, t.retry_base_ms, t.registered_by_principal, t.created_at, t.updated_at,
                   t.registered_position, k.collection_glob, k.ops, d.source_filter, d.trigger_id_filter,
                   d.script_id_filter, t.updated_position
            FROM triggers t
            LEFT JOIN kv_trigger_details k ON k.trigger_id = t.id
            LEFT JOIN dead_letter_trigger_details d ON d.trigger_id = t.id
            """ + (only == nil ? "" : " WHERE t.id = ?"))
        if let only { try triggerRows.bind(.id(only), at: 1) }
        var triggers: [Registry.Trigger] = []
        while try triggerRows.step() {
            let r = triggerRows
            let kind: TriggerKind = r.text(at: 3) == "dead_letter" ? .deadLetter : .kv
            guard let backoff = r.text(at: 7).flatMap(Backoff.init(name:)) else {
                throw damaged("triggers.retry_backoff holds an unknown backoff")
            }
            var kv: KVDetails?
            var dl: DeadLetterDetails?
            if kind == .kv {
                guard let glob = r.text(at: 13), let opsText = r.text(at: 14) else {
                    throw damaged("kv trigger \(r.text(at: 0) ?? "?") has no kv_trigger_details row")
                }
                guard let ops = Projection.parseOps(opsText) else {
                    throw damaged("kv_trigger_details.ops holds \(opsText), not a JSON array of ops")
                }
                kv = KVDetails(collectionGlob: glob, ops: ops)
            } else {
                dl = DeadLetterDetails(
                    sourceFilter: r.text(at: 15).flatMap(SourceKind.init(name:)),
                    triggerIDFilter: r.isNull(at: 16) ? nil : try id(r, 16, "trigger_id_filter"),
                    scriptIDFilter: r.isNull(at: 17) ? nil : try id(r, 17, "script_id_filter"))
            }
            let registered = try position(r.int64(at: 12), "triggers.registered_position")
            triggers.append(Registry.Trigger(
                id: try id(r, 0, "triggers.id"), appID: try id(r, 1, "triggers.app_id"),
                scriptID: try id(r, 2, "triggers.script_id"), kind: kind, enabled: r.int64(at: 4) != 0,
                dispatchMode: r.text(at: 5) == "sync" ? .sync : .async,
                retry: RetryConfig(maxAttempts: r.int64(at: 6), backoff: backoff, baseMs: r.int64(at: 8)),
                registeredBy: try id(r, 9, "triggers.registered_by_principal"), kv: kv, deadLetter: dl,
                registeredPosition: registered, createdTs: r.int64(at: 10), updatedTs: r.int64(at: 11),
                updatedPosition: try position(r.int64(at: 18), "triggers.updated_position")))
        }
        return triggers
    }
}
