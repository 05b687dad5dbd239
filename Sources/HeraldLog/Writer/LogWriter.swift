#if canImport(Glibc)
import Glibc
#endif

/// The single writer of a log directory.
///
/// `append` may be called from many threads at once: concurrent appends are coalesced into
/// one block write and one `fdatasync` (group commit). The first waiting caller becomes the
/// leader, writes everything queued so far, syncs per `LogDurability`, publishes the new last
/// position and wakes the others.
///
/// ```swift
/// let writer = try LogWriter(directory: "/var/lib/herald/log")
/// let positions = try writer.append([LogEntry(ts: 1, payload: [1, 2, 3])]) // 1..<2
/// try writer.close()
/// ```
public final class LogWriter: Sendable {
    /// The log directory.
    public let directory: String
    /// The configuration the writer was opened with.
    public let configuration: LogConfiguration
    /// What recovery did when the writer opened the log.
    public let recoveryReport: RecoveryReport
    let fileSystem: any LogFileSystem
    let published: PublishedPosition
    private let core: WriterCore

    /// Opens (creating if needed) the log in `directory` for writing, taking its lock file and
    /// recovering a torn tail (see `recoveryReport`).
    ///
    /// - Throws: `LogError.writerLocked` if another writer holds the lock, `.corruptBlock` or
    ///   `.segmentGap` if the log is damaged anywhere but a torn tail, `.io` on I/O failure.
    public init(directory: String, configuration: LogConfiguration = LogConfiguration(), fileSystem: any LogFileSystem = PosixFileSystem()) throws {
        try configuration.validate()
        self.directory = directory
        self.configuration = configuration
        self.fileSystem = fileSystem
        try fileSystem.createDirectory(directory)
        let lock = try Self.takeLock(SegmentFiles.join(directory, SegmentFiles.lockName), waitingUpTo: configuration.lockWaitMilliseconds, fileSystem: fileSystem)
        do {
            let opened = try Recovery.open(directory: directory, fileSystem: fileSystem)
            self.recoveryReport = opened.report
            self.published = PublishedPosition(opened.report.lastPosition)
            self.core = WriterCore(lock: lock, active: opened.active, nextPosition: opened.report.lastPosition + 1, lastTs: opened.lastTs)
        } catch {
            lock.unlock()
            throw error
        }
    }

    deinit {
        core.release()
    }

    /// Takes the writer lock, retrying every 5 ms while it is held, for at most `milliseconds`.
    private static func takeLock(_ path: String, waitingUpTo milliseconds: Int, fileSystem: any LogFileSystem) throws -> any LogFileLock {
        var waited = 0
        while true {
            do {
                return try fileSystem.lockExclusive(path)
            } catch LogError.writerLocked where waited < milliseconds {
                let step = min(5, milliseconds - waited)
                usleep(UInt32(step) * 1000)
                waited += step
            }
        }
    }

    /// The last acknowledged position (0 for an empty log).
    public var lastPosition: UInt64 { published.load() }

    /// A reader that sees exactly what this writer has acknowledged.
    public func makeReader() -> LogReader {
        LogReader(directory: directory, fileSystem: fileSystem, published: published)
    }

    /// Appends one entry and returns its position.
    @discardableResult
    public func append(_ entry: LogEntry) throws -> UInt64 {
        try append([entry]).lowerBound
    }

    /// Appends entries atomically in order and returns their positions. Returns once the
    /// entries are acknowledged per the durability policy. Entries are validated first: a
    /// negative or decreasing timestamp or an oversized payload throws and appends nothing.
    ///
    /// - Throws: `LogError.negativeTimestamp`, `.timestampDecreased`, `.payloadTooLarge`;
    ///   `.writerFailed` once any write or sync has failed; `.writerClosed` after `close()`.
    @discardableResult
    public func append(_ entries: [LogEntry]) throws -> Range<UInt64> {
        var bytes = 0
        var previous: Int64 = 0
        for (index, entry) in entries.enumerated() {
            guard entry.ts >= 0 else { throw LogError.negativeTimestamp(ts: entry.ts, index: index) }
            if index > 0, entry.ts < previous { throw LogError.timestampDecreased(ts: entry.ts, previousTs: previous, index: index) }
            guard entry.payload.count <= configuration.payloadBytesMax else {
                throw LogError.payloadTooLarge(bytes: entry.payload.count, limitBytes: configuration.payloadBytesMax, index: index)
            }
            previous = entry.ts
            bytes += entry.payload.count + 20
        }
        return try core.append(.entries(entries), bytes: bytes, writer: self)
    }

    /// Appends the records of `batch` atomically in order and returns their positions; same
    /// contract as `append(_: [LogEntry])`, without one array per record: the payloads sit in
    /// one contiguous buffer, framed straight into the block buffer.
    ///
    /// - Throws: as `append(_: [LogEntry])`.
    @discardableResult
    public func append(_ batch: LogBatch) throws -> Range<UInt64> {
        var previous: Int64 = 0
        var start = 0
        var index = 0
        // Bound: one round per record.
        for (ts, end) in zip(batch.timestamps, batch.ends) {
            guard ts >= 0 else { throw LogError.negativeTimestamp(ts: ts, index: index) }
            if index > 0, ts < previous { throw LogError.timestampDecreased(ts: ts, previousTs: previous, index: index) }
            guard end - start <= configuration.payloadBytesMax else {
                throw LogError.payloadTooLarge(bytes: end - start, limitBytes: configuration.payloadBytesMax, index: index)
            }
            previous = ts
            start = end
            index += 1
        }
        return try core.append(.batch(batch), bytes: batch.bytes.count + 20 * batch.count, writer: self)
    }

    /// Queues the records of `batch` and returns their positions at once, before they are
    /// written: call ``waitUntilAcknowledged(through:)`` before acknowledging them to anyone.
    /// Queued batches keep their order and coalesce into shared blocks and syncs, so a caller
    /// can queue under its own lock (fixing the order) and wait outside it.
    ///
    /// - Throws: as ``append(_:)-(LogBatch)``, for a batch that cannot be queued.
    public func enqueue(_ batch: LogBatch) throws -> Range<UInt64> {
        var previous: Int64 = 0
        for (index, ts) in batch.timestamps.enumerated() {
            guard ts >= 0 else { throw LogError.negativeTimestamp(ts: ts, index: index) }
            if index > 0, ts < previous { throw LogError.timestampDecreased(ts: ts, previousTs: previous, index: index) }
            previous = ts
        }
        var start = 0
        for (index, end) in batch.ends.enumerated() {
            guard end - start <= configuration.payloadBytesMax else {
                throw LogError.payloadTooLarge(bytes: end - start, limitBytes: configuration.payloadBytesMax, index: index)
            }
            start = end
        }
        return try core.enqueue(.batch(batch), bytes: batch.bytes.count + 20 * batch.count, writer: self)
    }

    /// Waits until every position up to `position` is written and synced per the durability
    /// policy (leading a commit if no one else is), or throws if the writer failed.
    public func waitUntilAcknowledged(through position: UInt64) throws {
        try core.wait(through: position, writer: self)
    }

    /// Forces an `fdatasync` of the active segment now (useful with `.interval` and `.none`).
    public func sync() throws {
        try core.sync(writer: self)
    }

    /// Waits for in-flight appends, syncs, and releases the files and the lock. Later appends
    /// throw `.writerClosed`. Idempotent.
    public func close() throws {
        try core.close(writer: self)
    }
}

/// The active segment: the only file the writer ever writes.
struct ActiveSegment {
    var base: UInt64
    var file: any LogFile
    var index: any LogFile
    /// End of the last block: where the next block goes.
    var size: UInt64
    /// Bytes of the file: ≥ `size`; the rest is zeros behind a filler header (``SegmentFiller``).
    var allocated: UInt64
    var lastCRC: UInt32
    var indexEntries: Int
}

/// Mutable writer state. `@unchecked Sendable`: fields marked (lock) are only touched while
/// holding `lock`; fields marked (leader) only by the single thread that set `leaderActive`
/// under the lock (or by init/close when no leader can exist), which orders them.
final class WriterCore: @unchecked Sendable {
    let lock = ConditionLock()
    // (lock)
    var pending: [PendingAppend] = []
    var pendingBytes = 0
    var nextPosition: UInt64
    var lastAcceptedTs: Int64
    var acknowledged: UInt64
    var leaderActive = false
    var failure: LogError?
    var closed = false
    // (leader)
    var active: ActiveSegment?
    var fileLock: (any LogFileLock)?
    var raw: [UInt8] = []
    var out: [UInt8] = []
    var indexBuffer: [UInt8] = []
    var lastSync = ContinuousClock.now

    init(lock fileLock: any LogFileLock, active: ActiveSegment, nextPosition: UInt64, lastTs: Int64) {
        self.fileLock = fileLock
        self.active = active
        self.nextPosition = nextPosition
        self.lastAcceptedTs = lastTs
        self.acknowledged = nextPosition - 1
    }

    /// Closes files and the lock without syncing (deinit path).
    func release() {
        active?.file.close()
        active?.index.close()
        active = nil
        fileLock?.unlock()
        fileLock = nil
    }

    func append(_ entries: PendingAppend, bytes: Int, writer: LogWriter) throws -> Range<UInt64> {
        let range = try enqueue(entries, bytes: bytes, writer: writer)
        if !range.isEmpty { try wait(through: range.upperBound - 1, writer: writer) }
        return range
    }

    /// Assigns positions and queues the entries (no I/O).
    func enqueue(_ entries: PendingAppend, bytes: Int, writer: LogWriter) throws -> Range<UInt64> {
        lock.lock()
        defer { lock.unlock() }
        // Bound the queue: wait while others' entries fill it (a lone big append always fits).
        while failure == nil, !closed, pendingBytes > 0, pendingBytes + bytes > writer.configuration.pendingBytesMax {
            lock.wait()
        }
        if let failure { throw LogError.writerFailed(directory: writer.directory, cause: failure) }
        if closed { throw LogError.writerClosed(directory: writer.directory) }
        guard let firstTs = entries.firstTs, let lastTs = entries.lastTs else { return nextPosition..<nextPosition }
        guard firstTs >= lastAcceptedTs else { throw LogError.timestampDecreased(ts: firstTs, previousTs: lastAcceptedTs, index: 0) }
        let start = nextPosition
        nextPosition += UInt64(entries.count)
        lastAcceptedTs = lastTs
        pending.append(entries)
        pendingBytes += bytes
        return start..<nextPosition
    }

    /// Waits until `position` is acknowledged, leading commits of everything queued meanwhile.
    func wait(through position: UInt64, writer: LogWriter) throws {
        lock.lock()
        defer { lock.unlock() }
        precondition(position < nextPosition, "waiting for position \(position), which was never queued")
        // Bound: each round either returns, throws, leads one commit, or waits for a leader.
        while true {
            if acknowledged >= position { return }
            if let failure { throw LogError.writerFailed(directory: writer.directory, cause: failure) }
            if leaderActive || pending.isEmpty {
                lock.wait()
                continue
            }
            leaderActive = true
            let batches = pending
            let batchFirst = acknowledged + 1
            let batchEnd = nextPosition
            pending = []
            pendingBytes = 0
            lock.broadcast()
            lock.unlock()
            var cause: LogError?
            do {
                try commit(batches, firstPosition: batchFirst, writer: writer)
            } catch let e as LogError {
                cause = e
            } catch {
                cause = .io(operation: "commit", path: writer.directory, offset: nil, errno: EIO)
            }
            lock.lock()
            leaderActive = false
            if let cause {
                failure = cause
            } else {
                acknowledged = batchEnd - 1
                writer.published.store(acknowledged)
            }
            lock.broadcast()
        }
    }

    func sync(writer: LogWriter) throws {
        try lead(writer: writer) { core in
            guard let active = core.active else { return }
            try active.file.sync()
            core.lastSync = .now
        }
    }

    func close(writer: LogWriter) throws {
        lock.lock()
        if closed && active == nil {
            lock.unlock()
            return
        }
        closed = true
        lock.broadcast()
        // Drain: appends already queued are committed by their own callers.
        while leaderActive || !pending.isEmpty { lock.wait() }
        let failed = failure
        leaderActive = true
        lock.unlock()
        var syncError: LogError?
        if failed == nil, let active {
            do {
                try Self.trimPreallocation(active)
                try active.file.sync()
            } catch let e as LogError { syncError = e } catch {}
        }
        release()
        lock.lock()
        leaderActive = false
        if let syncError { failure = syncError }
        lock.broadcast()
        lock.unlock()
        if let syncError { throw syncError }
    }

    /// Runs `body` as the leader (no commit in flight); a failure fails the writer closed.
    private func lead(writer: LogWriter, _ body: (WriterCore) throws -> Void) throws {
        lock.lock()
        while leaderActive { lock.wait() }
        if let failure {
            lock.unlock()
            throw LogError.writerFailed(directory: writer.directory, cause: failure)
        }
        if active == nil {
            lock.unlock()
            throw LogError.writerClosed(directory: writer.directory)
        }
        leaderActive = true
        lock.unlock()
        var cause: LogError?
        do { try body(self) } catch let e as LogError { cause = e } catch {}
        lock.lock()
        leaderActive = false
        if let cause { failure = cause }
        lock.broadcast()
        lock.unlock()
        if let cause { throw cause }
    }

    // MARK: - Leader work

    /// Packs the batches into blocks of at most `blockRawBytesMax` raw bytes, writes them,
    /// then syncs per policy.
    private func commit(_ batches: [PendingAppend], firstPosition: UInt64, writer: LogWriter) throws {
        let limit = writer.configuration.blockRawBytesMax
        var blockBase = firstPosition
        var blockCount: UInt32 = 0
        var firstTs: Int64 = 0
        var previousTs: Int64 = 0
        raw.removeAll(keepingCapacity: true)
        /// Frames one record into `raw`, closing the block first if it would overflow.
        func add(ts: Int64, payload: UnsafeRawBufferPointer) throws {
            let delta = UInt64(ts - previousTs)
            let recordBytes = RecordFraming.varintSize(delta) + RecordFraming.varintSize(UInt64(payload.count)) + payload.count
            if blockCount > 0, raw.count + recordBytes > limit {
                try writeBlock(base: blockBase, count: blockCount, firstTs: firstTs, lastTs: previousTs, writer: writer)
                blockBase += UInt64(blockCount)
                blockCount = 0
                raw.removeAll(keepingCapacity: true)
            }
            if blockCount == 0 {
                firstTs = ts
                previousTs = ts
            }
            RecordFraming.appendVarint(UInt64(ts - previousTs), to: &raw)
            RecordFraming.appendVarint(UInt64(payload.count), to: &raw)
            raw.append(contentsOf: payload)
            previousTs = ts
            blockCount += 1
        }
        for batch in batches {
            switch batch {
            case let .entries(entries):
                for entry in entries {
                    try entry.payload.withUnsafeBytes { try add(ts: entry.ts, payload: $0) }
                }
            case let .batch(batch):
                if raw.capacity < min(limit, batch.bytes.count + 20 * batch.count) {
                    raw.reserveCapacity(min(limit, batch.bytes.count + 20 * batch.count))
                }
                try batch.bytes.withUnsafeBytes { all in
                    var start = 0
                    for (ts, end) in zip(batch.timestamps, batch.ends) {
                        try add(ts: ts, payload: UnsafeRawBufferPointer(rebasing: all[start..<end]))
                        start = end
                    }
                }
            }
        }
        if blockCount > 0 {
            try writeBlock(base: blockBase, count: blockCount, firstTs: firstTs, lastTs: previousTs, writer: writer)
        }
        guard let active else { return }
        switch writer.configuration.durability {
        case .always:
            try active.file.sync()
            lastSync = .now
        case let .interval(milliseconds):
            if ContinuousClock.now - lastSync >= .milliseconds(milliseconds) {
                try active.file.sync()
                lastSync = .now
            }
        case .none:
            break
        }
    }

    private func writeBlock(base: UInt64, count: UInt32, firstTs: Int64, lastTs: Int64, writer: LogWriter) throws {
        guard var segment = active else { throw LogError.writerClosed(directory: writer.directory) }
        let level = writer.configuration.compressionLevel
        let capacity = BlockHeader.size + LZ4Codec.bound(rawBytes: raw.count, level: level) + SegmentFiller.headerBytes
        if out.count < capacity { out = [UInt8](repeating: 0, count: capacity) }
        let compressed = raw.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                LZ4Codec.compress(src, into: UnsafeMutableRawBufferPointer(rebasing: dst[BlockHeader.size...]), level: level)
            }
        }
        guard let compressed, compressed <= Int(UInt32.max) - BlockHeader.size else {
            throw LogError.io(operation: "LZ4F_compressFrame", path: SegmentFiles.join(writer.directory, SegmentFiles.segmentName(base: segment.base)), offset: segment.size, errno: EINVAL)
        }
        var header = BlockHeader(basePosition: base, count: count, rawBytes: UInt32(raw.count), compressedBytes: UInt32(compressed),
                                 previousCRC: segment.lastCRC, firstTs: firstTs, lastTs: lastTs, blockCRC: 0)
        let blockBytes = BlockHeader.size + compressed
        if segment.size > 0, segment.size + UInt64(blockBytes) > writer.configuration.segmentBytesMax {
            segment = try roll(from: segment, newBase: base, writer: writer)
            header.previousCRC = 0
        }
        out.withUnsafeMutableBytes { buffer in
            header.encodePrefix(into: buffer)
            let crc = BlockHeader.verifyingCRC(buffer, compressed: compressed)
            header.blockCRC = crc
            BlockHeader.seal(buffer, blockCRC: crc)
        }
        // Pair assertion: what we are about to write parses back to the same header.
        out.withUnsafeBytes { buffer in
            if case let .success(parsed) = BlockHeader.parse(UnsafeRawBufferPointer(rebasing: buffer[0..<BlockHeader.size])) {
                precondition(parsed == header, "block header does not round-trip")
            } else {
                preconditionFailure("block header does not parse")
            }
        }
        let end = segment.size + UInt64(blockBytes)
        try reserve(&segment, through: end, writer: writer)
        // The filler header after the block keeps the rest of the preallocated space skippable.
        var writeBytes = blockBytes
        if segment.allocated > end {
            out.withUnsafeMutableBytes { buffer in
                SegmentFiller.encodeHeader(totalBytes: segment.allocated - end,
                                           into: UnsafeMutableRawBufferPointer(rebasing: buffer[blockBytes..<(blockBytes + SegmentFiller.headerBytes)]))
            }
            writeBytes += SegmentFiller.headerBytes
        }
        try out.withUnsafeBytes { try segment.file.write(UnsafeRawBufferPointer(rebasing: $0[0..<writeBytes]), at: segment.size) }
        segment.allocated = max(segment.allocated, end)
        indexBuffer.removeAll(keepingCapacity: true)
        BlockIndexFile.encode(IndexEntry(header: header, offset: segment.size), into: &indexBuffer)
        let indexOffset = UInt64(BlockIndexFile.headerBytes + segment.indexEntries * BlockIndexFile.entryBytes)
        try indexBuffer.withUnsafeBytes { try segment.index.write($0, at: indexOffset) }
        segment.size += UInt64(blockBytes)
        segment.lastCRC = header.blockCRC
        segment.indexEntries += 1
        active = segment
    }

    /// Makes room for a block ending at `end` plus a filler header after it: extends the file
    /// with zeros in steps of 64 KiB doubling with the segment up to `preallocationBytesMax`,
    /// never past `segmentBytesMax`. Synced with the block that follows.
    private func reserve(_ segment: inout ActiveSegment, through end: UInt64, writer: LogWriter) throws {
        let filler = UInt64(SegmentFiller.headerBytes)
        if end == segment.allocated || end + filler <= segment.allocated { return }
        if end < segment.allocated {
            // Too little room left for a filler header (preallocation turned off since): cut it.
            try segment.file.truncate(to: end)
            segment.allocated = end
            return
        }
        let step = min(UInt64(writer.configuration.preallocationBytesMax), max(64 << 10, segment.size))
        var target = min(end + step, max(writer.configuration.segmentBytesMax, end))
        if target < end + filler { target = end }
        var offset = segment.allocated
        // Bound: each round writes up to 1 MiB of zeros until `target`.
        while offset < target {
            let n = Int(min(target - offset, UInt64(Self.zeros.count)))
            try Self.zeros.withUnsafeBytes { try segment.file.write(UnsafeRawBufferPointer(rebasing: $0[0..<n]), at: offset) }
            offset += UInt64(n)
        }
        segment.allocated = max(segment.allocated, target)
    }

    private static let zeros = [UInt8](repeating: 0, count: 1 << 20)

    /// Cuts the preallocated end off a segment that is being closed.
    static func trimPreallocation(_ segment: ActiveSegment) throws {
        if segment.allocated > segment.size { try segment.file.truncate(to: segment.size) }
    }

    /// Closes the full segment (cut to its last block and synced, so a closed segment is whole
    /// on disk whatever the policy) and starts a new one, synced together with its directory.
    private func roll(from segment: ActiveSegment, newBase: UInt64, writer: LogWriter) throws -> ActiveSegment {
        try Self.trimPreallocation(segment)
        try segment.file.sync()
        segment.file.close()
        segment.index.close()
        active = nil
        let next = try Recovery.createSegment(directory: writer.directory, base: newBase, fileSystem: writer.fileSystem)
        active = next
        return next
    }
}

extension BlockHeader {
    /// The block CRC of an encoded header prefix followed by `compressed` body bytes.
    static func verifyingCRC(_ buffer: UnsafeMutableRawBufferPointer, compressed: Int) -> UInt32 {
        let raw = UnsafeRawBufferPointer(buffer)
        let state = CRC32C.update(CRC32C.update(CRC32C.start, UnsafeRawBufferPointer(rebasing: raw[0..<56])),
                                  UnsafeRawBufferPointer(rebasing: raw[size..<(size + compressed)]))
        return CRC32C.finish(state)
    }
}
