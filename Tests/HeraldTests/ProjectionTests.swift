import Foundation
import Herald
import HeraldCore
import HeraldLog
import HeraldStore
import Synchronization
import Testing

@Suite struct ProjectionTests {
    /// Writes JSON lines to a file and imports them.
    func importLines(_ lines: [String], into directory: DataDirectory, at path: String) throws {
        let file = path + "/input-\(UUID().uuidString).jsonl"
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        _ = try directory.importLines(from: file)
    }

    static let admin = "a0000000-0000-4000-8000-000000000001", admin2 = "a0000000-0000-4000-8000-000000000002"
    static let app = "b0000000-0000-4000-8000-000000000001", app2 = "b0000000-0000-4000-8000-000000000002"
    static let s1 = "c0000000-0000-4000-8000-000000000001", s2 = "c0000000-0000-4000-8000-000000000002"
    static let s3 = "c0000000-0000-4000-8000-000000000003"

    static var setup: [String] {
        [
            #"{"type":"admin_user.created","ts":1,"admin_user_id":"\#(admin)","email":"a@example.com"}"#,
            #"{"type":"admin_user.created","ts":1,"admin_user_id":"\#(admin2)","email":"b@example.com"}"#,
            #"{"type":"app.created","ts":1,"app_id":"\#(app)","name":"one"}"#,
            #"{"type":"app.created","ts":1,"app_id":"\#(app2)","name":"two"}"#,
            #"{"type":"script.registered","ts":2,"script_id":"\#(s1)","app_id":"\#(app)","name":"s1","runtime":"process","source":"true"}"#,
            #"{"type":"script.registered","ts":2,"script_id":"\#(s2)","app_id":"\#(app)","name":"s2","runtime":"process","source":"true"}"#,
            #"{"type":"script.registered","ts":2,"script_id":"\#(s3)","app_id":"\#(app2)","name":"s3","runtime":"process","source":"true"}"#,
            trigger(1, script: s1, by: admin), trigger(2, script: s2, by: admin2), trigger(3, script: s1, by: admin2),
            trigger(4, script: s3, by: admin, app: app2),
            #"{"type":"trigger.registered","ts":3,"trigger_id":"d0000000-0000-4000-8000-000000000005","app_id":"\#(app)","script_id":"\#(s2)","kind":"dead_letter","registered_by":"\#(admin)","dead_letter":{"source_filter":"kv","trigger_id_filter":"d0000000-0000-4000-8000-000000000001"}}"#,
            #"{"type":"kv.insert","ts":4,"app_id":"\#(app)","collection":"users","key":"k","value":1}"#,
        ]
    }

    static func trigger(_ n: Int, script: String, by admin: String, app: String = app) -> String {
        #"{"type":"trigger.registered","ts":3,"trigger_id":"d0000000-0000-4000-8000-00000000000\#(n)","app_id":"\#(app)","script_id":"\#(script)","kind":"kv","registered_by":"\#(admin)","kv":{"collection_glob":"*","ops":["update","insert"]}}"#
    }

    func count(_ projection: Projection, _ sql: String) throws -> Int64 {
        try projection.database.rows(sql).first?.first?.integer ?? -1
    }

    @Test func projectionHoldsTheLiveRegistryWithEverySeedColumn() async throws {
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            try importLines(ProjectionTests.setup, into: directory, at: path)
            // The import closed its writer: the segment ends with its last block, no filler.
            let segment = path + "/log/00000000000000000001.log"
            let size = (try FileManager.default.attributesOfItem(atPath: segment)[.size] as? NSNumber)?.uint64Value
            #expect(size == (try LogReader(directory: path + "/log").stats().storedBytes))
            try directory.project()
            let projection = try directory.openProjection()
            #expect(try projection.integrityProblems().isEmpty)
            #expect(try count(projection, "SELECT count(*) FROM triggers") == 5)
            #expect(try count(projection, "SELECT count(*) FROM kv_trigger_details") == 4)
            #expect(try count(projection, "SELECT count(*) FROM dead_letter_trigger_details") == 1)
            #expect(try projection.database.rows("SELECT ops FROM kv_trigger_details LIMIT 1").first?.first?.text == #"["insert","update"]"#)
            #expect(try count(projection, "SELECT count(*) FROM deliveries") == 3)
            let seedColumns = ["id", "app_id", "script_id", "kind", "enabled", "dispatch_mode", "retry_max_attempts",
                               "retry_backoff", "retry_base_ms", "registered_by_principal", "created_at", "updated_at"]
            let columns = try projection.database.rows("SELECT name FROM pragma_table_info('triggers')").compactMap { $0.first?.text }
            for column in seedColumns { #expect(columns.contains(column), "triggers.\(column)") }
            #expect(try projection.database.rows("SELECT name FROM sqlite_master WHERE name = 'idx_triggers_app_kind_enabled' AND sql LIKE '%WHERE enabled = 1%'").count == 1)
        }
    }

    @Test(arguments: [
        // (deletion, triggers left, scripts left, admin users left, cancelled deliveries)
        (#"{"type":"app.deleted","ts":9,"app_id":"\#(app)"}"#, 1, 1, 2, 3),
        (#"{"type":"script.deleted","ts":9,"script_id":"\#(s1)"}"#, 3, 2, 2, 2),
        (#"{"type":"admin_user.deleted","ts":9,"admin_user_id":"\#(admin2)"}"#, 3, 3, 1, 2),
        (#"{"type":"trigger.deleted","ts":9,"trigger_id":"d0000000-0000-4000-8000-000000000001"}"#, 4, 3, 2, 1),
    ] as [(String, Int64, Int64, Int64, Int64)])
    func cascadesMatchTheSeed(deletion: String, triggers: Int64, scripts: Int64, admins: Int64, cancelled: Int64) async throws {
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            try importLines(ProjectionTests.setup + [deletion], into: directory, at: path)
            try directory.project()
            let projection = try directory.openProjection()
            #expect(try count(projection, "SELECT count(*) FROM triggers") == triggers)
            #expect(try count(projection, "SELECT count(*) FROM scripts") == scripts)
            #expect(try count(projection, "SELECT count(*) FROM admin_users") == admins)
            #expect(try count(projection, "SELECT count(*) FROM deliveries WHERE status = 'cancelled'") == cancelled)
            #expect(try count(projection, "SELECT count(*) FROM kv_trigger_details k LEFT JOIN triggers t ON t.id = k.trigger_id WHERE t.id IS NULL") == 0)
            #expect(try projection.integrityProblems().isEmpty)
            // The derived registry agrees with what SQLite's cascades left.
            let state = try directory.replay()
            #expect(Int64(state.registry.triggers.count) == triggers)
            #expect(Int64(state.registry.scripts.count) == scripts)
        }
    }

    @Test func rebuildIsIdenticalAndVerifyCatchesHandEdits() async throws {
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            try importLines(ProjectionTests.setup, into: directory, at: path)
            try directory.project()
            #expect(try directory.verifyProjection().isEmpty)
            try directory.rebuildProjection()
            let first = try Data(contentsOf: URL(fileURLWithPath: directory.projectionPath))
            _ = first
            try directory.rebuildProjection()
            #expect(try directory.verifyProjection().isEmpty)
            let projection = try directory.openProjection()
            try projection.database.execute("UPDATE triggers SET retry_max_attempts = 9 WHERE id = 'd0000000-0000-4000-8000-000000000002'")
            let problems = try directory.verifyProjection()
            #expect(problems.count == 1)
            #expect(problems.first?.contains("triggers row 2") == true)
            #expect(problems.first?.contains("9") == true)
        }
    }

    @Test func rejectedImportLeavesTheLogByteForByteUnchanged() async throws {
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            try importLines(ProjectionTests.setup, into: directory, at: path)
            func snapshot() throws -> [String: Data] {
                var files: [String: Data] = [:]
                for name in try FileManager.default.contentsOfDirectory(atPath: directory.logPath).sorted() where name != "LOCK" {
                    files[name] = try Data(contentsOf: URL(fileURLWithPath: directory.logPath + "/" + name))
                }
                return files
            }
            let before = try snapshot()
            let position = ProjectionTests.setup.count + 1
            let bad = [
                #"{"type":"kv.insert","ts":10,"app_id":"\#(ProjectionTests.app)","collection":"c","key":"k","value":2}"#,
                #"{"type":"kv.insert","ts":11,"app_id":"b0000000-0000-4000-8000-0000000000ff","collection":"c","key":"k","value":2}"#,
                #"{"type":"kv.insert","ts":12,"app_id":"\#(ProjectionTests.app)","collection":"c","key":"k","value":2,"extra":1}"#,
                // Valid: validated as if lines 2 and 3 were absent, against the delivery line 1 made.
                #"{"type":"delivery.attempted","ts":13,"source_position":\#(position),"trigger_id":"d0000000-0000-4000-8000-000000000001","attempt":1,"outcome":"ok","duration_ms":1}"#,
                // Invalid: attempt 1 was just recorded.
                #"{"type":"delivery.attempted","ts":14,"source_position":\#(position),"trigger_id":"d0000000-0000-4000-8000-000000000001","attempt":1,"outcome":"ok","duration_ms":1}"#,
            ]
            #expect {
                try importLines(bad, into: directory, at: path)
            } throws: { error in
                let text = String(describing: error)
                return text.contains("line 2: kv.insert: field 'app_id': app b0000000-0000-4000-8000-0000000000ff does not exist")
                    && text.contains("line 3: kv.insert") && !text.contains("line 1:") && !text.contains("line 4:")
                    && text.contains("line 5: delivery.attempted: field 'source_position'")
            }
            #expect(try snapshot() == before)
        }
    }

    /// Import decodes on one thread and validates on another, in chunks of lines: errors in
    /// several chunks still come in line order, and a valid import of many chunks keeps the
    /// line order in the log.
    @Test func importOfManyChunksReportsErrorsInLineOrderAndKeepsOrder() async throws {
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            try importLines(ProjectionTests.setup, into: directory, at: path)
            let before = try directory.openReader().lastPosition
            func line(_ i: Int) -> String {
                #"{"type":"kv.insert","ts":\#(100 + i),"app_id":"\#(ProjectionTests.app)","collection":"c","key":"k\#(i)","value":\#(i)}"#
            }
            // Lines that fail decoding ("nope") and lines that fail against the state (no such app).
            func badLine(_ i: Int) -> String {
                let app = i % 2 == 0 ? "nope" : "b0000000-0000-4000-8000-0000000000ff"
                return #"{"type":"kv.insert","ts":\#(100 + i),"app_id":"\#(app)","collection":"c","key":"k\#(i)","value":\#(i)}"#
            }
            let bad: Set<Int> = [3, 1_024, 1_025, 2_999, 5_000]
            let lines = (1...5_000).map { bad.contains($0) ? badLine($0) : line($0) }
            #expect {
                try importLines(lines, into: directory, at: path)
            } throws: { error in
                let text = String(describing: error)
                let found = bad.sorted().map { text.range(of: "line \($0):")?.lowerBound }
                return found.allSatisfy { $0 != nil } && found.map { $0! } == found.map { $0! }.sorted()
            }
            #expect(try directory.openReader().lastPosition == before)
            try importLines((1...5_000).map(line), into: directory, at: path)
            var keys: [String] = []
            try directory.openReader().forEach(from: before + 1) { _, record in
                if case let .kv(mutation) = record.body { keys.append(mutation.key) }
                return true
            }
            #expect(keys == (1...5_000).map { "k\($0)" })
        }
    }

    /// Attempt lines need the deliveries of every line accepted before them: the import reads
    /// back the batches it has already compressed (it keeps no other copy) and those it still
    /// holds, including those held after a bad line.
    @Test func attemptLinesAreCheckedAgainstEveryLineBeforeThemAcrossBatches() async throws {
        func insert(_ i: Int) -> String {
            #"{"type":"kv.insert","ts":\#(100 + i),"app_id":"\#(ProjectionTests.app)","collection":"c","key":"k\#(i)","value":\#(i)}"#
        }
        func attempt(_ position: Int, trigger: Int, _ outcome: String) -> String {
            #"{"type":"delivery.attempted","ts":200,"source_position":\#(position),"trigger_id":"d0000000-0000-4000-8000-00000000000\#(trigger)","attempt":1,"outcome":"\#(outcome)",\#(outcome == "error" ? #""error":"boom","# : "")"retryable":true,"duration_ms":1}"#
        }
        let setup = ProjectionTests.setup  // 13 lines: positions 1–13 in an empty directory
        let inserts = (14...23).map(insert)  // positions 14–23, three deliveries each
        try await withTemporaryDirectory { path in
            // Valid: attempts for deliveries created many batches (of 3 records) earlier.
            let directory = DataDirectory(path: path + "/valid")
            let file = path + "/valid.jsonl"
            try (setup + inserts + [attempt(14, trigger: 1, "ok"), attempt(22, trigger: 2, "error")])
                .joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
            #expect(try directory.importLines(from: file, batchRecords: 3).lines == 25)
            try directory.project()
            let projection = try directory.openProjection()
            let status = { (position: Int, trigger: Int) in
                try projection.database.rows("SELECT status, attempts FROM deliveries WHERE source_position = \(position) AND trigger_id = 'd0000000-0000-4000-8000-00000000000\(trigger)'")
                    .first.map { "\($0[0].text ?? "?") \($0[1].integer ?? -1)" }
            }
            #expect(try status(14, 1) == "succeeded 1")
            #expect(try status(22, 2) == "pending 1")

            // A bad line (24) first: lines after it are held uncompressed, and are still seen.
            let rejected = DataDirectory(path: path + "/rejected")
            let badFile = path + "/rejected.jsonl"
            let bad = #"{"type":"kv.insert","ts":150,"app_id":"b0000000-0000-4000-8000-0000000000ff","collection":"c","key":"x","value":1}"#
            try (setup + inserts + [bad, insert(25),
                                    attempt(14, trigger: 1, "ok"),   // line 26: a delivery from a compressed batch
                                    attempt(24, trigger: 2, "ok"),   // line 27: from line 25, held after the bad line
                                    attempt(14, trigger: 1, "ok")])  // line 28: already finished
                .joined(separator: "\n").write(toFile: badFile, atomically: true, encoding: .utf8)
            #expect {
                try rejected.importLines(from: badFile, batchRecords: 3)
            } throws: { error in
                let text = String(describing: error)
                return text.contains("line 24:") && text.contains("line 28:") && !text.contains("line 26:") && !text.contains("line 27:")
            }
        }
    }

    @Test func embeddedSchemaMatchesSchemaFile() throws {
        let file = try String(contentsOfFile: packageRoot + "/Schema/herald.sql", encoding: .utf8)
        #expect(ProjectionSchema.sql == file, "run Tools/gen-schema after editing Schema/herald.sql")
    }

    /// A projection an older Herald wrote (an older schema version) is rebuilt by the next
    /// writer, and read as absent (the log is replayed) until then.
    @Test func anOlderProjectionIsRebuiltByTheNextWriterAndReplayedMeanwhile() async throws {
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            try importLines(Self.setup, into: directory, at: path)
            try directory.project()
            let expected = try directory.deliveries()
            do {
                let old = try SQLiteDatabase(path: directory.projectionPath)
                // The version before this one (no in-place migration: it is rebuilt).
                try old.execute("PRAGMA user_version = \(ProjectionSchema.version - 1)")
            }
            #expect(try directory.openProjectionForReading() == nil, "an older projection is not read")
            var streamed: [Delivery] = []
            try directory.forEachDelivery { streamed.append($0) }
            #expect(streamed == expected)
            let notes = Mutex<[String]>([])
            let noted = DataDirectory(path: path, diagnostics: { note in notes.withLock { $0.append(note) } })
            let upgraded = try noted.openProjection()
            #expect(try upgraded.database.rows("PRAGMA user_version").first?.first?.integer == ProjectionSchema.version)
            #expect(try upgraded.checkpointPosition() == UInt64(Self.setup.count))
            #expect(notes.withLock { $0 }.contains { $0.contains("rebuilding it from the log") })
            #expect(try directory.verifyProjection().isEmpty)
        }
    }
}
