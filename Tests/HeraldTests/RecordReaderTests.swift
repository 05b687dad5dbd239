import Foundation
@testable import Herald
import HeraldCore
import HeraldLog
import Testing

/// `RecordReader.forEach` reads the blocks after the first one ahead on a background thread:
/// the records, their order and the errors must be those of a plain block-by-block read.
struct RecordReaderTests {
    static let app = HeraldID(high: 0xb000_0000_0000_4000, low: 0x8000_0000_0000_0001)

    static func record(_ n: Int) -> Record {
        Record(ts: 1_700_000_000_000 + Int64(n), body: .kv(KVMutation(
            op: .insert, appID: app, collection: "users:\(n % 7)", key: "k\(n)",
            value: "{\"n\":\(n),\"name\":\"a value long enough not to be a small string\"}")))
    }

    /// 40 blocks of 50 records over several closed segments.
    static func build(_ logPath: String) throws {
        let writer = RecordWriter(writer: try LogWriter(directory: logPath, configuration: LogConfiguration(segmentBytesMax: 8 << 10, durability: .none)))
        for batch in 0..<40 { try writer.append((0..<50).map { record(batch * 50 + $0 + 1) }) }
        try writer.close()
    }

    @Test func readsEveryRecordInOrder() async throws {
        try await withTemporaryDirectory { path in
            let data = DataDirectory(path: path)
            try Self.build(data.logPath)
            let reader = try data.openReader()
            #expect(try reader.lastPosition == 2000)
            for (from, through) in [(UInt64(1), UInt64?.none), (1, 1), (37, 37), (49, 51), (120, 1999), (1990, nil)] {
                var seen: [UInt64] = []
                try reader.forEach(from: from, through: through) { position, record in
                    #expect(record == Self.record(Int(position)))
                    seen.append(position)
                    return true
                }
                #expect(seen == Array(from...(through ?? 2000)))
            }
        }
    }

    /// Blocks of KV records with small strings (built inline) and blocks that also hold a long
    /// key, a long collection or another record type read back the same records.
    @Test func mixedBlocksReadBackTheSameRecords() async throws {
        try await withTemporaryDirectory { path in
            let data = DataDirectory(path: path)
            let writer = RecordWriter(writer: try LogWriter(directory: data.logPath, configuration: LogConfiguration(segmentBytesMax: 8 << 10, durability: .none)))
            var written: [Record] = []
            for batch in 0..<30 {
                let records = (0..<50).map { i -> Record in
                    let n = batch * 50 + i + 1
                    let ts = 1_700_000_000_000 + Int64(n)
                    switch (batch % 4, i % 10) {
                    case (1, 3):
                        return Record(ts: ts, body: .kv(KVMutation(op: .update, appID: Self.app, collection: "users:1",
                                                                   key: "a key longer than fifteen bytes \(n)", value: "[\(n)]")))
                    case (2, 7):
                        return Record(ts: ts, body: .kv(KVMutation(op: .delete, appID: Self.app,
                                                                   collection: "a collection name past 15 bytes", key: "k\(n)", value: nil)))
                    case (3, 0):
                        return Record(ts: ts, body: .appCreated(appID: HeraldID(high: UInt64(n), low: 1), name: "app \(n)"))
                    default:
                        return Self.record(n)
                    }
                }
                written += records
                try writer.append(records)
            }
            try writer.close()
            var read: [Record] = []
            try data.openReader().forEach { _, record in
                read.append(record)
                return true
            }
            #expect(read.count == written.count)
            #expect(read == written)
        }
    }

    /// Values read from the log share their block's buffer; the read-ahead reuses its buffers,
    /// so values kept past their block must keep their bytes (the buffer is copied, not
    /// overwritten), and `compacted()` gives the same record holding only its own bytes.
    @Test func keptValuesSurviveTheBuffersBeingReused() async throws {
        try await withTemporaryDirectory { path in
            let data = DataDirectory(path: path)
            try Self.build(data.logPath)
            var kept: [Record] = []
            try data.openReader().forEach { _, record in
                kept.append(record)
                return true
            }
            #expect(kept.count == 2000)
            #expect(kept == (1...2000).map(Self.record))
            guard case .kv(let mutation) = kept[1500].body, let value = mutation.value else {
                Issue.record("not a kv record")
                return
            }
            #expect(!value.isCompact, "a value read from the log shares its block")
            let compact = kept[1500].compacted()
            #expect(compact == kept[1500])
            if case .kv(let m) = compact.body { #expect(m.value?.isCompact == true) }
        }
    }

    @Test func stopsEarly() async throws {
        try await withTemporaryDirectory { path in
            let data = DataDirectory(path: path)
            try Self.build(data.logPath)
            let reader = try data.openReader()
            for stop: UInt64 in [1, 50, 51, 249, 1500] {
                var seen: UInt64 = 0
                try reader.forEach { position, _ in
                    seen = position
                    return position < stop
                }
                #expect(seen == stop)
            }
            struct Boom: Error, Equatable {}
            #expect(throws: Boom()) {
                try reader.forEach { position, _ in
                    if position == 777 { throw Boom() }
                    return true
                }
            }
        }
    }

    /// A payload that does not decode, in a block read ahead: the records before it first,
    /// then the same error a serial read raises.
    @Test func undecodableRecordAfterTheRecordsBeforeIt() async throws {
        try await withTemporaryDirectory { path in
            let data = DataDirectory(path: path)
            let log = try LogWriter(directory: data.logPath, configuration: LogConfiguration(durability: .none))
            for batch in 0..<6 {
                let entries = (0..<50).map { index -> LogEntry in
                    let n = batch * 50 + index + 1
                    // Record 230 (in the fifth block) has a trailing byte.
                    let payload = RecordBinaryCodec.encode(Self.record(n).body) + (n == 230 ? [0] : [])
                    return LogEntry(ts: Self.record(n).ts, payload: payload)
                }
                try log.append(entries)
            }
            try log.close()
            let reader = try data.openReader()
            var seen: [UInt64] = []
            do {
                try reader.forEach { position, record in
                    #expect(record == Self.record(Int(position)))
                    seen.append(position)
                    return true
                }
                Issue.record("record 230 must not decode")
            } catch let HeraldError.badLogRecord(position, reason) {
                #expect(position == 230)
                #expect(reason.contains("trailing"))
            }
            #expect(seen == Array(1...229))
        }
    }

    /// Invalid UTF-8 inside a KV value in a block the read-ahead thread checked: the check
    /// must fail that block, so its decode still checks UTF-8 and names the record.
    @Test func invalidUTF8InAValueReadAheadIsRefused() async throws {
        try await withTemporaryDirectory { path in
            let data = DataDirectory(path: path)
            let log = try LogWriter(directory: data.logPath, configuration: LogConfiguration(durability: .none))
            let app = HeraldID(high: 1, low: 2)
            func kv(_ n: Int, value: String) -> [UInt8] {
                RecordBinaryCodec.encode(.kv(KVMutation(op: .insert, appID: app, collection: "c", key: "k\(n)", value: JSONText(value))))
            }
            for batch in 0..<6 {
                let entries = (0..<50).map { index -> LogEntry in
                    let n = batch * 50 + index + 1
                    var payload = kv(n, value: #"{"name":"\#u{E9}t\#u{E9}"}"#)
                    // Record 260 (in the sixth block): the second byte of "é" (0xA9) becomes
                    // 0x28, which leaves a lead byte without its continuation.
                    if n == 260, let at = payload.lastIndex(of: 0xA9) { payload[at] = 0x28 }
                    return LogEntry(ts: Int64(n), payload: payload)
                }
                try log.append(entries)
            }
            try log.close()
            var seen = 0
            do {
                try data.openReader().forEach { _, record in
                    guard case .kv(let mutation) = record.body else { return false }
                    #expect(mutation.value?.description == #"{"name":"\#u{E9}t\#u{E9}"}"#)
                    seen += 1
                    return true
                }
                Issue.record("record 260 must not decode")
            } catch let HeraldError.badLogRecord(position, reason) {
                #expect(position == 260)
                #expect(reason.contains("invalid UTF-8"), "\(reason)")
            }
            #expect(seen == 259)
        }
    }

    @Test func corruptBlockAfterTheRecordsBeforeIt() async throws {
        try await withTemporaryDirectory { path in
            let data = DataDirectory(path: path)
            try Self.build(data.logPath)
            let segments = try FileManager.default.contentsOfDirectory(atPath: data.logPath).filter { $0.hasSuffix(".log") }.sorted()
            #expect(segments.count >= 3)
            let file = data.logPath + "/" + segments[1]
            var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))
            // The second block of the segment: past the first block's header and body.
            let firstBody = Int(bytes[32]) | Int(bytes[33]) << 8 | Int(bytes[34]) << 16 | Int(bytes[35]) << 24
            let target = 64 + firstBody
            bytes[target + 70] ^= 0x10
            try Data(bytes).write(to: URL(fileURLWithPath: file))
            let base = try #require(UInt64(segments[1].prefix(20)))
            let expected = LogError.corruptBlock(directory: data.logPath, segment: segments[1], offset: UInt64(target),
                                                 position: base + 50, reason: "block checksum mismatch")
            let reader = try data.openReader()
            var seen: [UInt64] = []
            #expect(throws: expected) {
                try reader.forEach { position, _ in
                    seen.append(position)
                    return true
                }
            }
            #expect(seen == Array(1..<(base + 50)))
            // A range that ends before the damaged block never reaches it.
            seen = []
            try reader.forEach(through: base + 49) { position, _ in
                seen.append(position)
                return true
            }
            #expect(seen.last == base + 49)
        }
    }
}
