import HeraldCore
import HeraldLog
import Synchronization

/// Appends records to the log in their binary encoding (the log itself stores opaque payloads).
public final class RecordWriter: Sendable {
    let writer: LogWriter
    /// A batch buffer kept between appends (its pages stay mapped: no fresh ~1 MiB per call).
    private let spare = Mutex<LogBatch?>(nil)

    init(writer: LogWriter) {
        self.writer = writer
    }

    /// The last appended position (0 for an empty log).
    public var lastPosition: UInt64 { writer.lastPosition }

    /// The largest record encoding (payload) the log takes, in bytes.
    public var recordBytesMax: Int { writer.configuration.payloadBytesMax }

    /// What recovery found when the log was opened (a torn tail cut, indexes rebuilt).
    public var recovery: RecoveryReport { writer.recoveryReport }

    /// A reader that follows this writer's acknowledged position live.
    public func makeReader() -> RecordReader {
        RecordReader(reader: writer.makeReader())
    }

    /// Appends records (already validated) as one group-committed batch; returns their positions.
    @discardableResult
    public func append(_ records: [Record]) throws -> ClosedRange<UInt64> {
        precondition(!records.isEmpty, "append needs at least one record")
        // One buffer for the whole batch (no array per record); the writer frames the payloads
        // from it straight into its block buffer.
        var batch = spare.withLock { $0.take() } ?? LogBatch(records: records.count, bytes: records.count * 256)
        batch.removeAll(keepingCapacity: true)
        for record in records {
            batch.append(ts: record.ts) { RecordBinaryCodec.encode(record.body, into: &$0) }
        }
        let range = try writer.append(batch)
        // Reuse the buffers next time (if the writer still shares them, the next mutation simply
        // copies); an unusually large batch is not kept.
        if batch.bytes.capacity <= 8 << 20 {
            batch.removeAll(keepingCapacity: true)
            let kept = batch
            spare.withLock { $0 = kept }
        }
        return range.lowerBound...(range.upperBound - 1)
    }

    /// Queues records and returns their positions at once; they are not acknowledged until
    /// ``waitUntilDurable(through:)`` returns. Lets the engine fix the order under its own
    /// lock and wait for the sync outside it, so commands and outcomes share group commits.
    ///
    /// `helping`: a large batch queued while the writer is behind is compressed on the calling
    /// thread (``HeraldLog/LogWriter/enqueue(_:helping:)``), so a bulk producer lends the
    /// writer its core. Pass false when calling under a lock that others wait for.
    public func enqueue(_ records: [Record], helping: Bool = true) throws -> ClosedRange<UInt64> {
        precondition(!records.isEmpty, "enqueue needs at least one record")
        var batch = LogBatch(records: records.count, bytes: records.count * 256)
        for record in records {
            batch.append(ts: record.ts) { RecordBinaryCodec.encode(record.body, into: &$0) }
        }
        let range = try writer.enqueue(batch, helping: helping)
        return range.lowerBound...(range.upperBound - 1)
    }

    /// Waits until `position` is written and synced per the durability policy.
    public func waitUntilDurable(through position: UInt64) throws {
        try writer.waitUntilAcknowledged(through: position)
    }

    /// The last acknowledged (durable per policy) position.
    public var durablePosition: UInt64 { writer.lastPosition }

    /// Releases the log (and its lock).
    public func close() throws {
        try writer.close()
    }
}

/// Reads records back from the log, decoding each payload.
public final class RecordReader: Sendable {
    let reader: LogReader

    init(reader: LogReader) {
        self.reader = reader
    }

    /// The last published position (0 for an empty log); looks for new blocks first.
    ///
    /// - Throws: what `LogReader.refresh()` throws (damage found at the end of the log).
    public var lastPosition: UInt64 {
        get throws { try reader.refresh() }
    }

    /// Damage at the end of the log that this reader stops before, when no writer is at work
    /// (see `LogReader.tailDamage`).
    public var tailDamage: TailDamage? { reader.tailDamage }

    private struct Stop: Error {}

    @inline(__always)
    private static func decode(position: UInt64, ts: Int64, _ payload: UnsafeRawBufferPointer, checked: Bool,
                               sharing buffer: [UInt8], at offset: Int) throws -> Record {
        do throws(RecordError) {
            return try RecordBinaryCodec.decodeRecord(ts: ts, payload, checked: checked, sharing: buffer, at: offset)
        } catch {
            throw HeraldError.badLogRecord(position: position, reason: error.description)
        }
    }

    /// True when every payload of `block` decodes (run on the read-ahead thread).
    @Sendable
    private static func payloadsValid(_ block: LogBlock) -> Bool {
        var valid = true
        block.forEachRecord { _, _, payload in
            if valid && !RecordBinaryCodec.isValid(payload) { valid = false }
        }
        return valid
    }

    /// Calls `body` for each record from `from` through `through` (inclusive; `nil` = the end
    /// as of the call). Stops early when `body` returns false. Seeks by the block index.
    ///
    /// A KV value in a record shares the decompressed block it was read from (no copy, see
    /// ``HeraldCore/JSONText``): keep ``HeraldCore/Record/compacted()`` copies of records
    /// kept for long, or each keeps its whole block (about 1 MiB) alive.
    ///
    /// When the range goes past the first block, the following blocks are read, checked and
    /// decompressed a few blocks ahead on a background thread (``LogCursor/forEachBlock(through:readAhead:_:)``)
    /// while `body` runs on the calling thread; records and errors arrive in the same order.
    public func forEach(from: UInt64 = 1, through: UInt64? = nil,
                        _ body: (UInt64, Record) throws -> Bool) throws {
        let last = min(through ?? .max, try lastPosition)
        let first = max(from, 1)
        guard first <= last else { return }
        let cursor = try reader.makeCursor(from: first)
        /// Delivers one block's records; false once the range (or `body`) is done. `checked`:
        /// every payload of the block passed `RecordBinaryCodec.isValid`.
        func deliver(_ block: LogBlock, checked: Bool) throws -> Bool {
            if block.basePosition > last { return false }
            let buffer = block.buffer
            try block.forEachRecordAndOffset { position, ts, payload, offset in
                guard position >= first else { return }
                guard position <= last else { throw Stop() }
                // Decoded straight into the argument (no extra move); a KV value shares the
                // block's buffer.
                if try !body(position, try Self.decode(position: position, ts: ts, payload, checked: checked, sharing: buffer, at: offset)) { throw Stop() }
            }
            return block.endPosition <= last
        }
        do {
            // One block on this thread (a short read starts no thread), the rest read ahead;
            // the read-ahead thread also checks every payload, so the decoding here skips
            // the UTF-8 checks of the blocks that passed.
            guard let head = try cursor.nextBlock(), try deliver(head, checked: false) else { return }
            try cursor.forEachBlock(through: last, readAhead: 2, check: Self.payloadsValid, deliver)
        } catch is Stop {
            return
        }
    }
}

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

extension RecordWriter {
    /// Appends records framed and compressed ahead (``PreparedBlocks``) and returns their
    /// positions (`nil` when there are none) once acknowledged.
    public func append(_ prepared: PreparedBlocks) throws -> ClosedRange<UInt64>? {
        guard !prepared.isEmpty else { return nil }
        let range = try writer.enqueue(prepared)
        try writer.waitUntilAcknowledged(through: range.upperBound - 1)
        return range.lowerBound...(range.upperBound - 1)
    }
}
