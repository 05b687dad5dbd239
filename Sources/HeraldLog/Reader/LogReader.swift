#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Reads a log directory, also while a writer (in this or another process) appends.
///
/// A reader sees a prefix of whole, checksummed blocks up to `lastPosition`. A reader made by
/// `LogWriter.makeReader()` follows the writer's acknowledged position live; a reader opened
/// with `init(directory:)` learns new blocks when `refresh()` is called.
///
/// ```swift
/// let reader = try LogReader(directory: path)
/// try reader.forEach(from: 1) { record in print(record.position, record.ts, record.payload.count) }
/// ```
public final class LogReader: Sendable {
    /// The log directory.
    public let directory: String
    let fileSystem: any LogFileSystem
    let published: PublishedPosition?
    private let state = Mutex(ReaderState())

    struct ReaderState: Sendable {
        var lastPosition: UInt64 = 0
        /// The segment whose tail `refresh` follows, and the end of its last verified block.
        var tailBase: UInt64 = 0
        var tailOffset: UInt64 = 0
        var tailNext: UInt64 = 1
        var tailLastTs: Int64 = 0
        var tailLastCRC: UInt32 = 0
        /// Damage at the end of the log that this reader stops before (see `tailDamage`).
        var damage: TailDamage?
        /// Block indexes of closed segments (immutable once closed).
        var closedIndexes: [UInt64: [IndexEntry]] = [:]
    }

    /// Opens a reader on `directory` and finds the published end (see `refresh()`).
    public init(directory: String, fileSystem: any LogFileSystem = PosixFileSystem()) throws {
        self.directory = directory
        self.fileSystem = fileSystem
        self.published = nil
        try refresh()
    }

    init(directory: String, fileSystem: any LogFileSystem, published: PublishedPosition) {
        self.directory = directory
        self.fileSystem = fileSystem
        self.published = published
    }

    /// The last position this reader may read (0 for an empty log).
    public var lastPosition: UInt64 {
        if let published { return published.load() }
        return state.withLock { $0.lastPosition }
    }

    /// Damage at the end of the log that the last `refresh()` found and stops before: a torn
    /// tail, or an append that never completed, with no writer at work (a writer's next open
    /// cuts it into quarantine). Callers report it as a warning: the positions it hides are
    /// not part of the log. Nil when the log ends cleanly, or while a writer appends.
    public var tailDamage: TailDamage? { state.withLock { $0.damage } }

    /// Looks for blocks published since the last call and returns the new `lastPosition`.
    ///
    /// The end of the log is read with the writer's own rules (Schema/log-format.md,
    /// "Recovery"), index or no index: only whole, checksummed blocks of completed appends
    /// count; a damaged block followed by a valid one is corruption; a torn tail is not an
    /// error (`tailDamage` names it when no writer is at work); and the log must reach its
    /// durable watermark.
    ///
    /// - Throws: `LogError.corruptBlock`, `.acknowledgedDamaged`, `.damagedWatermark`, `.io`.
    @discardableResult
    public func refresh() throws -> UInt64 {
        if let published { return published.load() }
        let snapshot = state.withLock { $0 }
        // The watermark first: whatever a writer appends after this read is past it.
        let loaded = try DurableWatermark.load(fileSystem, directory: directory)
        let watermark = loaded?.position ?? 0
        let hasWatermark = loaded != nil
        let listing = try SegmentListing.read(fileSystem, directory)  // no log directory yet: an empty log
        let bases = listing.bases
        guard let lastBase = bases.last else {
            if listing.start > 1 {
                throw LogError.segmentGap(directory: directory, segment: "(none)", expectedPosition: listing.start, foundPosition: 0)
            }
            if watermark > 0 {
                throw LogError.acknowledgedDamaged(directory: directory, segment: "(none)", offset: 0, firstPosition: 1, lastPosition: watermark,
                                                   reason: "the log has no segment")
            }
            state.withLock { $0.lastPosition = 0; $0.damage = nil }
            return 0
        }
        let name = SegmentFiles.segmentName(base: lastBase)
        var start: SegmentScan
        if snapshot.tailBase == lastBase {
            start = SegmentScan(offset: snapshot.tailOffset, nextPosition: snapshot.tailNext, lastTs: snapshot.tailLastTs, lastCRC: snapshot.tailLastCRC)
        } else {
            let previous = bases.count > 1 ? bases[bases.count - 2] : nil
            // The previous segment may have just been removed by a compaction: then unknown.
            let previousTs: Int64
            do {
                previousTs = try previous.map { try lastTimestamp(ofSegment: $0) } ?? 0
            } catch LogError.io(_, _, _, let code) where code == ENOENT {
                previousTs = 0
            }
            start = try indexHint(segment: lastBase, watermark: watermark, previousTs: previousTs)
        }
        start.watermark = watermark
        var (scan, tail) = try walk(segment: lastBase, from: start, hasWatermark: hasWatermark)
        if case .corrupt = tail {
            // A block still being written when it was read, and a later one since: read again.
            (scan, tail) = try walk(segment: lastBase, from: start, hasWatermark: hasWatermark)
        }
        if case let .corrupt(reason, valid) = tail {
            throw LogError.corruptBlock(directory: directory, segment: name, offset: scan.validEnd, position: scan.nextPosition,
                                        reason: "\(reason), and a valid block follows at byte offset \(valid), so this is not a torn tail")
        }
        var damage = try describeDamage(scan, tail, segment: lastBase, watermark: watermark)
        if damage != nil {
            if try fileSystem.isLocked(SegmentFiles.join(directory, SegmentFiles.lockName)) {
                damage = nil  // a writer at work: an append in progress, not damage
            } else {
                // A writer may have finished (or closed) while this was read: read once more.
                (scan, tail) = try walk(segment: lastBase, from: start, hasWatermark: hasWatermark)
                if case .corrupt = tail { (scan, tail) = try walk(segment: lastBase, from: start, hasWatermark: hasWatermark) }
                damage = try describeDamage(scan, tail, segment: lastBase, watermark: watermark)
            }
        }
        let committed = scan.committed
        let result = committed.nextPosition - 1
        if result + 1 < listing.start {
            throw LogError.damagedSnapshot(path: SegmentFiles.join(directory, LogSnapshotFile.name(start: listing.start)),
                                           reason: "it starts the log at position \(listing.start), but the log ends at position \(result)")
        }
        if result < watermark {
            throw LogError.acknowledgedDamaged(directory: directory, segment: name, offset: committed.offset, firstPosition: result + 1,
                                               lastPosition: watermark, reason: damage?.reason ?? "the log ends at position \(result)")
        }
        state.withLock { s in
            if result >= s.lastPosition {
                s.lastPosition = result
                s.tailBase = lastBase
                s.tailOffset = committed.offset
                s.tailNext = committed.nextPosition
                s.tailLastTs = committed.lastTs
                s.tailLastCRC = committed.lastCRC
                s.damage = damage
            }
        }
        return result
    }

    /// Where to start walking segment `base`: after the last block its index names at or
    /// below the durable watermark, when that block checks out and counts; else at the start of
    /// the segment. Blocks past the watermark are always walked and verified here: damage
    /// there is a torn tail the writer cuts, so the reader must stop before it exactly where the
    /// writer cuts (damage below the watermark is refused by both, by the cursor when read).
    private func indexHint(segment base: UInt64, watermark: UInt64, previousTs: Int64) throws -> SegmentScan {
        let start = SegmentScan(nextPosition: base, lastTs: previousTs)
        guard watermark >= base else { return start }
        let file = try fileSystem.open(SegmentFiles.join(directory, SegmentFiles.segmentName(base: base)), mode: .readOnly)
        defer { file.close() }
        let size = try file.size()
        var scanner = SegmentScanner(file: file, fileSize: size)
        let hint = BlockIndexFile.load(fileSystem, path: SegmentFiles.join(directory, SegmentFiles.indexName(base: base)), base: base, fileSize: size)
        guard let last = hint.entries.last(where: { $0.endPosition - 1 <= watermark }),
              case let .ok(h) = try scanner.readBlock(at: last.offset, verifyBody: true),
              h.basePosition == last.basePosition, h.count == last.count,
              h.blockBytes == UInt64(last.blockBytes) else { return start }  // the walk resumes at the index's end of the block
        return SegmentScan(offset: last.endOffset, nextPosition: last.endPosition, lastTs: h.lastTs, lastCRC: h.blockCRC)
    }

    /// The last timestamp of closed segment `base` (its last block's header, found through its
    /// index or by walking headers), so the last segment's first block is checked against it
    /// as recovery checks it. 0 when the segment cannot tell: damage there is the cursor's to
    /// report when it reads it.
    func lastTimestamp(ofSegment base: UInt64) throws -> Int64 {
        let file = try fileSystem.open(SegmentFiles.join(directory, SegmentFiles.segmentName(base: base)), mode: .readOnly)
        defer { file.close() }
        let size = try file.size()
        var scanner = SegmentScanner(file: file, fileSize: size)
        let index = BlockIndexFile.load(fileSystem, path: SegmentFiles.join(directory, SegmentFiles.indexName(base: base)), base: base, fileSize: size)
        if let last = index.entries.last, last.endOffset == size, case let .ok(h) = try scanner.readBlock(at: last.offset, verifyBody: false),
           h.basePosition == last.basePosition {
            return h.lastTs
        }
        var offset: UInt64 = 0
        var lastTs: Int64 = 0
        // Bound: each round consumes one block of at least 71 bytes.
        while case let .ok(h) = try scanner.readBlock(at: offset, verifyBody: false) {
            lastTs = h.lastTs
            offset += h.blockBytes
        }
        return lastTs
    }

    /// Verifies the blocks of segment `base` from `start` on, as recovery does, and reads what
    /// follows them.
    private func walk(segment base: UInt64, from start: SegmentScan, hasWatermark: Bool) throws -> (SegmentScan, SegmentTail) {
        let name = SegmentFiles.segmentName(base: base)
        let file = try fileSystem.open(SegmentFiles.join(directory, name), mode: .readOnly)
        defer { file.close() }
        var scanner = SegmentScanner(file: file, fileSize: try file.size())
        var scan = start
        try scanner.verifyBlocks(&scan, directory: directory, name: name, collectEntries: false)
        return (scan, try scanner.classifyTail(scan, hasWatermark: hasWatermark))
    }

    /// The damage a writer would cut after `scan` (nil when the segment ends cleanly).
    private func describeDamage(_ scan: SegmentScan, _ tail: SegmentTail, segment base: UInt64, watermark: UInt64) throws -> TailDamage? {
        let name = SegmentFiles.segmentName(base: base)
        let file = try fileSystem.open(SegmentFiles.join(directory, name), mode: .readOnly)
        defer { file.close() }
        let size = try file.size()
        var scanner = SegmentScanner(file: file, fileSize: size)
        return try Recovery.damage(of: scan, tail: tail, name: name, scanner: &scanner, size: size,
                                   watermark: watermark > 0 ? DurableWatermark(sequence: 0, position: watermark) : nil)
    }

    /// A cursor that yields blocks from `position` on (the first block is trimmed so that it
    /// starts at `position`). `position` may be `lastPosition + 1` or later to follow the tail.
    ///
    /// - Throws: `LogError.invalidPosition` for position 0. A position before a compacted
    ///   log's first one is `LogError.compacted` from the cursor's first read (which lists the
    ///   segments anyway), not here.
    public func makeCursor(from position: UInt64 = 1) throws -> LogCursor {
        guard position >= 1 else { throw LogError.invalidPosition(position: position) }
        return LogCursor(reader: self, from: position)
    }

    /// The log's first position: 1, or for a compacted log the start of the snapshot that
    /// stands for the records before it (``snapshot()``).
    public func firstPosition() throws -> UInt64 {
        try SegmentListing.read(fileSystem, directory).start
    }

    /// The closed segments (every one but the last, which the writer appends to): where each
    /// starts, its last position and its last record's timestamp, read from their indexes (or
    /// block headers). What a retention policy decides by.
    public func closedSegments() throws -> [SegmentSpan] {
        let bases = try SegmentListing.read(fileSystem, directory).bases
        var spans: [SegmentSpan] = []
        for (i, base) in bases.dropLast().enumerated() {
            spans.append(SegmentSpan(base: base, lastPosition: bases[i + 1] - 1, lastTs: try lastTimestamp(ofSegment: base)))
        }
        return spans
    }

    /// The snapshot that starts a compacted log (checksum verified), or nil when the log
    /// starts at position 1.
    ///
    /// - Throws: `LogError.damagedSnapshot`, `.io`.
    public func snapshot() throws -> LogSnapshot? {
        // A newer compaction may remove the file between the listing and the read: once more.
        for attempt in 0..<2 {
            let start = try firstPosition()
            guard start > 1 else { return nil }
            do {
                return try LogSnapshotFile.load(fileSystem, directory: directory, start: start)
            } catch LogError.io(_, _, _, let code) where code == ENOENT && attempt == 0 {
                continue
            }
        }
        return nil
    }

    /// Calls `body` for every record from `from` through `to` (inclusive, clamped to
    /// `lastPosition`), one block in memory at a time.
    public func forEach(from: UInt64 = 1, to: UInt64 = .max, _ body: (LogRecord) throws -> Void) throws {
        let cursor = try makeCursor(from: from)
        // Bound: each block advances the cursor; the cursor stops at lastPosition.
        while let block = try cursor.nextBlock() {
            for record in block {
                if record.position > to { return }
                try body(record)
            }
            if block.endPosition > to { return }
        }
    }

    // MARK: - Segment and block lookup (used by LogCursor)

    /// The base of the segment holding `position` and whether a later segment exists.
    func segment(holding position: UInt64) throws -> (base: UInt64, closed: Bool)? {
        let listing = try SegmentListing.read(fileSystem, directory)
        // Compacted while a cursor read: its records are gone.
        guard position >= listing.start else { throw LogError.compacted(directory: directory, position: position, firstPosition: listing.start) }
        let bases = listing.bases
        var low = 0
        var high = bases.count
        while low < high {
            let mid = (low + high) / 2
            if bases[mid] <= position { low = mid + 1 } else { high = mid }
        }
        guard low > 0 else { return nil }
        return (bases[low - 1], low < bases.count)
    }

    /// The byte offset to start reading `position` from in segment `base`: the block that holds
    /// it according to the index, else the end of the indexed prefix (the caller then skips
    /// block headers forward).
    func seekOffset(segment base: UInt64, closed: Bool, fileSize: UInt64, position: UInt64) -> UInt64 {
        var entries: [IndexEntry]
        if closed, let cached = state.withLock({ $0.closedIndexes[base] }) {
            entries = cached
        } else {
            entries = BlockIndexFile.load(fileSystem, path: SegmentFiles.join(directory, SegmentFiles.indexName(base: base)), base: base, fileSize: fileSize).entries
            if closed {
                let loaded = entries
                state.withLock { $0.closedIndexes[base] = loaded }
            }
        }
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].endPosition <= position { low = mid + 1 } else { high = mid }
        }
        if low < entries.count { return entries[low].offset }
        return entries.last?.endOffset ?? 0
    }

    /// Forgets a cached index that did not match its segment.
    func dropIndex(segment base: UInt64) {
        _ = state.withLock { $0.closedIndexes.removeValue(forKey: base) }
    }
}

/// A closed segment's extent (``LogReader/closedSegments()``).
public struct SegmentSpan: Sendable, Equatable {
    /// Its first position (its file name).
    public var base: UInt64
    public var lastPosition: UInt64
    /// The timestamp of its last record.
    public var lastTs: Int64

    public init(base: UInt64, lastPosition: UInt64, lastTs: Int64) {
        self.base = base
        self.lastPosition = lastPosition
        self.lastTs = lastTs
    }
}

/// What ``LogReader/verify(directory:fileSystem:)`` found: the writer's verdict on a log,
/// reached without changing anything.
public struct LogVerification: Sendable, Equatable {
    /// Segment files.
    public var segments: Int
    /// Blocks whose checksums, LZ4 frames, chain and positions were verified.
    public var blocks: Int
    /// The last committed position (what a writer keeps, and readers read).
    public var lastPosition: UInt64
    /// The log's first position: 1, or the start of the snapshot of a compacted log (whose
    /// checksum was verified).
    public var firstPosition: UInt64 = 1
    /// The durable watermark (nil: the log has none yet).
    public var watermark: UInt64?
    /// What a writer opening the log would cut (a torn tail, an append that never completed);
    /// nil when the log ends cleanly, or when a writer at work is appending there.
    public var damage: TailDamage?
    /// Acknowledged positions the log no longer holds: a writer refuses to open it
    /// (`LogError.acknowledgedDamaged`) until they are restored or the loss is accepted.
    public var acknowledgedLoss: ClosedRange<UInt64>?
    /// Another process held the writer lock while the log was read.
    public var writerActive: Bool
}

extension LogReader {
    /// Verifies every block of every segment with exactly the rules a writer's recovery applies
    /// (Schema/log-format.md, "Recovery"), changing nothing: what `herald verify` and
    /// `herald repair` report. Works on a read-only directory and while another process
    /// appends (whatever that writer adds past the durable watermark is work in progress).
    ///
    /// - Throws: `LogError.corruptBlock`, `.segmentGap`, `.damagedWatermark`, `.io` — each a
    ///   log a writer refuses.
    public static func verify(directory: String, fileSystem: any LogFileSystem = PosixFileSystem()) throws -> LogVerification {
        let writerActive = try fileSystem.isLocked(SegmentFiles.join(directory, SegmentFiles.lockName))
        let plan: Recovery.Plan
        do {
            plan = try Recovery.analyze(directory: directory, fileSystem: fileSystem, writerActive: writerActive)
        } catch LogError.io(_, _, _, let code) where code == ENOENT && writerActive {
            // A running engine's compaction removed a file this read listed: read again.
            plan = try Recovery.analyze(directory: directory, fileSystem: fileSystem, writerActive: writerActive)
        }
        return LogVerification(segments: plan.bases.count, blocks: plan.entries.reduce(0) { $0 + $1.count }, lastPosition: plan.lastPosition,
                               firstPosition: plan.start, watermark: plan.watermark?.position, damage: plan.damage,
                               acknowledgedLoss: plan.acknowledgedLoss, writerActive: writerActive)
    }
}
