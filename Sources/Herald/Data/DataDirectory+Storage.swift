import HeraldCore
import HeraldLog

/// What ``DataDirectory/compact(before:archiveDirectory:recompressionLevel:)`` did.
public struct StorageReport: Sendable {
    /// Records projected first (the projection never stops before the log's start).
    public var projected: ProjectResult?
    /// The compaction, when a position was given.
    public var compaction: CompactionResult?
    /// The recompression of closed segments, unless it was turned off.
    public var recompression: RecompressionReport?
    /// The log as it is afterwards.
    public var stats: LogStats
    /// Its first position afterwards.
    public var firstPosition: UInt64
}

extension DataDirectory {
    /// `herald compact`: catches the projection up with the log, compacts the records before
    /// `position` into a snapshot (when given; the segments wholly before it are removed, after
    /// a copy into `archiveDirectory` when given), then rewrites the closed segments with
    /// LZ4-HC at `recompressionLevel` (nil: not). Takes the writer's lock: refused while
    /// `herald run` or `herald serve` holds it (their `--retain…` options do the same work).
    public func compact(before position: UInt64?, archiveDirectory: String?, recompressionLevel: Int32?) throws -> StorageReport {
        try requireSegments()
        try requireExisting()
        let writer = try openWriter()
        do {
            var projected: ProjectResult?
            if hasProjection, position != nil {
                projected = try project()
            }
            let compaction = try position.map { try writer.compact(before: $0, archiveDirectory: archiveDirectory) }
            if compaction != nil, hasProjection, let state = try writer.makeReader().compactedStart() {
                // Its rows about what the log no longer holds go too: it reads as the log does.
                try openProjection().prune(to: state)
            }
            // The active segment is closed first, so the whole log is recompressed.
            if recompressionLevel != nil { try writer.writer.rollSegment() }
            let recompression = try recompressionLevel.map { try writer.recompressClosedSegments(level: $0) }
            try writer.close()
            let reader = try LogReader(directory: logPath, fileSystem: fileSystem)
            return StorageReport(projected: projected, compaction: compaction, recompression: recompression,
                                 stats: try reader.stats(), firstPosition: try reader.firstPosition())
        } catch {
            try? writer.close()
            throw error
        }
    }
}
