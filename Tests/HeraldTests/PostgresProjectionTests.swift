import Foundation
import Herald
import HeraldCore
import HeraldPostgres
import HeraldStore
import HeraldTesting
import Synchronization
import Testing

/// The PostgreSQL server the tests project into: `HERALD_TEST_POSTGRES_URL`, which `Tools/test`
/// sets after `Tools/services start postgres`.
let testPostgresURL = ProcessInfo.processInfo.environment["HERALD_TEST_POSTGRES_URL"]

/// A fresh schema name per use (the tests share one server).
private let schemaCounter = Mutex(0)
func freshSchema(_ stem: String) -> String {
    let n = schemaCounter.withLock { $0 += 1; return $0 }
    return "t_\(stem)_\(getpid())_\(n)"
}

/// Drops `schemas` (and their `_rebuild` siblings) when `body` ends.
func withSchemas<T>(_ schemas: [String], _ body: () async throws -> T) async throws -> T {
    defer {
        if let url = testPostgresURL, let connection = try? PostgresConnection(url: url) {
            for schema in schemas { try? connection.execute("DROP SCHEMA IF EXISTS \(schema), \(schema)_rebuild CASCADE") }
        }
    }
    return try await body()
}

/// The PostgreSQL projection against the SQLite one and against a rebuild from the log.
@Suite(.enabled(if: testPostgresURL != nil,
                "HERALD_TEST_POSTGRES_URL is not set: run Tools/test, or `eval $(Tools/services start postgres)` first"),
       .serialized)
struct PostgresProjectionTests {
    let url = testPostgresURL ?? ""

    /// Writes `records` as JSON Lines and imports them into `directory`.
    func importRecords(_ records: ArraySlice<Record>, into directory: DataDirectory, scratch: String) throws {
        let encoder = RecordJSONEncoder()
        let text = records.map { String(decoding: encoder.encode($0), as: UTF8.self) }.joined(separator: "\n")
        try text.write(toFile: scratch, atomically: true, encoding: .utf8)
        _ = try directory.importLines(from: scratch)
    }

    /// Random logs with every record type, imported in three parts and projected after each
    /// (so later batches update deliveries earlier ones wrote): PostgreSQL holds exactly the
    /// SQLite projection's rows, table by table, and `verifyPostgres` agrees.
    @Test func randomLogsProjectTheSameRowsAsSQLite() async throws {
        var schemas: [String] = []
        for seed in UInt64(1)...4 { schemas.append(freshSchema("random\(seed)")) }
        try await withSchemas(schemas) {
            for (index, seed) in (UInt64(1)...4).enumerated() {
                try await withTemporaryDirectory { path in
                    var generator = RandomLog(seed: seed &* 7_919)
                    let records = generator.generate(records: 1_500)
                    let directory = DataDirectory(path: path + "/data")
                    let cuts = [0, 400, 900, records.count]
                    for part in 0..<3 {
                        try importRecords(records[cuts[part]..<cuts[part + 1]], into: directory, scratch: path + "/part.jsonl")
                        let result = try directory.projectPostgres(url: url, schema: schemas[index])
                        #expect(result.to == UInt64(cuts[part + 1]), "seed \(seed) part \(part)")
                    }
                    try directory.project()
                    let store = try PostgresProjection(url: url, schema: schemas[index], readOnly: true)
                    let differences = try store.readSnapshot { try store.differences(from: try directory.openProjection()) }
                    #expect(differences.isEmpty, "seed \(seed): \(differences)")
                    #expect(try directory.verifyPostgres(url: url, schema: schemas[index]).isEmpty, "seed \(seed)")
                    // Its deliveries read back as the log's.
                    var read: [Delivery] = []
                    try store.forEachDelivery { read.append($0) }
                    #expect(read == (try directory.deliveries()), "seed \(seed)")
                    let statuses = Set(read.map(\.status))
                    #expect(statuses.count == DeliveryStatus.allCases.count, "seed \(seed): every status appears (\(statuses))")
                }
            }
        }
    }

    /// A difference is found and named: table, row, both versions.
    /// A compacted log (docs/STORAGE.md): a schema projected before the compaction still
    /// verifies (its rows about dropped deliveries are history, not differences), and a new
    /// schema starts from the log's snapshot with the rows a SQLite rebuild holds.
    @Test func compactedLogsProjectFromTheirSnapshot() async throws {
        let (before, after) = (freshSchema("compact_live"), freshSchema("compact_new"))
        try await withSchemas([before, after]) {
            try await withTemporaryDirectory { path in
                var generator = RandomLog(seed: 4_242)
                let records = generator.generate(records: 1_200)
                let directory = DataDirectory(path: path + "/data")
                try importRecords(records[...], into: directory, scratch: path + "/all.jsonl")
                try directory.projectPostgres(url: url, schema: before)
                let report = try directory.compact(before: 700, archiveDirectory: nil, recompressionLevel: nil)
                #expect(report.firstPosition == 700)
                // The schema that followed the log holds the dropped deliveries until its
                // projector next opens: verify does not count them, and prunes them.
                func deliveries(_ schema: String) throws -> [Delivery] {
                    var all: [Delivery] = []
                    try PostgresProjection(url: url, schema: schema, readOnly: true).forEachDelivery { all.append($0) }
                    return all
                }
                let held = try deliveries(before)
                let kept = try directory.openReader().deliveries()
                #expect(held.count > kept.count && Set(kept.map(\.id)).isSubset(of: Set(held.map(\.id))))
                #expect(try directory.verifyPostgres(url: url, schema: before).isEmpty)
                #expect(try deliveries(before) == kept, "pruned by its projector")
                let result = try directory.projectPostgres(url: url, schema: after)
                #expect(result.to == UInt64(records.count))
                #expect(try directory.verifyPostgres(url: url, schema: after).isEmpty)
                try directory.rebuildProjection()
                let store = try PostgresProjection(url: url, schema: after, readOnly: true)
                #expect(try store.readSnapshot { try store.differences(from: try directory.openProjection()) }.isEmpty)
                var read: [Delivery] = []
                try store.forEachDelivery { read.append($0) }
                #expect(read == (try directory.deliveries()))
            }
        }
    }

    /// A running engine with retention and a PostgreSQL follower: the engine never compacts
    /// past the follower's checkpoint, and the follower prunes its schema after each
    /// compaction, so the schema reads as the compacted log does.
    @Test func retentionWaitsForThePostgresFollowerAndItPrunes() async throws {
        let schema = freshSchema("retain")
        try await withSchemas([schema]) {
            try await withTemporaryDirectory { path in
                let data = DataDirectory(path: path + "/data")
                var options = HeraldOptions(durability: .none, executor: ClosureExecutor(fallback: { _ in .ok }), projectionIntervalMs: 20,
                                            storage: StoragePolicy(recompressionLevel: nil, retainRecords: 100, intervalMs: 50),
                                            segmentBytesMax: 4_096)
                options.concurrency = 4
                let herald = try Herald.open(directory: data, options: options)
                let (admin, app, script, trigger) = (testID(1), testID(10), testID(20), testID(30))
                try herald.append(oneTriggerSetup(admin: admin, app: app, script: script, trigger: trigger))
                let follower = try PostgresFollower(directory: data, url: url, schema: schema)
                let reports = Mutex<[String]>([])
                follower.start(intervalMs: 1_500, through: { herald.durablePosition }, report: { text in reports.withLock { $0.append(text) } })
                herald.limitCompaction { follower.checkpoint }
                let running = Task { try await herald.run() }
                for batch in 0..<30 {
                    try herald.append((0..<20).map {
                        .kv(KVMutation(op: .insert, appID: app, collection: "c", key: "k\(batch)-\($0)", value: "1"))
                    })
                    try await Task.sleep(for: .milliseconds(20))
                }
                let reader = try data.openReader()
                let deadline = ContinuousClock.now + .seconds(60)
                // Bound: until compacted with nothing pending, or a minute.
                while ContinuousClock.now < deadline, try reader.firstPosition <= 200 || herald.pendingCount > 0 {
                    try await Task.sleep(for: .milliseconds(20))
                }
                herald.stop()
                try await running.value
                try herald.close()
                follower.stop()
                #expect(try reader.firstPosition > 200, "the engine compacted its log")
                #expect(reports.withLock { $0 }.isEmpty, "the follower never missed a record: \(reports.withLock { $0 })")
                let store = try PostgresProjection(url: url, schema: schema, readOnly: true)
                #expect(try store.checkpointPosition() == (try reader.lastPosition))
                var held: [Delivery] = []
                try store.forEachDelivery { held.append($0) }
                #expect(held == (try reader.deliveries()), "the schema was pruned as the log was compacted")
                #expect(try data.verifyPostgres(url: url, schema: schema).isEmpty)
            }
        }
    }

    @Test func verifyNamesAChangedRow() async throws {
        let schema = freshSchema("tampered")
        try await withSchemas([schema]) {
            try await withTemporaryDirectory { path in
                var generator = RandomLog(seed: 99)
                let records = generator.generate(records: 600)
                let directory = DataDirectory(path: path + "/data")
                try importRecords(records[...], into: directory, scratch: path + "/log.jsonl")
                try directory.projectPostgres(url: url, schema: schema)
                let connection = try PostgresConnection(url: url)
                try connection.execute("""
                    UPDATE \(schema).deliveries SET attempts = attempts + 1, budget_base = 0
                    WHERE (source_position, trigger_id) = (SELECT source_position, trigger_id FROM \(schema).deliveries
                                                           ORDER BY source_position, trigger_id LIMIT 1)
                    """)
                let differences = try directory.verifyPostgres(url: url, schema: schema)
                #expect(differences.count == 1 && differences[0].hasPrefix("deliveries row 1 (ordered by source_position, trigger_id): PostgreSQL has ("),
                        "\(differences)")
            }
        }
    }

    /// One writer per schema: the second is refused when it opens, and a batch that does not
    /// start at the checkpoint is refused under the row lock (nothing written).
    @Test func aSecondProjectorIsRefused() async throws {
        let schema = freshSchema("fence")
        try await withSchemas([schema]) {
            try await withTemporaryDirectory { path in
                let first = try PostgresProjection(url: url, schema: schema)
                #expect {
                    _ = try PostgresProjection(url: url, schema: schema)
                } throws: { error in
                    "\(error)".contains("another Herald projector is writing schema \(schema) (held by server process ")
                        && "\(error)".contains("herald, from 127.0.0.1")
                }
                // `herald project` on the same schema fails cleanly, exit 1, naming the holder.
                if heraldIsBuilt() {
                    let run = try await runProgram(heraldBinary, ["project", "--data", path + "/data", "--postgres", url,
                                                                  "--postgres-schema", schema])
                    #expect(run.status == 1 && run.stderr.contains("another Herald projector is writing schema \(schema)"), "\(run.stderr)")
                }
                let admin = testID(1)
                let step = ProjectionStep(position: 2, record: Record(ts: 5, body: .adminUserCreated(adminUserID: admin, email: "a@b")),
                                          effects: [])
                #expect(throws: StoreError.self) { try first.apply([step], registryAfter: Registry()) }
                #expect(try first.checkpointPosition() == 0)
                #expect(try first.connection.run("SELECT count(*) FROM \(schema).admin_users").rows == [["0"]])
            }
        }
    }

    /// The seed's `triggers` as psql describes it: the same as the migration file run by psql
    /// itself, column for column, CHECK for CHECK, default for default, the partial index.
    @Test func triggersIsTheSeedsTableExactly() async throws {
        let schema = freshSchema("seed")
        let reference = freshSchema("reference")
        try await withSchemas([schema, reference]) {
            guard let psql = ["/usr/bin/psql", "/usr/lib/postgresql/15/bin/psql"].first(where: FileManager.default.isExecutableFile) else {
                Issue.record("psql is missing (Debian: postgresql-client)")
                return
            }
            _ = try PostgresProjection(url: url, schema: schema)
            // The reference: the seed file run by psql, beside the three tables it references.
            let seedFile = packageRoot + "/Schema/seed/layout-e-v1.1.1.sql"
            let prelude = "CREATE SCHEMA \(reference); SET search_path TO \(reference);"
                + " CREATE TABLE apps (id UUID PRIMARY KEY); CREATE TABLE scripts (id UUID PRIMARY KEY);"
                + " CREATE TABLE admin_users (id UUID PRIMARY KEY);"
            let made = try await runProgram(psql, [url, "-v", "ON_ERROR_STOP=1", "-q", "-c", prelude, "-c",
                                                   "SET search_path TO \(reference)", "-f", seedFile])
            #expect(made.status == 0, "\(made.stderr)")
            func describe(_ name: String) async throws -> String {
                let run = try await runProgram(psql, [url, "-c", "SET search_path TO \(name)", "-c", "\\d triggers"])
                #expect(run.status == 0, "\(run.stderr)")
                // Without the title (it names the schema), up to "Referenced by:", which also
                // lists Herald's trigger_positions.
                return run.stdout.components(separatedBy: "Referenced by:")[0].split(separator: "\n")
                    .filter { !$0.contains("Table \"") }.joined(separator: "\n")
            }
            let herald = try await describe(schema)
            let seed = try await describe(reference)
            #expect(herald == seed)
            for line in ["enabled                 | boolean                  |           | not null | true",
                         "\"idx_triggers_app_kind_enabled\" btree (app_id, kind) WHERE enabled = true",
                         "\"triggers_retry_backoff_check\" CHECK (retry_backoff = ANY (ARRAY['exponential'::text, 'linear'::text, 'constant'::text]))"] {
                #expect(herald.contains(line), "\(line) in:\n\(herald)")
            }
        }
    }

    /// The 100k workload (`Tools/gen-workload`): `herald project --postgres` killed with
    /// SIGKILL in the middle of its batches, then run again, holds exactly the SQLite
    /// projection's rows, table by table; `herald verify --postgres` agrees, and `--rebuild`
    /// swaps in the same content.
    @Test func theWorkloadSurvivesKilledProjectorsAndEqualsSQLite() async throws {
        guard heraldIsBuilt() else { return }
        let schema = freshSchema("workload")
        try await withSchemas([schema]) {
            try await withTemporaryDirectory { path in
                let generated = try await runProgram("/usr/bin/env", ["python3", packageRoot + "/Tools/gen-workload", path + "/w",
                                                                      "--events", "100000"])
                #expect(generated.status == 0, "\(generated.stderr)")
                let data = path + "/data"
                for file in ["setup.jsonl", "events.jsonl"] {
                    let imported = try await runProgram(heraldBinary, ["import", "--data", data, path + "/w/" + file])
                    #expect(imported.status == 0, "\(imported.stderr)")
                }
                let project = ["project", "--data", data, "--postgres", url, "--postgres-schema", schema]
                var landed = 0
                for delay in [250, 700, 1_500] {
                    let child = try ChildProgram(heraldBinary, project)
                    try await Task.sleep(for: .milliseconds(delay))
                    if child.isRunning { landed += 1 }
                    child.kill()
                    _ = await child.wait()
                }
                #expect(landed >= 1, "at least one kill landed while it ran")
                let resumed = try await runProgram(heraldBinary, project)
                #expect(resumed.status == 0 && resumed.stdout.contains("…101165 into PostgreSQL schema \(schema)"),
                        "\(resumed.stdout)\(resumed.stderr)")
                let directory = DataDirectory(path: data)
                try directory.project()
                func differences() throws -> [String] {
                    let store = try PostgresProjection(url: url, schema: schema, readOnly: true)
                    return try store.readSnapshot { try store.differences(from: try directory.openProjection()) }
                }
                #expect(try differences().isEmpty)
                let verified = try await runProgram(heraldBinary, ["verify", "--data", data, "--postgres", url, "--postgres-schema", schema])
                #expect(verified.status == 0 && verified.stdout.contains("identical to a rebuild"), "\(verified.stdout)\(verified.stderr)")
                let rebuilt = try await runProgram(heraldBinary, project + ["--rebuild"])
                #expect(rebuilt.status == 0 && rebuilt.stdout.contains("positions 1…101165"), "\(rebuilt.stdout)\(rebuilt.stderr)")
                #expect(try differences().isEmpty)
            }
        }
    }

    /// `herald run --postgres`: PostgreSQL follows the engine's log (attempts, retries, dead
    /// letters) and, once the run ends, holds exactly the SQLite projection's rows.
    @Test func runFollowsItsLogIntoPostgres() async throws {
        guard heraldIsBuilt() else { return }
        let schema = freshSchema("run")
        try await withSchemas([schema]) {
            try await withTemporaryDirectory { path in
                let data = path + "/data"
                let a = "a0000000-0000-4000-8000-000000000001", app = "b0000000-0000-4000-8000-000000000001"
                let ok = "c0000000-0000-4000-8000-000000000001", broken = "c0000000-0000-4000-8000-000000000002"
                var lines = [
                    #"{"type":"admin_user.created","admin_user_id":"\#(a)","email":"ops@example.com"}"#,
                    #"{"type":"app.created","app_id":"\#(app)","name":"shop"}"#,
                    #"{"type":"script.registered","script_id":"\#(ok)","app_id":"\#(app)","name":"ok","runtime":"process","source":"cat >/dev/null"}"#,
                    #"{"type":"script.registered","script_id":"\#(broken)","app_id":"\#(app)","name":"broken","runtime":"process","source":"echo 'broken\ttab' >&2; exit 1"}"#,
                    #"{"type":"trigger.registered","trigger_id":"d0000000-0000-4000-8000-000000000001","app_id":"\#(app)","script_id":"\#(ok)","kind":"kv","registered_by":"\#(a)","kv":{"collection_glob":"*","ops":["insert","delete"]}}"#,
                    #"{"type":"trigger.registered","trigger_id":"d0000000-0000-4000-8000-000000000002","app_id":"\#(app)","script_id":"\#(broken)","kind":"kv","retry":{"max_attempts":2,"backoff":"constant","base_ms":5},"registered_by":"\#(a)","kv":{"collection_glob":"orders","ops":[]}}"#,
                    #"{"type":"trigger.registered","trigger_id":"d0000000-0000-4000-8000-000000000003","app_id":"\#(app)","script_id":"\#(ok)","kind":"dead_letter","registered_by":"\#(a)","dead_letter":{}}"#,
                ]
                for index in 0..<20 {
                    lines.append(#"{"type":"kv.insert","app_id":"\#(app)","collection":"\#(index % 2 == 0 ? "orders" : "users")","key":"k\#(index)","value":{"i":\#(index)}}"#)
                }
                try lines.joined(separator: "\n").write(toFile: path + "/setup.jsonl", atomically: true, encoding: .utf8)
                #expect(try await runProgram(heraldBinary, ["import", "--data", data, path + "/setup.jsonl"]).status == 0)
                let run = try await runProgram(heraldBinary, ["run", "--data", data, "--until-idle", "--quiet", "--postgres", url,
                                                              "--postgres-schema", schema])
                #expect(run.status == 0 && run.stderr.contains("projecting into PostgreSQL schema \(schema)"), "\(run.stderr)")
                let directory = DataDirectory(path: data)
                let store = try PostgresProjection(url: url, schema: schema, readOnly: true)
                #expect(try store.checkpointPosition() == (try directory.openReader().lastPosition))
                #expect(try store.summary(now: 0).counts[.dead] == 10)
                let differences = try store.readSnapshot { try store.differences(from: try directory.openProjection()) }
                #expect(differences.isEmpty, "\(differences)")
            }
        }
    }

    /// A record PostgreSQL cannot store (U+0000 in a text field, which the log accepts) is
    /// refused naming its position and table; nothing of its batch is written.
    @Test func textPostgresCannotStoreIsRefusedByPosition() async throws {
        let schema = freshSchema("nul")
        try await withSchemas([schema]) {
            try await withTemporaryDirectory { path in
                let lines = [#"{"type":"admin_user.created","admin_user_id":"a0000000-0000-4000-8000-000000000001","email":"ok@example.com","ts":1}"#,
                             #"{"type":"app.created","app_id":"b0000000-0000-4000-8000-000000000001","name":"a\u0000b","ts":2}"#]
                try lines.joined(separator: "\n").write(toFile: path + "/log.jsonl", atomically: true, encoding: .utf8)
                let directory = DataDirectory(path: path + "/data")
                _ = try directory.importLines(from: path + "/log.jsonl")
                #expect {
                    try directory.projectPostgres(url: url, schema: schema)
                } throws: { error in
                    "\(error)".contains("the record at position 2 puts U+0000 into apps")
                }
                let store = try PostgresProjection(url: url, schema: schema, readOnly: true)
                #expect(try store.checkpointPosition() == 0)
                #expect(try store.connection.run("SELECT count(*) FROM \(schema).admin_users").rows == [["0"]])
            }
        }
    }

    @Test func badInputIsRefusedByName() async throws {
        #expect { _ = try PostgresProjection(url: url, schema: "Robert'); DROP") } throws: { "\($0)".contains("--postgres-schema") }
        #expect { _ = try PostgresConnection(url: "postgresql://nobody:secret@127.0.0.1:1/x") } throws: { error in
            "\(error)".contains("postgresql://nobody@127.0.0.1:1/x") && !"\(error)".contains("secret")
        }
        #expect { _ = try PostgresProjection(url: url, schema: "pg_catalog", readOnly: true) } throws: { "\($0)".contains("no Herald checkpoint") }
        // Text PostgreSQL cannot store is refused by name, not cut at the NUL.
        let connection = try PostgresConnection(url: url)
        #expect { try connection.run("SELECT $1::text", [.text("a\u{0}b")]) } throws: { "\($0)".contains("U+0000") }
    }
}

/// The embedded DDL is the files' (Tools/gen-schema): the seed byte for byte.
@Suite struct PostgresSchemaTests {
    @Test func theEmbeddedDDLIsTheSchemaFiles() throws {
        let seed = try String(contentsOfFile: packageRoot + "/Schema/seed/layout-e-v1.1.1.sql", encoding: .utf8)
        let herald = try String(contentsOfFile: packageRoot + "/Schema/postgres.sql", encoding: .utf8)
        #expect(PostgresSchema.seed + "\n" == seed, "run Tools/gen-schema")
        #expect(PostgresSchema.herald + "\n" == herald, "run Tools/gen-schema")
        #expect(herald.components(separatedBy: "\n-- @seed\n").count == 2)
    }
}
