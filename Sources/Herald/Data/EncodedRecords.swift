import HeraldCore
import HeraldLog

/// Validated records in their binary encoding, in log-sized batches: what an import holds
/// until it knows every line is valid (a few hundred bytes a record, not whole `Record`s).
public struct EncodedRecords: Sendable {
    /// Records per batch (one group commit each).
    public let batchRecords: Int
    private(set) var batches: [LogBatch] = []
    /// Records held.
    public private(set) var count = 0

    public init(batchRecords: Int = 4096) {
        self.batchRecords = max(1, batchRecords)
    }

    /// Encodes and keeps one record.
    public mutating func append(_ record: Record) {
        if batches.last.map({ $0.count >= batchRecords }) ?? true {
            batches.append(LogBatch(records: batchRecords, bytes: batchRecords * 256))
        }
        batches[batches.count - 1].append(ts: record.ts) { RecordBinaryCodec.encode(record.body, into: &$0) }
        count += 1
    }

    /// Forgets the records held (they were handed on); ``count`` keeps counting them.
    public mutating func release() {
        batches.removeAll()
    }

    /// The batch being filled (the last one).
    var lastBatch: LogBatch? { batches.last }

    /// Calls `body` with each record held (not those released), decoded, in order.
    public func forEachDecoded(_ body: (Record) throws -> Void) throws {
        for batch in batches {
            var start = 0
            try batch.bytes.withUnsafeBytes { bytes in
                for (index, end) in batch.ends.enumerated() {
                    try body(try RecordBinaryCodec.decodeRecord(ts: batch.timestamps[index],
                                                                UnsafeRawBufferPointer(rebasing: bytes[start..<end])))
                    start = end
                }
            }
        }
    }
}
