import HeraldCore
import HeraldLog

/// The segment log (`log/` of a data directory) as the engine's ``HeraldCore/RecordLog``: the
/// writer appends, a reader that follows the writer's acknowledged position reads.
public final class SegmentRecordLog: RecordLog {
    /// The log's writer (it holds the log's lock until ``close()``).
    public let writer: RecordWriter
    private let reader: RecordReader

    public init(writer: RecordWriter) {
        self.writer = writer
        reader = writer.makeReader()
    }

    /// What recovery did when the log was opened.
    public var recovery: RecoveryReport { writer.recovery }

    public var recordBytesMax: Int { writer.recordBytesMax }

    public var lastPosition: UInt64 {
        get throws { try reader.lastPosition }
    }

    public func forEach(from: UInt64, through: UInt64?, _ body: (UInt64, Record) throws -> Bool) throws {
        try reader.forEach(from: from, through: through, body)
    }

    public func compactedStart() throws -> CompactedState? {
        try reader.compactedStart()
    }

    /// Queued under the engine's lock: never compresses on the caller's thread.
    public func enqueue(_ records: [Record]) throws -> ClosedRange<UInt64> {
        try writer.enqueue(records, helping: false)
    }

    public var durablePosition: UInt64 { writer.durablePosition }

    public func waitUntilDurable(through position: UInt64) throws {
        try writer.waitUntilDurable(through: position)
    }

    public func onDurable(_ listener: @escaping @Sendable (UInt64) -> Void) {
        writer.onAcknowledged(listener)
    }

    public func close() throws {
        try writer.close()
    }
}

extension RecordReader: RecordSource {}
