import Foundation
@testable import Herald
import HeraldCore
import HeraldLog
import HeraldStore
import HeraldTesting
import Testing

/// Retention's promise (docs/SEMANTICS.md, "Retention"), on random logs compacted at random
/// positions: every delivery that is pending or dead, or created at or after the compaction
/// point, reads exactly as it did — in `deliveries`, in `deliveries --at` any later position,
/// in `explain` — and a projection rebuilt from the compacted log holds the same rows for them.
@Suite struct CompactionPropertyTests {
    static func lines(_ deliveries: [Delivery]) -> [String] {
        deliveries.map { d in
            var out = JSONOutput()
            CanonicalOutput.append(d, to: &out)
            return out.text
        }
    }

    /// `after` is `before` with some lines left out, in the same order, and keeps each line
    /// `required` says must stay.
    static func check(before: [Delivery], after: [Delivery], keeping required: (Delivery) -> Bool, _ context: String) {
        let afterLines = lines(after)
        let beforeLines = lines(before)
        var at = 0
        for line in afterLines {
            while at < beforeLines.count && beforeLines[at] != line { at += 1 }
            if at == beforeLines.count {
                Issue.record("\(context): \(line) is not a line of the uncompacted log (or out of order)")
                return
            }
            at += 1
        }
        let kept = Set(afterLines)
        for (delivery, line) in zip(before, beforeLines) where required(delivery) && !kept.contains(line) {
            Issue.record("\(context): \(line) was dropped")
        }
    }

    static func rows(_ projection: Projection, _ sql: String) throws -> [[SQLiteValue]] {
        try projection.database.rows(sql)
    }

    @Test func compactedLogsKeepEveryPendingDeadAndLaterDelivery() async throws {
        var compactions = 0, retainedOld = 0, droppedOld = 0
        for seed in UInt64(1)...30 {
            var generator = RandomLog(seed: seed &* 7_741)
            let records = generator.generate(records: 300)
            let position = 2 + (seed &* 2_654_435_761) % UInt64(records.count)
            let context = "seed \(seed), compact before \(position) of \(records.count)"
            // Long synchronous work: let the other tests' tasks have the pool's thread now and then.
            await Task.yield()
            try await withTemporaryDirectory { dir in
                let live = DataDirectory(path: dir + "/live")
                let compacted = DataDirectory(path: dir + "/compacted")
                for directory in [live, compacted] {
                    let writer = try directory.openWriter()
                    try writer.append(records)
                    try writer.close()
                }
                try live.rebuildProjection()
                let report = try compacted.compact(before: position, archiveDirectory: nil, recompressionLevel: nil)
                #expect(report.firstPosition == position, "\(context)")
                compactions += 1

                let reader = try compacted.openReader()
                let liveReader = try live.openReader()
                let before = try liveReader.deliveries()
                let after = try reader.deliveries()
                let atCut = Set(try liveReader.deliveries(at: position - 1).filter { $0.status == .pending || $0.status == .dead }.map(\.id))
                Self.check(before: before, after: after, keeping: {
                    $0.status == .pending || $0.status == .dead || $0.id.sourcePosition >= position || atCut.contains($0.id)
                }, context)
                retainedOld += after.filter { $0.id.sourcePosition < position }.count
                droppedOld += before.count - after.count

                // `deliveries --at` every later position keeps the same promise.
                await Task.yield()
                for at in stride(from: position - 1, through: UInt64(records.count), by: 37) {
                    let b = try liveReader.deliveries(at: at)
                    let a = try reader.deliveries(at: at)
                    Self.check(before: b, after: a, keeping: {
                        $0.status == .pending || $0.status == .dead || $0.id.sourcePosition >= position || atCut.contains($0.id)
                    }, "\(context), --at \(at)")
                }
                #expect(throws: HeraldError.self, "\(context)") { try reader.deliveries(at: position - 2) }
                #expect(try reader.summary(store: nil, now: 0).counts == liveReader.summary(store: nil, now: 0).counts, "\(context)")

                // `explain` of a retained delivery tells the same story.
                for delivery in after.prefix(5) {
                    let a = ExplanationText.render(try compacted.timeline(of: delivery.id))
                    let b = ExplanationText.render(try live.timeline(of: delivery.id))
                    #expect(a == b, "\(context): explain \(delivery.id)")
                }

                await Task.yield()
                // The projection rebuilt from the compacted log: the same registry, counts and
                // checkpoint, and the same rows for every delivery it keeps.
                try compacted.rebuildProjection()
                let p = try compacted.openProjection()
                let q = try live.openProjection()
                for table in ["admin_users", "apps", "scripts", "used_ids", "triggers", "kv_trigger_details",
                              "dead_letter_trigger_details", "delivery_counts", "checkpoint"] {
                    let order = Projection.contentTables.first { $0.name == table }?.orderBy ?? "1"
                    #expect(try Self.rows(p, "SELECT * FROM \(table) ORDER BY \(order)") == Self.rows(q, "SELECT * FROM \(table) ORDER BY \(order)"),
                            "\(context): \(table)")
                }
                let kept = Set(after.map { "\($0.id.sourcePosition):\($0.id.triggerID)" })
                for (table, order) in [("deliveries", "source_position, trigger_id"), ("delivery_attempts", "source_position, trigger_id, attempt"),
                                       ("dead_letters", "position")] {
                    let sql = "SELECT * FROM \(table) ORDER BY \(order)"
                    let mine = try Self.rows(p, sql)
                    let theirs = try Self.rows(q, sql).filter { row in
                        // source_position and trigger_id are the first two columns, or (dead_letters) the third and fourth.
                        let (s, t) = table == "dead_letters" ? (row[2], row[3]) : (row[0], row[1])
                        guard case .integer(let sp) = s, case .text(let tid) = t else { return false }
                        return kept.contains("\(sp):\(tid)")
                    }
                    #expect(mine == theirs, "\(context): \(table) rows of the kept deliveries")
                }

                // Compacting the directory whose projection followed the whole log prunes it:
                // `herald deliveries` (answered by the projection) prints what a replay does.
                _ = try live.compact(before: position, archiveDirectory: nil, recompressionLevel: nil)
                var lines: [String] = []
                try live.forEachDeliveryLine { lines.append(String(decoding: $0, as: UTF8.self)) }
                #expect(lines == Self.lines(after).map { $0 + "\n" }, "\(context): the pruned projection's deliveries")
                #expect(try live.verifyProjection().isEmpty, "\(context): verify after compaction")
            }
        }
        // The generator must exercise both sides, or this test proves little.
        #expect(compactions == 30 && retainedOld > 100 && droppedOld > 100, "\(retainedOld) kept, \(droppedOld) dropped")
    }
}

/// `herald compact` (compaction, the roll of the active segment, recompression) cut by a power
/// loss at every write, sync and rename: the log reopens holding every record from its first
/// position on, and starts either where it did or at the snapshot, whose deliveries read as
/// the compaction promised.
@Suite struct CompactionPowerLossTests {
    @Test func compactCutAnywhereKeepsEveryRecordOrItsSnapshot() async throws {
        var generator = RandomLog(seed: 99)
        let records = generator.generate(records: 400)
        let point: UInt64 = 250
        try await withTemporaryDirectory { path in
            func written() throws -> (SimulatedFileSystem, DataDirectory) {
                let fs = SimulatedFileSystem()
                let directory = DataDirectory(path: path, fileSystem: fs)
                let writer = try directory.openWriter(configuration: LogConfiguration(segmentBytesMax: 4_096, blockRawBytesMax: 1_024))
                for chunk in stride(from: 0, to: records.count, by: 25) {
                    try writer.append(Array(records[chunk..<min(chunk + 25, records.count)]))
                }
                try writer.close()
                return (fs, directory)
            }
            let (counting, reference) = try written()
            let all = try reference.openReader().deliveries()
            let start = counting.ioPointCount
            _ = try reference.compact(before: point, archiveDirectory: nil, recompressionLevel: 9)
            let points = counting.ioPointCount - start
            let compacted = try reference.openReader().deliveries()
            #expect(points > 20 && compacted.count < all.count)
            var outcomes: Set<UInt64> = []
            for k in 1...points {
                await Task.yield()  // long synchronous work: the pool's thread for others now and then
                for mode in [SimulatedFileSystem.PowerLossMode.dropUnsynced, .tornPrefix(seed: UInt64(k))] {
                    let context = "crash at I/O point \(k) of \(points), \(mode)"
                    let (fs, directory) = try written()
                    fs.inject(.crash(atIOPoint: fs.ioPointCount + k))
                    #expect(throws: (any Error).self, "\(context)") {
                        try directory.compact(before: point, archiveDirectory: nil, recompressionLevel: 9)
                    }
                    fs.powerLoss(mode)
                    let reader = try directory.openReader()
                    let first = try reader.firstPosition
                    outcomes.insert(first)
                    #expect(try reader.lastPosition == UInt64(records.count), "\(context)")
                    var at = first
                    try reader.forEach(from: first, through: nil) { position, record in
                        if position != at || record != records[Int(position - 1)] { Issue.record("\(context): position \(position)") }
                        at += 1
                        return true
                    }
                    #expect(try reader.deliveries() == (first == 1 ? all : compacted), "\(context)")
                    // The next compaction finishes the work.
                    _ = try directory.compact(before: point, archiveDirectory: nil, recompressionLevel: 9)
                    #expect(try directory.openReader().deliveries() == compacted, "\(context), compacted again")
                }
            }
            #expect(outcomes == [1, point])
        }
    }
}

/// A projection whose engine snapshot is older than the log's new start (a running engine
/// saves one only every so many records) still restores: from the log's own snapshot.
@Suite struct CompactionRestoreTests {
    @Test func anEngineSnapshotOlderThanTheStartIsNotContinued() async throws {
        var generator = RandomLog(seed: 7)
        let records = generator.generate(records: 600)
        try await withTemporaryDirectory { path in
            let data = DataDirectory(path: path)
            let writer = try data.openWriter()
            try writer.append(Array(records[..<100]))
            let projection = try data.openProjection()
            try Projector(directory: data, projection: projection).catchUp()  // the engine snapshot at 100
            try writer.append(Array(records[100...]))
            try Projector(directory: data, projection: projection).catchUp(through: UInt64(records.count))  // no new snapshot
            #expect(try projection.snapshotPosition() == 100)
            _ = try writer.compact(before: 300)
            try writer.close()
            let reader = try data.openReader()
            let restored = try reader.restoredState(from: projection)
            #expect(restored.snapshotBytes() == (try reader.replay()).snapshotBytes())
            #expect(try reader.summary(store: projection, now: 0).counts == (try reader.summary(store: nil, now: 0)).counts)
        }
    }
}
