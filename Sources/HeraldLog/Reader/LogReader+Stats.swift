extension LogReader {
    /// Counts segments, blocks, records, raw and stored bytes and the timestamp range by
    /// reading block headers only (header CRC verified, bodies not read), up to `lastPosition`.
    ///
    /// - Throws: `LogError.corruptBlock` if a header inside the published range is damaged.
    public func stats() throws -> LogStats {
        let limit = lastPosition
        var stats = LogStats(segments: 0, blocks: 0, records: 0, rawBytes: 0, storedBytes: 0,
                             firstPosition: nil, lastPosition: nil, firstTs: nil, lastTs: nil)
        let bases = try SegmentListing.read(fileSystem, directory).bases
        stats.segments = bases.count
        for base in bases where base <= limit {
            let name = SegmentFiles.segmentName(base: base)
            let file = try fileSystem.open(SegmentFiles.join(directory, name), mode: .readOnly)
            defer { file.close() }
            var scanner = SegmentScanner(file: file, fileSize: try file.size())
            var offset: UInt64 = 0
            var next = base
            // Bound: each round consumes one block of at least 71 bytes.
            while next <= limit {
                switch try scanner.readBlock(at: offset, verifyBody: false) {
                case .end:
                    next = limit + 1
                    continue
                case let .bad(reason):
                    throw LogError.corruptBlock(directory: directory, segment: name, offset: offset, position: next, reason: reason)
                case let .ok(h):
                    guard h.basePosition == next else {
                        throw LogError.corruptBlock(directory: directory, segment: name, offset: offset, position: next, reason: "the block starts at position \(h.basePosition)")
                    }
                    stats.blocks += 1
                    stats.records += UInt64(h.count)
                    stats.rawBytes += UInt64(h.rawBytes)
                    stats.storedBytes += h.blockBytes
                    if stats.firstPosition == nil { stats.firstPosition = h.basePosition }
                    stats.lastPosition = h.lastPosition
                    if stats.firstTs == nil { stats.firstTs = h.firstTs }
                    stats.lastTs = h.lastTs
                    offset += h.blockBytes
                    next = h.endPosition
                }
            }
        }
        return stats
    }
}
