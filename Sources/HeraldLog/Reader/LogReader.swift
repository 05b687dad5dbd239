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

    /// Looks for blocks published since the last call and returns the new `lastPosition`.
    /// Only whole blocks whose checksums verify count; a torn tail is not an error, the reader
    /// simply stops before it.
    @discardableResult
    public func refresh() throws -> UInt64 {
        if let published { return published.load() }
        let snapshot = state.withLock { $0 }
        let bases = try SegmentFiles.list(fileSystem, directory)
        guard let lastBase = bases.last else {
            state.withLock { $0.lastPosition = 0 }
            return 0
        }
        var tailOffset = snapshot.tailOffset
        var next = snapshot.tailNext
        if snapshot.tailBase != lastBase {
            tailOffset = 0
            next = lastBase
        }
        let path = SegmentFiles.join(directory, SegmentFiles.segmentName(base: lastBase))
        let file = try fileSystem.open(path, mode: .readOnly)
        defer { file.close() }
        let size = try file.size()
        var scanner = SegmentScanner(file: file, fileSize: size)
        if tailOffset == 0 {
            // Start from the index's last entry if it checks out, else from the beginning.
            let hint = BlockIndexFile.load(fileSystem, path: SegmentFiles.join(directory, SegmentFiles.indexName(base: lastBase)), base: lastBase, fileSize: size)
            if let last = hint.entries.last, case let .ok(h) = try scanner.readBlock(at: last.offset, verifyBody: true),
               h.basePosition == last.basePosition, h.count == last.count {
                tailOffset = last.endOffset
                next = last.endPosition
            }
        }
        // Bound: each round consumes one block of at least 71 bytes of the file.
        while case let .ok(h) = try scanner.readBlock(at: tailOffset, verifyBody: true), h.basePosition == next {
            tailOffset += h.blockBytes
            next = h.endPosition
        }
        let result = next - 1
        state.withLock { s in
            if result >= s.lastPosition {
                s.lastPosition = result
                s.tailBase = lastBase
                s.tailOffset = tailOffset
                s.tailNext = next
            }
        }
        return result
    }

    /// A cursor that yields blocks from `position` on (the first block is trimmed so that it
    /// starts at `position`). `position` may be `lastPosition + 1` or later to follow the tail.
    ///
    /// - Throws: `LogError.invalidPosition` for position 0.
    public func makeCursor(from position: UInt64 = 1) throws -> LogCursor {
        guard position >= 1 else { throw LogError.invalidPosition(position: position) }
        return LogCursor(reader: self, from: position)
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
        let bases = try SegmentFiles.list(fileSystem, directory)
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
