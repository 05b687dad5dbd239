import Foundation
import Herald
import HeraldCore
import HeraldStore
import HeraldTesting
import Testing

/// Reads at the log's end answered from the projection (counters, indexes, rows) must say
/// exactly what a replay of the whole log says.
@Suite struct HeadReadTests {
    /// A data directory holding a random log of about `records` records with every record type
    /// (the generator drops the few it draws invalid); the projection covers the first
    /// `projected` of them.
    private func directory(at path: String, seed: UInt64, records count: Int, projected: Int) throws -> DataDirectory {
        var generator = RandomLog(seed: seed)
        let records = generator.generate(records: count)
        let projected = min(projected, records.count)
        let encoder = RecordJSONEncoder()
        func write(_ slice: ArraySlice<Record>, to file: String) throws {
            let text = slice.map { String(decoding: encoder.encode($0), as: UTF8.self) }.joined(separator: "\n")
            try text.write(toFile: file, atomically: true, encoding: .utf8)
        }
        try write(records[..<projected], to: path + "/head.jsonl")
        let directory = DataDirectory(path: path + "/data")
        _ = try directory.importLines(from: path + "/head.jsonl")
        try directory.project()
        if projected < records.count {
            try write(records[projected...], to: path + "/tail.jsonl")
            _ = try directory.importLines(from: path + "/tail.jsonl")
        }
        return directory
    }

    @Test func everyTimelineFromTheProjectionIsTheReplaysTimeline() async throws {
        try await withTemporaryDirectory { path in
            let directory = try directory(at: path, seed: 77, records: 3_000, projected: 3_000)
            let reader = try directory.openReader()
            let projection = try #require(try directory.openProjectionForReading())
            var ids = try directory.deliveries().map(\.id)
            // Deliveries that do not exist: a trigger that never fired there, a position past the end.
            if let first = ids.first {
                ids.append(DeliveryID(sourcePosition: first.sourcePosition + 1, triggerID: first.triggerID))
                ids.append(DeliveryID(sourcePosition: 99_999, triggerID: first.triggerID))
            }
            // Every replayed timeline from one replay (what `reader.timeline(of:)` builds for one).
            var replays = ids.map { DeliveryTimeline(id: $0) }
            _ = try reader.replay { position, record, effects, state in
                for index in replays.indices {
                    replays[index].observe(position: position, record: record, effects: effects, registry: state.registry)
                }
            }
            var fromRows = 0, replayed = 0
            var told: [String: Int] = [:]
            for (id, expected) in zip(ids, replays) {
                guard let timeline = try projection.timeline(of: id, record: { try reader.record(at: $0) }) else {
                    replayed += 1
                    continue
                }
                fromRows += 1
                #expect(ExplanationText.render(timeline) == ExplanationText.render(expected), "\(id)")
                #expect(ExplanationText.json(timeline) == ExplanationText.json(expected), "\(id)")
                for event in timeline.events {
                    switch event {
                    case .attempt(let a): told[a.status == .pending ? "retry" : "attempt", default: 0] += 1
                    case .dead(_, let caused): told[caused.isEmpty ? "dead" : "dead with dead letters", default: 0] += 1
                    case .cancelled: told["cancelled", default: 0] += 1
                    case .redriven: told["redriven", default: 0] += 1
                    }
                }
                // What `herald explain P:T` prints takes the same path.
                #expect(ExplanationText.render(try directory.timeline(of: id)) == ExplanationText.render(expected))
            }
            // Many come from the rows, and the rows told every kind of event; the rest (their
            // trigger deleted or updated since, which this generator does often) were replayed.
            #expect(fromRows > 200 && replayed > 0, "\(fromRows) from rows, \(replayed) replayed")
            for kind in ["attempt", "retry", "dead", "dead with dead letters", "cancelled", "redriven"] {
                #expect(told[kind, default: 0] > 3, "\(kind): \(told)")
            }
        }
    }

    @Test func statusFromTheCountersIsTheReplaysStatus() async throws {
        try await withTemporaryDirectory { path in
            // Caught up (counters and due-time index), 2,000 records behind (its state plus the
            // tail), and with no projection (a replay from 1).
            for projected in [3_000, 1_000] {
                try FileManager.default.createDirectory(atPath: path + "/\(projected)", withIntermediateDirectories: true)
                let directory = try directory(at: path + "/\(projected)", seed: 2027, records: 3_000, projected: projected)
                let reader = try directory.openReader()
                let deliveries = try directory.deliveries()
                let dueTimes = deliveries.compactMap(\.dueAt).sorted()
                for now in [Int64(0), dueTimes[dueTimes.count / 2], .max] {
                    let summary = try directory.summary(now: now)
                    let replayed = try reader.summary(store: nil, now: now)
                    #expect(summary == replayed, "projected \(projected), now \(now)")
                    var counts = DeliveryCounts()
                    for delivery in deliveries { counts[delivery.status] += 1 }
                    #expect(summary.counts == counts)
                    #expect(summary.dueNow == Int64(deliveries.filter { $0.status == .pending && $0.dueAt! <= now }.count))
                    #expect(summary.nextDueAt == deliveries.filter { $0.status == .pending }.compactMap(\.dueAt).min())
                    #expect(summary.position == (try reader.lastPosition))
                }
                for status in DeliveryStatus.allCases {
                    #expect(deliveries.count { $0.status == status } > 20, "\(status)")
                }
                // `herald triggers` at the end: the registry tables plus the tail's registry records.
                func lines(_ registry: Registry) -> String {
                    var out = JSONOutput()
                    for trigger in registry.liveTriggers() {
                        CanonicalOutput.append(trigger, to: &out)
                        out.int(Int64(trigger.updatedPosition))
                        out.newline()
                    }
                    return out.text
                }
                let current = try directory.currentRegistry()
                let replayed = try reader.replay()
                #expect(current.position == replayed.position)
                #expect(lines(current.registry) == lines(replayed.registry) && !replayed.registry.triggers.isEmpty)
            }
        }
    }

    @Test func theCountersFollowEveryBatchAndVerifyComparesThem() async throws {
        try await withTemporaryDirectory { path in
            let directory = try directory(at: path, seed: 4242, records: 2_500, projected: 1_200)
            try directory.project()  // the second catch-up moves the counters from where the first left them
            let projection = try #require(try directory.openProjectionForReading())
            var counted = DeliveryCounts()
            for row in try projection.database.rows("SELECT status, count(*) FROM deliveries GROUP BY status") {
                let name = try #require(row[0].text)
                counted[try #require(DeliveryStatus(name: name))] = try #require(row[1].integer)
            }
            #expect(try projection.deliveryCounts() == counted)
            #expect(counted.dead > 0 && counted.cancelled > 0 && counted.succeeded > 0 && counted.pending > 0)
            // A counter that drifted is a difference from the rebuild `herald verify` reports.
            let writable = try Projection(path: directory.projectionPath)
            try writable.database.execute("UPDATE delivery_counts SET count = count + 1 WHERE status = 'dead'")
            let differences = try directory.verifyProjection()
            #expect(differences.first?.hasPrefix("delivery_counts row 2 (ordered by status): projection has ('dead', ") == true,
                    "\(differences)")
            // Only the counter: the engine snapshot is checked against the table, which is sound.
            #expect(differences.count == 1, "\(differences)")
        }
    }

    @Test func linesFromTheColumnsAreTheCanonicalLines() async throws {
        try await withTemporaryDirectory { path in
            // Caught up (lines from the columns) and behind (the rows with the tail laid over them).
            for projected in [3_000, 1_500] {
                try FileManager.default.createDirectory(atPath: path + "/\(projected)", withIntermediateDirectories: true)
                let directory = try directory(at: path + "/\(projected)", seed: 99, records: 3_000, projected: projected)
                let all = try directory.openReader().deliveries()
                let trigger = all.map(\.id.triggerID).sorted().first
                var selections = DeliveryStatus.allCases.map { DeliverySelection(status: $0) }
                selections += [DeliverySelection(), DeliverySelection(limit: 1), DeliverySelection(limit: 7),
                               DeliverySelection(status: .dead, limit: 3), DeliverySelection(trigger: trigger),
                               DeliverySelection(from: 700, to: 1_900), DeliverySelection(errorContains: "e1", limit: 5)]
                for selection in selections {
                    var expected = JSONOutput()
                    for delivery in selection.picked(from: all) {
                        CanonicalOutput.append(delivery, to: &expected)
                        expected.newline()
                    }
                    var lines: [UInt8] = []
                    try directory.forEachDeliveryLine(matching: selection) { lines.append(contentsOf: $0) }
                    #expect(lines == expected.bytes, "\(selection), projected \(projected)")
                    if projected == 3_000, let projection = try directory.openProjectionForReading() {
                        // Many batches of rows (the listing's own are 2,048 rows), limits ending inside them.
                        for batchRows in [1, 7, 64] {
                            var batched: [UInt8] = []
                            try projection.forEachDeliveryLine(matching: selection, batchRows: batchRows) { batched.append(contentsOf: $0) }
                            #expect(batched == expected.bytes, "\(selection) in batches of \(batchRows) rows")
                        }
                    }
                    var streamed: [Delivery] = []
                    try directory.forEachDelivery(matching: selection) { streamed.append($0) }
                    #expect(streamed == selection.picked(from: all), "\(selection), projected \(projected)")
                }
                // Positions with several deliveries: the lines come in trigger order, not id order.
                #expect(Dictionary(grouping: all, by: \.id.sourcePosition).values.contains { $0.count > 2 })
            }
        }
    }

    /// A damaged row late in the listing (past its first batches of rows) fails it with the damage
    /// named, after the lines before it: nothing is skipped, nothing past it is written.
    @Test func aDamagedRowEndsTheLinesWithAnError() async throws {
        try await withTemporaryDirectory { path in
            let directory = try directory(at: path, seed: 99, records: 3_000, projected: 3_000)
            let all = try directory.openReader().deliveries()
            let damaged = all[all.count - 10].id
            let database = try SQLiteDatabase(path: directory.projectionPath)
            try database.execute("UPDATE deliveries SET app_id = 'not-an-id' WHERE source_position = \(damaged.sourcePosition) AND trigger_id = '\(damaged.triggerID)'")
            let before = all.firstIndex { $0.id.sourcePosition == damaged.sourcePosition } ?? 0
            let projection = try #require(try directory.openProjectionForReading())
            for batchRows in [2_048, 16] {
                var lines = 0
                #expect {
                    try projection.forEachDeliveryLine(matching: DeliverySelection(), batchRows: batchRows) { _ in lines += 1 }
                } throws: { error in
                    "\(error)".contains("a deliveries row holds an invalid app_id")
                }
                #expect(lines == before, "batches of \(batchRows) rows")
            }
        }
    }
}
