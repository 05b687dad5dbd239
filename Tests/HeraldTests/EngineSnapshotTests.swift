import Foundation
@testable import Herald
import HeraldCore
import HeraldStore
import HeraldTesting
import Synchronization
import Testing

/// The engine snapshot (`engine_snapshot`: the dispatcher's whole state in binary at a position
/// at or before the checkpoint): written when a projection is caught up with the log and every
/// so many records by a running engine, read by the next open instead of the rows (and continued
/// through the checkpoint from the log), compared with a replay by `verify`, and reported,
/// dropped and rebuilt when damaged.
@Suite struct EngineSnapshotTests {
    static let admin = "a0000000-0000-4000-8000-000000000001", app = "b0000000-0000-4000-8000-000000000001"
    static let script = "c0000000-0000-4000-8000-000000000001", trigger = "d0000000-0000-4000-8000-000000000001"
    static let second = "d0000000-0000-4000-8000-000000000002"

    /// Registry, 40 KV records (80 deliveries of two triggers), failed attempts of some
    /// (errors kept while pending), a dead one redriven (budget base), a dead one left dead
    /// and a cancelled one.
    static var lines: [String] {
        var lines = [
            #"{"type":"admin_user.created","ts":1,"admin_user_id":"\#(admin)","email":"a@example.com"}"#,
            #"{"type":"app.created","ts":1,"app_id":"\#(app)","name":"one"}"#,
            #"{"type":"script.registered","ts":1,"script_id":"\#(script)","app_id":"\#(app)","name":"s","runtime":"process","source":"true"}"#,
            #"{"type":"trigger.registered","ts":1,"trigger_id":"\#(trigger)","app_id":"\#(app)","script_id":"\#(script)","kind":"kv","registered_by":"\#(admin)","retry":{"max_attempts":2,"backoff":"constant","base_ms":10},"kv":{"collection_glob":"*","ops":[]}}"#,
            #"{"type":"trigger.registered","ts":1,"trigger_id":"\#(second)","app_id":"\#(app)","script_id":"\#(script)","kind":"kv","registered_by":"\#(admin)","retry":{"max_attempts":1,"backoff":"constant","base_ms":10},"kv":{"collection_glob":"c","ops":["insert"]}}"#,
        ]
        for n in 0..<40 { lines.append(#"{"type":"kv.insert","ts":2,"app_id":"\#(app)","collection":"c","key":"k\#(n)","value":\#(n)}"#) }
        for source in [6, 10, 14] {
            lines.append(#"{"type":"delivery.attempted","ts":3,"source_position":\#(source),"trigger_id":"\#(trigger)","attempt":1,"outcome":"error","error":"smtp down \#(source)","retryable":true,"duration_ms":1}"#)
        }
        lines.append(#"{"type":"delivery.attempted","ts":20,"source_position":6,"trigger_id":"\#(trigger)","attempt":2,"outcome":"error","error":"still down","retryable":true,"duration_ms":1}"#)
        lines.append(#"{"type":"delivery.attempted","ts":20,"source_position":7,"trigger_id":"\#(second)","attempt":1,"outcome":"error","error":"gave up","retryable":true,"duration_ms":1}"#)
        lines.append(#"{"type":"delivery.redriven","ts":21,"deliveries":["6:\#(trigger)"],"by":"\#(admin)","reason":"fixed"}"#)
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

    func snapshotPosition(_ directory: DataDirectory) throws -> UInt64? {
        try directory.openProjection().snapshotPosition()
    }

    /// One KV insert appended and projected by hand (no snapshot is saved).
    func projectOneMore(_ directory: DataDirectory, key: String) throws {
        let herald = try Herald.open(directory: directory, options: HeraldOptions(durability: .none))
        try herald.append(.kv(KVMutation(op: .insert, appID: #require(HeraldID(Self.app)), collection: "c", key: key,
                                         value: JSONText("1"))))
        try herald.close(projecting: false)
        let projection = try directory.openProjection()
        var dispatcher = try projection.loadDispatcher()
        try directory.replay(into: &dispatcher) { position, record, effects, after in
            try projection.apply([ProjectionStep(position: position, record: record, effects: effects)], registryAfter: after.registry)
        }
    }

    @Test func theSnapshotTheRowsAndAReplayAreOneState() async throws {
        try await withTemporaryDirectory { path in
            let directory = try importedAndProjected(at: path)
            let projection = try directory.openProjection()
            #expect(try snapshotPosition(directory) == (try projection.checkpointPosition()))
            let fromSnapshot = try #require(try projection.loadSnapshot())
            let fromRows = try projection.loadDispatcher()
            let replayed = try directory.replay()
            // Byte for byte: registry, redrivable and pending deliveries, counts, position, ts.
            #expect(fromSnapshot.snapshotBytes() == replayed.snapshotBytes())
            #expect(fromRows.snapshotBytes() == replayed.snapshotBytes())
            #expect(fromSnapshot.pending.count == 78 && fromSnapshot.redrivable.count == 2 && fromSnapshot.createdCount == 80)
            #expect(fromSnapshot.registry.triggers.count == 2 && fromSnapshot.registry.scripts.count == 1)
            // The redriven delivery's budget base and the pending ones' last errors came through.
            let triggerID = try #require(HeraldID(Self.trigger))
            let redriven = try #require(fromSnapshot.pending[DeliveryID(sourcePosition: 6, triggerID: triggerID)])
            #expect(redriven.budgetBase == 2 && redriven.lastError == "still down")
            #expect(try directory.verifyProjection().isEmpty)
        }
    }

    @Test func aSnapshotBehindTheCheckpointIsContinuedFromTheLog() async throws {
        try await withTemporaryDirectory { path in
            let directory = try importedAndProjected(at: path)
            let before = try #require(try snapshotPosition(directory))
            try projectOneMore(directory, key: "late")
            let projection = try directory.openProjection()
            #expect(try snapshotPosition(directory) == before && (try projection.checkpointPosition()) == before + 1,
                    "a projection pass leaves the snapshot where it was")
            let restored = try directory.openReader().restoredState(from: projection)
            #expect(restored.position == before + 1)
            #expect(restored.snapshotBytes() == (try directory.replay().snapshotBytes()))
            #expect(try directory.verifyProjection().isEmpty)
            // The next open restores it so, and a close leaves a snapshot of the new end.
            let reopened = try Herald.open(directory: directory, options: HeraldOptions(durability: .none))
            #expect(reopened.pendingCount == 80)
            try reopened.close()
            #expect(try snapshotPosition(directory) == before + 1)
        }
    }

    @Test func aRunningEngineSavesASnapshotEverySoManyRecords() async throws {
        try await withTemporaryDirectory { path in
            let directory = try importedAndProjected(at: path)
            let start = try #require(try snapshotPosition(directory))
            let herald = try Herald.open(directory: directory, options: HeraldOptions(durability: .none, snapshotRecords: 10))
            let app = try #require(HeraldID(Self.app))
            // 80 deliveries held at the last snapshot: the interval is at least that many records.
            for n in 0..<100 {
                try herald.append(.kv(KVMutation(op: .insert, appID: app, collection: "d", key: "k\(n)", value: JSONText("1"))))
                _ = try herald.projectSlice(limit: 7)
            }
            let saved = try #require(try snapshotPosition(directory))
            #expect(saved > start && saved < start + 100, "saved at \(saved), started at \(start)")
            // What a restart after kill -9 would read: that snapshot, continued through the
            // checkpoint from the log, is the replay's state.
            let projection = try directory.openProjection()
            #expect(try directory.openReader().restoredState(from: projection).snapshotBytes()
                    == (try directory.replay(through: try projection.checkpointPosition()).snapshotBytes()))
            try herald.close()
        }
    }

    @Test func aDamagedOrDeletedSnapshotIsReportedAndRebuilt() async throws {
        try await withTemporaryDirectory { path in
            let projected = try importedAndProjected(at: path)
            let expected = try projected.replay().snapshotBytes()
            let notes = Mutex<[String]>([])
            let directory = DataDirectory(path: path, diagnostics: { note in notes.withLock { $0.append(note) } })
            let projection = try directory.openProjection()
            guard case .blob(var bytes) = try projection.database.rows("SELECT state FROM engine_snapshot").first?.first else {
                Issue.record("no snapshot")
                return
            }
            bytes[bytes.count / 2] ^= 0x10
            try projection.database.prepare("UPDATE engine_snapshot SET state = ?").run([.blob(bytes)])
            // verify names it (reading only, it changes nothing).
            let problems = try directory.verifyProjection()
            #expect(problems.contains { $0.contains("engine_snapshot") && $0.contains("checksum") }, "\(problems)")
            // The next open says so, restores the state from the rows, and leaves a sound
            // snapshot behind.
            let herald = try Herald.open(directory: directory, options: HeraldOptions(durability: .none))
            #expect(herald.dispatcher.snapshotBytes() == expected)
            try herald.close()
            #expect(notes.withLock { $0 }.contains { $0.contains("engine_snapshot") && $0.contains("checksum") && $0.contains("rows and the log instead") },
                    "\(notes.withLock { $0 })")
            #expect(try snapshotPosition(directory) != nil)
            #expect(try directory.verifyProjection().isEmpty)
            // Deleted: the rows again, and the next catch-up writes it anew.
            try directory.openProjection().database.execute("DELETE FROM engine_snapshot")
            let again = try Herald.open(directory: directory, options: HeraldOptions(durability: .none))
            #expect(again.dispatcher.snapshotBytes() == expected)
            try again.close()
            try directory.project()
            #expect(try snapshotPosition(directory) != nil)
            // The whole projection deleted: rebuilt from the log by the next writer.
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: directory.projectionPath + suffix) }
            let rebuilt = try Herald.open(directory: directory, options: HeraldOptions(durability: .none))
            #expect(rebuilt.dispatcher.snapshotBytes() == expected)
            try rebuilt.close()
            #expect(try directory.verifyProjection().isEmpty)
        }
    }

    @Test func verifyReportsASnapshotThatDisagreesWithAReplay() async throws {
        try await withTemporaryDirectory { path in
            let directory = try importedAndProjected(at: path)
            let projection = try directory.openProjection()
            // A well-formed snapshot of another state (one pending delivery fewer).
            var dispatcher = try projection.loadDispatcher()
            var pending = dispatcher.pending.values
            pending.removeLast()
            dispatcher = Dispatcher(registry: dispatcher.registry, pending: pending, position: dispatcher.position,
                                    lastTs: dispatcher.lastTs, createdCount: dispatcher.createdCount,
                                    redrivable: dispatcher.redrivable.values)
            try projection.database.prepare("UPDATE engine_snapshot SET state = ?").run([.blob(dispatcher.snapshotBytes())])
            let problems = try directory.verifyProjection()
            #expect(problems.contains { $0.contains("77 pending deliveries that differ from the 78 of a replay") }, "\(problems)")
            #expect(problems.count == 1, "\(problems)")
        }
    }

    @Test func everyDamagedByteIsRefused() throws {
        // A state with every kind of entry, then each byte flipped in turn: the checksum or a
        // field check refuses it, naming an offset inside the bytes.
        var dispatcher = Dispatcher()
        for line in Self.lines {
            let (ts, body) = try RecordJSONDecoder().decode(line: line)
            _ = try dispatcher.apply(Record(ts: ts ?? 0, body: body))
        }
        let bytes = dispatcher.snapshotBytes()
        #expect(try Dispatcher(snapshotBytes: bytes).snapshotBytes() == bytes)
        for index in bytes.indices {
            var damaged = bytes
            damaged[index] ^= 0x01
            do {
                _ = try Dispatcher(snapshotBytes: damaged)
                Issue.record("byte \(index) flipped was accepted")
            } catch {
                #expect(error.offset >= 0 && error.offset <= bytes.count)
            }
        }
        #expect(throws: SnapshotError.self) { try Dispatcher(snapshotBytes: Array(bytes.dropLast(9)) + bytes.suffix(8)) }
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
