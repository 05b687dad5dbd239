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

extension RecordWriter {
    /// An empty set of blocks to frame and compress records into ahead of their append, with
    /// this log's block size and compression level (``append(_:)-(PreparedBlocks)``).
    public func makePreparedBlocks() -> PreparedBlocks {
        PreparedBlocks(configuration: writer.configuration)
    }

    /// Calls `listener` on the writer's thread each time the acknowledged (durable per policy)
    /// position advances.
    public func onAcknowledged(_ listener: @escaping @Sendable (UInt64) -> Void) {
        writer.setAcknowledgedListener(listener)
    }

    /// Appends records framed and compressed ahead (``PreparedBlocks``) and returns their
    /// positions (`nil` when there are none) once acknowledged.
    public func append(_ prepared: PreparedBlocks) throws -> ClosedRange<UInt64>? {
        guard !prepared.isEmpty else { return nil }
        let range = try writer.enqueue(prepared)
        try writer.waitUntilAcknowledged(through: range.upperBound - 1)
        return range.lowerBound...(range.upperBound - 1)
    }
}

extension RecordWriter: PreparedBlocksLog {}
