#if canImport(Glibc)
import Glibc
#endif

/// Reads blocks forward from a position. Not thread-safe: use one cursor per thread.
///
/// `nextBlock()` returns nil when the cursor has reached the reader's `lastPosition`; call it
/// again later (after `refresh()` for a standalone reader) to continue.
///
/// ```swift
/// let cursor = try reader.makeCursor(from: 1_000)
/// while let block = try cursor.nextBlock() {
///     block.forEachRecord { position, ts, payload in /* ... */ }
/// }
/// ```
public final class LogCursor {
    /// The reader this cursor reads through.
    public let reader: LogReader
    /// The position of the next record the cursor will yield.
    public private(set) var nextPosition: UInt64

    private var file: (any LogFile)?
    private var segmentBase: UInt64 = 0
    private var segmentClosed = false
    private var offset: UInt64 = 0
    private var seekedViaIndex = false
    private var header = [UInt8](repeating: 0, count: BlockHeader.size)
    private var compressed: [UInt8] = []
    private var raw: [UInt8] = []
    private let decompressor = LZ4Decompressor()

    init(reader: LogReader, from position: UInt64) {
        self.reader = reader
        self.nextPosition = position
    }

    deinit { file?.close() }

    private var segmentName: String { SegmentFiles.segmentName(base: segmentBase) }

    private func corrupt(_ reason: String) -> LogError {
        .corruptBlock(directory: reader.directory, segment: segmentName, offset: offset, position: nextPosition, reason: reason)
    }

    /// Opens the segment holding `nextPosition` and seeks via its block index.
    private func seek() throws {
        file?.close()
        file = nil
        guard let found = try reader.segment(holding: nextPosition) else {
            throw LogError.segmentGap(directory: reader.directory, segment: "(none)", expectedPosition: nextPosition, foundPosition: 0)
        }
        let opened = try openSegment(found.base)
        file = opened
        segmentBase = found.base
        segmentClosed = found.closed
        offset = reader.seekOffset(segment: found.base, closed: found.closed, fileSize: try opened.size(), position: nextPosition)
        seekedViaIndex = offset > 0
    }

    /// Opens segment `base`. One that is gone (a compaction removed it after it was listed)
    /// is `LogError.compacted` when the log now starts after `nextPosition`.
    private func openSegment(_ base: UInt64) throws -> any LogFile {
        do {
            return try reader.fileSystem.open(SegmentFiles.join(reader.directory, SegmentFiles.segmentName(base: base)), mode: .readOnly)
        } catch LogError.io(_, _, _, let code) where code == ENOENT {
            _ = try reader.segment(holding: nextPosition)  // throws `.compacted` when that is why
            throw LogError.io(operation: "open", path: SegmentFiles.join(reader.directory, SegmentFiles.segmentName(base: base)), offset: nil, errno: code)
        }
    }

    /// Moves to the next segment at the end of the current one; it must start at `nextPosition`.
    private func advanceSegment() throws {
        guard let found = try reader.segment(holding: nextPosition), found.base > segmentBase else {
            throw corrupt("the segment ends before published position \(nextPosition)")
        }
        guard found.base == nextPosition else {
            throw LogError.segmentGap(directory: reader.directory, segment: SegmentFiles.segmentName(base: found.base), expectedPosition: nextPosition, foundPosition: found.base)
        }
        file?.close()
        file = try openSegment(found.base)
        segmentBase = found.base
        segmentClosed = found.closed
        offset = 0
        seekedViaIndex = false
    }

    /// The next block, verified (header and block CRC, LZ4 frame, record framing), or nil when
    /// the cursor is at the reader's `lastPosition`. Only one block is held at a time.
    ///
    /// - Throws: `LogError.corruptBlock` if a published block is damaged, `.segmentGap` if
    ///   segment names do not match positions, `.io` on I/O failure.
    public func nextBlock() throws -> LogBlock? {
        try nextBlock(into: &raw)
    }

    /// `nextBlock()` decompressing into `buffer` (grown when needed) instead of the cursor's
    /// own buffer; the block shares `buffer`'s storage.
    func nextBlock(into buffer: inout [UInt8]) throws -> LogBlock? {
        guard let read = try nextCompressed(into: &compressed) else { return nil }
        let block = try read.expand(compressed, into: &buffer, with: decompressor)
        advance(past: read)
        return block
    }

    /// The first half of `nextBlock()`: finds the next block, reads its compressed body into
    /// `compressed` (grown when needed) and checks its header and checksum, without moving the
    /// cursor (``advance(past:)`` does). ``ReadBlock/expand(_:into:with:)``, the costly second
    /// half, needs nothing of the cursor, so the read-ahead runs it on any thread.
    func nextCompressed(into compressed: inout [UInt8]) throws -> ReadBlock? {
        guard nextPosition <= reader.lastPosition else { return nil }
        if file == nil { try seek() }
        // Bound: each round consumes one block or one segment, or falls back from the index once.
        while true {
            guard let file else { return nil }
            let got = try header.withUnsafeMutableBytes { try file.read(into: $0, at: offset) }
            if got == 0 && !seekedViaIndex {
                try advanceSegment()
                continue
            }
            let parsed: BlockHeader? = got == BlockHeader.size ? (try? header.withUnsafeBytes { try BlockHeader.parse($0).get() }) : nil
            guard let h = parsed, h.basePosition <= nextPosition else {
                if seekedViaIndex {
                    // The index is derived data: on any mismatch, scan headers from the start.
                    reader.dropIndex(segment: segmentBase)
                    seekedViaIndex = false
                    offset = 0
                    continue
                }
                if got < BlockHeader.size { throw corrupt("incomplete block header (\(got) bytes)") }
                if let h = parsed { throw corrupt("the block starts at position \(h.basePosition), leaving a gap") }
                let reason = header.withUnsafeBytes { bytes -> String in
                    if case let .failure(problem) = BlockHeader.parse(bytes) { return problem.reason }
                    return "invalid block header"
                }
                throw corrupt(reason)
            }
            seekedViaIndex = false
            if h.endPosition <= nextPosition {
                offset += h.blockBytes
                continue
            }
            return try readBody(h, file: file, into: &compressed)
        }
    }

    /// Moves the cursor past `read`, the block ``nextCompressed(into:)`` just returned.
    func advance(past read: ReadBlock) {
        offset += read.header.blockBytes
        nextPosition = read.header.endPosition
    }

    /// Makes `position` (the start of a block, or the position the cursor was made for) the
    /// next one read: the segment is found again through the block index on the next read.
    /// The read-ahead uses it to give back the blocks it read and did not deliver.
    func rewind(to position: UInt64) {
        guard position != nextPosition else { return }
        file?.close()
        file = nil
        nextPosition = position
    }

    private func readBody(_ h: BlockHeader, file: any LogFile, into compressed: inout [UInt8]) throws -> ReadBlock {
        let n = Int(h.compressedBytes)
        if compressed.count < n { compressed = [UInt8](repeating: 0, count: n) }
        let got = try compressed.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n]), at: offset + UInt64(BlockHeader.size)) }
        guard got == n else { throw corrupt("block body is short (\(got) of \(n) bytes)") }
        let crcOK = header.withUnsafeBytes { hb in
            compressed.withUnsafeBytes { cb in BlockHeader.verify(header: hb, body: UnsafeRawBufferPointer(rebasing: cb[0..<n]), expected: h.blockCRC) }
        }
        guard crcOK else { throw corrupt("block checksum mismatch") }
        return ReadBlock(header: h, position: nextPosition, directory: reader.directory, segment: segmentName, offset: offset)
    }
}

/// A block whose header and checksum passed and whose compressed body was read (into a buffer
/// kept apart), not yet decompressed: what ``LogCursor/nextCompressed(into:)`` returns.
struct ReadBlock: Sendable {
    let header: BlockHeader
    /// The first position the block yields (the cursor's position when it was read).
    let position: UInt64
    /// Where the block lies, for errors.
    let directory: String
    let segment: String
    let offset: UInt64

    private func corrupt(_ reason: String) -> LogError {
        .corruptBlock(directory: directory, segment: segment, offset: offset, position: position, reason: reason)
    }

    /// Decompresses the block from `compressed` (the buffer it was read into) into `raw` and
    /// checks its record framing: the block, sharing `raw`'s storage.
    ///
    /// - Throws: `LogError.corruptBlock` naming the block's segment, offset and position.
    func expand(_ compressed: [UInt8], into raw: inout [UInt8], with decompressor: LZ4Decompressor) throws -> LogBlock {
        let h = header
        let n = Int(h.compressedBytes)
        let rawBytes = Int(h.rawBytes)
        // Room for a whole LZ4 block past the expected size lets LZ4F decode a large block in
        // place (no copy through its own buffer); a small one gets just its size
        // (`outputCapacity`). The buffer is reused across blocks (grown when needed).
        // Decompression writes into it in place: a buffer still shared with a block the
        // caller kept is copied first (copy on write), never overwritten under it.
        let capacity = LZ4Decompressor.outputCapacity(forRawBytes: rawBytes) + 64
        if raw.count < capacity { raw = [UInt8](repeating: 0, count: capacity) }
        let problem = compressed.withUnsafeBytes { cb in
            raw.withUnsafeMutableBytes { rb in
                decompressor.decompress(UnsafeRawBufferPointer(rebasing: cb[0..<n]), into: rb, expected: rawBytes)
            }
        }
        if let problem { throw corrupt(problem) }
        let skip = Int(position - h.basePosition)
        let start = raw.withUnsafeBytes { rb in
            RecordFraming.validate(UnsafeRawBufferPointer(rebasing: rb[0..<rawBytes]), count: h.count, firstTs: h.firstTs, lastTs: h.lastTs, skip: skip)
        }
        switch start {
        case let .failure(bad): throw corrupt(bad.reason)
        case let .success(point):
            return LogBlock(basePosition: position, count: Int(h.count) - skip, lastTs: h.lastTs, bytes: raw,
                            rawBytes: rawBytes, startOffset: point.offset, startTs: point.ts)
        }
    }
}
