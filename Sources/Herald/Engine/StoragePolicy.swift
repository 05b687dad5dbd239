import HeraldLog

/// What a running engine does to its segment log in the background (docs/STORAGE.md):
/// rewrites closed segments with LZ4-HC, and compacts the records a retention policy no
/// longer needs into a snapshot, removing (or archiving) whole segments.
///
/// Retention keeps every record the policy names: by count, the last `retainRecords`; by age,
/// those whose timestamp is within `retainMs` of the log's last record (the log's own time,
/// not the wall clock, so the same log gives the same answer). With both, a record either
/// keeps is kept. It works a whole segment at a time (the compaction point is always the
/// first position of a segment) and never passes the projection's checkpoint. Pending and dead
/// deliveries are never dropped: the snapshot keeps them whole.
public struct StoragePolicy: Sendable, Equatable {
    /// LZ4-HC level (3…12) closed segments are rewritten with; nil: never.
    public var recompressionLevel: Int32?
    /// Keep at least the last this many records; nil: no bound by count.
    public var retainRecords: UInt64?
    /// Keep at least the records within this many milliseconds of the last one; nil: no bound by age.
    public var retainMs: Int64?
    /// Copy the segments compaction removes into this directory first; nil: remove them.
    public var archiveDirectory: String?
    /// How often the engine looks, in milliseconds.
    public var intervalMs: Int64

    /// Recompression at level 9 every minute; no retention.
    public init(recompressionLevel: Int32? = 9, retainRecords: UInt64? = nil, retainMs: Int64? = nil,
                archiveDirectory: String? = nil, intervalMs: Int64 = 60_000) {
        self.recompressionLevel = recompressionLevel
        self.retainRecords = retainRecords
        self.retainMs = retainMs
        self.archiveDirectory = archiveDirectory
        self.intervalMs = max(1, intervalMs)
    }

    /// Whether a retention bound is set.
    public var retains: Bool { retainRecords != nil || retainMs != nil }

    /// The position to compact before: the first position of the earliest segment the policy
    /// must keep, no later than `limit` (the projection's checkpoint + 1), or nil when that is
    /// not past `start` (nothing to remove).
    ///
    /// - Parameters:
    ///   - closed: the closed segments, in order; the active segment starts at `activeBase`.
    ///   - last: the log's last position; `lastTs` its timestamp.
    public func compactionPoint(closed: [SegmentSpan], activeBase: UInt64, last: UInt64, lastTs: Int64,
                                start: UInt64, limit: UInt64) -> UInt64? {
        guard retains else { return nil }
        // The first segment each bound keeps: one holding a record it names.
        var keepFrom = activeBase
        for span in closed {
            let byCount = retainRecords.map { $0 > last || span.lastPosition > last - $0 } ?? false
            let byAge = retainMs.map { span.lastTs >= lastTs - min($0, lastTs) } ?? false
            if byCount || byAge {
                keepFrom = span.base
                break
            }
        }
        // Aligned down to a segment under the projection's limit.
        let bases = closed.map(\.base) + [activeBase]
        guard let point = bases.last(where: { $0 <= min(keepFrom, limit) }), point > start else { return nil }
        return point
    }
}
