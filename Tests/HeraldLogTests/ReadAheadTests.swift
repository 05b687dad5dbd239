import Foundation
import Testing
@testable import HeraldLog

/// `LogCursor.forEachBlock` (blocks read ahead on a background thread) against the plain
/// `nextBlock()` loop: same records, same errors in the same place, clean early stops.
struct ReadAheadTests {
    /// 12 blocks of 3 records over several closed segments (600-byte segments).
    func build(_ dir: String, appends: Int = 12) throws {
        let writer = try LogWriter(directory: dir, configuration: LogConfiguration(segmentBytesMax: 600))
        for i in 0..<appends { try writer.append(entries((i * 3)..<(i * 3 + 3), bytes: 20)) }
        try writer.close()
    }

    struct Outcome: Equatable {
        var records: [ReadRecord] = []
        var error: LogError?
    }

    /// The reference: `nextBlock()` in a loop with the same stop rules.
    func serial(_ reader: LogReader, from: UInt64 = 1, through: UInt64 = .max, blocks: Int = .max) throws -> Outcome {
        var outcome = Outcome()
        let cursor = try reader.makeCursor(from: from)
        var delivered = 0
        do {
            while let block = try cursor.nextBlock() {
                outcome.records += block.map { ReadRecord(position: $0.position, ts: $0.ts, payload: Array($0.payload)) }
                delivered += 1
                if delivered >= blocks || block.endPosition > through { break }
            }
        } catch let error as LogError {
            outcome.error = error
        }
        return outcome
    }

    func readAhead(_ reader: LogReader, from: UInt64 = 1, through: UInt64 = .max, blocks: Int = .max, depth: Int) throws -> Outcome {
        var outcome = Outcome()
        let cursor = try reader.makeCursor(from: from)
        var delivered = 0
        do {
            try cursor.forEachBlock(through: through, readAhead: depth) { block in
                outcome.records += block.map { ReadRecord(position: $0.position, ts: $0.ts, payload: Array($0.payload)) }
                delivered += 1
                return delivered < blocks
            }
        } catch let error as LogError {
            outcome.error = error
        }
        return outcome
    }

    /// `check` runs once per block, before `body` sees it, and its answer arrives with the block.
    @Test func checkAnswersArriveWithTheirBlocks() throws {
        try withTemporaryDirectory { dir in
            try build(dir)
            let reader = try LogReader(directory: dir)
            for depth in [0, 1, 3] {
                let cursor = try reader.makeCursor(from: 1)
                var answers: [(UInt64, Bool)] = []
                // Odd base positions answer true: the answer depends on the block, not on timing.
                try cursor.forEachBlock(readAhead: depth, check: { $0.basePosition % 2 == 1 }) { block, checked in
                    answers.append((block.basePosition, checked))
                    return true
                }
                #expect(answers.map(\.0) == stride(from: 1, through: 34, by: 3).map { UInt64($0) }, "depth \(depth)")
                #expect(answers.allSatisfy { $0.1 == ($0.0 % 2 == 1) }, "depth \(depth)")
            }
        }
    }

    @Test func sameRecordsAsTheSerialLoop() throws {
        try withTemporaryDirectory { dir in
            try build(dir)
            let reader = try LogReader(directory: dir)
            let all = try serial(reader)
            #expect(all.records.count == 36)
            #expect(all.records.map(\.payload) == entries(0..<36, bytes: 20).map(\.payload))
            for depth in [0, 1, 2, 5, 40] {
                #expect(try readAhead(reader, depth: depth) == all, "readAhead \(depth)")
                for from: UInt64 in [1, 2, 5, 17, 36] {
                    for through: UInt64 in [from, from + 2, 20, 35, 36, .max] where through >= from {
                        #expect(try readAhead(reader, from: from, through: through, depth: depth)
                                == serial(reader, from: from, through: through),
                                "readAhead \(depth) from \(from) through \(through)")
                    }
                }
            }
        }
    }

    /// Blocks the caller keeps stay intact although their buffers go back to the producer.
    @Test func keptBlocksAreNotOverwritten() throws {
        try withTemporaryDirectory { dir in
            try build(dir)
            let cursor = try LogReader(directory: dir).makeCursor(from: 1)
            var kept: [LogBlock] = []
            try cursor.forEachBlock(readAhead: 1) { block in
                kept.append(block)
                return true
            }
            let records = kept.flatMap { block in block.map { Array($0.payload) } }
            #expect(records == entries(0..<36, bytes: 20).map(\.payload))
        }
    }

    @Test func corruptBlockIsReportedAfterTheRecordsBeforeIt() throws {
        try withTemporaryDirectory { dir in
            try build(dir)
            let segments = try segmentFiles(dir)
            #expect(segments.count >= 3)
            let path = dir + "/" + segments[1]
            var bytes = try readFile(path)
            let offsets = blockOffsets(bytes)
            bytes[offsets[1] + 70] ^= 0x10
            try writeFile(path, bytes)
            let base = try #require(UInt64(segments[1].prefix(20)))
            let reader = try LogReader(directory: dir)
            let reference = try serial(reader)
            let error = try #require(reference.error)
            guard case let .corruptBlock(_, segment, offset, position, _) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(segment == segments[1] && offset == UInt64(offsets[1]) && position == base + 3)
            #expect(reference.records.map(\.position) == Array(1...(base + 2)))
            for depth in [1, 2, 3, 8] {
                #expect(try readAhead(reader, depth: depth) == reference, "readAhead \(depth)")
            }
        }
    }

    @Test func stoppingEarlyJoinsTheReader() throws {
        try withTemporaryDirectory { dir in
            try build(dir)
            let reader = try LogReader(directory: dir)
            // Many rounds: a stop at any moment of the producer's work must neither hang nor leak.
            for round in 0..<200 {
                let blocks = round % 13
                let got = try readAhead(reader, blocks: max(1, blocks), depth: 1 + round % 3)
                #expect(got == (try serial(reader, blocks: max(1, blocks))), "round \(round)")
            }
            struct Boom: Error, Equatable {}
            for depth in [1, 2, 4] {
                var calls = 0
                #expect(throws: Boom()) {
                    try reader.makeCursor(from: 1).forEachBlock(readAhead: depth) { _ in
                        calls += 1
                        if calls == 3 { throw Boom() }
                        return true
                    }
                }
                #expect(calls == 3)
            }
        }
    }

    /// Blocks read ahead and not delivered are not lost: the cursor continues right after the
    /// last block given to `body`, and a damaged block is reported again instead of skipped.
    @Test func theCursorResumesAfterTheLastDeliveredBlock() throws {
        try withTemporaryDirectory { dir in
            try build(dir)
            let reader = try LogReader(directory: dir)
            for depth in [1, 2, 5] {
                for stopAfter in 1...4 {
                    let cursor = try reader.makeCursor(from: 1)
                    var seen = 0
                    var last: UInt64 = 0
                    try cursor.forEachBlock(readAhead: depth) { block in
                        seen += 1
                        last = block.endPosition
                        return seen < stopAfter
                    }
                    #expect(cursor.nextPosition == last, "depth \(depth), stop after \(stopAfter)")
                    #expect(try cursor.nextBlock()?.basePosition == last, "depth \(depth), stop after \(stopAfter)")
                }
            }
            // A damaged block: the error again on the next read, from the same place.
            let segments = try segmentFiles(dir)
            let path = dir + "/" + segments[1]
            var bytes = try readFile(path)
            bytes[blockOffsets(bytes)[1] + 70] ^= 0x10
            try writeFile(path, bytes)
            let damaged = try LogReader(directory: dir)
            let cursor = try damaged.makeCursor(from: 1)
            var first: LogError?
            do {
                try cursor.forEachBlock(readAhead: 3) { _ in true }
            } catch let error as LogError {
                first = error
            }
            let error = try #require(first)
            #expect(throws: error) { try cursor.nextBlock() }
        }
    }

    /// A block that passes its checksums and fails only when decompressed (so the cursor was
    /// already past it when it failed) is reported in order and again on the next read, whether
    /// it is the scan's first block or a middle one.
    @Test func aBlockThatFailsToDecompressIsReportedAgain() throws {
        for (segment, block) in [(0, 0), (1, 1)] {
            try withTemporaryDirectory { dir in
                try build(dir)
                let segments = try segmentFiles(dir)
                try damageFrameKeepingChecksums(dir + "/" + segments[segment], block: block)
                let reader = try LogReader(directory: dir)
                let reference = try serial(reader)
                let error = try #require(reference.error, "segment \(segment), block \(block)")
                guard case .corruptBlock = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                for depth in [1, 2, 4] {
                    let cursor = try reader.makeCursor(from: 1)
                    var delivered: [UInt64] = []
                    #expect(throws: error) {
                        try cursor.forEachBlock(readAhead: depth) { block in
                            delivered += block.map(\.position)
                            return true
                        }
                    }
                    #expect(delivered == reference.records.map(\.position), "depth \(depth)")
                    #expect(throws: error) { try cursor.nextBlock() }
                }
            }
        }
    }

    /// A reader that follows a live writer sees only published blocks and continues later.
    @Test func followsALiveWriter() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir, configuration: LogConfiguration(segmentBytesMax: 600))
            defer { try? writer.close() }
            for i in 0..<5 { try writer.append(entries((i * 3)..<(i * 3 + 3), bytes: 20)) }
            let reader = writer.makeReader()
            let cursor = try reader.makeCursor(from: 1)
            var positions: [UInt64] = []
            try cursor.forEachBlock { block in
                positions += block.map(\.position)
                return true
            }
            #expect(positions == Array(1...15))
            for i in 5..<9 { try writer.append(entries((i * 3)..<(i * 3 + 3), bytes: 20)) }
            try cursor.forEachBlock { block in
                positions += block.map(\.position)
                return true
            }
            #expect(positions == Array(1...27))
            try cursor.forEachBlock { _ in
                Issue.record("nothing new was published")
                return true
            }
        }
    }
}
