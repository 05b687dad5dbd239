import HeraldStore

extension PostgresProjection {
    /// For each table of ``HeraldStore/Projection/contentTables``, the query that gives this
    /// projection's rows as the SQLite projection's `SELECT *` gives them, in the same order:
    /// UUIDs as their text, booleans as 0/1, `TIMESTAMPTZ` as milliseconds, `ops` as JSON text,
    /// `triggers` joined with `trigger_positions` into SQLite's one table.
    static let comparableQueries: [String: String] = {
        let ms = { (column: String) in "(extract(epoch FROM \(column)) * 1000)::bigint" }
        return [
            "admin_users": "SELECT id, email, \(ms("created_at")), created_position FROM admin_users ORDER BY id",
            "apps": "SELECT id, name, \(ms("created_at")), created_position FROM apps ORDER BY id",
            "scripts": "SELECT id, app_id, name, runtime, source, \(ms("created_at")), created_position FROM scripts ORDER BY id",
            "used_ids": "SELECT id, kind, created_position FROM used_ids ORDER BY id",
            "triggers": """
                SELECT t.id, t.app_id, t.script_id, t.kind, CASE WHEN t.enabled THEN 1 ELSE 0 END, t.dispatch_mode,
                    t.retry_max_attempts, t.retry_backoff, t.retry_base_ms, t.registered_by_principal, \(ms("t.created_at")),
                    \(ms("t.updated_at")), p.registered_position, p.updated_position
                FROM triggers t LEFT JOIN trigger_positions p ON p.trigger_id = t.id ORDER BY t.id
                """,
            "kv_trigger_details": "SELECT trigger_id, collection_glob, array_to_json(ops)::text FROM kv_trigger_details ORDER BY trigger_id",
            "dead_letter_trigger_details": """
                SELECT trigger_id, source_filter, trigger_id_filter, script_id_filter FROM dead_letter_trigger_details ORDER BY trigger_id
                """,
            "deliveries": "SELECT \(Batch.deliveryColumns) FROM deliveries ORDER BY source_position, trigger_id",
            "delivery_attempts": """
                SELECT source_position, trigger_id, attempt, position, ts, outcome, error, CASE WHEN retryable THEN 1 ELSE 0 END,
                    duration_ms, next_due_at FROM delivery_attempts ORDER BY source_position, trigger_id, attempt
                """,
            "dead_letters": "SELECT \(Batch.deadLetterColumns) FROM dead_letters ORDER BY position",
            "operator_actions": """
                SELECT position, ts, type, by_admin_user_id, reason, trigger_id, payload FROM operator_actions ORDER BY position
                """,
            "operator_action_deliveries": """
                SELECT position, source_position, trigger_id FROM operator_action_deliveries ORDER BY position, source_position, trigger_id
                """,
            "delivery_counts": "SELECT status, count FROM delivery_counts ORDER BY status COLLATE \"C\"",
            "checkpoint": "SELECT id, position, last_ts FROM checkpoint ORDER BY id",
        ]
    }()

    /// Compares this projection with `other` (a SQLite projection, usually a rebuild from the
    /// log to this checkpoint), table by table and row by row, streaming both sides. Returns
    /// one line per difference (at most `limit` per table); empty when identical. Run it in a
    /// ``readSnapshot(_:)`` so a writer committing meanwhile causes no false difference.
    ///
    /// `history`: as ``HeraldStore/Projection/differences(from:limit:history:)`` — rows about
    /// what a compacted log no longer holds are not differences.
    public func differences(from other: Projection, limit: Int = 5,
                            history: (start: UInt64, kept: Set<String>)? = nil) throws -> [String] {
        var report: [String] = []
        for (table, orderBy) in Projection.contentTables {
            guard let query = Self.comparableQueries[table] else {
                report.append("\(table): no PostgreSQL query to compare it with (a Herald bug)")
                continue
            }
            let theirs = try other.database.prepare("SELECT * FROM \(table) ORDER BY \(orderBy)")
            var row = 0
            var found = 0
            var theirsDone = false
            func describe(_ values: [String?]?) -> String {
                values.map { "(" + $0.map { $0 ?? "NULL" }.joined(separator: ", ") + ")" } ?? "(no row)"
            }
            func nextTheirs() throws -> [String?]? {
                guard !theirsDone, try theirs.step() else {
                    theirsDone = true
                    return nil
                }
                return (0..<theirs.columnCount).map { column -> String? in
                    switch theirs.value(at: column) {
                    case .null: nil
                    case .integer(let value): String(value)
                    case .text(let text): text
                    case let value: value.description
                    }
                }
            }
            func compare(_ mine: [String?]?, _ theirs: [String?]?) {
                row += 1
                guard mine != theirs, found < limit else { return }
                found += 1
                report.append("\(table) row \(row) (ordered by \(orderBy)): PostgreSQL has \(describe(mine)), the rebuild from the log has \(describe(theirs))")
            }
            /// True for a row of this projection that only history explains.
            func historical(_ mine: [String?]) -> Bool {
                guard let history else { return false }
                func delivery(_ column: Int) -> Bool {
                    guard mine.count > column + 1, let text = mine[column], let position = UInt64(text), position < history.start else { return false }
                    return !history.kept.contains("\(position):\(mine[column + 1] ?? "")")
                }
                switch table {
                case "deliveries", "delivery_attempts": return delivery(0)
                case "dead_letters": return delivery(2)
                case "operator_actions", "operator_action_deliveries":
                    return mine.first.flatMap { $0 }.flatMap { UInt64($0) }.map { $0 < history.start } ?? false
                default: return false
                }
            }
            var failure: Error?
            try connection.run(query, [], streaming: true) { mine in
                guard failure == nil, !historical(mine) else { return }
                do { compare(mine, try nextTheirs()) } catch { failure = error }
            }
            if let failure { throw failure }
            while let extra = try nextTheirs() { compare(nil, extra) }
        }
        return report
    }

    /// Runs `body` in one read-only snapshot of the database (`REPEATABLE READ`): the checkpoint
    /// and every table it reads are one state even while a writer commits.
    public func readSnapshot<T>(_ body: () throws -> T) throws -> T {
        try connection.transaction("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", body)
    }
}
