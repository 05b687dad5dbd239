/// Opening a log for writing: verify every segment, cut a torn tail, rebuild indexes.
enum Recovery {
    struct Opened {
        var report: RecoveryReport
        var active: ActiveSegment
        var lastTs: Int64
    }

    /// Verifies the whole log (see Schema/log-format.md, "Recovery") and returns the active
    /// segment positioned at its end.
    static func open(directory: String, fileSystem fs: any LogFileSystem) throws -> Opened {
        let bases = try SegmentFiles.list(fs, directory)
        guard let lastBase = bases.last else {
            let active = try createSegment(directory: directory, base: 1, fileSystem: fs)
            return Opened(report: RecoveryReport(segmentCount: 1, lastPosition: 0, truncation: nil, rebuiltIndexes: []), active: active, lastTs: 0)
        }
        var expected: UInt64 = 1
        var lastTs: Int64 = 0
        var truncation: RecoveryReport.Truncation?
        var rebuilt: [String] = []
        for base in bases {
            let name = SegmentFiles.segmentName(base: base)
            let isLast = base == lastBase
            guard base == expected else {
                throw LogError.segmentGap(directory: directory, segment: name, expectedPosition: expected, foundPosition: base)
            }
            let path = SegmentFiles.join(directory, name)
            let file = try fs.open(path, mode: isLast ? .readWrite : .readOnly)
            var keepOpen = false
            defer { if !keepOpen { file.close() } }
            let size = try file.size()
            var scanner = SegmentScanner(file: file, fileSize: size)
            var scan = try scanner.verifySegment(directory: directory, name: name, base: base, previousTs: lastTs)
            // Without damage the file ends at the last block or in a filler running to its end.
            var allocated = scan.bad == nil ? size : scan.validEnd
            if let bad = scan.bad, isLast, try unusedTail(file, from: bad.offset, size: size) {
                // Preallocated space whose filler header was not written yet: restore it.
                allocated = try restoreFiller(file, at: bad.offset, size: size)
                try file.sync()
                scan.bad = nil
            }
            if let bad = scan.bad {
                guard isLast else {
                    throw LogError.corruptBlock(directory: directory, segment: name, offset: bad.offset, position: scan.nextPosition,
                                                reason: "\(bad.reason), in a closed segment")
                }
                if let valid = try scanner.findValidBlock(after: bad.offset) {
                    throw LogError.corruptBlock(directory: directory, segment: name, offset: bad.offset, position: scan.nextPosition,
                                                reason: "\(bad.reason), and a valid block follows at byte offset \(valid), so this is not a torn tail")
                }
                try file.truncate(to: bad.offset)
                try file.sync()
                truncation = .init(segment: name, offset: bad.offset, bytesCut: size - bad.offset, reason: bad.reason)
            }
            if !isLast && scan.validEnd < size {
                // Only the active segment is preallocated; a closed one is cut to its last block.
                throw LogError.corruptBlock(directory: directory, segment: name, offset: scan.validEnd, position: scan.nextPosition,
                                            reason: "a closed segment continues after its last block")
            }
            if !isLast && scan.entries.isEmpty {
                throw LogError.corruptBlock(directory: directory, segment: name, offset: 0, position: base, reason: "a closed segment holds no blocks")
            }
            let indexName = SegmentFiles.indexName(base: base)
            let indexPath = SegmentFiles.join(directory, indexName)
            let loaded = BlockIndexFile.load(fs, path: indexPath, base: base, fileSize: scan.validEnd)
            let indexCurrent = loaded.complete && loaded.entries == scan.entries
            if !indexCurrent {
                try writeIndex(fs, path: indexPath, base: base, entries: scan.entries)
                rebuilt.append(indexName)
            }
            expected = scan.nextPosition
            lastTs = scan.lastTs
            if isLast {
                keepOpen = true
                let index = try fs.open(indexPath, mode: .readWrite)
                let active = ActiveSegment(base: base, file: file, index: index, size: scan.validEnd, allocated: allocated,
                                           lastCRC: scan.lastCRC, indexEntries: scan.entries.count)
                let report = RecoveryReport(segmentCount: bases.count, lastPosition: expected - 1, truncation: truncation, rebuiltIndexes: rebuilt)
                return Opened(report: report, active: active, lastTs: lastTs)
            }
        }
        preconditionFailure("the last segment returns from the loop")
    }

    /// True when the bytes from `offset` to the end are zeros, possibly behind a filler header
    /// (preallocated space, not data: a crash can leave a stale filler header or none at all).
    static func unusedTail(_ file: any LogFile, from offset: UInt64, size: UInt64) throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        var at = offset
        var first = true
        // Bound: each round reads up to 1 MiB until `size`.
        while at < size {
            let want = Int(min(size - at, UInt64(chunk.count)))
            let got = try chunk.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]), at: at) }
            guard got == want else { return false }
            let zero = chunk.withUnsafeBytes { raw -> Bool in
                var start = 0
                if first, want >= SegmentFiller.headerBytes, raw.u32(0) == SegmentFiller.frameMagic { start = SegmentFiller.headerBytes }
                // Word by word: a damaged file may end in gigabytes of zeros.
                var index = start
                while index + 8 <= want {
                    if raw.loadUnaligned(fromByteOffset: index, as: UInt64.self) != 0 { return false }
                    index += 8
                }
                while index < want {
                    if raw[index] != 0 { return false }
                    index += 1
                }
                return true
            }
            guard zero else { return false }
            first = false
            at += UInt64(want)
        }
        return true
    }

    /// Writes a filler header from `offset` to the end, or cuts the file there if fewer than 8
    /// bytes are left or more than one filler can describe (zeros only: nothing is lost).
    /// Returns the file's size afterwards.
    @discardableResult
    static func restoreFiller(_ file: any LogFile, at offset: UInt64, size: UInt64) throws -> UInt64 {
        let left = size - offset
        guard left >= UInt64(SegmentFiller.headerBytes), left <= SegmentFiller.maxBytes else {
            try file.truncate(to: offset)
            return offset
        }
        var header = [UInt8](repeating: 0, count: SegmentFiller.headerBytes)
        header.withUnsafeMutableBytes { SegmentFiller.encodeHeader(totalBytes: left, into: $0) }
        try header.withUnsafeBytes { try file.write($0, at: offset) }
        return size
    }

    /// Rewrites an index file from scratch (derived data: not synced).
    static func writeIndex(_ fs: any LogFileSystem, path: String, base: UInt64, entries: [IndexEntry]) throws {
        let file = try fs.open(path, mode: .create)
        defer { file.close() }
        let bytes = BlockIndexFile.encodeAll(base: base, entries)
        try file.truncate(to: 0)
        try bytes.withUnsafeBytes { try file.write($0, at: 0) }
    }

    /// Creates an empty segment and its index, syncing the segment and the directory.
    static func createSegment(directory: String, base: UInt64, fileSystem fs: any LogFileSystem) throws -> ActiveSegment {
        let path = SegmentFiles.join(directory, SegmentFiles.segmentName(base: base))
        let file = try fs.open(path, mode: .create)
        do {
            try file.truncate(to: 0)
            let indexPath = SegmentFiles.join(directory, SegmentFiles.indexName(base: base))
            try writeIndex(fs, path: indexPath, base: base, entries: [])
            let index = try fs.open(indexPath, mode: .readWrite)
            try file.sync()
            try fs.syncDirectory(directory)
            return ActiveSegment(base: base, file: file, index: index, size: 0, allocated: 0, lastCRC: 0, indexEntries: 0)
        } catch {
            file.close()
            throw error
        }
    }
}
