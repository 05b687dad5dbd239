#if canImport(Glibc)
import Glibc
#endif

/// Opening a log for writing: verify every segment, cut a torn tail or an append that never
/// completed (quarantining the bytes), refuse to lose acknowledged records, rebuild indexes.
///
/// `analyze` is the read-only half, and the verdict every reader shares: `herald verify` runs
/// it as it is, and `LogReader.refresh()` applies the same tail rules to the last segment.
enum Recovery {
    struct Opened {
        var report: RecoveryReport
        var active: ActiveSegment
        var lastTs: Int64
        var watermark: WatermarkFile
    }

    /// What recovery finds in a log directory, before it changes anything.
    struct Plan {
        /// Segment bases, ascending.
        var bases: [UInt64] = []
        /// The verified blocks of each segment (the last one's up to its valid end).
        var entries: [[IndexEntry]] = []
        /// The last segment's scan (nil for a log with no segment).
        var last: SegmentScan?
        var lastSize: UInt64 = 0
        /// What follows the last segment's valid blocks.
        var tail: SegmentTail = .clean
        /// What a writer cuts from the end of the last segment, if anything.
        var damage: TailDamage?
        /// The durable watermark (nil: no watermark file).
        var watermark: DurableWatermark?
        /// The log's first position (1, or its snapshot's start) and that snapshot.
        var start: UInt64 = 1
        var snapshot: LogSnapshot?

        /// The last committed position.
        var lastPosition: UInt64 { (last?.committed.nextPosition).map { $0 - 1 } ?? 0 }

        /// Acknowledged positions the log no longer holds (it ends before the watermark).
        var acknowledgedLoss: ClosedRange<UInt64>? {
            guard let watermark, watermark.position > lastPosition else { return nil }
            return (lastPosition + 1)...watermark.position
        }
    }

    /// Verifies the whole log read-only and says what a writer would do (Schema/log-format.md,
    /// "Recovery"). `writerActive`: another process is appending (`herald verify` while `run`
    /// works), so an open append or a torn write after the watermark is work in progress.
    ///
    /// - Throws: `LogError.corruptBlock` / `.segmentGap` for damage that is never cut (in a
    ///   closed segment, or followed by a valid block), `.damagedWatermark`.
    static func analyze(directory: String, fileSystem fs: any LogFileSystem, writerActive: Bool = false) throws -> Plan {
        var plan = Plan()
        // The watermark first: whatever a writer appends after this read is past it.
        plan.watermark = try DurableWatermark.load(fs, directory: directory)
        let listing = try SegmentListing.read(fs, directory)  // no log directory yet: an empty log
        let bases = listing.bases
        plan.bases = bases
        plan.start = listing.start
        if listing.start > 1 {
            plan.snapshot = try LogSnapshotFile.load(fs, directory: directory, start: listing.start)
        }
        guard let firstBase = bases.first, let lastBase = bases.last else {
            if listing.start > 1 {
                throw LogError.segmentGap(directory: directory, segment: "(none)", expectedPosition: listing.start, foundPosition: 0)
            }
            return plan
        }
        // A compacted log begins with the segment that holds its first position.
        var expected: UInt64 = listing.start > 1 && firstBase <= listing.start ? firstBase : 1
        var lastTs: Int64 = 0
        if listing.start > 1, firstBase > listing.start {
            throw LogError.segmentGap(directory: directory, segment: SegmentFiles.segmentName(base: firstBase), expectedPosition: listing.start, foundPosition: firstBase)
        }
        for base in bases {
            let name = SegmentFiles.segmentName(base: base)
            let isLast = base == lastBase
            guard base == expected else {
                throw LogError.segmentGap(directory: directory, segment: name, expectedPosition: expected, foundPosition: base)
            }
            let file = try fs.open(SegmentFiles.join(directory, name), mode: .readOnly)
            defer { file.close() }
            let size = try file.size()
            var scanner = SegmentScanner(file: file, fileSize: size)
            let watermark = plan.watermark?.position ?? 0
            var scan = try scanner.verifySegment(directory: directory, name: name, base: base, previousTs: lastTs, watermark: watermark)
            var tail = try scanner.classifyTail(scan, hasWatermark: plan.watermark != nil)
            if case .corrupt = tail, writerActive, isLast {
                // A block being written when it was read, and the next one since: read again.
                scanner = SegmentScanner(file: file, fileSize: try file.size())
                scan = try scanner.verifySegment(directory: directory, name: name, base: base, previousTs: lastTs, watermark: watermark)
                tail = try scanner.classifyTail(scan, hasWatermark: plan.watermark != nil)
            }
            if case let .corrupt(reason, valid) = tail {
                throw LogError.corruptBlock(directory: directory, segment: name, offset: scan.validEnd, position: scan.nextPosition,
                                            reason: "\(reason), and a valid block follows at byte offset \(valid), so this is not a torn tail")
            }
            if !isLast {
                if let bad = scan.bad {
                    throw LogError.corruptBlock(directory: directory, segment: name, offset: bad.offset, position: scan.nextPosition,
                                                reason: "\(bad.reason), in a closed segment")
                }
                if scan.validEnd < size {
                    // Only the active segment is preallocated; a closed one is cut to its last block.
                    throw LogError.corruptBlock(directory: directory, segment: name, offset: scan.validEnd, position: scan.nextPosition,
                                                reason: "a closed segment continues after its last block")
                }
                if scan.entries.isEmpty {
                    throw LogError.corruptBlock(directory: directory, segment: name, offset: 0, position: base, reason: "a closed segment holds no blocks")
                }
                if scan.lastContinues {
                    throw LogError.corruptBlock(directory: directory, segment: name, offset: scan.committed.offset, position: scan.committed.nextPosition,
                                                reason: "a closed segment ends inside an append (its last block continues), which a writer never does")
                }
            }
            plan.entries.append(scan.entries)
            expected = scan.nextPosition
            lastTs = scan.lastTs
            if isLast {
                plan.last = scan
                plan.lastSize = size
                plan.tail = tail
                plan.damage = try damage(of: scan, tail: tail, name: name, scanner: &scanner, size: size, watermark: plan.watermark)
                if writerActive, let damage = plan.damage, damage.firstPosition > (plan.watermark?.position ?? 0) {
                    // Past the watermark, with the writer at work: an append in progress.
                    plan.damage = nil
                }
            }
        }
        if plan.lastPosition + 1 < plan.start, plan.acknowledgedLoss == nil {
            throw LogError.damagedSnapshot(path: SegmentFiles.join(directory, LogSnapshotFile.name(start: plan.start)),
                                           reason: "it starts the log at position \(plan.start), but the log ends at position \(plan.lastPosition)")
        }
        return plan
    }

    /// The damage a writer cuts at the end of the last segment: from the last committed block
    /// to the end of the file, when blocks of an open append or torn bytes are there.
    static func damage(of scan: SegmentScan, tail: SegmentTail, name: String, scanner: inout SegmentScanner,
                               size: UInt64, watermark: DurableWatermark?) throws -> TailDamage? {
        let uncommitted = scan.uncommittedPositions
        var claimed = uncommitted?.upperBound
        let kind: TailDamage.Kind
        let reason: String
        switch tail {
        case let .torn(why):
            kind = .tornTail
            reason = uncommitted == nil ? why : "\(why), after blocks of an append that never completed"
            if let bad = scan.bad, let last = try scanner.claimedLastPosition(at: bad.offset), last >= scan.nextPosition, last - scan.nextPosition < 1 << 32 {
                claimed = max(claimed ?? 0, last)
            }
        case .clean, .zeros:
            guard uncommitted != nil else { return nil }
            kind = .uncommittedAppend
            reason = "the append's last block was never written"
        case .corrupt:
            return nil
        }
        if let watermark, watermark.position >= scan.committed.nextPosition {
            claimed = max(claimed ?? 0, watermark.position)
        }
        let end = kind == .tornTail ? size : scan.validEnd
        return TailDamage(kind: kind, segment: name, offset: scan.committed.offset, bytes: end - scan.committed.offset,
                          firstPosition: scan.committed.nextPosition, lastPosition: claimed, reason: reason)
    }

    /// Verifies the whole log and returns the active segment positioned at its end, cutting
    /// (into quarantine) a torn tail or an append that never completed.
    ///
    /// - Throws: as ``analyze(directory:fileSystem:writerActive:)``, and
    ///   `LogError.acknowledgedDamaged` when the log ends before its durable watermark, unless
    ///   `acceptLoss`.
    static func open(directory: String, fileSystem fs: any LogFileSystem, acceptLoss: Bool = false) throws -> Opened {
        let plan = try analyze(directory: directory, fileSystem: fs)
        if let lost = plan.acknowledgedLoss, !acceptLoss {
            let damage = plan.damage
            let segment = damage?.segment ?? plan.bases.last.map(SegmentFiles.segmentName(base:)) ?? "(none)"
            throw LogError.acknowledgedDamaged(directory: directory, segment: segment, offset: damage?.offset ?? plan.last?.validEnd ?? 0,
                                               firstPosition: lost.lowerBound, lastPosition: lost.upperBound,
                                               reason: damage?.reason ?? "the log ends at position \(plan.lastPosition)")
        }
        guard let lastBase = plan.bases.last, let last = plan.last else {
            let active = try createSegment(directory: directory, base: 1, fileSystem: fs)
            let watermark = try WatermarkFile.open(fs, directory: directory, loaded: plan.watermark)
            if let lost = plan.acknowledgedLoss {
                try RecoveryJournal.append(fs, directory: directory, RecoveryReport.Truncation(
                    segment: "(none)", offset: 0, bytesCut: 0, reason: "the log has no segment", kind: .tornTail,
                    firstPosition: lost.lowerBound, lastPosition: lost.upperBound, acknowledgedLoss: true))
                try watermark.write(0)
                try watermark.sync()
            }
            return Opened(report: RecoveryReport(segmentCount: 1, lastPosition: 0, truncation: nil, rebuiltIndexes: []),
                          active: active, lastTs: 0, watermark: watermark)
        }
        var rebuilt: [String] = []
        for (index, base) in plan.bases.enumerated() where base != lastBase {
            if try refreshIndex(fs, directory: directory, base: base, entries: plan.entries[index], fileSize: nil) { rebuilt.append(SegmentFiles.indexName(base: base)) }
        }
        let name = SegmentFiles.segmentName(base: lastBase)
        let file = try fs.open(SegmentFiles.join(directory, name), mode: .readWrite)
        var keepOpen = false
        defer { if !keepOpen { file.close() } }
        let watermark = try WatermarkFile.open(fs, directory: directory, loaded: plan.watermark)
        defer { if !keepOpen { watermark.close() } }
        var allocated = plan.lastSize
        var truncation: RecoveryReport.Truncation?
        // Where the log will end. An accepted loss cuts back to the last block that closes its
        // append: an append (an import) is in the log whole or not at all, even when the damage
        // took only its end (what is cut is reported; the import can simply be run again).
        var end = last.committed
        if plan.acknowledgedLoss != nil, last.closed.offset < end.offset { end = last.closed }
        if plan.damage != nil || end.offset < last.committed.offset || plan.acknowledgedLoss != nil {
            let acknowledged = plan.acknowledgedLoss != nil
            let damage = plan.damage
            var lastCut = damage?.lastPosition
            if let lost = plan.acknowledgedLoss { lastCut = max(lastCut ?? 0, lost.upperBound) }
            if end.nextPosition < last.nextPosition { lastCut = max(lastCut ?? 0, last.nextPosition - 1) }
            let cutEnd = damage == nil ? last.validEnd : plan.lastSize
            let reason = damage?.reason ?? "the log ends at position \(plan.lastPosition)"
            var cut = RecoveryReport.Truncation(segment: name, offset: end.offset, bytesCut: cutEnd - end.offset, reason: reason,
                                                kind: damage?.kind ?? .tornTail, firstPosition: end.nextPosition, lastPosition: lastCut,
                                                acknowledgedLoss: acknowledged)
            // In this order, each step synced before the next, so a crash anywhere repeats the
            // same recovery: the bytes are kept, the cut is on record, the watermark comes down
            // to the new end (an accepted loss), and only then is the segment cut.
            if cutEnd > end.offset {
                cut.quarantine = try self.quarantine(fs, directory: directory, file: file, name: name, from: end.offset, to: cutEnd)
            }
            try RecoveryJournal.append(fs, directory: directory, cut)
            if acknowledged {
                try watermark.write(end.nextPosition - 1)
                try watermark.sync()
            }
            if cutEnd > end.offset {
                try file.truncate(to: end.offset)
                try file.sync()
                allocated = end.offset
                truncation = cut
            } else if acknowledged {
                truncation = cut
            }
        } else if plan.tail == .zeros, let bad = last.bad {
            // Preallocated space whose filler header was not written yet: restore it.
            allocated = try restoreFiller(file, at: bad.offset, size: plan.lastSize)
            try file.sync()
        }
        let entries = Array(last.entries.prefix(end.entries))
        if try refreshIndex(fs, directory: directory, base: lastBase, entries: entries, fileSize: end.offset) {
            rebuilt.append(SegmentFiles.indexName(base: lastBase))
        }
        // Otherwise the watermark stays where it was: what the last writer wrote after its last
        // sync may still be only in the page cache (`.interval`, `.none`), and this writer's
        // first sync covers it.
        let index = try fs.open(SegmentFiles.join(directory, SegmentFiles.indexName(base: lastBase)), mode: .readWrite)
        keepOpen = true
        // The log may end in a block that continues an append the watermark covers (its closing
        // block was damaged and is cut): no roll before this writer closes an append.
        let endContinues = end.entries > 0 && end.offset == last.committed.offset && last.committedContinues
        let active = ActiveSegment(base: lastBase, file: file, index: index, size: end.offset, allocated: max(allocated, end.offset),
                                   lastCRC: end.lastCRC, indexEntries: entries.count, lastContinues: endContinues)
        let report = RecoveryReport(segmentCount: plan.bases.count, lastPosition: end.nextPosition - 1, truncation: truncation, rebuiltIndexes: rebuilt)
        return Opened(report: report, active: active, lastTs: max(end.lastTs, plan.snapshot?.lastTs ?? 0), watermark: watermark)
    }

    /// Rewrites a segment's index file when it is not exactly `entries`; true if it did.
    private static func refreshIndex(_ fs: any LogFileSystem, directory: String, base: UInt64, entries: [IndexEntry], fileSize: UInt64?) throws -> Bool {
        let path = SegmentFiles.join(directory, SegmentFiles.indexName(base: base))
        let size = fileSize ?? entries.last?.endOffset ?? 0
        let loaded = BlockIndexFile.load(fs, path: path, base: base, fileSize: size)
        if loaded.complete && loaded.entries == entries { return false }
        try writeIndex(fs, path: path, base: base, entries: entries)
        return true
    }

    /// Copies the bytes `from..<to` of a segment, exactly, into a new file under `quarantine/`,
    /// synced with its directory before anything is cut. Returns its path relative to the log
    /// directory.
    static func quarantine(_ fs: any LogFileSystem, directory: String, file: any LogFile, name: String, from: UInt64, to: UInt64) throws -> String {
        let folder = SegmentFiles.join(directory, "quarantine")
        try fs.createDirectory(folder)
        let existing = Set(try fs.contentsOfDirectory(folder))
        let stem = "\(name).\(from)"
        var fileName = stem + ".cut"
        var counter = 1
        // Bound: one round per earlier cut at the same offset.
        while existing.contains(fileName) {
            counter += 1
            fileName = "\(stem).\(counter).cut"
        }
        let out = try fs.open(SegmentFiles.join(folder, fileName), mode: .create)
        defer { out.close() }
        var chunk = [UInt8](repeating: 0, count: Int(min(UInt64(1 << 20), to > from ? to - from : 0)))
        var at = from
        // Bound: each round copies up to 1 MiB until `to`.
        while at < to {
            let want = Int(min(to - at, UInt64(chunk.count)))
            let got = try chunk.withUnsafeMutableBytes { try file.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]), at: at) }
            guard got > 0 else { break }
            try chunk.withUnsafeBytes { try out.write(UnsafeRawBufferPointer(rebasing: $0[0..<got]), at: at - from) }
            at += UInt64(got)
        }
        try out.truncate(to: at - from)
        try out.sync()
        try fs.syncDirectory(folder)
        try fs.syncDirectory(directory)
        return "quarantine/" + fileName
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
        try writeIndex(fs, path: path, bytes: BlockIndexFile.encodeAll(base: base, entries))
    }

    /// Writes an encoded index file from scratch (not synced).
    static func writeIndex(_ fs: any LogFileSystem, path: String, bytes: [UInt8]) throws {
        let file = try fs.open(path, mode: .create)
        defer { file.close() }
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

/// `recovery.jsonl` in the log directory: one JSON line per cut recovery made, so what was
/// cut stays on record beside the log (positions, bytes, reason, quarantine file).
enum RecoveryJournal {
    static let fileName = "recovery.jsonl"

    static func append(_ fs: any LogFileSystem, directory: String, _ cut: RecoveryReport.Truncation) throws {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let millis = Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
        var line = "{\"time_ms\":\(millis),\"kind\":\"\(cut.kind.rawValue)\",\"segment\":\"\(cut.segment)\",\"offset\":\(cut.offset),"
        line += "\"bytes\":\(cut.bytesCut),\"first_position\":\(cut.firstPosition),\"last_position\":\(cut.lastPosition.map(String.init) ?? "null"),"
        line += "\"acknowledged_loss\":\(cut.acknowledgedLoss),\"reason\":\(jsonString(cut.reason)),\"quarantine\":\(cut.quarantine.map(jsonString) ?? "null")}\n"
        let path = SegmentFiles.join(directory, fileName)
        let file = try fs.open(path, mode: .create)
        defer { file.close() }
        let end = try file.size()
        try Array(line.utf8).withUnsafeBytes { try file.write($0, at: end) }
        try file.sync()
        if end == 0 { try fs.syncDirectory(directory) }
    }

    static func jsonString(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
