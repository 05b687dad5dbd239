/// What follows the last valid block of a segment: the one reading of a segment's end that
/// the writer's recovery and every reader share (Schema/log-format.md, "Recovery").
enum SegmentTail: Equatable, Sendable {
    /// The file ends after the last valid block, or in a filler that runs to its end.
    case clean
    /// Zeros, behind a stale filler header or none: preallocated space a crash left without
    /// its filler header. Not data, nothing is lost.
    case zeros
    /// Bytes that are no valid block, and no valid block follows them: a torn (or damaged)
    /// tail. `reason` says why the first of them is not a block.
    case torn(reason: String)
    /// Bytes that are no valid block, followed by a valid block at `validBlockAt`: damage in
    /// the middle of the log, never a torn tail.
    case corrupt(reason: String, validBlockAt: UInt64)
}

extension SegmentScanner {
    /// Classifies the bytes after `scan`'s last valid block.
    ///
    /// A valid block after damaged bytes proves damage in the middle of the log only where
    /// the log was durable: when the damaged position or the valid block's is at or below the
    /// durable watermark (`scan.watermark`), or the log has no watermark file
    /// (`hasWatermark` false: a log written before it, judged as it always was). Past the
    /// watermark nothing was synced yet, and a power loss may keep a later block of an unsynced
    /// commit while losing an earlier one (pages reach the disk in any order): that is a torn
    /// tail, cut whole into quarantine, never a log no one can open.
    mutating func classifyTail(_ scan: SegmentScan, hasWatermark: Bool) throws -> SegmentTail {
        guard let bad = scan.bad else { return .clean }
        if try SegmentScanner.isUnused(file, from: bad.offset, size: fileSize) { return .zeros }
        if let valid = try findValidBlock(after: bad.offset) {
            let validPosition: UInt64
            if case let .ok(h) = try readBlock(at: valid, verifyBody: false) { validPosition = h.basePosition } else { validPosition = 0 }
            let durable = !hasWatermark || scan.nextPosition <= scan.watermark || validPosition <= scan.watermark
            if durable { return .corrupt(reason: bad.reason, validBlockAt: valid) }
            return .torn(reason: "\(bad.reason), and the blocks after it were never synced")
        }
        return .torn(reason: bad.reason)
    }

    /// The last position the block header at `offset` claims, when the header itself is intact
    /// (its body may be what is damaged); nil otherwise.
    mutating func claimedLastPosition(at offset: UInt64) throws -> UInt64? {
        if case let .ok(h) = try readBlock(at: offset, verifyBody: false) { return h.lastPosition }
        return nil
    }

    /// True when the bytes from `offset` to `size` are zeros, possibly behind a filler header
    /// (preallocated space, not data: a crash can leave a stale filler header or none at all).
    static func isUnused(_ file: any LogFile, from offset: UInt64, size: UInt64) throws -> Bool {
        guard offset <= size else { return false }  // the file is shorter than what was read before
        var chunk = [UInt8](repeating: 0, count: Int(min(UInt64(1 << 20), size - offset)))
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
}

/// Damage at the end of the log that a writer cuts (moving the bytes to quarantine) and every
/// reader reports as a warning: a torn tail, or blocks of an append that never completed.
public struct TailDamage: Sendable, Equatable, CustomStringConvertible {
    /// What the cut bytes are.
    public enum Kind: String, Sendable, Equatable {
        /// Bytes that are no valid block and no valid block follows (a write torn by a crash,
        /// or damage to the last block).
        case tornTail = "torn-tail"
        /// Valid blocks of a multi-block append (an import) whose closing block was never
        /// written: the append is not part of the log.
        case uncommittedAppend = "uncommitted-append"
    }
    public var kind: Kind
    /// The segment file name.
    public var segment: String
    /// Where the damage starts: the end of the last committed block.
    public var offset: UInt64
    /// Bytes from `offset` to the end of the file.
    public var bytes: UInt64
    /// The first position the damage hides (the log's last position + 1).
    public var firstPosition: UInt64
    /// The last position the damaged bytes claim, when a block header still says so.
    public var lastPosition: UInt64?
    /// Why the first damaged byte does not start a valid block (or that the append is open).
    public var reason: String

    /// "positions 98305…101165" or "positions from 98305 on".
    public var positionsText: String {
        if let last = lastPosition, last >= firstPosition {
            return last == firstPosition ? "position \(firstPosition)" : "positions \(firstPosition)…\(last)"
        }
        return "positions from \(firstPosition) on"
    }

    public var description: String {
        let what = kind == .tornTail ? "a torn tail" : "an uncommitted append"
        return "\(segment) ends in \(what) at byte offset \(offset) (\(bytes) bytes, \(positionsText)): \(reason)"
    }
}
