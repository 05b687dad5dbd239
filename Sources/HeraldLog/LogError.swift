#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Every failure the segment log reports.
///
/// Each case names *where* (directory, segment file, byte offset, position) and *why*;
/// `description` is a whole sentence meant for a human operator.
public indirect enum LogError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A system call failed. `operation` is the call (e.g. `pwrite`), `path` the file,
    /// `offset` the byte offset when relevant, `errno` the raw error number.
    case io(operation: String, path: String, offset: UInt64?, errno: Int32)
    /// Another writer holds the exclusive lock file of the log directory.
    case writerLocked(lockFile: String)
    /// The writer failed closed after an earlier I/O error; nothing more can be appended.
    /// Reopen the log to recover. `cause` is the original error.
    case writerFailed(directory: String, cause: LogError)
    /// The writer was closed; appends are no longer accepted.
    case writerClosed(directory: String)
    /// An entry's timestamp is negative. `index` is the entry's index in the append call.
    case negativeTimestamp(ts: Int64, index: Int)
    /// An entry's timestamp is smaller than the previous entry's (timestamps never decrease).
    case timestampDecreased(ts: Int64, previousTs: Int64, index: Int)
    /// An entry's payload exceeds the configured maximum.
    case payloadTooLarge(bytes: Int, limitBytes: Int, index: Int)
    /// A block that must be valid is damaged: in a closed segment, in the middle of the last
    /// segment (a valid block follows it), or inside the published range read by a cursor.
    /// `position` is the position the block was expected to start at.
    case corruptBlock(directory: String, segment: String, offset: UInt64, position: UInt64, reason: String)
    /// Segment file names do not match the positions they hold (a missing or extra segment).
    case segmentGap(directory: String, segment: String, expectedPosition: UInt64, foundPosition: UInt64)
    /// The log ends before its durable watermark: positions `firstPosition...lastPosition`
    /// were acknowledged (synced) and are now damaged or missing. A writer refuses to open
    /// rather than cut them; `LogWriter(directory:configuration:fileSystem:acceptLoss:)`
    /// (`herald repair --accept-loss`) cuts them into quarantine on purpose.
    case acknowledgedDamaged(directory: String, segment: String, offset: UInt64, firstPosition: UInt64, lastPosition: UInt64, reason: String)
    /// The durable watermark file (`DURABLE`) exists but neither of its slots is valid.
    case damagedWatermark(path: String, reason: String)
    /// A cursor was asked for a position that cannot exist (positions start at 1).
    case invalidPosition(position: UInt64)
    /// A configuration value is out of range.
    case invalidConfiguration(reason: String)
    /// The snapshot file that starts a compacted log is damaged or does not fit the segments.
    case damagedSnapshot(path: String, reason: String)
    /// A read asked for a position before the log's first position: the records before it
    /// were compacted into the snapshot that starts the log (`herald compact`).
    case compacted(directory: String, position: UInt64, firstPosition: UInt64)
    /// A compaction that cannot be done as asked (the reason says why); nothing was changed.
    case invalidCompaction(directory: String, reason: String)

    /// A whole sentence describing the failure, where it happened and why.
    public var description: String {
        switch self {
        case let .io(operation, path, offset, code):
            let at = offset.map { " at byte offset \($0)" } ?? ""
            return "\(operation) failed on \(path)\(at): \(Self.errnoText(code)) (errno \(code))."
        case let .writerLocked(lockFile):
            return "Another writer holds the lock \(lockFile); only one writer may open a log directory at a time."
        case let .writerFailed(directory, cause):
            return "The writer of \(directory) failed closed after an I/O error and accepts no more appends; reopen the log to recover. Cause: \(cause.description)"
        case let .writerClosed(directory):
            return "The writer of \(directory) is closed and accepts no more appends."
        case let .negativeTimestamp(ts, index):
            return "Entry \(index) of the append has a negative timestamp \(ts); timestamps must be >= 0."
        case let .timestampDecreased(ts, previousTs, index):
            return "Entry \(index) of the append has timestamp \(ts), smaller than the previous timestamp \(previousTs); log timestamps never decrease."
        case let .payloadTooLarge(bytes, limitBytes, index):
            return "Entry \(index) of the append has a \(bytes)-byte payload, larger than the \(limitBytes)-byte limit."
        case let .corruptBlock(directory, segment, offset, position, reason):
            return "Segment \(segment) in \(directory) is corrupt at byte offset \(offset) (block expected to start at position \(position)): \(reason). The log refuses to truncate or skip it; restore the segment from a replica or backup."
        case let .segmentGap(directory, segment, expectedPosition, foundPosition):
            return "Segment \(segment) in \(directory) starts at position \(foundPosition) but position \(expectedPosition) was expected there; a segment is missing, extra or misnamed."
        case let .acknowledgedDamaged(directory, segment, offset, first, last, reason):
            let positions = first == last ? "Position \(first) was acknowledged and is" : "Positions \(first)…\(last) were acknowledged and are"
            return "\(positions) damaged: segment \(segment) in \(directory) ends at byte offset \(offset) (\(reason)). Restore the segment, or run `herald repair --accept-loss` to cut them (the bytes are quarantined)."
        case let .damagedWatermark(path, reason):
            return "The durable watermark \(path) is damaged: \(reason). It records which positions were acknowledged; restore it from a backup, or remove it to trust the segments as they are."
        case let .invalidPosition(position):
            return "Position \(position) is not a valid log position; positions start at 1."
        case let .invalidConfiguration(reason):
            return "Invalid log configuration: \(reason)."
        case let .damagedSnapshot(path, reason):
            return "The snapshot \(path) that starts the compacted log is damaged: \(reason). Restore it from a backup; without it the log cannot be read."
        case let .invalidCompaction(directory, reason):
            return "Cannot compact the log in \(directory): \(reason)."
        case let .compacted(directory, position, firstPosition):
            return "Position \(position) is before the first position \(firstPosition) of the log in \(directory): the records before \(firstPosition) were compacted into a snapshot."
        }
    }

    static func errnoText(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "unknown error" }
        return String(cString: text)
    }
}
