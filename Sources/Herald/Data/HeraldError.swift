import HeraldCore

/// Errors of the engine's shell: data directory, import, replay, projection runs.
public enum HeraldError: Error, Sendable, CustomStringConvertible {
    /// Some input lines are invalid; nothing was appended.
    case invalidInput(source: String, errors: [RecordError], more: Int)
    /// A record in the log fails to decode or to validate: the log was not written by a correct Herald.
    case badLogRecord(position: UInt64, reason: String)
    /// A position outside the log.
    case positionOutOfRange(position: UInt64, lastPosition: UInt64)
    /// The input could not be read.
    case unreadable(source: String, reason: String)
    /// A command that only reads was pointed at a data directory that does not exist.
    case missingDataDirectory(path: String)
    /// An id given to select by (`--app`, `--trigger`, `--script`) was never created as that
    /// kind: `found` is the kind it was created as, `nil` when it was never created at all.
    case unknownID(id: HeraldID, expected: String, found: String?)
    /// A command that works on segment files (`repair`, `stats`) was pointed at a log outside the data directory (`--log nats://…`).
    case externalLog(location: String)
    /// A read asked for a position before a compacted log's first position: the records
    /// before it were replaced by its snapshot (`herald compact`).
    case compacted(position: UInt64, firstPosition: UInt64)
    /// A command that needs the whole log from position 1 was run on a compacted log.
    case notOnCompactedLog(command: String, firstPosition: UInt64)
    /// A projection stopped before a compacted log's first position: the records it needs are gone.
    case projectionBehindCompaction(location: String, checkpoint: UInt64, firstPosition: UInt64)
    /// The snapshot that starts a compacted log does not decode (`offset` in its payload).
    case badSnapshot(position: UInt64, offset: Int, reason: String)

    public var description: String {
        switch self {
        case .invalidInput(let source, let errors, let more):
            var text = "\(source): \(errors.count + more) invalid line(s); nothing was appended:\n"
            text += errors.map { "  \($0)" }.joined(separator: "\n")
            if more > 0 { text += "\n  … and \(more) more" }
            return text
        case .badLogRecord(let position, let reason):
            return "The record at log position \(position) is invalid: \(reason)."
        case .positionOutOfRange(let position, let last):
            return "Position \(position) is outside the log (0…\(last))."
        case .unreadable(let source, let reason):
            return "Cannot read \(source): \(reason)."
        case .missingDataDirectory(let path):
            return "There is no data directory at \(path); pass --data DIR (or set HERALD_DATA) to an existing one. Reading commands never create it."
        case .externalLog(let location):
            return "This command works on the segment files of a data directory's log, and the log here is \(location); to work on it as segment files, move it with `herald copy --from \(location) --to DIR`."
        case .compacted(let position, let first):
            return "Position \(position) is before the log's first position \(first): the log was compacted (`herald compact`), and the records before \(first) were replaced by a snapshot of the state at position \(first - 1) (`deliveries --at` takes \(first - 1) or later, `explain` a record from \(first) on, or a delivery the snapshot kept)."
        case .notOnCompactedLog(let command, let first):
            return "`herald \(command)` needs the log from position 1, and this log starts at position \(first) (it was compacted; the records before are a snapshot). Run it on an uncompacted copy, or on the archived segments with the rest of the log."
        case .projectionBehindCompaction(let location, let checkpoint, let first):
            return "The projection \(location) stopped at position \(checkpoint), and the log now starts at \(first) (it was compacted past it): rebuild it from the log's snapshot with `herald project --rebuild`."
        case .badSnapshot(let position, let offset, let reason):
            return "The snapshot that starts the log at position \(position) is invalid at byte offset \(offset) of its payload: \(reason)."
        case .unknownID(let id, let expected, let found):
            let kind = { (name: String) in name.replacingOccurrences(of: "_", with: " ") }
            if let found {
                return "\(id) is \(found == "app" || found == "admin_user" ? "an" : "a") \(kind(found)), not \(expected == "app" ? "an" : "a") \(kind(expected))."
            }
            return "No \(kind(expected)) \(id) was ever created in this log."
        }
    }
}
