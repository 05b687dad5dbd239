import Foundation
import Testing
@testable import HeraldLog

@Suite struct FormatTests {
    @Test func crc32cVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        // Slicing-by-8 agrees with the bitwise definition at every length and alignment.
        var rng = SplitMix64(seed: 7)
        let data = (0..<300).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        for start in 0..<9 {
            for length in stride(from: 0, to: 280, by: 13) {
                let slice = Array(data[start..<(start + length)])
                var crc: UInt32 = 0xFFFF_FFFF
                for byte in slice {
                    crc ^= UInt32(byte)
                    for _ in 0..<8 { crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
                }
                #expect(CRC32C.checksum(slice) == crc ^ 0xFFFF_FFFF, "start \(start) length \(length)")
                // The table fallback agrees too (whichever one `checksum` dispatched to).
                let software = slice.withUnsafeBytes { CRC32C.finish(CRC32C.softwareUpdate(CRC32C.start, $0)) }
                #expect(software == crc ^ 0xFFFF_FFFF, "software, start \(start) length \(length)")
            }
        }
        // Running state across split inputs equals one pass (both implementations).
        data.withUnsafeBytes { raw in
            let whole = CRC32C.update(CRC32C.start, raw)
            for cut in [0, 1, 7, 8, 31, 32, 33, 150, 300] {
                let a = UnsafeRawBufferPointer(rebasing: raw[0..<cut])
                let b = UnsafeRawBufferPointer(rebasing: raw[cut...])
                #expect(CRC32C.update(CRC32C.update(CRC32C.start, a), b) == whole)
                #expect(CRC32C.softwareUpdate(CRC32C.softwareUpdate(CRC32C.start, a), b) == whole)
            }
        }
    }

    @Test func varintsRejectHostileBytes() {
        let overlong: [UInt8] = Array(repeating: 0xFF, count: 11)
        overlong.withUnsafeBytes { raw in
            var offset = 0
            #expect(RecordFraming.readVarint(raw, &offset) == nil)
        }
        var out: [UInt8] = []
        RecordFraming.appendVarint(UInt64.max, to: &out)
        out.withUnsafeBytes { raw in
            var offset = 0
            #expect(RecordFraming.readVarint(raw, &offset) == UInt64.max)
            #expect(offset == 10)
        }
    }

    @Test func appendAndReadBack() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir)
            #expect(try writer.append(entries(0..<10)) == 1..<11)
            #expect(try writer.append(LogEntry(ts: 100, payload: [])) == 11)
            #expect(try writer.append([]) == 12..<12)
            try writer.close()
            let records = try readAll(directory: dir)
            #expect(records.count == 11)
            #expect(records.map(\.position) == Array(1...11))
            #expect(records[3].payload == payload(3))
            #expect(records[10].payload == [])
            #expect(records[10].ts == 100)
            // Reading from the middle trims the first block.
            let reader = try LogReader(directory: dir)
            #expect(try readAll(reader, from: 5).map(\.position) == Array(5...11))
            #expect(try readAll(reader, from: 12).isEmpty)
            // The writer reopens and continues the sequence.
            let again = try LogWriter(directory: dir)
            #expect(again.recoveryReport.lastPosition == 11)
            #expect(again.recoveryReport.truncation == nil)
            #expect(try again.append(LogEntry(ts: 100, payload: [1])) == 12)
            try again.close()
        }
    }

    @Test func timestampsNeverDecrease() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir)
            try writer.append(LogEntry(ts: 10, payload: [1]))
            #expect(throws: LogError.timestampDecreased(ts: 9, previousTs: 10, index: 0)) { try writer.append(LogEntry(ts: 9, payload: [2])) }
            #expect(throws: LogError.timestampDecreased(ts: 11, previousTs: 12, index: 1)) {
                try writer.append([LogEntry(ts: 12, payload: []), LogEntry(ts: 11, payload: [])])
            }
            #expect(throws: LogError.negativeTimestamp(ts: -1, index: 0)) { try writer.append(LogEntry(ts: -1, payload: [])) }
            // Rejected appends append nothing; equal timestamps are fine.
            #expect(try writer.append(LogEntry(ts: 10, payload: [3])) == 2)
            try writer.close()
            let reopened = try LogWriter(directory: dir)
            #expect(throws: LogError.timestampDecreased(ts: 5, previousTs: 10, index: 0)) { try reopened.append(LogEntry(ts: 5, payload: [])) }
            try reopened.close()
        }
    }

    @Test func segmentsRollAtTheSizeLimit() throws {
        try withTemporaryDirectory { dir in
            let config = LogConfiguration(segmentBytesMax: 2_000, blockRawBytesMax: 600)
            let writer = try LogWriter(directory: dir, configuration: config)
            for i in 0..<40 { try writer.append(entries((i * 10)..<(i * 10 + 10))) }
            try writer.close()
            let segments = try segmentFiles(dir)
            #expect(segments.count > 3)
            #expect(segments.first == "00000000000000000001.log")
            for name in segments {
                let bytes = try readFile(dir + "/" + name)
                let size = bytes.count
                let blocks = blockOffsets(bytes).count
                #expect(size <= 2_000 || blocks == 1, "\(name) is \(size) bytes")
            }
            // Names match the first position each segment holds.
            let reader = try LogReader(directory: dir)
            for name in segments.dropFirst() {
                let base = try #require(UInt64(name.prefix(20)))
                let first = try #require(try reader.makeCursor(from: base).nextBlock())
                #expect(first.basePosition == base)
            }
            #expect(try readAll(reader).map(\.payload) == entries(0..<400).map(\.payload))
            let stats = try reader.stats()
            #expect(stats.segments == segments.count)
            #expect(stats.records == 400)
            #expect(stats.firstPosition == 1 && stats.lastPosition == 400)
            #expect(stats.firstTs == 0 && stats.lastTs == 133)
            #expect(stats.blocks >= 40)
        }
    }

    @Test func bigAppendIsSplitIntoBoundedBlocksAndCompresses() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir, configuration: LogConfiguration(blockRawBytesMax: 64 << 10))
            let batch = entries(0..<4_096, bytes: 250)
            try writer.append(batch)
            try writer.close()
            let stats = try LogReader(directory: dir).stats()
            #expect(stats.records == 4_096)
            #expect(stats.blocks >= 16)
            #expect(stats.rawBytes <= UInt64(stats.blocks) * UInt64(64 << 10))
            let jsonBytes = batch.reduce(0) { $0 + $1.payload.count }
            #expect(Double(stats.storedBytes) <= 0.30 * Double(jsonBytes), "stored \(stats.storedBytes) of \(jsonBytes)")
        }
    }

    /// The level only changes how hard the writer compresses: every level reads back the same
    /// records, and a level outside −64…12 is refused before anything is written.
    @Test(arguments: [Int32(-64), -1, 0, 3, 12])
    func everyCompressionLevelReadsBackTheSameRecords(level: Int32) throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir, configuration: LogConfiguration(blockRawBytesMax: 16 << 10, compressionLevel: level))
            let batch = entries(0..<500, bytes: 200)
            try writer.append(batch)
            try writer.close()
            var read: [LogEntry] = []
            let reader = try LogReader(directory: dir)
            let cursor = try reader.makeCursor(from: 1)
            while let block = try cursor.nextBlock() {
                block.forEachRecord { _, ts, payload in read.append(LogEntry(ts: ts, payload: Array(payload))) }
            }
            #expect(read.map(\.payload) == batch.map(\.payload))
            #expect(read.map(\.ts) == batch.map(\.ts))
        }
        for bad in [Int32(-65), 13] {
            try withTemporaryDirectory { dir in
                #expect(throws: LogError.self) { try LogWriter(directory: dir, configuration: LogConfiguration(compressionLevel: bad)) }
                let segments = (try? FileManager.default.contentsOfDirectory(atPath: dir))?.filter { $0.hasSuffix(".log") }
                #expect(segments == [] || segments == nil)
            }
        }
    }

    @Test func indexIsRebuiltWhenMissingOrDamaged() throws {
        try withTemporaryDirectory { dir in
            let config = LogConfiguration(segmentBytesMax: 3_000, blockRawBytesMax: 500)
            let writer = try LogWriter(directory: dir, configuration: config)
            for i in 0..<30 { try writer.append(entries((i * 10)..<(i * 10 + 10))) }
            try writer.close()
            let first = dir + "/00000000000000000001.index"
            let original = try readFile(first)
            let second = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".index") }.sorted().dropFirst().first)
            try FileManager.default.removeItem(atPath: first)
            var damaged = try readFile(dir + "/" + second)
            damaged[40] ^= 0xFF
            try writeFile(dir + "/" + second, damaged)
            // Readers do not trust a bad index: they fall back to scanning headers.
            #expect(try readAll(LogReader(directory: dir), from: 57).count == 300 - 56)
            let reopened = try LogWriter(directory: dir, configuration: config)
            #expect(reopened.recoveryReport.rebuiltIndexes.sorted() == ["00000000000000000001.index", second].sorted())
            try reopened.close()
            #expect(try readFile(first) == original)
            // An up-to-date index is left alone.
            let clean = try LogWriter(directory: dir, configuration: config)
            #expect(clean.recoveryReport.rebuiltIndexes.isEmpty)
            try clean.close()
        }
    }

    @Test func lz4ToolDecodesASegment() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir, configuration: LogConfiguration(blockRawBytesMax: 2_000))
            let batch = entries(0..<300)
            try writer.append(batch)
            try writer.append(LogEntry(ts: 1_000, payload: Array("tail".utf8)))
            try writer.close()
            guard let (status, output) = try lz4Decode(dir + "/00000000000000000001.log") else { return }
            #expect(status == 0)
            // The decoded bytes are exactly the blocks' record bytes, in order.
            let stats = try LogReader(directory: dir).stats()
            #expect(UInt64(output.count) == stats.rawBytes)
            #expect(stats.blocks > 1)
            let text = String(decoding: output, as: UTF8.self)
            #expect(text.contains(String(decoding: batch[299].payload, as: UTF8.self)))
            #expect(text.hasSuffix("tail"))
        }
    }
}
