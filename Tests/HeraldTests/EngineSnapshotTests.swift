import Foundation
import Herald
import HeraldCore
import HeraldStore
import HeraldTesting
import Synchronization
import Testing

/// The engine snapshot (`engine_snapshot`: the pending deliveries in binary at the checkpoint):
/// written when a projection is caught up with the log, read by the next open instead of one
/// row per pending delivery, never trusted past its position, and reported, dropped and
/// rebuilt from the rows when damaged.
@Suite struct EngineSnapshotTests {
    static let admin = "a0000000-0000-4000-8000-000000000001", app = "b0000000-0000-4000-8000-000000000001"
    static let script = "c0000000-0000-4000-8000-000000000001", trigger = "d0000000-0000-4000-8000-000000000001"

    /// Registry, 40 KV records (40 deliveries), failed attempts of some (errors kept while
    /// pending), a dead one redriven (budget base) and a cancelled one.
    static var lines: [String] {
        var lines = [
            #"{"type":"admin_user.created","ts":1,"admin_user_id":"\#(admin)","email":"a@example.com"}"#,
            #"{"type":"app.created","ts":1,"app_id":"\#(app)","name":"one"}"#,
            #"{"type":"script.registered","ts":1,"script_id":"\#(script)","app_id":"\#(app)","name":"s","runtime":"process","source":"true"}"#,
            #"{"type":"trigger.registered","ts":1,"trigger_id":"\#(trigger)","app_id":"\#(app)","script_id":"\#(script)","kind":"kv","registered_by":"\#(admin)","retry":{"max_attempts":2,"backoff":"constant","base_ms":10},"kv":{"collection_glob":"*","ops":[]}}"#,
        ]
        for n in 0..<40 { lines.append(#"{"type":"kv.insert","ts":2,"app_id":"\#(app)","collection":"c","key":"k\#(n)","value":\#(n)}"#) }
        for source in [5, 9, 13] {
            lines.append(#"{"type":"delivery.attempted","ts":3,"source_position":\#(source),"trigger_id":"\#(trigger)","attempt":1,"outcome":"error","error":"smtp down \#(source)","retryable":true,"duration_ms":1}"#)
        }
        lines.append(#"{"type":"delivery.attempted","ts":20,"source_position":5,"trigger_id":"\#(trigger)","attempt":2,"outcome":"error","error":"still down","retryable":true,"duration_ms":1}"#)
        lines.append(#"{"type":"delivery.redriven","ts":21,"deliveries":["5:\#(trigger)"],"by":"\#(admin)","reason":"fixed"}"#)
        lines.append(#"{"type":"delivery.cancelled","ts":21,"deliveries":["20:\#(trigger)"],"by":"\#(admin)"}"#)
        return lines
    }

    func importedAndProjected(at path: String) throws -> DataDirectory {
        let directory = DataDirectory(path: path)
        let file = path + "/input.jsonl"
        try Self.lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        _ = try directory.importLines(from: file)
        try directory.project()
        return directory
    }

    func snapshotPosition(_ directory: DataDirectory) throws -> Int64? {
        try directory.openProjection().database.rows("SELECT position FROM engine_snapshot").first?.first?.integer
    }

    @Test func aCaughtUpProjectionKeepsASnapshotThatRestoresWhatTheRowsAndTheLogSay() async throws {
        try await withTemporaryDirectory { path in
            let directory = try importedAndProjected(at: path)
            let projection = try directory.openProjection()
            #expect(try snapshotPosition(directory) == Int64(try projection.checkpointPosition()))
            let fromSnapshot = try projection.loadDispatcher()
            var replayed = Dispatcher()
            try directory.replay(into: &replayed)
            #expect(fromSnapshot.pending == replayed.pending && fromSnapshot.pending.count == 39)
            #expect(fromSnapshot.createdCount == replayed.createdCount && fromSnapshot.createdCount == 40)
            // The redriven delivery's budget base and the pending ones' last errors came through.
            let triggerID = try #require(HeraldID(Self.trigger))
            let redriven = try #require(fromSnapshot.pending[DeliveryID(sourcePosition: 5, triggerID: triggerID)])
            #expect(redriven.budgetBase == 2 && redriven.lastError == "still down")
            // Without the snapshot, the rows say the same.
            try projection.database.execute("DELETE FROM engine_snapshot")
            #expect(try projection.loadDispatcher().pending == fromSnapshot.pending)
            #expect(try directory.verifyProjection().isEmpty)
        }
    }

    @Test func aSnapshotIsNeverUsedPastItsPositionAndTheNextCatchUpWritesANewOne() async throws {
        try await withTemporaryDirectory { path in
            let directory = try importedAndProjected(at: path)
            let before = try #require(try snapshotPosition(directory))
            // A command that leaves the projection behind (as `herald redrive` does).
            let herald = try Herald.open(directory: directory, options: HeraldOptions(durability: .none))
            try herald.append(.kv(KVMutation(op: .insert, appID: #require(HeraldID(Self.app)), collection: "c", key: "late",
                                             value: JSONText("1"))))
            try herald.close(projecting: false)
            #expect(try snapshotPosition(directory) == before, "the checkpoint and the snapshot did not move")
            // The next open catches up, applies the record to the state it restored, and
            // leaves a snapshot of the new checkpoint.
            let reopened = try Herald.open(directory: directory, options: HeraldOptions(durability: .none))
            #expect(reopened.pendingCount == 40)
            try reopened.close()
            #expect(try snapshotPosition(directory) == before + 1)
            // A pass that moves the checkpoint drops the snapshot it made stale.
            let projection = try directory.openProjection()
            var dispatcher = try projection.loadDispatcher()
            let record = Record(ts: dispatcher.lastTs ?? 0, body: .kv(KVMutation(op: .insert, appID: try #require(HeraldID(Self.app)), collection: "c",
                                                            key: "x", value: JSONText("2"))))
            var effects: [DispatchEffect] = []
            try dispatcher.check(record)
            dispatcher.applyChecked(record, effects: &effects)
            try projection.apply([ProjectionStep(position: dispatcher.position, record: record, effects: effects)],
                                 registryAfter: dispatcher.registry)
            #expect(try snapshotPosition(directory) == nil)
        }
    }

    @Test func aDamagedSnapshotIsReportedDroppedAndRebuiltFromTheRows() async throws {
        try await withTemporaryDirectory { path in
            let projected = try importedAndProjected(at: path)
            let notes = Mutex<[String]>([])
            let directory = DataDirectory(path: path, diagnostics: { note in notes.withLock { $0.append(note) } })
            let expected = try projected.openProjection().loadDispatcher().pending
            let projection = try directory.openProjection()
            guard case .blob(var bytes) = try projection.database.rows("SELECT pending FROM engine_snapshot").first?.first else {
                Issue.record("no snapshot")
                return
            }
            bytes[bytes.count / 2] ^= 0x10
            try projection.database.prepare("UPDATE engine_snapshot SET pending = ?").run([.blob(bytes)])
            // verify names it (reading only, it changes nothing).
            let problems = try projection.engineSnapshotProblems()
            #expect(problems.contains { $0.contains("engine_snapshot") && $0.contains("checksum") }, "\(problems)")
            // The next open says so, restores the pending deliveries from their rows, and
            // leaves a sound snapshot behind.
            let herald = try Herald.open(directory: directory, options: HeraldOptions(durability: .none))
            #expect(herald.dispatcher.pending == expected)
            try herald.close()
            #expect(notes.withLock { $0 }.contains { $0.contains("engine_snapshot") && $0.contains("checksum") && $0.contains("rows instead") },
                    "\(notes.withLock { $0 })")
            #expect(try directory.openProjection().engineSnapshotProblems().isEmpty)
            #expect(try snapshotPosition(directory) != nil)
            #expect(try directory.verifyProjection().isEmpty)
        }
    }

    @Test func verifyReportsASnapshotThatDisagreesWithTheRows() async throws {
        try await withTemporaryDirectory { path in
            let directory = try importedAndProjected(at: path)
            let projection = try directory.openProjection()
            // A well-formed snapshot of another pending set (one delivery fewer).
            var dispatcher = try projection.loadDispatcher()
            var pending = dispatcher.pending.values
            pending.removeLast()
            dispatcher = Dispatcher(registry: dispatcher.registry, pending: pending, position: dispatcher.position,
                                    lastTs: dispatcher.lastTs, createdCount: dispatcher.createdCount)
            try projection.database.prepare("UPDATE engine_snapshot SET pending = ?").run([.blob(dispatcher.pending.snapshotBytes())])
            let problems = try directory.verifyProjection()
            #expect(problems.contains { $0.contains("38 pending deliveries that differ from the 39") }, "\(problems)")
        }
    }
}

/// `herald deliveries` with filters and `--limit`: the projection answers them in SQL, and
/// what it returns is exactly the replay's deliveries filtered in Swift (and, behind the
/// projection, the replay path itself).
@Suite struct DeliverySelectionReadTests {
    @Test func theProjectionSelectsWhatTheReplayFilters() async throws {
        try await withTemporaryDirectory { path in
            var generator = RandomLog(seed: 2026)
            let records = generator.generate(records: 3_000)
            let encoder = RecordJSONEncoder()
            let text = records.map { String(decoding: encoder.encode($0), as: UTF8.self) }.joined(separator: "\n")
            try text.write(toFile: path + "/log.jsonl", atomically: true, encoding: .utf8)
            let directory = DataDirectory(path: path + "/data")
            _ = try directory.importLines(from: path + "/log.jsonl")
            try directory.project()
            let all = try directory.deliveries()
            let triggers = Array(Set(all.map(\.id.triggerID))).sorted().prefix(3)
            let apps = Array(Set(all.map(\.appID))).sorted().prefix(2)
            var selections = DeliveryStatus.allCases.map { DeliverySelection(status: $0) }
            selections += triggers.map { DeliverySelection(trigger: $0) } + apps.map { DeliverySelection(app: $0) }
            selections += [DeliverySelection(limit: 7), DeliverySelection(status: .dead, limit: 3),
                           DeliverySelection(from: 500, to: 900), DeliverySelection(errorContains: "e1"),
                           DeliverySelection(app: apps.first, status: .pending, limit: 50)]
            var nonEmpty = 0
            for selection in selections {
                let expected = Array(all.filter(selection.matches).prefix(selection.limit ?? .max))
                var streamed: [Delivery] = []
                try directory.forEachDelivery(matching: selection) { streamed.append($0) }
                let differing = zip(streamed, expected).first { $0 != $1 }
                #expect(streamed == expected,
                        "\(selection): \(streamed.count) streamed, \(expected.count) expected, first difference \(String(describing: differing))")
                if !expected.isEmpty { nonEmpty += 1 }
            }
            #expect(nonEmpty >= selections.count - 2, "the selections pick something")
        }
    }
}
