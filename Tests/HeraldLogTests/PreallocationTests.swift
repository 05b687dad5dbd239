import Foundation
import Testing
@testable import HeraldLog

/// The active segment is extended with zeros behind a filler frame (Schema/log-format.md,
/// "Preallocation"): it must stay readable by `lz4 -dc` and by recovery after any crash.
@Suite struct PreallocationTests {
    let segment = "/00000000000000000001.log"

    @Test func activeSegmentIsPreallocatedAndStillDecodesWithLZ4() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir)
            try writer.append(entries(0..<50))
            try writer.append(entries(50..<60))
            let stats = try writer.makeReader().stats()
            let size = try fileSize(dir + segment)
            #expect(size > stats.storedBytes && size >= 64 * 1024, "zeros are written ahead of the blocks")
            if let decoded = try lz4Decode(dir + segment) {
                #expect(decoded.status == 0, "lz4 -dc skips the filler of an open segment")
                #expect(UInt64(decoded.output.count) == stats.rawBytes)
            }
            try writer.close()
            #expect(try fileSize(dir + segment) == stats.storedBytes, "close cuts the preallocated end")
            #expect(try readAll(directory: dir).map(\.payload) == entries(0..<60).map(\.payload))
        }
    }

    @Test func crashWithPreallocatedSpaceReopensCleanly() throws {
        try withTemporaryDirectory { dir in
            do {
                let writer = try LogWriter(directory: dir)
                try writer.append(entries(0..<20))
                // No close: the process "dies" with the filler in place.
            }
            let reopened = try LogWriter(directory: dir)
            #expect(reopened.recoveryReport.truncation == nil)
            #expect(reopened.lastPosition == 20)
            try reopened.append(entries(20..<30))
            try reopened.close()
            #expect(try readAll(directory: dir).map(\.payload) == entries(0..<30).map(\.payload))
        }
    }

    /// A crash after a block was written over the old filler header but before the new one
    /// reached the disk leaves zeros (or a stale filler header) after the last block.
    @Test(arguments: ["zeros", "stale filler"])
    func lostFillerHeaderIsRestored(damage: String) throws {
        try withTemporaryDirectory { dir in
            let end: UInt64
            do {
                let writer = try LogWriter(directory: dir)
                try writer.append(entries(0..<20))
                end = try writer.makeReader().stats().storedBytes
            }
            var bytes = try readFile(dir + segment)
            let at = Int(end)
            if damage == "zeros" {
                for i in at..<(at + 8) { bytes[i] = 0 }
            } else {
                bytes[at + 4] ^= 0x01  // the filler's size no longer reaches the end of the file
            }
            try writeFile(dir + segment, bytes)
            let reopened = try LogWriter(directory: dir)
            #expect(reopened.recoveryReport.truncation == nil, "zeros after the last block are free space, not damage")
            #expect(reopened.lastPosition == 20)
            if let decoded = try lz4Decode(dir + segment) {
                #expect(decoded.status == 0, "the filler header is written again")
            }
            try reopened.append(entries(20..<25))
            try reopened.close()
            #expect(try readAll(directory: dir).map(\.payload) == entries(0..<25).map(\.payload))
        }
    }

    @Test func tornBlockInPreallocatedSpaceIsCut() throws {
        try withTemporaryDirectory { dir in
            let end: UInt64
            do {
                let writer = try LogWriter(directory: dir)
                try writer.append(entries(0..<10))
                end = try writer.makeReader().stats().storedBytes
                try writer.append(entries(10..<20))
            }
            // Keep half of the second block; the rest of the file stays zeros.
            var bytes = try readFile(dir + segment)
            let second = try #require(blockOffsets(Array(bytes[0..<Int(end)])).count == 1 ? Int(end) : nil)
            let compressed = Int(bytes[second + 32]) | Int(bytes[second + 33]) << 8
            for i in (second + 64 + compressed / 2)..<bytes.count { bytes[i] = 0 }
            try writeFile(dir + segment, bytes)
            try setWatermark(dir, 10)  // the second block was never synced
            let reopened = try LogWriter(directory: dir)
            let truncation = try #require(reopened.recoveryReport.truncation)
            #expect(truncation.offset == end)
            #expect(reopened.lastPosition == 10)
            try reopened.close()
            #expect(try readAll(directory: dir).map(\.payload) == entries(0..<10).map(\.payload))
        }
    }

    /// Zeros after the last block too long for one filler frame (a damaged or hand-extended
    /// file) are cut, never a trap. (The size is passed in: a real 4 GiB tail is too slow here.)
    @Test func zeroTailLongerThanAFillerIsCut() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir)
            try writer.append(entries(0..<10))
            try writer.close()
            let end = try fileSize(dir + segment)
            try writeFile(dir + segment, try readFile(dir + segment) + [UInt8](repeating: 0, count: 100))
            let file = try PosixFileSystem().open(dir + segment, mode: .readWrite)
            defer { file.close() }
            try Recovery.restoreFiller(file, at: end, size: end + SegmentFiller.maxBytes + 1)
            #expect(try fileSize(dir + segment) == end)
            try Recovery.restoreFiller(file, at: end, size: end + 4)
            #expect(try fileSize(dir + segment) == end)
            let reopened = try LogWriter(directory: dir)
            #expect(reopened.lastPosition == 10)
            try reopened.close()
        }
    }

    @Test func closedSegmentsHoldNoFiller() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir, configuration: LogConfiguration(segmentBytesMax: 600))
            for i in 0..<12 { try writer.append(entries((i * 5)..<(i * 5 + 5), bytes: 60)) }
            let names = try segmentFiles(dir)
            #expect(names.count >= 3)
            for name in names.dropLast() {
                let bytes = try readFile(dir + "/" + name)
                let offsets = blockOffsets(bytes)
                let last = try #require(offsets.last)
                let compressed = Int(bytes[last + 32]) | Int(bytes[last + 33]) << 8
                #expect(last + 64 + compressed == bytes.count, "\(name) ends with its last block")
            }
            try writer.close()
            #expect(try readAll(directory: dir).count == 60)
        }
    }

    @Test func aClosedSegmentEndingInAFillerIsRefused() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir, configuration: LogConfiguration(segmentBytesMax: 600))
            for i in 0..<12 { try writer.append(entries((i * 5)..<(i * 5 + 5), bytes: 60)) }
            try writer.close()
            let first = dir + "/" + (try #require(try segmentFiles(dir).first))
            var filler = [UInt8](repeating: 0, count: 16)
            filler.withUnsafeMutableBytes { SegmentFiller.encodeHeader(totalBytes: 16, into: $0) }
            try writeFile(first, try readFile(first) + filler)
            #expect {
                _ = try LogWriter(directory: dir)
            } throws: { error in
                guard case let LogError.corruptBlock(_, _, _, _, reason) = error else { return false }
                return reason.contains("closed segment continues after its last block")
            }
        }
    }

    @Test func preallocationCanBeTurnedOff() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir, configuration: LogConfiguration(preallocationBytesMax: 0))
            try writer.append(entries(0..<20))
            #expect(try fileSize(dir + segment) == (try writer.makeReader().stats().storedBytes))
            try writer.close()
        }
    }
}
