/// Reads block headers (and optionally verifies whole blocks) of one segment file.
/// Never traps on hostile bytes: every size read from disk is checked against the file size.
struct SegmentScanner {
    enum BlockRead {
        /// `offset` is exactly the end of the file, or the start of the preallocated filler
        /// that runs to it (``SegmentFiller``).
        case end
        /// The bytes at `offset` are not a valid block (the reason says why).
        case bad(String)
        /// A valid block.
        case ok(BlockHeader)
    }

    let file: any LogFile
    let fileSize: UInt64
    private var header = [UInt8](repeating: 0, count: BlockHeader.size)
    private(set) var body: [UInt8] = []

    init(file: any LogFile, fileSize: UInt64) {
        self.file = file
        self.fileSize = fileSize
    }

    /// Reads the block at `offset`. With `verifyBody`, reads its LZ4 frame into `body` and checks
    /// the block CRC; otherwise only the header CRC is checked.
    mutating func readBlock(at offset: UInt64, verifyBody: Bool) throws -> BlockRead {
        if offset == fileSize { return .end }
        guard offset < fileSize else { return .bad("offset past end of file") }
        let left = fileSize - offset
        let want = Int(min(left, UInt64(BlockHeader.size)))
        let got = try header.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]), at: offset) }
        if header.withUnsafeBytes({ SegmentFiller.isFiller(UnsafeRawBufferPointer(rebasing: $0[0..<got]), left: left) }) { return .end }
        guard left >= UInt64(BlockHeader.size) else { return .bad("incomplete block header (\(left) of \(BlockHeader.size) bytes)") }
        guard got == BlockHeader.size else { return .bad("incomplete block header (\(got) of \(BlockHeader.size) bytes)") }
        let parsed = header.withUnsafeBytes { BlockHeader.parse($0) }
        let h: BlockHeader
        switch parsed {
        case let .failure(problem): return .bad(problem.reason)
        case let .success(value): h = value
        }
        guard h.blockBytes <= left else { return .bad("block of \(h.blockBytes) bytes runs past the end of the file (\(left) bytes left)") }
        if verifyBody {
            let n = Int(h.compressedBytes)
            if body.count < n { body = [UInt8](repeating: 0, count: n) }
            let read = try body.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<n]), at: offset + UInt64(BlockHeader.size)) }
            guard read == n else { return .bad("block body is short (\(read) of \(n) bytes)") }
            let ok = header.withUnsafeBytes { hb in
                body.withUnsafeBytes { bb in BlockHeader.verify(header: hb, body: UnsafeRawBufferPointer(rebasing: bb[0..<n]), expected: h.blockCRC) }
            }
            guard ok else { return .bad("block checksum mismatch") }
        }
        return .ok(h)
    }

    /// The offset of the first fully valid block that starts after `offset`, or nil.
    /// Used to tell a torn tail (nothing valid follows) from corruption in the middle.
    mutating func findValidBlock(after offset: UInt64) throws -> UInt64? {
        let magic: [UInt8] = [0x5B, 0x2A, 0x4D, 0x18]
        // Up to 1 MiB at a time, no more than is left (a tail is usually a few bytes).
        let chunkBytes = Int(min(UInt64(1 << 20), fileSize > offset ? fileSize - offset : 0))
        guard chunkBytes >= BlockHeader.size else { return nil }
        var chunk = [UInt8](repeating: 0, count: chunkBytes)
        var start = offset + 1
        // Bound: each round advances `start` by at least chunkBytes - 3 until the end of file.
        while start + UInt64(BlockHeader.size) <= fileSize {
            let n = try chunk.withUnsafeMutableBytes { try file.read(into: $0, at: start) }
            guard n >= 4 else { return nil }
            var candidates: [UInt64] = []
            chunk.withUnsafeBytes { raw in
                var i = 0
                while i + 4 <= n {
                    if raw[i] == magic[0] && raw[i + 1] == magic[1] && raw[i + 2] == magic[2] && raw[i + 3] == magic[3] {
                        candidates.append(start + UInt64(i))
                    }
                    i += 1
                }
            }
            for candidate in candidates {
                if case .ok = try readBlock(at: candidate, verifyBody: true) { return candidate }
            }
            guard n > 3 else { return nil }
            start += UInt64(n - 3)
            if n < chunkBytes { break }
        }
        return nil
    }
}

/// The end of the last block that closes its append (no `continues` flag): where the
/// segment's committed content ends. Blocks after it belong to an append still being written,
/// or, after a crash, to one that never completed.
struct CommitPoint: Equatable, Sendable {
    var offset: UInt64 = 0
    var nextPosition: UInt64
    var lastTs: Int64
    var lastCRC: UInt32 = 0
    /// Index entries up to the commit point.
    var entries: Int = 0
}

/// The result of verifying a segment's blocks.
struct SegmentScan {
    var entries: [IndexEntry] = []
    /// End of the last valid block.
    var validEnd: UInt64 = 0
    var lastCRC: UInt32 = 0
    var lastTs: Int64
    var nextPosition: UInt64
    /// The last block of the scan had the `continues` flag.
    var lastContinues = false
    /// Where the committed blocks end (equal to the scan's end unless an append is open).
    var committed: CommitPoint
    /// The block at `committed` continues an append (the watermark covers it, its closing
    /// block is missing or damaged).
    var committedContinues = false
    /// Where the last block that closes its append ends (≤ `committed`).
    var closed: CommitPoint
    /// First bad byte range start and why, if the segment does not end cleanly.
    var bad: (offset: UInt64, reason: String)?
    /// The durable watermark: a block whose positions it covers belongs to an append that was
    /// acknowledged, hence completed, so it counts as committed even with `continues` set
    /// (damage to an append's closing block must not hide the blocks before it).
    var watermark: UInt64 = 0

    /// A scan that starts at `offset` of a segment, after a block ending there (or at the start
    /// of a segment: offset 0, `lastCRC` 0).
    init(offset: UInt64 = 0, nextPosition: UInt64, lastTs: Int64, lastCRC: UInt32 = 0, entries: Int = 0, watermark: UInt64 = 0) {
        self.watermark = watermark
        self.validEnd = offset
        self.lastCRC = lastCRC
        self.lastTs = lastTs
        self.nextPosition = nextPosition
        self.committed = CommitPoint(offset: offset, nextPosition: nextPosition, lastTs: lastTs, lastCRC: lastCRC, entries: entries)
        self.closed = committed
    }

    /// Positions in blocks after the commit point (an open or abandoned append), if any.
    var uncommittedPositions: ClosedRange<UInt64>? {
        nextPosition > committed.nextPosition ? committed.nextPosition...(nextPosition - 1) : nil
    }
}

extension SegmentScanner {
    /// Verifies every block of a segment in order: header and block CRC, the previous-CRC chain,
    /// positions contiguous from `base`, timestamps not decreasing from `previousTs`. Stops at
    /// the first block that fails a checksum or structure check (`bad`). A block whose checksums
    /// are valid but whose content contradicts the chain throws `corruptBlock` right away.
    mutating func verifySegment(directory: String, name: String, base: UInt64, previousTs: Int64, watermark: UInt64 = 0) throws -> SegmentScan {
        var scan = SegmentScan(nextPosition: base, lastTs: previousTs, watermark: watermark)
        try verifyBlocks(&scan, directory: directory, name: name, collectEntries: true)
        return scan
    }

    /// Goes on verifying blocks from the end of `scan` (see ``verifySegment``): the one walk
    /// the writer's recovery and every reader share. `collectEntries`: keep an index entry per
    /// block (recovery compares them with the index file).
    mutating func verifyBlocks(_ scan: inout SegmentScan, directory: String, name: String, collectEntries: Bool) throws {
        var offset = scan.validEnd
        scan.bad = nil
        // Bound: every valid block advances `offset` by at least its 71-byte minimum size.
        while true {
            switch try readBlock(at: offset, verifyBody: true) {
            case .end:
                scan.validEnd = offset
                return
            case let .bad(reason):
                scan.validEnd = offset
                scan.bad = (offset, reason)
                return
            case let .ok(h):
                func refuse(_ why: String) -> LogError {
                    .corruptBlock(directory: directory, segment: name, offset: offset, position: scan.nextPosition, reason: why)
                }
                guard h.basePosition == scan.nextPosition else { throw refuse("the block holds positions from \(h.basePosition), out of sequence") }
                guard h.previousCRC == scan.lastCRC else { throw refuse("the block does not chain to the previous block (previous-CRC mismatch)") }
                guard h.firstTs >= scan.lastTs else { throw refuse("the block's first timestamp \(h.firstTs) is smaller than the previous timestamp \(scan.lastTs)") }
                if collectEntries { scan.entries.append(IndexEntry(header: h, offset: offset)) }
                scan.lastCRC = h.blockCRC
                scan.lastTs = h.lastTs
                scan.nextPosition = h.endPosition
                scan.lastContinues = h.continues
                offset += h.blockBytes
                scan.validEnd = offset
                if !h.continues || h.lastPosition <= scan.watermark {
                    scan.committed = CommitPoint(offset: offset, nextPosition: h.endPosition, lastTs: h.lastTs, lastCRC: h.blockCRC,
                                                 entries: scan.entries.count)
                    scan.committedContinues = h.continues
                    if !h.continues { scan.closed = scan.committed }
                }
            }
        }
    }
}
