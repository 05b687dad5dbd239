/// What one recompression pass over the closed segments did (``LogWriter/recompressClosedSegments(level:shouldContinue:)``).
public struct RecompressionReport: Sendable, Equatable {
    /// Closed segments rewritten by this pass.
    public var rewritten: Int = 0
    /// Closed segments already at the level (their index says so), left as they are.
    public var alreadyAtLevel: Int = 0
    /// Closed segments left for a later pass (the pass was told to stop).
    public var remaining: Int = 0
    /// Bytes of the rewritten segments before and after.
    public var bytesBefore: UInt64 = 0
    public var bytesAfter: UInt64 = 0

    public init() {}
}

/// Rewrites a closed segment with another LZ4 compression level (LZ4-HC), block for block:
/// same positions, timestamps, flags, raw bytes and chain rules, so every reader and `lz4 -dc`
/// read it unchanged (Schema/log-format.md, "Recompression of closed segments").
///
/// The swap is crash-safe: the new segment is written beside the old one
/// (`<segment>.log.recompress`), synced, read back and checked block by block against the
/// old one's raw bytes, then renamed over it and the directory synced. A crash at any point
/// leaves the old segment or the new one under the segment's name, never neither, and a
/// leftover temporary file is removed by the next pass. The index follows by the same rename;
/// it is derived data, and a stale one only makes readers walk headers until the writer's
/// next open rewrites it.
enum SegmentRecompressor {
    static let temporarySuffix = ".recompress"
    /// Writes are gathered up to this many bytes.
    static let writeChunkBytes = 4 << 20

    /// Rewrites closed segment `base` at `level`; returns its sizes before and after (equal
    /// when no block got smaller: then only the index is marked).
    ///
    /// - Throws: `LogError.corruptBlock` when the segment is damaged or does not end with a
    ///   block that closes its append (nothing is changed), `.io` on I/O failure.
    static func recompress(_ fs: any LogFileSystem, directory: String, base: UInt64, previousTs: Int64,
                           level: Int32, shouldContinue: () -> Bool = { true }) throws -> (before: UInt64, after: UInt64) {
        let name = SegmentFiles.segmentName(base: base)
        let path = SegmentFiles.join(directory, name)
        let indexPath = SegmentFiles.join(directory, SegmentFiles.indexName(base: base))
        let temporary = path + temporarySuffix
        let temporaryIndex = indexPath + temporarySuffix
        try fs.remove(temporary)
        try fs.remove(temporaryIndex)

        let source = try fs.open(path, mode: .readOnly)
        defer { source.close() }
        let size = try source.size()
        let out = try fs.open(temporary, mode: .create)
        var rewritten: Rewrite
        do {
            try out.truncate(to: 0)
            rewritten = try rewrite(source, size: size, into: out, directory: directory, name: name, base: base,
                                    previousTs: previousTs, level: level, shouldContinue: shouldContinue)
            if rewritten.changed {
                try out.sync()
                try check(out, against: rewritten, directory: directory, name: name)
            }
            out.close()
        } catch {
            out.close()
            try? fs.remove(temporary)
            throw error
        }
        let index = BlockIndexFile.encodeAll(base: base, rewritten.entries, rewrittenLevel: UInt16(level))
        guard rewritten.changed else {
            try fs.remove(temporary)
            try Recovery.writeIndex(fs, path: indexPath, bytes: index)
            return (size, size)
        }
        try Recovery.writeIndex(fs, path: temporaryIndex, bytes: index)
        try fs.rename(temporary, to: path)
        try fs.syncDirectory(directory)
        try fs.rename(temporaryIndex, to: indexPath)
        return (size, rewritten.size)
    }

    /// The new segment as written: its index entries, each block's raw-bytes checksum.
    struct Rewrite {
        var entries: [IndexEntry] = []
        var rawCRCs: [UInt32] = []
        var size: UInt64 = 0
        /// At least one block got smaller.
        var changed = false
    }

    private static func corrupt(_ directory: String, _ name: String, _ offset: UInt64, _ position: UInt64, _ reason: String) -> LogError {
        .corruptBlock(directory: directory, segment: name, offset: offset, position: position, reason: reason)
    }

    /// Verifies every block of `source` as recovery does for a closed segment and writes it,
    /// recompressed when that makes it smaller, to `out`.
    /// Thrown when `shouldContinue` says stop in the middle of a segment (nothing is swapped).
    struct Stopped: Error {}

    private static func rewrite(_ source: any LogFile, size: UInt64, into out: any LogFile, directory: String, name: String,
                                base: UInt64, previousTs: Int64, level: Int32, shouldContinue: () -> Bool) throws -> Rewrite {
        var scanner = SegmentScanner(file: source, fileSize: size)
        let decompressor = LZ4Decompressor()
        var result = Rewrite()
        var raw: [UInt8] = []
        var packed: [UInt8] = []
        var pending: [UInt8] = []
        pending.reserveCapacity(writeChunkBytes + (1 << 20))
        var header = [UInt8](repeating: 0, count: BlockHeader.size)
        var offset: UInt64 = 0
        var next = base
        var lastCRC: UInt32 = 0
        var newLastCRC: UInt32 = 0
        var lastTs = previousTs
        var lastContinues = true
        func flush() throws {
            guard !pending.isEmpty else { return }
            try pending.withUnsafeBytes { try out.write($0, at: result.size - UInt64(pending.count)) }
            pending.removeAll(keepingCapacity: true)
        }
        // Bound: every valid block advances `offset` by at least its 71-byte minimum size.
        while true {
            if result.entries.count % 16 == 15, !shouldContinue() { throw Stopped() }
            let h: BlockHeader
            switch try scanner.readBlock(at: offset, verifyBody: true) {
            case .end:
                guard !result.entries.isEmpty, !lastContinues else {
                    throw corrupt(directory, name, offset, next, result.entries.isEmpty ? "a closed segment holds no block" : "the closed segment ends inside an append")
                }
                try flush()
                return result
            case let .bad(reason):
                throw corrupt(directory, name, offset, next, reason)
            case let .ok(value):
                h = value
            }
            guard h.basePosition == next else { throw corrupt(directory, name, offset, next, "the block holds positions from \(h.basePosition), out of sequence") }
            guard h.previousCRC == lastCRC else { throw corrupt(directory, name, offset, next, "the block does not chain to the previous block (previous-CRC mismatch)") }
            guard h.firstTs >= lastTs else { throw corrupt(directory, name, offset, next, "the block's first timestamp \(h.firstTs) is smaller than the previous timestamp \(lastTs)") }
            let rawBytes = Int(h.rawBytes)
            let stored = Int(h.compressedBytes)
            let capacity = LZ4Decompressor.outputCapacity(forRawBytes: rawBytes)
            if raw.count < capacity { raw = [UInt8](repeating: 0, count: capacity) }
            let problem = scanner.body.withUnsafeBytes { body in
                raw.withUnsafeMutableBytes { decompressor.decompress(UnsafeRawBufferPointer(rebasing: body[0..<stored]), into: $0, expected: rawBytes) }
            }
            if let problem { throw corrupt(directory, name, offset, next, problem) }
            let rawCRC = raw.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<rawBytes])) }
            let bound = LZ4Codec.bound(rawBytes: rawBytes, level: level)
            if packed.count < bound { packed = [UInt8](repeating: 0, count: bound) }
            let n = raw.withUnsafeBytes { src in
                packed.withUnsafeMutableBytes { LZ4Codec.compress(UnsafeRawBufferPointer(rebasing: src[0..<rawBytes]), into: $0, level: level) }
            }
            let smaller = n.map { $0 < stored } ?? false
            var block = h
            block.compressedBytes = UInt32(smaller ? n ?? stored : stored)
            block.previousCRC = newLastCRC
            let bodyCount = Int(block.compressedBytes)
            let crc = header.withUnsafeMutableBytes { hb -> UInt32 in
                block.encodePrefix(into: hb)
                let body = smaller ? packed : scanner.body
                let state = body.withUnsafeBytes { CRC32C.update(CRC32C.update(CRC32C.start, UnsafeRawBufferPointer(rebasing: hb[0..<56])), UnsafeRawBufferPointer(rebasing: $0[0..<bodyCount])) }
                let crc = CRC32C.finish(state)
                BlockHeader.seal(hb, blockCRC: crc)
                return crc
            }
            block.blockCRC = crc
            guard case .success(let reparsed) = header.withUnsafeBytes({ BlockHeader.parse($0) }), reparsed == block else {
                throw corrupt(directory, name, offset, next, "the rewritten block header does not parse back to the same fields")
            }
            result.entries.append(IndexEntry(header: block, offset: result.size))
            result.rawCRCs.append(rawCRC)
            result.changed = result.changed || smaller
            pending.append(contentsOf: header)
            if smaller { pending.append(contentsOf: packed[0..<bodyCount]) } else { pending.append(contentsOf: scanner.body[0..<bodyCount]) }
            result.size += block.blockBytes
            if pending.count >= writeChunkBytes { try flush() }
            lastCRC = h.blockCRC
            newLastCRC = crc
            lastTs = h.lastTs
            lastContinues = h.continues
            next = h.endPosition
            offset += h.blockBytes
        }
    }

    /// Reads the written segment back: every block where its entry says, its checksums, and
    /// its LZ4 frame decoding to the same raw bytes as the old block's; nothing after the last.
    private static func check(_ file: any LogFile, against rewrite: Rewrite, directory: String, name: String) throws {
        let size = try file.size()
        guard size == rewrite.size else {
            throw corrupt(directory, name + temporarySuffix, size, rewrite.entries.first?.basePosition ?? 0,
                          "the rewritten segment is \(size) bytes, \(rewrite.size) were written")
        }
        var scanner = SegmentScanner(file: file, fileSize: size)
        let decompressor = LZ4Decompressor()
        var raw: [UInt8] = []
        for (entry, rawCRC) in zip(rewrite.entries, rewrite.rawCRCs) {
            guard case let .ok(h) = try scanner.readBlock(at: entry.offset, verifyBody: true), IndexEntry(header: h, offset: entry.offset) == entry else {
                throw corrupt(directory, name + temporarySuffix, entry.offset, entry.basePosition, "the rewritten block does not read back as written")
            }
            let rawBytes = Int(h.rawBytes)
            let capacity = LZ4Decompressor.outputCapacity(forRawBytes: rawBytes)
            if raw.count < capacity { raw = [UInt8](repeating: 0, count: capacity) }
            let problem = scanner.body.withUnsafeBytes { body in
                raw.withUnsafeMutableBytes { decompressor.decompress(UnsafeRawBufferPointer(rebasing: body[0..<Int(h.compressedBytes)]), into: $0, expected: rawBytes) }
            }
            let same = problem == nil && raw.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<rawBytes])) } == rawCRC
            guard same else {
                throw corrupt(directory, name + temporarySuffix, entry.offset, entry.basePosition,
                              "the rewritten block does not decode to the original records\(problem.map { ": " + $0 } ?? "")")
            }
        }
    }
}

extension LogWriter {
    /// Rewrites every closed segment (all but the active one) with LZ4-HC at `level`, block
    /// for block (see Schema/log-format.md, "Recompression of closed segments"), while the
    /// writer goes on appending: the writer only ever writes its active segment, and holding
    /// the writer's lock means no other process rewrites these files.
    ///
    /// Segments whose index says they were rewritten at `level` are skipped. `shouldContinue`
    /// is asked before each segment; a pass told to stop leaves the rest for the next one.
    /// Readers in this and other processes go on reading during and after a swap (an open
    /// file keeps the old segment; a stale index only makes them walk headers).
    ///
    /// - Throws: `LogError.invalidConfiguration` for a level outside 3...12,
    ///   `.writerClosed` once the writer is closed, `.corruptBlock` when a closed segment is
    ///   damaged (it is left as it is), `.io` on I/O failure.
    public func recompressClosedSegments(level: Int32 = 9, shouldContinue: () -> Bool = { true }) throws -> RecompressionReport {
        guard (3...12).contains(level) else {
            throw LogError.invalidConfiguration(reason: "recompression level \(level) is outside 3...12 (LZ4-HC)")
        }
        var report = RecompressionReport()
        // Leftovers of a pass that was interrupted (a crash before its rename).
        for name in try fileSystem.contentsOfDirectory(directory).sorted() where name.hasSuffix(SegmentRecompressor.temporarySuffix) {
            try fileSystem.remove(SegmentFiles.join(directory, name))
        }
        let bases = try SegmentListing.read(fileSystem, directory).bases
        let reader = makeReader()
        var previousTs: Int64 = 0
        /// A damaged segment is left as it is and reported once the others are done.
        var refused: LogError?
        for (i, base) in bases.dropLast().enumerated() {
            try requireOpen()
            guard shouldContinue() else {
                report.remaining = bases.count - 1 - i
                return report
            }
            let indexPath = SegmentFiles.join(directory, SegmentFiles.indexName(base: base))
            if BlockIndexFile.rewrittenLevel(fileSystem, path: indexPath, base: base) == UInt16(level) {
                report.alreadyAtLevel += 1
            } else {
                let sizes: (before: UInt64, after: UInt64)
                do {
                    sizes = try SegmentRecompressor.recompress(fileSystem, directory: directory, base: base, previousTs: previousTs,
                                                               level: level, shouldContinue: shouldContinue)
                } catch is SegmentRecompressor.Stopped {
                    report.remaining = bases.count - 1 - i
                    return report
                } catch let error as LogError {
                    guard case .corruptBlock = error else { throw error }
                    if refused == nil { refused = error }
                    previousTs = 0  // unknown past a damaged segment: the next one checks its own chain
                    continue
                }
                report.rewritten += 1
                report.bytesBefore += sizes.before
                report.bytesAfter += sizes.after
            }
            previousTs = try reader.lastTimestamp(ofSegment: base)
        }
        if let refused { throw refused }
        return report
    }
}
