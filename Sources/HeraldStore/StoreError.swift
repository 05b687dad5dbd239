/// Errors of the SQLite projection.
public enum StoreError: Error, Sendable, CustomStringConvertible {
    /// The file is a SQLite database, but not a Herald projection.
    case foreignDatabase(path: String)
    /// The projection was made by another schema version.
    case schemaVersion(path: String, found: Int64, expected: Int64)
    /// A row Herald wrote no longer makes sense (edited by hand, or the file is damaged).
    case damaged(path: String, reason: String)
    /// Another process moved the checkpoint while this one was projecting.
    case checkpointMoved(path: String, expected: UInt64, found: UInt64)
    /// The projection is ahead of the log it is supposed to describe.
    case aheadOfLog(path: String, checkpoint: UInt64, lastPosition: UInt64)
    /// Opened for reading while another process is creating it: an empty database, no schema yet.
    case notCreatedYet(path: String)

    public var description: String {
        switch self {
        case .foreignDatabase(let path):
            "\(path) is a SQLite database with tables but no Herald schema version; refusing to touch it."
        case .schemaVersion(let path, let found, let expected):
            "\(path) has projection schema version \(found), this Herald uses \(expected); rebuild it with `herald project --rebuild`."
        case .damaged(let path, let reason):
            "The projection \(path) is damaged: \(reason). Rebuild it with `herald project --rebuild`."
        case .checkpointMoved(let path, let expected, let found):
            "The projection \(path) moved to position \(found) while this process was applying from \(expected + 1): another process is projecting it; nothing was applied twice. Run the command again."
        case .aheadOfLog(let path, let checkpoint, let lastPosition):
            "The projection \(path) is at position \(checkpoint) but the log ends at \(lastPosition); it belongs to another log. Rebuild it with `herald project --rebuild`."
        case .notCreatedYet(let path):
            "The projection \(path) is being created by another process (it has no schema yet)."
        }
    }
}
