import Foundation
import Testing
@testable import HeraldLog

/// `LogWriter.append(LogBatch)`: same contract and same bytes as `append([LogEntry])`.
@Suite struct BatchTests {
    func batch(_ list: [LogEntry]) -> LogBatch {
        var batch = LogBatch(records: list.count, bytes: 64)
        for entry in list { batch.append(ts: entry.ts, payload: entry.payload) }
        return batch
    }

    @Test func batchAppendWritesTheSameLogAsEntries() throws {
        // Small blocks so batches span blocks and segments; mixes both APIs and an empty payload.
        let config = LogConfiguration(segmentBytesMax: 4_096, blockRawBytesMax: 700)
        var all = entries(0..<300, bytes: 90)
        all[17].payload = []
        try withTemporaryDirectory { viaEntries in
            try withTemporaryDirectory { viaBatches in
                let a = try LogWriter(directory: viaEntries, configuration: config)
                let b = try LogWriter(directory: viaBatches, configuration: config)
                var start = 0
                for (n, size) in [1, 2, 50, 7, 100, 140].enumerated() {
                    let slice = Array(all[start..<(start + size)])
                    let ra = try a.append(slice)
                    let rb = n % 3 == 1 ? try b.append(slice) : try b.append(batch(slice))
                    #expect(ra == rb)
                    start += size
                }
                try closeAndExpectSameLog(a, b, holding: all)
            }
        }
    }

    @Test func batchIsValidatedBeforeAnythingIsAppended() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir, configuration: LogConfiguration(payloadBytesMax: 10))
            try writer.append(batch([LogEntry(ts: 5, payload: [1])]))
            #expect(throws: LogError.self) { try writer.append(batch([LogEntry(ts: -1, payload: [1])])) }
            #expect(throws: LogError.self) { try writer.append(batch([LogEntry(ts: 6, payload: [1]), LogEntry(ts: 5, payload: [2])])) }
            #expect(throws: LogError.self) { try writer.append(batch([LogEntry(ts: 4, payload: [1])])) }
            #expect(throws: LogError.self) { try writer.append(batch([LogEntry(ts: 6, payload: [UInt8](repeating: 0, count: 11))])) }
            #expect(try writer.append(LogBatch()) == 2..<2)
            #expect(writer.lastPosition == 1)
            #expect(try writer.append(batch([LogEntry(ts: 5, payload: [9]), LogEntry(ts: 7, payload: [])])) == 2..<4)
            try writer.close()
            #expect(try readAll(directory: dir).map(\.payload) == [[1], [9], []])
        }
    }

    @Test func encoderClosureAppendsInPlace() {
        var batch = LogBatch()
        batch.append(ts: 1) { $0.append(contentsOf: [1, 2, 3]) }
        batch.append(ts: 1) { _ in }
        batch.append(ts: 2) { $0 += [4] }
        #expect(batch.count == 3)
        #expect(batch.bytes == [1, 2, 3, 4])
        #expect(batch.ends == [3, 3, 4])
        #expect(batch.timestamps == [1, 1, 2])
    }
}

@Suite struct LZ4InPlaceTests {
    /// With spare room past the expected size the frame must still decode to exactly that size.
    @Test func decodeChecksTheExpectedSizeWithSpareRoom() throws {
        let raw = payload(3, bytes: 5_000)
        var frame = [UInt8](repeating: 0, count: LZ4Codec.bound(rawBytes: raw.count, level: 0))
        let size = try #require(raw.withUnsafeBytes { src in frame.withUnsafeMutableBytes { LZ4Codec.compress(src, into: $0, level: 0) } })
        frame = Array(frame[0..<size])
        let decompressor = LZ4Decompressor()
        var out = [UInt8](repeating: 0, count: LZ4Decompressor.directDecodeCapacity + 64)
        for expected in [raw.count - 1, raw.count + 1, 0] {
            let problem = frame.withUnsafeBytes { src in out.withUnsafeMutableBytes { decompressor.decompress(src, into: $0, expected: expected) } }
            #expect(problem != nil, "expected \(expected)")
        }
        let problem = frame.withUnsafeBytes { src in out.withUnsafeMutableBytes { decompressor.decompress(src, into: $0, expected: raw.count) } }
        #expect(problem == nil)
        #expect(Array(out[0..<raw.count]) == raw)
        // Truncated frames and trailing bytes are still refused.
        for bad in [Array(frame.dropLast()), frame + [0]] {
            let problem = bad.withUnsafeBytes { src in out.withUnsafeMutableBytes { decompressor.decompress(src, into: $0, expected: raw.count) } }
            #expect(problem != nil)
        }
    }
}
