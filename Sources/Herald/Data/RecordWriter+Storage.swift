import HeraldCore
import HeraldLog

/// Storage over time (docs/STORAGE.md): closed segments rewritten with LZ4-HC, and compaction
/// of the records before a position into a snapshot of the state there.
extension RecordWriter {
    /// Rewrites the closed segments with LZ4-HC at `level` (see
    /// ``HeraldLog/LogWriter/recompressClosedSegments(level:shouldContinue:)``).
    public func recompressClosedSegments(level: Int32 = 9, shouldContinue: () -> Bool = { true }) throws -> RecompressionReport {
        try writer.recompressClosedSegments(level: level, shouldContinue: shouldContinue)
    }

    /// Replaces the records before `position` by a snapshot of the state at `position - 1`
    /// (docs/SEMANTICS.md, "Retention"): the registry, every delivery pending, dead or still
    /// redrivable then with its whole story, the counts of the others, every id used; then
    /// removes the segments wholly before `position`, after copying them to
    /// `archiveDirectory` when given. Positions never change.
    ///
    /// Replays the log from its current start through `position - 1` to build the snapshot.
    ///
    /// - Throws: ``HeraldError/compacted(position:firstPosition:)`` when `position` is before
    ///   the log's first position, ``HeraldError/positionOutOfRange(position:lastPosition:)``
    ///   when it is past the last position + 1, what replay and the log throw.
    public func compact(before position: UInt64, archiveDirectory: String? = nil) throws -> CompactionResult {
        let reader = makeReader()
        let last = try reader.lastPosition
        let start = try reader.compactedStart()
        let first = start?.start ?? 1
        guard position >= first else { throw HeraldError.compacted(position: position, firstPosition: first) }
        guard position <= last + 1 else { throw HeraldError.positionOutOfRange(position: position, lastPosition: last + 1) }
        if position == first, first > 1 {
            // Already compacted there: only finishes what an interrupted compaction left.
            return try writer.compact(to: LogSnapshot(start: first, lastTs: start?.dispatcher.lastTs ?? 0, payload: []),
                                      archiveDirectory: archiveDirectory)
        }
        var collector = CompactionCollector(from: start)
        var dispatcher = start?.dispatcher ?? Dispatcher()
        try reader.replay(into: &dispatcher, through: position - 1) { at, record, effects, state in
            collector.observe(position: at, record: record, effects: effects, registry: state.registry)
        }
        let state = collector.finish(with: dispatcher)
        let snapshot = LogSnapshot(start: position, lastTs: dispatcher.lastTs ?? 0, payload: state.encoded())
        return try writer.compact(to: snapshot, archiveDirectory: archiveDirectory)
    }
}
