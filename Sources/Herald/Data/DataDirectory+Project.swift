import Glibc
import HeraldCore
import HeraldStore

/// What a projection run did.
public struct ProjectResult: Sendable {
    /// Checkpoint before and after.
    public var from: UInt64
    public var to: UInt64
    /// Records applied.
    public var records: UInt64 { to - from }
}

extension DataDirectory {
    /// Records applied per projection transaction (each commits its checkpoint).
    public static let projectBatchRecords = 50_000

    /// `herald project`: applies the log's records after the projection's checkpoint.
    /// Each batch commits with its checkpoint, so a killed run resumes where it stopped.
    @discardableResult
    public func project(progress: ((UInt64) -> Void)? = nil) throws -> ProjectResult {
        let projection = try openProjection()
        return try project(into: projection, progress: progress)
    }

    /// `herald project --rebuild`: builds a new projection from position 0 beside the live
    /// one, then swaps it in (the live one stays intact until the rebuild has committed).
    @discardableResult
    public func rebuildProjection(progress: ((UInt64) -> Void)? = nil) throws -> ProjectResult {
        let temporary = projectionPath + ".rebuild"
        removeDatabase(temporary)
        let result: ProjectResult
        do {
            let projection = try Projection(path: temporary)
            result = try project(into: projection, progress: progress)
            try projection.checkpointWriteAheadLog()
        }
        removeDatabase(projectionPath)
        guard rename(temporary, projectionPath) == 0 else {
            throw HeraldError.unreadable(source: temporary, reason: "cannot rename over \(projectionPath)")
        }
        return result
    }

    @discardableResult
    func project(into projection: Projection, progress: ((UInt64) -> Void)?) throws -> ProjectResult {
        try Projector(directory: self, projection: projection).catchUp(progress: progress)
    }

    /// `herald verify`'s projection half: rebuilds the projection into a temporary database
    /// and compares it, table by table, with the live one. The live projection is first caught
    /// up through `through` (the log position `verify` checked), unless a writer holds the log
    /// (a running engine projects it itself: it is compared as it is); the comparison reads one
    /// snapshot of it, at its checkpoint, against a rebuild to that same checkpoint, so a
    /// process appending and projecting meanwhile causes no false difference.
    /// Returns the differences (empty = identical) and SQLite's own integrity problems.
    /// `progress` sees the rebuild's position as it goes (about every 100,000 records).
    public func verifyProjection(through: UInt64? = nil, progress: ((UInt64) -> Void)? = nil) throws -> [String] {
        guard hasProjection || isWritable else { return [] }  // nothing to compare, nowhere to build one
        let live: Projection
        var snapshotProblems: [String] = []
        if isWritable && (!writerActive || !hasProjection) {
            live = try openProjection()
            // A damaged engine snapshot is reported before the catch-up restores around it (and drops it).
            do { _ = try live.storedSnapshot() } catch let error as StoreError { snapshotProblems.append("\(error)") }
            try Projector(directory: self, projection: live).catchUp(through: through)
        } else {
            // A read-only data directory, or a running engine's projection (its to write):
            // compare the projection as it is.
            // One a writer is only creating has nothing to compare yet.
            guard let existing = try openProjectionForReading() else { return [] }
            live = existing
        }
        var problems = try live.integrityProblems()
        // Beside the projection (same disk) when the directory is writable, else in $TMPDIR.
        let temporary = isWritable ? projectionPath + ".verify"
            : FileSystemPaths.temporaryDirectory + "/herald-verify-\(getpid()).sqlite"
        removeDatabase(temporary)
        defer { removeDatabase(temporary) }
        // A read transaction: the checkpoint and every table compared are one snapshot.
        problems += try live.withReadSnapshot {
            let (checkpoint, _) = try live.checkpoint()
            let rebuilt = try Projection(path: temporary)
            let projector = try Projector(directory: self, projection: rebuilt)
            // The engine snapshot is compared with the rebuild's state as it passes its position.
            do {
                if let snapshot = try live.storedSnapshot() {
                    try projector.catchUp(through: snapshot.position, progress: progress)
                    snapshotProblems += Self.differences(of: snapshot, from: projector.dispatcher)
                }
            } catch let error as StoreError {
                snapshotProblems.append("\(error)")
            }
            try projector.catchUp(through: checkpoint, progress: progress)
            return try live.differences(from: rebuilt, history: try compactionHistory())
                + snapshotProblems.map { $0 + " (rebuild it with `herald project --rebuild`)" }
        }
        return problems
    }

    /// For a compacted log, its first position and the deliveries its snapshot kept
    /// (`"P:TRIGGER_ID"`): a live projection may also hold rows about what the log no longer
    /// does, which a comparison with a rebuild does not count.
    func compactionHistory() throws -> (start: UInt64, kept: Set<String>)? {
        try openReader().compactedStart().map { start in
            (start.start, Set(start.timelines.map { "\($0.id.sourcePosition):\($0.id.triggerID)" }))
        }
    }

    /// How an engine snapshot differs from the replayed state at its position (empty: not at all).
    static func differences(of snapshot: Dispatcher, from replayed: Dispatcher) -> [String] {
        guard snapshot.snapshotBytes() != replayed.snapshotBytes() else { return [] }
        let at = "engine_snapshot at position \(snapshot.position)"
        var problems: [String] = []
        if snapshot.pending != replayed.pending {
            problems.append("\(at) holds \(snapshot.pending.count) pending deliveries that differ from the \(replayed.pending.count) of a replay")
        }
        let dead = { (d: Dispatcher) in d.redrivable.values.sorted { $0.orderKey < $1.orderKey } }
        if dead(snapshot) != dead(replayed) {
            problems.append("\(at) holds \(snapshot.redrivable.count) redrivable deliveries that differ from the \(replayed.redrivable.count) of a replay")
        }
        if snapshot.createdCount != replayed.createdCount {
            problems.append("\(at) counts \(snapshot.createdCount) deliveries created, a replay \(replayed.createdCount)")
        }
        if problems.isEmpty {
            problems.append("\(at) differs from a replay in its registry or last ts")
        }
        return problems
    }

    private func removeDatabase(_ path: String) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            FileSystemPaths.remove(path + suffix)
        }
    }
}
