import Foundation
import Testing
@testable import HeraldLog

/// Closed segments rewritten with LZ4-HC (Schema/log-format.md, "Recompression of closed
/// segments"): the same records at the same positions, smaller, readable by every reader and
/// `lz4 -dc`, and a swap that survives a power loss at any write, sync or rename.
@Suite struct RecompressionTests {
    static let config = LogConfiguration(segmentBytesMax: 2_500, blockRawBytesMax: 1_500)

    /// 50 appends of 1...7 records of 120 bytes: several closed segments of several blocks.
    static let batches: [[LogEntry]] = {
        var out: [[LogEntry]] = []
        var n = 0
        for i in 0..<50 {
            let k = 1 + (i * 5) % 7
            out.append(entries(n..<(n + k), bytes: 120))
            n += k
        }
        return out
    }()
    static let all = batches.flatMap { $0 }

    static func write(_ directory: String, fileSystem: any LogFileSystem = PosixFileSystem()) throws {
        let writer = try LogWriter(directory: directory, configuration: config, fileSystem: fileSystem)
        for batch in batches { try writer.append(batch) }
        try writer.close()
    }

    static func segmentNames(_ directory: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".log") }.sorted()
    }

    @Test func closedSegmentsGetSmallerAndReadTheSame() throws {
        try withTemporaryDirectory { dir in
            try Self.write(dir)
            let names = try Self.segmentNames(dir)
            #expect(names.count >= 4)
            let before = try LogReader(directory: dir).stats()
            let lastBefore = try readFile(dir + "/" + names[names.count - 1])

            let writer = try LogWriter(directory: dir, configuration: Self.config)
            let report = try writer.recompressClosedSegments(level: 9)
            #expect(report.rewritten == names.count - 1, "every closed segment, not the active one")
            #expect(report.bytesAfter < report.bytesBefore)
            // The writer goes on appending to its active segment.
            try writer.append(entries(1_000..<1_010, bytes: 120))
            try writer.close()

            let after = try LogReader(directory: dir).stats()
            #expect(after.storedBytes - report.bytesAfter < before.storedBytes - report.bytesBefore + 10 * 122,
                    "only the closed segments changed")
            #expect(after.records == before.records + 10)
            #expect(after.blocks == before.blocks + 1, "block for block")
            #expect(try readAll(directory: dir).map(\.payload) == (Self.all + entries(1_000..<1_010, bytes: 120)).map(\.payload))
            let verified = try LogReader.verify(directory: dir)
            #expect(verified.damage == nil && verified.acknowledgedLoss == nil)
            #expect(Array(try readFile(dir + "/" + names[names.count - 1]).prefix(lastBefore.count)) == lastBefore,
                    "the active segment is not rewritten")
            for name in names.dropLast() {
                if let decoded = try lz4Decode(dir + "/" + name) {
                    #expect(decoded.status == 0, "lz4 -dc decodes \(name)")
                }
            }

            // The index follows: a reopened writer finds nothing to rebuild, and a second pass
            // finds every closed segment already at the level.
            let reopened = try LogWriter(directory: dir, configuration: Self.config)
            #expect(reopened.recoveryReport.rebuiltIndexes.isEmpty)
            let again = try reopened.recompressClosedSegments(level: 9)
            #expect(again.rewritten == 0 && again.alreadyAtLevel == names.count - 1)
            try reopened.close()
        }
    }

    @Test func readersOpenedBeforeTheSwapReadOnCorrectly() throws {
        try withTemporaryDirectory { dir in
            try Self.write(dir)
            let reader = try LogReader(directory: dir)
            // Caches every closed segment's index and holds a cursor in the middle of one.
            #expect(try readAll(reader).count == Self.all.count)
            let cursor = try reader.makeCursor(from: 3)
            _ = try cursor.nextBlock()
            let writer = try LogWriter(directory: dir, configuration: Self.config)
            _ = try writer.recompressClosedSegments(level: 12)
            var rest: [UInt64] = []
            while let block = try cursor.nextBlock() { block.forEachRecord { position, _, _ in rest.append(position) } }
            #expect(rest.first.map { $0 > 3 } ?? false)
            #expect(rest.last == UInt64(Self.all.count))
            for start in [1, 17, 40, UInt64(Self.all.count)] as [UInt64] {
                #expect(try readAll(reader, from: start).map(\.payload) == Self.all[Int(start - 1)...].map(\.payload), "from \(start)")
            }
            try writer.close()
        }
    }

    @Test func aDamagedClosedSegmentIsRefusedAndLeftAsItIs() throws {
        try withTemporaryDirectory { dir in
            try Self.write(dir)
            let names = try Self.segmentNames(dir)
            let path = dir + "/" + names[1]
            var bytes = try readFile(path)
            bytes[bytes.count / 2] ^= 0x40
            let writer = try LogWriter(directory: dir, configuration: Self.config)
            try writeFile(path, bytes)  // damaged after the writer's open verified it
            #expect {
                try writer.recompressClosedSegments(level: 9)
            } throws: { error in
                guard case let .corruptBlock(_, segment, _, _, _) = error as? LogError else { return false }
                return segment == names[1]
            }
            try writer.close()
            #expect(try readFile(path) == bytes)
            #expect(!FileManager.default.fileExists(atPath: path + ".recompress"))
            // The other closed segments were rewritten all the same.
            for (i, name) in names.dropLast().enumerated() where i != 1 {
                let base = SegmentFiles.base(ofSegment: name) ?? 0
                #expect(BlockIndexFile.rewrittenLevel(PosixFileSystem(), path: dir + "/" + SegmentFiles.indexName(base: base), base: base) == 9,
                        "\(name) was recompressed past the damaged one")
            }
        }
    }

    @Test func levelsOutsideHCAreRefused() throws {
        try withTemporaryDirectory { dir in
            try Self.write(dir)
            let writer = try LogWriter(directory: dir, configuration: Self.config)
            for level: Int32 in [-1, 0, 2, 13] {
                #expect(throws: LogError.self) { try writer.recompressClosedSegments(level: level) }
            }
            try writer.close()
            #expect(throws: LogError.self) { try writer.recompressClosedSegments(level: 9) }
        }
    }

    /// A crash at every write, sync and rename of a recompression pass (and of the writer's
    /// open and close around it), then a power loss of either kind: the log reopens with every
    /// record, readers and the writer agree, and the next pass finishes the work.
    @Test func powerLossAtEveryStepOfTheSwapKeepsEveryRecord() async throws {
        let directory = "/sim/log"
        func pass(_ fs: SimulatedFileSystem) throws {
            let writer = try LogWriter(directory: directory, configuration: Self.config, fileSystem: fs)
            _ = try writer.recompressClosedSegments(level: 9)
            try writer.close()
        }
        let counting = SimulatedFileSystem()
        try Self.write(directory, fileSystem: counting)
        let start = counting.ioPointCount
        try pass(counting)
        let points = counting.ioPointCount - start
        #expect(points > 20)
        let expected = Self.all.map(\.payload)
        var oldSegments = 0
        var newSegments = 0
        for k in 1...points {
            // Long synchronous work: let the other tests' tasks have the pool's thread now and then.
            await Task.yield()
            for mode in [SimulatedFileSystem.PowerLossMode.dropUnsynced, .tornPrefix(seed: UInt64(k))] {
                let context = "crash at I/O point \(k) of \(points), \(mode)"
                let fs = SimulatedFileSystem()
                try Self.write(directory, fileSystem: fs)
                let cleanSize = fs.durableContents(of: directory + "/00000000000000000001.log")?.count ?? 0
                fs.inject(.crash(atIOPoint: start + k))
                #expect(throws: LogError.self, "\(context) must interrupt the pass") { try pass(fs) }
                fs.powerLoss(mode)
                let size = fs.durableContents(of: directory + "/00000000000000000001.log")?.count ?? 0
                if size == cleanSize { oldSegments += 1 } else { newSegments += 1 }
                let verified = try LogReader.verify(directory: directory, fileSystem: fs)
                #expect(verified.lastPosition == UInt64(Self.all.count) && verified.damage == nil, "\(context)")
                #expect(try readAll(directory: directory, fileSystem: fs).map(\.payload) == expected, "\(context)")
                try pass(fs)
                #expect(try readAll(directory: directory, fileSystem: fs).map(\.payload) == expected, "\(context), after the next pass")
                let names = try fs.contentsOfDirectory(directory)
                #expect(!names.contains { $0.hasSuffix(".recompress") }, "\(context): the next pass removes leftovers")
            }
        }
        // Both outcomes were exercised: crashes before the rename kept the old segment.
        #expect(oldSegments > 0 && newSegments > 0)
    }
}
