import HeraldCore
import HeraldLog

/// Appends records to the log in their binary encoding (the log itself stores opaque payloads).
public final class RecordWriter: Sendable {
    let writer: LogWriter

    init(writer: LogWriter) {
        self.writer = writer
    }

    /// The last appended position (0 for an empty log).
    public var lastPosition: UInt64 { writer.lastPosition }

    /// What recovery cut from a torn tail when the log was opened, if anything.
    public var recovery: RecoveryReport? { writer.recovery }

    /// Appends records (already validated) as one group-committed batch; returns their positions.
    @discardableResult
    public func append(_ records: [Record]) throws -> ClosedRange<UInt64> {
        var entries: [LogEntry] = []
        entries.reserveCapacity(records.count)
        for record in records {
            var payload: [UInt8] = []
            RecordBinaryCodec.encode(record.body, into: &payload)
            entries.append(LogEntry(ts: record.ts, payload: payload))
        }
        return try writer.append(entries)
    }
}

/// Reads records back from the log, decoding each payload.
public final class RecordReader: Sendable {
    let reader: LogReader

    init(reader: LogReader) {
        self.reader = reader
    }

    /// The last published position (0 for an empty log).
    public var lastPosition: UInt64 { reader.lastPosition }

    /// Calls `body` for each record from `from` through `through` (inclusive; `nil` = the end).
    /// Stops early when `body` returns false.
    public func forEach(from: UInt64 = 1, through: UInt64? = nil,
                        _ body: (UInt64, Record) throws -> Bool) throws {
        try reader.forEach(from: max(from, 1), to: through) { position, ts, payload in
            let decoded: RecordBody
            do {
                decoded = try RecordBinaryCodec.decode(payload)
            } catch {
                throw HeraldError.badLogRecord(position: position, reason: error.description)
            }
            return try body(position, Record(ts: ts, body: decoded))
        }
    }
}
