import Foundation
import Testing
@testable import HeraldLog

/// A log compacted to a snapshot (Schema/log-format.md, "Compaction"): it starts at the
/// snapshot's position, keeps every position after it, and survives a power loss at any step.
@Suite struct CompactionTests {
    static let config = RecompressionTests.config
    static let all = RecompressionTests.all
    static let payload: [UInt8] = Array("the state through the position before the start".utf8)

    static func snapshot(_ start: UInt64) -> LogSnapshot {
        LogSnapshot(start: start, lastTs: all[min(Int(start) - 2, all.count - 1)].ts, payload: payload + [UInt8(truncatingIfNeeded: start)])
    }

    @Test func theLogStartsAtTheSnapshotAndKeepsEveryLaterPosition() throws {
        try withTemporaryDirectory { dir in
            try RecompressionTests.write(dir)
            let names = try RecompressionTests.segmentNames(dir)
            let bases = names.compactMap { SegmentFiles.base(ofSegment: $0) }
            #expect(bases.count >= 5)
            // A start inside the fourth segment: the first three go, the fourth stays whole.
            let start = bases[3] + 2
            let writer = try LogWriter(directory: dir, configuration: Self.config)
            let result = try writer.compact(to: Self.snapshot(start), archiveDirectory: dir + "/archive")
            #expect(result.start == start)
            #expect(result.removedSegments == Array(names.prefix(3)))
            for name in names.prefix(3) {
                #expect(!FileManager.default.fileExists(atPath: dir + "/" + name))
                if let decoded = try lz4Decode(dir + "/archive/" + name) { #expect(decoded.status == 0) }
            }
            // The writer goes on at the same positions.
            #expect(try writer.append(LogEntry(ts: 10_000, payload: [7])) == UInt64(Self.all.count + 1))
            let reader = writer.makeReader()
            #expect(try reader.firstPosition() == start)
            #expect(try reader.snapshot() == Self.snapshot(start))
            #expect(try readAll(reader, from: start).map(\.payload) == Self.all[Int(start - 1)...].map(\.payload) + [[7]])
            #expect(throws: LogError.compacted(directory: dir, position: start - 1, firstPosition: start)) {
                try reader.makeCursor(from: start - 1).nextBlock()
            }
            try writer.close()

            let standalone = try LogReader(directory: dir)
            #expect(standalone.lastPosition == UInt64(Self.all.count + 1))
            #expect(try standalone.stats().segments == names.count - 3)
            let verified = try LogReader.verify(directory: dir)
            #expect(verified.damage == nil && verified.lastPosition == UInt64(Self.all.count + 1))

            // A later compaction replaces the snapshot; an earlier one is refused.
            let again = try LogWriter(directory: dir, configuration: Self.config)
            #expect(throws: LogError.self) { try again.compact(to: Self.snapshot(start - 1)) }
            #expect(throws: LogError.self) { try again.compact(to: Self.snapshot(UInt64(Self.all.count + 3))) }
            let later = try again.compact(to: Self.snapshot(bases[4] + 1))
            #expect(later.removedSegments == [names[3]])
            try again.close()
            let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".snapshot") }
            #expect(files == [LogSnapshotFile.name(start: bases[4] + 1)])
        }
    }

    /// A cursor made before a compaction that removed what it was to read says so by name.
    @Test func aCursorBehindACompactionIsToldSo() throws {
        try withTemporaryDirectory { dir in
            try RecompressionTests.write(dir)
            let reader = try LogReader(directory: dir)
            let cursor = try reader.makeCursor(from: 1)
            let writer = try LogWriter(directory: dir, configuration: Self.config)
            let start = UInt64(Self.all.count - 3)
            _ = try writer.compact(to: Self.snapshot(start))
            try writer.close()
            #expect(throws: LogError.compacted(directory: dir, position: 1, firstPosition: start)) { try cursor.nextBlock() }
        }
    }

    /// With a writer that acknowledges before it syncs, a compaction first syncs what its
    /// snapshot stands for: a power loss right after never leaves the log ending before its start.
    @Test func aCompactionSyncsTheRecordsItsSnapshotStandsFor() throws {
        let fs = SimulatedFileSystem()
        let config = LogConfiguration(segmentBytesMax: 2_500, blockRawBytesMax: 1_500, durability: .none)
        let writer = try LogWriter(directory: "/sim/log", configuration: config, fileSystem: fs)
        for batch in RecompressionTests.batches { try writer.append(batch) }
        let last = UInt64(Self.all.count)
        _ = try writer.compact(to: LogSnapshot(start: last + 1, lastTs: Self.all[Int(last) - 1].ts, payload: [1]))
        fs.powerLoss(.dropUnsynced)
        let reader = try LogReader(directory: "/sim/log", fileSystem: fs)
        #expect(reader.lastPosition == last)
        #expect(try reader.firstPosition() == last + 1)
    }

    @Test func aDamagedSnapshotIsRefusedByReadersAndTheWriter() throws {
        try withTemporaryDirectory { dir in
            try RecompressionTests.write(dir)
            let writer = try LogWriter(directory: dir, configuration: Self.config)
            _ = try writer.compact(to: Self.snapshot(40))
            try writer.close()
            let path = dir + "/" + LogSnapshotFile.name(start: 40)
            var bytes = try readFile(path)
            bytes[40] ^= 1
            try writeFile(path, bytes)
            for open in [{ _ = try LogWriter(directory: dir, configuration: Self.config) },
                         { _ = try LogReader.verify(directory: dir) },
                         { _ = try LogReader(directory: dir).snapshot() }] as [() throws -> Void] {
                #expect { try open() } throws: { error in
                    guard case let .damagedSnapshot(at, reason) = error as? LogError else { return false }
                    return at == path && reason.contains("checksum")
                }
            }
        }
    }

    /// A crash at every write, sync and rename of a compaction (archive included), then a
    /// power loss of either kind: the log reopens starting at the old first position or at the
    /// snapshot, with every record from there on, and the next compaction finishes the work.
    @Test func powerLossAtEveryStepOfACompactionKeepsTheLogOrItsSnapshot() async throws {
        let directory = "/sim/log"
        let archive = "/sim/archive"
        let start: UInt64 = 60
        func pass(_ fs: SimulatedFileSystem) throws {
            let writer = try LogWriter(directory: directory, configuration: Self.config, fileSystem: fs)
            _ = try writer.compact(to: Self.snapshot(start), archiveDirectory: archive)
            try writer.close()
        }
        let counting = SimulatedFileSystem()
        try RecompressionTests.write(directory, fileSystem: counting)
        let first = counting.ioPointCount
        try pass(counting)
        let points = counting.ioPointCount - first
        #expect(points > 10)
        var outcomes: Set<UInt64> = []
        for k in 1...points {
            // Long synchronous work: let the other tests' tasks have the pool's thread now and then.
            await Task.yield()
            for mode in [SimulatedFileSystem.PowerLossMode.dropUnsynced, .tornPrefix(seed: UInt64(k))] {
                let context = "crash at I/O point \(k) of \(points), \(mode)"
                let fs = SimulatedFileSystem()
                try RecompressionTests.write(directory, fileSystem: fs)
                fs.inject(.crash(atIOPoint: first + k))
                #expect(throws: LogError.self, "\(context) must interrupt the compaction") { try pass(fs) }
                fs.powerLoss(mode)
                let reader = try LogReader(directory: directory, fileSystem: fs)
                let from = try reader.firstPosition()
                outcomes.insert(from)
                #expect(from == 1 || from == start, "\(context)")
                if from == start { #expect(try reader.snapshot() == Self.snapshot(start), "\(context)") }
                #expect(try readAll(reader, from: from).map(\.payload) == Self.all[Int(from - 1)...].map(\.payload), "\(context)")
                #expect(try LogReader.verify(directory: directory, fileSystem: fs).lastPosition == UInt64(Self.all.count), "\(context)")
                try pass(fs)
                let after = try LogReader(directory: directory, fileSystem: fs)
                #expect(try after.firstPosition() == start, "\(context)")
                #expect(try readAll(after, from: start).map(\.payload) == Self.all[Int(start - 1)...].map(\.payload), "\(context)")
                let names = try fs.contentsOfDirectory(directory)
                #expect(names.filter { $0.hasSuffix(".log") }.count == (try LogReader(directory: directory, fileSystem: fs).stats().segments),
                        "\(context): no segment wholly before the start is left")
                for name in try fs.contentsOfDirectory(archive) where name.hasSuffix(".log") {
                    #expect(name.hasSuffix(".log") && fs.contents(of: archive + "/" + name) == counting.contents(of: archive + "/" + name),
                            "\(context): \(name) is archived whole")
                }
            }
        }
        #expect(outcomes == [1, start], "crashes before and after the snapshot's rename")
    }
}
