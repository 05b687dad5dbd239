#if canImport(Glibc)
import Glibc
#endif

/// Records being framed into one block's raw bytes (RecordFraming), shared by the writer's
/// commit and by ``PreparedBlocks``.
struct BlockFramer {
    /// Largest raw block (a single bigger record still gets a block of its own).
    let limit: Int
    var raw: [UInt8] = []
    var count: UInt32 = 0
    var firstTs: Int64 = 0
    var lastTs: Int64 = 0

    init(limit: Int) {
        self.limit = limit
    }

    /// True when the open block is not empty and the record would push it past `limit`:
    /// close the block (then `reset`) before adding it.
    func isFull(adding ts: Int64, payloadBytes: Int) -> Bool {
        guard count > 0 else { return false }
        let recordBytes = RecordFraming.varintSize(UInt64(ts - lastTs)) + RecordFraming.varintSize(UInt64(payloadBytes)) + payloadBytes
        return raw.count + recordBytes > limit
    }

    /// Frames one record into `raw` (ts not below the previous record's).
    mutating func add(ts: Int64, payload: UnsafeRawBufferPointer) {
        if count == 0 {
            firstTs = ts
            lastTs = ts
        }
        RecordFraming.appendVarint(UInt64(ts - lastTs), to: &raw)
        RecordFraming.appendVarint(UInt64(payload.count), to: &raw)
        raw.append(contentsOf: payload)
        lastTs = ts
        count += 1
    }

    /// Room for `bytes` more raw bytes in the open block (up to `limit`).
    mutating func reserve(_ bytes: Int) {
        let wanted = min(limit, raw.count + bytes)
        if raw.capacity < wanted { raw.reserveCapacity(wanted) }
    }

    /// LZ4-compresses the open block into `buffer` from `offset` on, growing `buffer` (never
    /// shrinking it) to hold the worst case plus `spare` bytes after it; returns the frame's
    /// size and the block's header (position and CRCs unset), or nil if LZ4 failed or the frame
    /// would not fit a block header's size field.
    func compress(into buffer: inout [UInt8], at offset: Int, spare: Int = 0, level: Int32) -> (bytes: Int, header: BlockHeader)? {
        let capacity = offset + LZ4Codec.bound(rawBytes: raw.count, level: level) + spare
        if buffer.count < capacity { buffer = [UInt8](repeating: 0, count: capacity) }
        let compressed = raw.withUnsafeBytes { src in
            buffer.withUnsafeMutableBytes { dst in
                LZ4Codec.compress(src, into: UnsafeMutableRawBufferPointer(rebasing: dst[offset...]), level: level)
            }
        }
        guard let compressed, compressed <= Int(UInt32.max) - BlockHeader.size else { return nil }
        return (compressed, header(compressedBytes: compressed))
    }

    /// The header of the open block once compressed to `compressedBytes` (position and CRCs
    /// are set when it is written).
    func header(compressedBytes: Int) -> BlockHeader {
        BlockHeader(basePosition: 0, count: count, rawBytes: UInt32(raw.count), compressedBytes: UInt32(compressedBytes),
                    previousCRC: 0, firstTs: firstTs, lastTs: lastTs, blockCRC: 0)
    }

    /// Starts the next block.
    mutating func reset() {
        raw.removeAll(keepingCapacity: true)
        count = 0
    }
}

/// Records framed and LZ4-compressed ahead of their append, in blocks: the costly half of an
/// append (framing, compression), done where the caller has a core to spare. An import, for
/// one, compresses what it has validated while it still parses; ``LogWriter/enqueue(_:)-(PreparedBlocks)``
/// then only has to seal and write the blocks, and the log sees nothing before that.
///
/// Each ``append(_:)`` closes its last block, so blocks never span two appended batches.
public struct PreparedBlocks: Sendable {
    /// A sealed block: its header as far as known before the write (`basePosition`,
    /// `previousCRC` and `blockCRC` are the writer's) and its LZ4 frame.
    struct Block: Sendable {
        var header: BlockHeader
        /// The frame in an array of its own: a large import holds many megabytes of frames, and
        /// one growing array would copy them all at every doubling.
        var frame: [UInt8]
    }

    private(set) var blocks: [Block] = []
    /// Bytes of all frames held.
    private var frameBytes = 0
    /// Number of records.
    public private(set) var count = 0
    /// Largest payload held (checked against the writer's `payloadBytesMax` on enqueue).
    private(set) var largestPayload = 0
    private let level: Int32
    private var framer: BlockFramer
    /// LZ4's output for the block being sealed, reused (zero-filled only when it grows).
    private var scratch: [UInt8] = []

    /// Empty; blocks are sized and compressed as `configuration` says (`blockRawBytesMax`,
    /// `compressionLevel`): pass the configuration of the writer that will append them.
    public init(configuration: LogConfiguration = LogConfiguration()) {
        self.level = configuration.compressionLevel
        self.framer = BlockFramer(limit: max(1, min(configuration.blockRawBytesMax, 256 << 20)))
    }

    /// The buffers framing and compression work in (about two blocks' worth), to hand from
    /// one ``PreparedBlocks`` to the next: a fresh one allocates and zero-fills them.
    struct Buffers: Sendable {
        var raw: [UInt8]
        var scratch: [UInt8]
    }

    /// Empty, framing and compressing in `buffers` (from ``takeBuffers()`` of an earlier one).
    init(configuration: LogConfiguration, reusing buffers: Buffers?) {
        self.init(configuration: configuration)
        if let buffers {
            framer.raw = buffers.raw
            framer.raw.removeAll(keepingCapacity: true)
            scratch = buffers.scratch
        }
    }

    /// Hands over the working buffers (the blocks held stay): what is queued then holds only
    /// its frames.
    mutating func takeBuffers() -> Buffers {
        defer {
            framer.raw = []
            scratch = []
        }
        return Buffers(raw: framer.raw, scratch: scratch)
    }

    /// True when no record is held.
    public var isEmpty: Bool { count == 0 }
    var firstTs: Int64? { blocks.first?.header.firstTs }
    var lastTs: Int64? { blocks.last?.header.lastTs }
    /// Bytes held (what the writer's queue bound counts).
    var byteCount: Int { frameBytes + 64 * blocks.count }

    /// Frames and compresses the records of `batch` after those held.
    ///
    /// - Throws: `LogError.negativeTimestamp` or `.timestampDecreased` (against the batch or the
    ///   records held; nothing of the batch is kept), `.io` if LZ4 fails.
    public mutating func append(_ batch: LogBatch) throws {
        var previous = lastTs ?? 0
        for (index, ts) in batch.timestamps.enumerated() {
            guard ts >= 0 else { throw LogError.negativeTimestamp(ts: ts, index: index) }
            guard ts >= previous else { throw LogError.timestampDecreased(ts: ts, previousTs: previous, index: index) }
            previous = ts
        }
        let kept = (blocks: blocks.count, frameBytes: frameBytes, largestPayload: largestPayload)
        do {
            framer.reserve(batch.bytes.count + 20 * batch.count)
            try batch.bytes.withUnsafeBytes { all in
                var start = 0
                for (ts, end) in zip(batch.timestamps, batch.ends) {
                    if framer.isFull(adding: ts, payloadBytes: end - start) { try seal() }
                    framer.add(ts: ts, payload: UnsafeRawBufferPointer(rebasing: all[start..<end]))
                    largestPayload = max(largestPayload, end - start)
                    start = end
                }
            }
            if framer.count > 0 { try seal() }
        } catch {
            // Nothing of the batch is kept: positions must keep matching the block headers.
            blocks.removeLast(blocks.count - kept.blocks)
            frameBytes = kept.frameBytes
            largestPayload = kept.largestPayload
            framer.reset()
            throw error
        }
        count += batch.count
    }

    /// Calls `body` with each record held, in order: its timestamp and payload (valid only
    /// during the call). Each block is decompressed and checked as a cursor does it, then read
    /// as a ``LogBlock``.
    ///
    /// - Throws: `LogError.corruptBlock` (position counted from 1 within the held records) if a
    ///   frame does not decode to its block, which would be a defect: the frames were made here.
    public func forEachRecord(_ body: (_ ts: Int64, _ payload: UnsafeRawBufferPointer) throws -> Void) throws {
        let decompressor = LZ4Decompressor()
        // Reused: each block's `LogBlock` is gone before the next decompression writes here.
        var raw: [UInt8] = []
        var position: UInt64 = 1
        for (index, block) in blocks.enumerated() {
            let header = block.header
            let rawBytes = Int(header.rawBytes)
            let capacity = LZ4Decompressor.outputCapacity(forRawBytes: rawBytes)
            if raw.count < capacity { raw = [UInt8](repeating: 0, count: capacity) }
            let problem = block.frame.withUnsafeBytes { frame in
                raw.withUnsafeMutableBytes { decompressor.decompress(frame, into: $0, expected: rawBytes) }
            } ?? raw.withUnsafeBytes { all in
                let checked = RecordFraming.validate(UnsafeRawBufferPointer(rebasing: all[0..<rawBytes]), count: header.count,
                                                     firstTs: header.firstTs, lastTs: header.lastTs, skip: 0)
                if case let .failure(bad) = checked { return bad.reason }
                return nil
            }
            if let problem {
                throw LogError.corruptBlock(directory: "(prepared blocks)", segment: "block \(index)", offset: 0,
                                            position: position, reason: problem)
            }
            let records = LogBlock(basePosition: position, count: Int(header.count), lastTs: header.lastTs, bytes: raw,
                                   rawBytes: rawBytes, startOffset: 0, startTs: header.firstTs)
            try records.forEachRecord { _, ts, payload in try body(ts, payload) }
            position = records.endPosition
        }
    }

    /// Compresses the open block into a block of its own.
    private mutating func seal() throws {
        guard let (compressed, header) = framer.compress(into: &scratch, at: 0, level: level) else {
            throw LogError.io(operation: "LZ4F_compressFrame", path: "(prepared block)", offset: nil, errno: EINVAL)
        }
        blocks.append(Block(header: header, frame: Array(scratch[0..<compressed])))
        frameBytes += compressed
        framer.reset()
    }
}
