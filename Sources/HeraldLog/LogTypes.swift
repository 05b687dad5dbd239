/// One record to append: an opaque payload and its timestamp.
///
/// The log never looks inside `payload`; another module encodes records.
/// ```swift
/// try writer.append([LogEntry(ts: 1_700_000_000_000, payload: Array("hello".utf8))])
/// ```
public struct LogEntry: Sendable, Equatable {
    /// The record's timestamp (for example milliseconds since the epoch); never negative, never
    /// smaller than the previous record's.
    public var ts: Int64
    /// The record's bytes, stored verbatim.
    public var payload: [UInt8]

    /// Creates an entry.
    /// - Parameters:
    ///   - ts: the timestamp, `>= 0` and not smaller than the previous entry's.
    ///   - payload: the record bytes.
    public init(ts: Int64, payload: [UInt8]) {
        self.ts = ts
        self.payload = payload
    }
}

/// When an acknowledged append is on stable storage.
public enum LogDurability: Sendable, Equatable {
    /// An acknowledged append has been `fdatasync`ed: it survives process crash and power loss.
    case always
    /// Appends are acknowledged after `pwrite`; the writer `fdatasync`s at most once per
    /// `milliseconds` (on the next append after the interval has passed, on `sync()` and on
    /// `close()`). Survives a process crash; a power loss can lose the unsynced suffix.
    case interval(milliseconds: Int)
    /// Appends are acknowledged after `pwrite` and synced only when a segment is closed or on
    /// `sync()`/`close()`. Survives a process crash; a power loss can lose the unsynced suffix.
    case none
}

/// Tuning knobs of a `LogWriter`.
public struct LogConfiguration: Sendable, Equatable {
    /// A segment is closed when the next block would make it larger than this (default 64 MiB).
    /// A block larger than the limit still goes into a segment of its own.
    public var segmentBytesMax: UInt64
    /// Records are packed into a block until its uncompressed size reaches this (default 1 MiB).
    public var blockRawBytesMax: Int
    /// Largest accepted payload (default 16 MiB).
    public var payloadBytesMax: Int
    /// Upper bound on queued, not yet written payload bytes; appenders wait beyond it (default 64 MiB).
    public var pendingBytesMax: Int
    /// When acknowledged appends are durable (default `.always`).
    public var durability: LogDurability
    /// LZ4 frame compression level (never changes what a reader sees): −1 = fast mode with
    /// acceleration 2 (default; on the benchmark workload about 10 % faster appends for 0.8 %
    /// more stored bytes than 0), −N = acceleration N + 1 (down to −64), 0 = plain fast mode,
    /// 3...12 = LZ4-HC (smaller, much slower writes).
    public var compressionLevel: Int32
    /// How long opening a writer keeps retrying a held lock before refusing (default 2000 ms).
    /// A lock is briefly held by a process this one spawns, between its `fork` and `exec`
    /// (the child shares the lock's open file description), so closing a writer and opening
    /// it again while other threads spawn processes must not fail on that window.
    public var lockWaitMilliseconds: Int
    /// Largest step by which the writer extends the active segment with zeros ahead of its
    /// blocks (default 4 MiB; 0 = never preallocate). Steps start at 64 KiB and double with the
    /// segment, so small logs stay small. With the space written ahead, a sync after an append
    /// changes no file metadata: `fdatasync` flushes the block alone instead of waiting for a
    /// file-system journal commit shared with every other writer on the disk.
    public var preallocationBytesMax: Int

    /// Creates a configuration; every parameter has the documented default.
    public init(
        segmentBytesMax: UInt64 = 64 << 20,
        blockRawBytesMax: Int = 1 << 20,
        payloadBytesMax: Int = 16 << 20,
        pendingBytesMax: Int = 64 << 20,
        durability: LogDurability = .always,
        compressionLevel: Int32 = -1,
        lockWaitMilliseconds: Int = 2000,
        preallocationBytesMax: Int = 4 << 20
    ) {
        self.segmentBytesMax = segmentBytesMax
        self.blockRawBytesMax = blockRawBytesMax
        self.payloadBytesMax = payloadBytesMax
        self.pendingBytesMax = pendingBytesMax
        self.durability = durability
        self.compressionLevel = compressionLevel
        self.lockWaitMilliseconds = lockWaitMilliseconds
        self.preallocationBytesMax = preallocationBytesMax
    }

    func validate() throws {
        guard segmentBytesMax >= 128 else { throw LogError.invalidConfiguration(reason: "segmentBytesMax \(segmentBytesMax) is below 128 bytes") }
        guard blockRawBytesMax >= 1, blockRawBytesMax <= 256 << 20 else { throw LogError.invalidConfiguration(reason: "blockRawBytesMax \(blockRawBytesMax) is outside 1...256 MiB") }
        guard payloadBytesMax >= 0, payloadBytesMax <= 256 << 20 else { throw LogError.invalidConfiguration(reason: "payloadBytesMax \(payloadBytesMax) is outside 0...256 MiB") }
        guard pendingBytesMax >= 1 else { throw LogError.invalidConfiguration(reason: "pendingBytesMax must be positive") }
        if case let .interval(ms) = durability, ms < 0 { throw LogError.invalidConfiguration(reason: "durability interval \(ms) ms is negative") }
        guard compressionLevel >= -64, compressionLevel <= 12 else { throw LogError.invalidConfiguration(reason: "compressionLevel \(compressionLevel) is outside -64...12") }
        guard preallocationBytesMax >= 0, preallocationBytesMax <= 1 << 30 else { throw LogError.invalidConfiguration(reason: "preallocationBytesMax \(preallocationBytesMax) is outside 0...1 GiB") }
        guard lockWaitMilliseconds >= 0, lockWaitMilliseconds <= 600_000 else { throw LogError.invalidConfiguration(reason: "lockWaitMilliseconds \(lockWaitMilliseconds) is outside 0...600000") }
    }
}

/// What the writer did to the log when it opened it.
public struct RecoveryReport: Sendable, Equatable {
    /// Bytes cut from the end of the last segment: a torn tail, an append that never
    /// completed, or (only when opened with `acceptLoss`) acknowledged records that were
    /// damaged. The bytes were moved to `quarantine` first.
    public struct Truncation: Sendable, Equatable, CustomStringConvertible {
        /// The segment file name (e.g. `00000000000000000001.log`).
        public var segment: String
        /// The byte offset the segment was truncated to (the end of its last committed block).
        public var offset: UInt64
        /// How many bytes were cut.
        public var bytesCut: UInt64
        /// Why the first cut byte did not start a valid block, or that an append was open.
        public var reason: String
        /// What was cut.
        public var kind: TailDamage.Kind
        /// The first position cut (the log's last position after recovery + 1).
        public var firstPosition: UInt64
        /// The last position cut, when known (a block header or the watermark says so).
        public var lastPosition: UInt64?
        /// The cut included acknowledged (watermarked) positions: an accepted loss.
        public var acknowledgedLoss: Bool
        /// The quarantine file holding the cut bytes, relative to the log directory.
        public var quarantine: String?

        public init(segment: String, offset: UInt64, bytesCut: UInt64, reason: String, kind: TailDamage.Kind = .tornTail,
                    firstPosition: UInt64 = 0, lastPosition: UInt64? = nil, acknowledgedLoss: Bool = false, quarantine: String? = nil) {
            self.segment = segment
            self.offset = offset
            self.bytesCut = bytesCut
            self.reason = reason
            self.kind = kind
            self.firstPosition = firstPosition
            self.lastPosition = lastPosition
            self.acknowledgedLoss = acknowledgedLoss
            self.quarantine = quarantine
        }

        /// One sentence for an operator: what was cut, where, which positions, where the bytes went.
        public var description: String {
            let damage = TailDamage(kind: kind, segment: segment, offset: offset, bytes: bytesCut, firstPosition: firstPosition,
                                    lastPosition: lastPosition, reason: reason)
            if acknowledgedLoss {
                let single = lastPosition == firstPosition
                return "Recovery cut \(bytesCut) bytes from \(segment) at byte offset \(offset) holding \(damage.positionsText), which \(single ? "was" : "were") acknowledged (\(reason)); the loss was accepted\(quarantine.map { ", and the bytes were moved to \($0)" } ?? "")."
            }
            let what = kind == .tornTail ? "a torn tail" : "an append that never completed"
            return "Recovery cut \(bytesCut) bytes of \(what) from \(segment) at byte offset \(offset) (\(damage.positionsText), past the durable watermark): \(reason)\(quarantine.map { "; the bytes were moved to \($0)" } ?? "")."
        }
    }
    /// Number of segments found (after recovery).
    public var segmentCount: Int
    /// The last position in the log after recovery (0 when empty).
    public var lastPosition: UInt64
    /// The cut tail, if any.
    public var truncation: Truncation?
    /// Index files that were missing or inconsistent and were rewritten.
    public var rebuiltIndexes: [String]
}

/// Summary of a log computed from block headers only.
public struct LogStats: Sendable, Equatable {
    /// Number of segment files.
    public var segments: Int
    /// Number of blocks.
    public var blocks: Int
    /// Number of records.
    public var records: UInt64
    /// Uncompressed record bytes (framing included).
    public var rawBytes: UInt64
    /// Bytes on disk of all blocks (headers and LZ4 frames).
    public var storedBytes: UInt64
    /// First position, or nil for an empty log.
    public var firstPosition: UInt64?
    /// Last position, or nil for an empty log.
    public var lastPosition: UInt64?
    /// Smallest timestamp, or nil for an empty log.
    public var firstTs: Int64?
    /// Largest timestamp, or nil for an empty log.
    public var lastTs: Int64?
}

/// Records to append as one unit, their payloads packed in one buffer: no array per record.
///
/// ```swift
/// var batch = LogBatch()
/// batch.append(ts: 1) { $0.append(contentsOf: [1, 2, 3]) }
/// try writer.append(batch)
/// ```
public struct LogBatch: Sendable {
    /// All payloads, back to back.
    public private(set) var bytes: [UInt8] = []
    /// End offset in `bytes` of each record's payload.
    public private(set) var ends: [Int] = []
    /// Each record's timestamp.
    public private(set) var timestamps: [Int64] = []

    /// An empty batch with room for `records` records of `bytes` payload bytes in total.
    public init(records: Int = 0, bytes: Int = 0) {
        self.bytes.reserveCapacity(bytes)
        self.ends.reserveCapacity(records)
        self.timestamps.reserveCapacity(records)
    }

    /// Number of records.
    public var count: Int { ends.count }
    /// True when the batch holds no record.
    public var isEmpty: Bool { ends.isEmpty }

    /// Appends a record whose payload is whatever `encode` appends to the buffer it is given
    /// (it must only append).
    public mutating func append(ts: Int64, encode: (inout [UInt8]) throws -> Void) rethrows {
        try encode(&bytes)
        precondition(bytes.count >= (ends.last ?? 0), "LogBatch.append: the encoder removed bytes")
        ends.append(bytes.count)
        timestamps.append(ts)
    }

    /// Removes every record, keeping the buffers' capacity for reuse.
    public mutating func removeAll(keepingCapacity: Bool = true) {
        bytes.removeAll(keepingCapacity: keepingCapacity)
        ends.removeAll(keepingCapacity: keepingCapacity)
        timestamps.removeAll(keepingCapacity: keepingCapacity)
    }

    /// Appends a record with the given payload bytes.
    public mutating func append(ts: Int64, payload: some Sequence<UInt8>) {
        append(ts: ts) { $0.append(contentsOf: payload) }
    }
}

/// One caller's queued append (internal to the writer).
enum PendingAppend: Sendable {
    case entries([LogEntry])
    case batch(LogBatch)
    case prepared(PreparedBlocks)

    var count: Int {
        switch self {
        case let .entries(entries): entries.count
        case let .batch(batch): batch.count
        case let .prepared(prepared): prepared.count
        }
    }

    var firstTs: Int64? {
        switch self {
        case let .entries(entries): entries.first?.ts
        case let .batch(batch): batch.timestamps.first
        case let .prepared(prepared): prepared.firstTs
        }
    }

    var lastTs: Int64? {
        switch self {
        case let .entries(entries): entries.last?.ts
        case let .batch(batch): batch.timestamps.last
        case let .prepared(prepared): prepared.lastTs
        }
    }
}
