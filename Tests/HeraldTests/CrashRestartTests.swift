import Foundation
import Herald
import HeraldCore
import HeraldStore
import Testing

/// `herald run` killed with SIGKILL at random moments, restarted each time: nothing is lost.
@Suite struct CrashRestartTests {
    /// Starts `herald` (awaited without blocking a concurrency thread: ``ChildProgram``).
    func start(_ arguments: [String]) throws -> ChildProgram {
        try ChildProgram(heraldBinary, arguments)
    }

    /// Runs `herald` to its end.
    func herald(_ arguments: [String]) async throws -> ProgramRun {
        try await start(arguments).wait()
    }

    @Test func sigkillDuringRunLosesNothing() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            let data = path + "/data"
            let a = "a0000000-0000-4000-8000-000000000001", app = "b0000000-0000-4000-8000-000000000001"
            let ok = "c0000000-0000-4000-8000-000000000001", flaky = "c0000000-0000-4000-8000-000000000002"
            let broken = "c0000000-0000-4000-8000-000000000003"
            var lines = [
                #"{"type":"admin_user.created","admin_user_id":"\#(a)","email":"ops@example.com"}"#,
                #"{"type":"app.created","app_id":"\#(app)","name":"shop"}"#,
                #"{"type":"script.registered","script_id":"\#(ok)","app_id":"\#(app)","name":"ok","runtime":"process","source":"cat >/dev/null; sleep 0.02"}"#,
                #"{"type":"script.registered","script_id":"\#(flaky)","app_id":"\#(app)","name":"flaky","runtime":"process","source":"cat >/dev/null; [ $(od -An -N1 -tu1 /dev/urandom) -lt 100 ] && exit 0; echo flaky >&2; exit 1"}"#,
                #"{"type":"script.registered","script_id":"\#(broken)","app_id":"\#(app)","name":"broken","runtime":"process","source":"echo broken >&2; exit 75"}"#,
                #"{"type":"trigger.registered","trigger_id":"d0000000-0000-4000-8000-000000000001","app_id":"\#(app)","script_id":"\#(ok)","kind":"kv","retry":{"max_attempts":5,"backoff":"constant","base_ms":20},"registered_by":"\#(a)","kv":{"collection_glob":"*","ops":[]}}"#,
                #"{"type":"trigger.registered","trigger_id":"d0000000-0000-4000-8000-000000000002","app_id":"\#(app)","script_id":"\#(flaky)","kind":"kv","retry":{"max_attempts":4,"backoff":"linear","base_ms":10},"registered_by":"\#(a)","kv":{"collection_glob":"users:*","ops":["insert"]}}"#,
                #"{"type":"trigger.registered","trigger_id":"d0000000-0000-4000-8000-000000000003","app_id":"\#(app)","script_id":"\#(broken)","kind":"kv","registered_by":"\#(a)","kv":{"collection_glob":"orders","ops":[]}}"#,
                #"{"type":"trigger.registered","trigger_id":"d0000000-0000-4000-8000-000000000004","app_id":"\#(app)","script_id":"\#(ok)","kind":"dead_letter","retry":{"max_attempts":3,"backoff":"constant","base_ms":10},"registered_by":"\#(a)","dead_letter":{}}"#,
            ]
            for index in 0..<60 {
                let collection = ["users:1", "users:2", "orders"][index % 3]
                lines.append(#"{"type":"kv.insert","app_id":"\#(app)","collection":"\#(collection)","key":"k\#(index)","value":{"i":\#(index)}}"#)
            }
            let input = path + "/setup.jsonl"
            try lines.joined(separator: "\n").write(toFile: input, atomically: true, encoding: .utf8)
            let importer = try await herald(["import", "--data", data, input])
            #expect(importer.status == 0)

            var random = SeededRandom(seed: 2026)
            for round in 0..<12 {
                let runner = try start(["run", "--data", data, "--until-idle", "--quiet", "--concurrency", "4"])
                try await Task.sleep(for: .milliseconds(Int.random(in: 80...400, using: &random)))
                runner.kill()
                _ = await runner.wait()
                _ = round
            }
            let last = try await herald(["run", "--data", data, "--until-idle", "--quiet"])
            #expect(last.status == 0)

            let listing = try await herald(["deliveries", "--data", data, "--format", "jsonl"])
            #expect(listing.status == 0)
            let text = listing.stdout
            let deliveries = text.split(separator: "\n")
            // 60 events → 60 (ok) + 40 (flaky, users:*) + 20 (broken, orders) kv deliveries,
            // plus one dead-letter delivery per dead kv delivery.
            let kv = deliveries.filter { $0.contains(#""source_kind":"kv""#) }
            #expect(kv.count == 120)
            #expect(!deliveries.contains { $0.contains(#""status":"pending""#) }, "every delivery finished")
            let dead = kv.filter { $0.contains(#""status":"dead""#) }.count
            let deadLetterDeliveries = deliveries.filter { $0.contains(#""source_kind":"dead_letter""#) }.count
            #expect(dead >= 20, "every 'broken' delivery died (exit 75 = not retryable)")
            #expect(deadLetterDeliveries == dead, "each dead kv delivery caused one dead-letter delivery")
            let verify = try await herald(["verify", "--data", data])
            #expect(verify.status == 0, "herald verify passes after the crashes")
        }
    }

    /// `herald project` killed with SIGKILL mid-run, then run again: the same content as an
    /// uninterrupted run (verify compares it with a rebuild); `--rebuild` twice is identical.
    @Test func killedProjectorResumesToTheSameContent() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            let data = path + "/data"
            var lines = ProjectionTests.setup
            for index in 0..<25_000 {
                lines.append(#"{"type":"kv.insert","ts":\#(10 + index),"app_id":"\#(ProjectionTests.app)","collection":"c\#(index % 7)","key":"k\#(index)","value":\#(index)}"#)
            }
            let input = path + "/log.jsonl"
            try lines.joined(separator: "\n").write(toFile: input, atomically: true, encoding: .utf8)
            #expect(try await herald(["import", "--data", data, input]).status == 0)
            var interrupted = false
            for delay in [100, 200, 400] {
                let projector = try start(["project", "--data", data])
                try await Task.sleep(for: .milliseconds(delay))
                if projector.isRunning {
                    projector.kill()
                    interrupted = true
                }
                _ = await projector.wait()
            }
            let projection = try DataDirectory(path: data).openProjection()
            let checkpoint = try projection.checkpoint().position
            #expect(checkpoint <= UInt64(lines.count))
            #expect(try await herald(["project", "--data", data]).status == 0)
            #expect(try await herald(["verify", "--data", data]).status == 0, "resumed projection equals a rebuild")
            #expect(interrupted, "at least one run was killed mid-way (the log was too small to interrupt)")
            let directory = DataDirectory(path: data)
            try directory.rebuildProjection()
            let first = try dumpTables(directory)
            try directory.rebuildProjection()
            #expect(try dumpTables(directory) == first, "--rebuild twice gives identical content")
        }
    }

    func dumpTables(_ directory: DataDirectory) throws -> [[SQLiteValue]] {
        let projection = try directory.openProjection()
        var rows: [[SQLiteValue]] = []
        for (table, order) in Projection.contentTables {
            rows += try projection.database.rows("SELECT * FROM \(table) ORDER BY \(order)")
        }
        return rows
    }
}
