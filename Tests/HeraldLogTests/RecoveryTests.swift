import Foundation
import Testing
@testable import HeraldLog

@Suite struct RecoveryTests {
    /// Builds a log of `blocks` appends of 3 entries each (one block per append).
    func build(_ dir: String, appends: Int, config: LogConfiguration = LogConfiguration()) throws {
        let writer = try LogWriter(directory: dir, configuration: config)
        for i in 0..<appends { try writer.append(entries((i * 3)..<(i * 3 + 3), bytes: 20)) }
        try writer.close()
    }

    @Test func tornTailAtEveryOffsetOfTheLastBlock() throws {
        try withTemporaryDirectory { dir in
            try build(dir, appends: 4)
            let path = dir + "/00000000000000000001.log"
            let original = try readFile(path)
            let offsets = blockOffsets(original)
            #expect(offsets.count == 4)
            let lastStart = try #require(offsets.last)
            #expect(original.count - lastStart < 200, "keep the last block small")
            for cut in lastStart..<original.count {
                try writeFile(path, Array(original[0..<cut]))
                // The last append was being written, not yet acknowledged.
                try setWatermark(dir, 9)
                let writer = try LogWriter(directory: dir)
                #expect(writer.lastPosition == 9, "cut at \(cut)")
                if cut > lastStart {
                    let truncation = try #require(writer.recoveryReport.truncation, "cut at \(cut)")
                    #expect(truncation.segment == "00000000000000000001.log" && truncation.offset == UInt64(lastStart), "cut at \(cut)")
                    #expect(truncation.bytesCut == UInt64(cut - lastStart) && truncation.firstPosition == 10 && !truncation.acknowledgedLoss, "cut at \(cut)")
                    // The cut bytes are kept in quarantine, and on record.
                    let quarantine = try #require(truncation.quarantine)
                    #expect(try readFile(dir + "/" + quarantine) == Array(original[lastStart..<cut]), "cut at \(cut)")
                    #expect(try String(decoding: readFile(dir + "/recovery.jsonl"), as: UTF8.self).contains("\"offset\":\(lastStart),\"bytes\":\(cut - lastStart)"))
                } else {
                    #expect(writer.recoveryReport.truncation == nil)
                }
                try writer.close()
                #expect(try readFile(path).count == lastStart)
                #expect(try readAll(directory: dir).map(\.payload) == entries(0..<9, bytes: 20).map(\.payload), "cut at \(cut)")
            }
        }
    }

    @Test func randomJunkTailIsCutToTheLastWholeBlock() throws {
        try withTemporaryDirectory { dir in
            try build(dir, appends: 12, config: LogConfiguration(segmentBytesMax: 600))
            let segments = try segmentFiles(dir)
            #expect(segments.count >= 2)
            let lastName = try #require(segments.last)
            let path = dir + "/" + lastName
            let original = try readFile(path)
            let offsets = blockOffsets(original)
            let firstBase = try #require(UInt64(lastName.prefix(20)))
            for round in 0..<12 {
                let seed = UInt64(0xC0FFEE + round)
                var rng = SplitMix64(seed: seed)
                let junkAt = Int(rng.next() % UInt64(original.count))
                let junkBytes = 1 + Int(rng.next() % 300)
                var damaged = Array(original[0..<junkAt])
                for _ in 0..<junkBytes { damaged.append(UInt8(truncatingIfNeeded: rng.next())) }
                try writeFile(path, damaged)
                // Blocks that end at or before the junk offset survive.
                var keptEnd = 0
                var keptBlocks = 0
                for i in offsets.indices {
                    let end = i + 1 < offsets.count ? offsets[i + 1] : original.count
                    if end <= junkAt { keptEnd = end; keptBlocks += 1 } else { break }
                }
                let expectedLast = firstBase - 1 + UInt64(keptBlocks * 3)
                try setWatermark(dir, expectedLast)
                let writer = try LogWriter(directory: dir)
                #expect(writer.lastPosition == expectedLast, "seed \(seed): junk at \(junkAt)")
                #expect(writer.recoveryReport.truncation?.offset == UInt64(keptEnd), "seed \(seed)")
                try writer.close()
                #expect(try readFile(path) == Array(original[0..<keptEnd]), "seed \(seed)")
                let records = try readAll(directory: dir)
                #expect(records.map(\.position) == Array((0..<expectedLast).map { $0 + 1 }), "seed \(seed)")
                #expect(records.map(\.payload) == entries(0..<Int(expectedLast), bytes: 20).map(\.payload), "seed \(seed)")
                try writeFile(path, original)
            }
        }
    }

    @Test func flippedBitInAClosedSegmentIsRefused() throws {
        try withTemporaryDirectory { dir in
            try build(dir, appends: 12, config: LogConfiguration(segmentBytesMax: 600))
            let segments = try segmentFiles(dir)
            #expect(segments.count >= 3)
            let name = segments[1]
            let path = dir + "/" + name
            var bytes = try readFile(path)
            let offsets = blockOffsets(bytes)
            let target = offsets[1]
            bytes[target + 70] ^= 0x10
            try writeFile(path, bytes)
            let base = try #require(UInt64(name.prefix(20)))
            do {
                _ = try LogWriter(directory: dir)
                Issue.record("a damaged closed segment must be refused")
            } catch let error as LogError {
                guard case let .corruptBlock(_, segment, offset, position, _) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(segment == name)
                #expect(offset == UInt64(target))
                #expect(position == base + 3)
                #expect(error.description.contains(name))
                #expect(error.description.contains("byte offset \(target)"))
                #expect(error.description.contains("position \(base + 3)"))
            }
            // A reader refuses the damaged block too, naming the same place.
            let reader = try LogReader(directory: dir)
            #expect(throws: LogError.self) { try readAll(reader) }
            #expect(try readAll(reader, from: base + 6).first?.position == base + 6)
        }
    }

    @Test func flippedBitInAMiddleBlockOfTheLastSegmentIsRefused() throws {
        try withTemporaryDirectory { dir in
            try build(dir, appends: 6)
            let path = dir + "/00000000000000000001.log"
            var bytes = try readFile(path)
            let offsets = blockOffsets(bytes)
            bytes[offsets[2] + 66] ^= 0x01
            try writeFile(path, bytes)
            #expect {
                _ = try LogWriter(directory: dir)
            } throws: { error in
                guard case let .corruptBlock(_, segment, offset, position, reason) = error as? LogError else { return false }
                return segment == "00000000000000000001.log" && offset == UInt64(offsets[2]) && position == 7 && reason.contains("valid block follows")
            }
            // The file was not truncated.
            #expect(try readFile(path).count == bytes.count)
        }
    }

    @Test func missingSegmentIsAGap() throws {
        try withTemporaryDirectory { dir in
            try build(dir, appends: 12, config: LogConfiguration(segmentBytesMax: 600))
            let segments = try segmentFiles(dir)
            try FileManager.default.removeItem(atPath: dir + "/" + segments[1])
            #expect {
                _ = try LogWriter(directory: dir)
            } throws: { error in
                guard case let .segmentGap(_, segment, _, _) = error as? LogError else { return false }
                return segment == segments[2]
            }
        }
    }

    @Test func secondWriterIsRefused() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir)
            try writer.append(LogEntry(ts: 1, payload: [1]))
            #expect(throws: LogError.writerLocked(lockFile: dir + "/LOCK")) {
                _ = try LogWriter(directory: dir, configuration: LogConfiguration(lockWaitMilliseconds: 50))
            }
            try writer.close()
            let next = try LogWriter(directory: dir)
            #expect(next.lastPosition == 1)
            try next.close()
        }
    }

    /// A lock held for a moment (as by a child process between fork and exec) is waited for.
    @Test func aBrieflyHeldLockIsWaitedFor() throws {
        try withTemporaryDirectory { dir in
            let holder = try PosixFileSystem().lockExclusive(dir + "/LOCK")
            let release = Thread { usleep(100_000); holder.unlock() }
            release.start()
            let writer = try LogWriter(directory: dir, configuration: LogConfiguration(lockWaitMilliseconds: 5000))
            try writer.append(LogEntry(ts: 1, payload: [1]))
            #expect(writer.lastPosition == 1)
            try writer.close()
        }
    }
}
