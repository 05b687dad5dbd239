#if canImport(Glibc)
import Glibc
#endif
import HeraldThreads
import Synchronization

/// The single writer of a log directory.
///
/// `append` may be called from many threads at once: concurrent appends are coalesced into
/// shared block writes and `fdatasync`s (group commit). Callers only queue and wait: a
/// committer thread frames, compresses and writes everything queued so far, and with
/// `.always` a syncer thread syncs while the next commit is compressed; a position is
/// acknowledged once an `fdatasync` begun after its write has returned.
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
    /// The working buffers of the last batch an enqueueing thread compressed itself.
    private let helperBuffers = Mutex<PreparedBlocks.Buffers?>(nil)
    /// Batches an enqueueing thread compressed itself (for tests).
    let helpedBatches = Atomic<Int>(0)

    /// Opens (creating if needed) the log in `directory` for writing, taking its lock file and
    /// recovering a torn tail or an append that never completed: the bytes are moved to
    /// `quarantine/`, recorded in `recovery.jsonl` and reported in `recoveryReport`.
    ///
    /// - Parameter acceptLoss: cut damaged positions even when they were acknowledged (the log
    ///   ends before its durable watermark); what `herald repair --accept-loss` does. Without
    ///   it such a log is refused.
    /// - Throws: `LogError.writerLocked` if another writer holds the lock, `.corruptBlock` or
    ///   `.segmentGap` if the log is damaged anywhere but a torn tail, `.acknowledgedDamaged`
    ///   if acknowledged records are damaged (without `acceptLoss`), `.io` on I/O failure.
    public init(directory: String, configuration: LogConfiguration = LogConfiguration(), fileSystem: any LogFileSystem = PosixFileSystem(),
                acceptLoss: Bool = false) throws {
        try configuration.validate()
        self.directory = directory
        self.configuration = configuration
        self.fileSystem = fileSystem
        try fileSystem.createDirectory(directory)
        let lock = try Self.takeLock(SegmentFiles.join(directory, SegmentFiles.lockName), waitingUpTo: configuration.lockWaitMilliseconds, fileSystem: fileSystem)
        do {
            let opened = try Recovery.open(directory: directory, fileSystem: fileSystem, acceptLoss: acceptLoss)
            self.recoveryReport = opened.report
            self.published = PublishedPosition(opened.report.lastPosition)
            self.core = WriterCore(lock: lock, active: opened.active, watermark: opened.watermark, nextPosition: opened.report.lastPosition + 1,
                                   lastTs: opened.lastTs, directory: directory, configuration: configuration, fileSystem: fileSystem,
                                   published: published)
        } catch {
            lock.unlock()
            throw error
        }
        do {
            try core.start()
        } catch {
            core.release()  // stops a thread that did start, closes the files, frees the lock
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
        return try core.append(.entries(entries), bytes: bytes)
    }

    /// Appends the records of `batch` atomically in order and returns their positions; same
    /// contract as `append(_: [LogEntry])`, without one array per record: the payloads sit in
    /// one contiguous buffer, framed straight into the block buffer.
    ///
    /// - Throws: as `append(_: [LogEntry])`.
    @discardableResult
    public func append(_ batch: LogBatch) throws -> Range<UInt64> {
        try check(batch)
        return try core.append(.batch(batch), bytes: batch.bytes.count + 20 * batch.count)
    }

    /// The rules every queued batch obeys: timestamps not negative and not decreasing,
    /// payloads within `payloadBytesMax`.
    private func check(_ batch: LogBatch) throws {
        var previous: Int64 = 0
        var start = 0
        // Bound: one round per record.
        for (index, (ts, end)) in zip(batch.timestamps, batch.ends).enumerated() {
            guard ts >= 0 else { throw LogError.negativeTimestamp(ts: ts, index: index) }
            if index > 0, ts < previous { throw LogError.timestampDecreased(ts: ts, previousTs: previous, index: index) }
            guard end - start <= configuration.payloadBytesMax else {
                throw LogError.payloadTooLarge(bytes: end - start, limitBytes: configuration.payloadBytesMax, index: index)
            }
            previous = ts
            start = end
        }
    }

    /// Queues the records of `batch` and returns their positions at once, before they are
    /// written: call ``waitUntilAcknowledged(through:)`` before acknowledging them to anyone.
    /// Queued batches keep their order and coalesce into shared blocks and syncs, so a caller
    /// can queue under its own lock (fixing the order) and wait outside it.
    ///
    /// `helping`: when the batch holds at least a quarter of a block and the committer has
    /// batches waiting that it has yet to compress, the batch is framed and compressed here, on
    /// the calling thread (as ``PreparedBlocks``), and the committer only writes it. A producer
    /// that outruns the writer then lends it its core instead of queueing work for one thread
    /// (ingest of 4,096-record batches: about 14 % more records/s on two cores). Its blocks end
    /// with the batch instead of sharing one with the next. Pass false when calling under a
    /// lock that other threads wait for.
    ///
    /// Batches from several threads are ordered when they are queued, which for a helped batch
    /// is after its compression: threads that take timestamps from one clock and must queue in
    /// that order should queue under a lock of their own (and pass false), as the engine does.
    ///
    /// - Throws: as ``append(_:)-(LogBatch)``, for a batch that cannot be queued.
    public func enqueue(_ batch: LogBatch, helping: Bool = true) throws -> Range<UInt64> {
        try check(batch)
        if helping, batch.bytes.count >= configuration.blockRawBytesMax / 4, core.isBehind {
            var prepared = PreparedBlocks(configuration: configuration, reusing: helperBuffers.withLock { $0.take() })
            let appended = Result { try prepared.append(batch) }
            // Back before the blocks are queued: the queued copy must not share them.
            let buffers = prepared.takeBuffers()
            helperBuffers.withLock { $0 = buffers }
            try appended.get()
            let range = try core.enqueue(.prepared(prepared), bytes: prepared.byteCount)
            helpedBatches.add(1, ordering: .relaxed)
            return range
        }
        return try core.enqueue(.batch(batch), bytes: batch.bytes.count + 20 * batch.count)
    }

    /// Queues records framed and compressed ahead (see ``PreparedBlocks``) and returns their
    /// positions at once, like ``enqueue(_:helping:)``; each prepared block is written as
    /// it is.
    ///
    /// - Throws: `LogError.payloadTooLarge` if a record exceeds this writer's
    ///   `payloadBytesMax`, else as ``enqueue(_:helping:)``.
    public func enqueue(_ prepared: PreparedBlocks) throws -> Range<UInt64> {
        guard prepared.largestPayload <= configuration.payloadBytesMax else {
            throw LogError.payloadTooLarge(bytes: prepared.largestPayload, limitBytes: configuration.payloadBytesMax, index: 0)
        }
        return try core.enqueue(.prepared(prepared), bytes: prepared.byteCount)
    }

    /// Waits until every position up to `position` is written and synced per the durability
    /// policy, or throws if the writer failed.
    public func waitUntilAcknowledged(through position: UInt64) throws {
        try core.wait(through: position)
    }

    /// Calls `listener` with the new last acknowledged position each time it advances, from
    /// the thread that advanced it (the syncer right after its sync with `.always`, the
    /// committer after its write otherwise, or a caller of ``sync()``), so a consumer waiting
    /// for records to be durable learns of it without waiting for the appending thread to wake
    /// first. Calls from different threads are not ordered (a `sync()` caller's may arrive
    /// after a later position's). `listener` must be quick, must not call the writer, and must
    /// not hold the last reference to the writer's owner. Replaces any earlier listener; `nil`
    /// removes it.
    public func setAcknowledgedListener(_ listener: (@Sendable (UInt64) -> Void)?) {
        core.lock.lock()
        core.acknowledgedListener = listener
        core.lock.unlock()
    }

    /// Forces an `fdatasync` of the active segment now (useful with `.interval` and `.none`).
    public func sync() throws {
        try core.sync()
    }

    /// Waits for in-flight appends, syncs, and releases the files and the lock. Later appends
    /// throw `.writerClosed`. Idempotent.
    public func close() throws {
        try core.close()
    }

    /// Throws `.writerClosed` once `close()` began, `.writerFailed` once the writer failed.
    func requireOpen() throws {
        try core.requireOpen()
    }

    /// Closes the active segment and starts a new, empty one, once every queued append is
    /// acknowledged: the roll a full segment gets (cut to its last block, synced, the
    /// watermark stored, the next segment created and the directory synced). Nothing happens
    /// when the active segment is empty. What `herald compact` does before it recompresses, so
    /// the whole log is in closed segments.
    ///
    /// - Throws: `.writerClosed`, `.writerFailed`, `.io` (the writer then fails closed).
    public func rollSegment() throws {
        try core.rollSegment()
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
    /// The last block written continues an append: the segment must not roll before the
    /// append's closing block (an append never spans segments, so recovery never cuts into a
    /// closed one).
    var lastContinues = false
}

/// Mutable writer state and the commit pipeline.
///
/// Appenders only queue (`enqueue`) and wait (`wait`). A committer thread takes everything
/// queued, frames, compresses and writes it (one commit), and with `.always` hands the sync to
/// a syncer thread: the committer frames and compresses the next commit while the previous one
/// is being synced, on the other core. A position is acknowledged only after an `fdatasync`
/// that started after its block was written (or after the write itself with `.interval` and
/// `.none`, as before). The first failed write or sync fails the writer closed: nothing is
/// acknowledged after it.
///
/// `@unchecked Sendable`: fields marked (lock) are only touched while holding `lock`; fields
/// marked (committer) only by the committer thread, or by `close`/`release` after it has been
/// joined (or by init before it starts), which orders them.
final class WriterCore: @unchecked Sendable {
    let lock = ConditionLock()
    let directory: String
    let configuration: LogConfiguration
    let fileSystem: any LogFileSystem
    let published: PublishedPosition
    // (lock)
    var pending: [PendingAppend] = []
    var pendingBytes = 0
    var nextPosition: UInt64
    var lastAcceptedTs: Int64
    /// Last position whose block is written (pwrite returned).
    var written: UInt64
    /// Last position acknowledged per the durability policy.
    var acknowledged: UInt64
    var failure: LogError?
    /// The committer and syncer end once the queue is drained.
    var stopping = false
    /// Files and lock released (`close` or `release` done).
    var released = false
    /// A `close` is in progress.
    var closing = false
    /// No more enqueues: a `close` began or the threads are stopping.
    var closed: Bool { closing || stopping }
    /// The committer holds a taken commit.
    var committing = false
    /// `rollSegment()` waits for the committer to roll the active segment.
    var rollRequested = false
    /// An `fdatasync` of `syncFile` is in flight.
    var syncing = false
    /// Told each new acknowledged position (see `LogWriter.setAcknowledgedListener`).
    var acknowledgedListener: (@Sendable (UInt64) -> Void)?
    /// The active segment file, for the syncer and `sync()`; nil while a segment rolls.
    var syncFile: (any LogFile)?
    var threads: [JoinableThread] = []
    // (committer)
    var active: ActiveSegment?
    var fileLock: (any LogFileLock)?
    /// The durable watermark (thread-safe; stored after each sync).
    let watermark: WatermarkFile
    var framer: BlockFramer
    var out: [UInt8] = []
    var indexBuffer: [UInt8] = []
    var lastSync = ContinuousClock.now

    init(lock fileLock: any LogFileLock, active: ActiveSegment, watermark: WatermarkFile, nextPosition: UInt64, lastTs: Int64,
         directory: String, configuration: LogConfiguration, fileSystem: any LogFileSystem, published: PublishedPosition) {
        self.fileLock = fileLock
        self.watermark = watermark
        self.active = active
        self.syncFile = active.file
        self.framer = BlockFramer(limit: configuration.blockRawBytesMax)
        self.nextPosition = nextPosition
        self.lastAcceptedTs = lastTs
        self.written = nextPosition - 1
        self.acknowledged = nextPosition - 1
        self.directory = directory
        self.configuration = configuration
        self.fileSystem = fileSystem
        self.published = published
    }

    /// Starts the committer (and, with `.always`, the syncer) thread. On failure the caller
    /// calls ``release()``.
    func start() throws {
        guard let committer = JoinableThread({ [self] in runCommitter() }) else {
            throw LogError.io(operation: "pthread_create", path: directory, offset: nil, errno: EAGAIN)
        }
        lock.lock()
        threads.append(committer)
        lock.unlock()
        if configuration.durability == .always {
            guard let syncer = JoinableThread({ [self] in runSyncer() }) else {
                throw LogError.io(operation: "pthread_create", path: directory, offset: nil, errno: EAGAIN)
            }
            lock.lock()
            threads.append(syncer)
            lock.unlock()
        }
    }

    /// Stops the threads once the queue is drained, then closes files and the lock without
    /// syncing (deinit path). Idempotent.
    func release() {
        stopThreads()
        lock.lock()
        defer { lock.unlock() }
        // Another caller still joining its threads must not see the files closed under it.
        guard !released, threads.isEmpty else { return }
        syncFile = nil
        while syncing { lock.wait() }  // a `sync()` in flight still uses the file
        released = true
        active?.file.close()
        active?.index.close()
        active = nil
        watermark.close()
        fileLock?.unlock()
        fileLock = nil
        lock.wakeAll()
    }

    /// Refuses new appends and ends the committer and syncer once the queue is drained.
    private func stopThreads() {
        lock.lock()
        stopping = true
        let running = threads
        threads = []
        lock.wakeAll()
        lock.unlock()
        for thread in running { thread.join() }
    }

    func append(_ entries: PendingAppend, bytes: Int) throws -> Range<UInt64> {
        let range = try enqueue(entries, bytes: bytes)
        if !range.isEmpty { try wait(through: range.upperBound - 1) }
        return range
    }

    /// Assigns positions and queues the entries for the committer (no I/O here).
    func rollSegment() throws {
        lock.lock()
        defer { lock.unlock() }
        // Bound: the committer drains the queue, then takes the request.
        while failure == nil, !closed, !pending.isEmpty || committing || acknowledged < written || rollRequested { lock.wait() }
        if let failure { throw LogError.writerFailed(directory: directory, cause: failure) }
        if closed || released { throw LogError.writerClosed(directory: directory) }
        rollRequested = true
        lock.wakeAll()
        while rollRequested, failure == nil { lock.wait() }
        if let failure { throw LogError.writerFailed(directory: directory, cause: failure) }
    }

    func requireOpen() throws {
        lock.lock()
        defer { lock.unlock() }
        if let failure { throw LogError.writerFailed(directory: directory, cause: failure) }
        if closed || released { throw LogError.writerClosed(directory: directory) }
    }

    func enqueue(_ entries: PendingAppend, bytes: Int) throws -> Range<UInt64> {
        lock.lock()
        defer { lock.unlock() }
        // Bound the queue: wait while others' entries fill it (a lone big append always fits).
        while failure == nil, !closed, pendingBytes > 0, pendingBytes + bytes > configuration.pendingBytesMax {
            lock.wait()
        }
        if let failure { throw LogError.writerFailed(directory: directory, cause: failure) }
        if closed { throw LogError.writerClosed(directory: directory) }
        guard let firstTs = entries.firstTs, let lastTs = entries.lastTs else { return nextPosition..<nextPosition }
        guard firstTs >= lastAcceptedTs else { throw LogError.timestampDecreased(ts: firstTs, previousTs: lastAcceptedTs, index: 0) }
        let start = nextPosition
        nextPosition += UInt64(entries.count)
        lastAcceptedTs = lastTs
        pending.append(entries)
        pendingBytes += bytes
        lock.signalWork()
        return start..<nextPosition
    }

    /// Batches wait in the queue for the committer to frame and compress them.
    var isBehind: Bool {
        lock.lock()
        defer { lock.unlock() }
        return pending.contains { if case .batch = $0 { true } else { false } }
    }

    /// Waits until `position` is acknowledged, or throws once the writer has failed.
    func wait(through position: UInt64) throws {
        lock.lock()
        defer { lock.unlock() }
        precondition(position < nextPosition, "waiting for position \(position), which was never queued")
        // Bound: each round returns, throws, or sleeps until the committer or syncer progresses.
        while acknowledged < position {
            if let failure { throw LogError.writerFailed(directory: directory, cause: failure) }
            lock.waitForAcknowledged()
        }
    }

    /// The committer thread: takes everything queued and commits it, until stopped and drained
    /// or failed.
    private func runCommitter() {
        lock.lock()
        defer { lock.unlock() }
        // Bound: each round commits at least one queued append or ends the loop.
        while true {
            while pending.isEmpty, !rollRequested, !stopping, failure == nil { lock.waitForWork() }
            if failure == nil, rollRequested, pending.isEmpty {
                committing = true
                lock.unlock()
                var cause: LogError?
                do {
                    if var segment = active, segment.size > 0, !segment.lastContinues {
                        segment = try roll(from: segment, newBase: written + 1)
                        active = segment
                    }
                } catch let e as LogError {
                    cause = e
                } catch {
                    cause = .io(operation: "roll", path: directory, offset: nil, errno: EIO)
                }
                lock.lock()
                committing = false
                rollRequested = false
                if let cause, failure == nil { failure = cause }
                lock.wakeAll()
                continue
            }
            if failure != nil || pending.isEmpty { return }
            var batches = pending
            let first = written + 1
            let end = nextPosition
            pending = []
            pendingBytes = 0
            committing = true
            lock.broadcast()
            lock.unlock()
            var cause: LogError?
            do {
                try commit(batches, firstPosition: first, lastPosition: end - 1)
            } catch let e as LogError {
                cause = e
            } catch {
                cause = .io(operation: "commit", path: directory, offset: nil, errno: EIO)
            }
            // Drop the payloads before anyone is acknowledged (a caller may reuse its buffers).
            batches = []
            lock.lock()
            committing = false
            if let cause {
                if failure == nil { failure = cause }
            } else if failure == nil {
                written = end - 1
                if configuration.durability != .always {
                    acknowledged = written
                    published.store(acknowledged)
                    tellAcknowledged()
                } else {
                    // Written, not yet acknowledged: only the syncer (and `sync()`/`close()`)
                    // have anything to do; the appenders wait for the sync.
                    lock.wakeAfterWrite()
                    continue
                }
            }
            lock.wakeAll()
        }
    }

    /// Calls the listener (if any) with `acknowledged`, outside the lock (called and returning
    /// with it held).
    private func tellAcknowledged() {
        guard let listener = acknowledgedListener else { return }
        let position = acknowledged
        lock.unlock()
        listener(position)
        lock.lock()
    }

    /// The syncer thread (`.always`): syncs the active segment whenever written positions are
    /// not yet acknowledged, acknowledging what was written before the sync began.
    private func runSyncer() {
        lock.lock()
        defer { lock.unlock() }
        // Bound: each round syncs once or ends the loop.
        while true {
            if failure != nil { return }
            if written > acknowledged, !syncing, let file = syncFile {
                _ = syncAndAcknowledge(file, through: written)
                continue
            }
            if stopping, !committing, pending.isEmpty, written <= acknowledged { return }
            guard watermark.isDirty else {
                lock.waitForWrite()
                continue
            }
            // Idle with an unsynced watermark: sync it once it is a second old, so it never
            // lags the disk by more than that while the writer is open.
            if !lock.waitForWrite(upToMs: 1_000) {
                lock.unlock()
                var cause: LogError?
                do { try watermark.syncIfDue() } catch let e as LogError { cause = e } catch {
                    cause = .io(operation: "fdatasync", path: directory, offset: nil, errno: EIO)
                }
                lock.lock()
                if let cause, failure == nil {
                    failure = cause
                    lock.wakeAll()
                }
            }
        }
    }

    /// Syncs the active segment once everything queued so far is written.
    func sync() throws {
        lock.lock()
        defer { lock.unlock() }
        let target = nextPosition - 1
        // Bound: each round sleeps until the committer, the syncer or a roll progresses.
        while true {
            if let failure { throw LogError.writerFailed(directory: directory, cause: failure) }
            if released { throw LogError.writerClosed(directory: directory) }
            if written >= target, !syncing, syncFile != nil { break }
            lock.wait()
        }
        guard let file = syncFile else { return }
        if let cause = syncAndAcknowledge(file, through: written) { throw cause }
        do { try watermark.sync() } catch let e as LogError {
            if failure == nil { failure = e }
            lock.wakeAll()
            throw e
        }
    }

    /// Syncs `file` outside the lock (called and returning with it held), then acknowledges
    /// `through`, or fails the writer. Returns the sync error.
    private func syncAndAcknowledge(_ file: any LogFile, through: UInt64) -> LogError? {
        syncing = true
        lock.unlock()
        var cause: LogError?
        do {
            try file.sync()
            // Synced: the watermark may now claim it (before anyone is told).
            try watermark.store(through)
        } catch let e as LogError { cause = e } catch {
            cause = .io(operation: "fdatasync", path: directory, offset: nil, errno: EIO)
        }
        lock.lock()
        syncing = false
        if let cause {
            if failure == nil { failure = cause }
        } else if failure == nil, through > acknowledged {
            acknowledged = through
            published.store(acknowledged)
            lock.wakeAll()
            tellAcknowledged()
            return nil
        }
        lock.wakeAll()
        return cause
    }

    /// Drains the queue (every queued append is committed and acknowledged, or the writer has
    /// failed), stops the threads, syncs, and releases the files and the lock.
    func close() throws {
        lock.lock()
        if released || closing {
            // Idempotent; a concurrent close finishes the job.
            while !released { lock.wait() }
            lock.unlock()
            return
        }
        closing = true
        lock.wakeAll()
        while failure == nil, !pending.isEmpty || committing || syncing || acknowledged < written { lock.wait() }
        // No `sync()` may start on the file this close is about to cut and close.
        syncFile = nil
        while syncing { lock.wait() }
        lock.unlock()
        stopThreads()
        // The threads are gone: this caller owns the committer's fields.
        lock.lock()
        let failed = failure
        let writtenThrough = written
        lock.unlock()
        var syncError: LogError?
        if failed == nil, let active {
            do {
                try Self.trimPreallocation(active)
                try active.file.sync()
                try watermark.store(writtenThrough)
                try watermark.sync()
            } catch let e as LogError { syncError = e } catch {}
        }
        lock.lock()
        if let syncError, failure == nil { failure = syncError }
        lock.unlock()
        release()
        if let syncError { throw syncError }
    }

    // MARK: - Committer work

    /// Packs the batches into blocks of at most `blockRawBytesMax` raw bytes and writes them
    /// (prepared blocks as they are); syncs per `.interval` (`.always` syncs are the syncer's).
    ///
    /// Each append is a transaction: a block that ends inside an append (the append goes on in
    /// the next block) carries the `continues` flag, so recovery and readers count an append's
    /// blocks only once its closing block is there. A commit always ends with a closing block.
    private func commit(_ batches: [PendingAppend], firstPosition: UInt64, lastPosition: UInt64) throws {
        var blockBase = firstPosition
        framer.reset()
        /// Writes the open block, if any, and starts the next. `continues`: the append of the
        /// block's last record goes on.
        func flush(continues: Bool) throws {
            guard framer.count > 0 else { return }
            try writeBlock(base: blockBase, continues: continues)
            blockBase += UInt64(framer.count)
            framer.reset()
        }
        /// Frames one record, closing the block first if it would overflow. `first`: the record
        /// starts its append (a block closed before it ends at an append's end).
        func add(ts: Int64, payload: UnsafeRawBufferPointer, first: Bool) throws {
            if framer.isFull(adding: ts, payloadBytes: payload.count) { try flush(continues: !first) }
            framer.add(ts: ts, payload: payload)
        }
        for batch in batches {
            switch batch {
            case let .entries(entries):
                var first = true
                for entry in entries {
                    try entry.payload.withUnsafeBytes { try add(ts: entry.ts, payload: $0, first: first) }
                    first = false
                }
            case let .batch(batch):
                framer.reserve(batch.bytes.count + 20 * batch.count)
                try batch.bytes.withUnsafeBytes { all in
                    var start = 0
                    var first = true
                    for (ts, end) in zip(batch.timestamps, batch.ends) {
                        try add(ts: ts, payload: UnsafeRawBufferPointer(rebasing: all[start..<end]), first: first)
                        start = end
                        first = false
                    }
                }
            case let .prepared(prepared):
                try flush(continues: false)
                for (index, block) in prepared.blocks.enumerated() {
                    let blockBytes = BlockHeader.size + block.frame.count
                    if out.count < blockBytes + SegmentFiller.headerBytes { out = [UInt8](repeating: 0, count: blockBytes + SegmentFiller.headerBytes) }
                    out.withUnsafeMutableBytes { dst in
                        block.frame.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: dst[BlockHeader.size..<blockBytes]).copyMemory(from: $0) }
                    }
                    var header = block.header
                    header.continues = index < prepared.blocks.count - 1
                    try writeSealed(header, base: blockBase)
                    blockBase += UInt64(block.header.count)
                }
            }
        }
        try flush(continues: false)
        guard let active else { return }
        switch configuration.durability {
        case .always:
            break
        case let .interval(milliseconds):
            if ContinuousClock.now - lastSync >= .milliseconds(milliseconds) {
                try active.file.sync()
                try watermark.store(lastPosition)
                lastSync = .now
            }
        case .none:
            break
        }
    }

    /// Compresses the framer's block into `out` and writes it at position `base`.
    private func writeBlock(base: UInt64, continues: Bool) throws {
        guard let segment = active else { throw LogError.writerClosed(directory: directory) }
        // Room for the header before the frame and a filler header after the block.
        guard let (_, header) = framer.compress(into: &out, at: BlockHeader.size, spare: SegmentFiller.headerBytes,
                                                level: configuration.compressionLevel) else {
            throw LogError.io(operation: "LZ4F_compressFrame", path: SegmentFiles.join(directory, SegmentFiles.segmentName(base: segment.base)), offset: segment.size, errno: EINVAL)
        }
        var sealed = header
        sealed.continues = continues
        try writeSealed(sealed, base: base)
    }

    /// Writes the block whose LZ4 frame sits in `out` after the header room: `header` gets its
    /// position and CRCs, the segment rolls if needed, then pwrite and the index entry.
    private func writeSealed(_ sealed: BlockHeader, base: UInt64) throws {
        guard var segment = active else { throw LogError.writerClosed(directory: directory) }
        var header = sealed
        header.basePosition = base
        header.previousCRC = segment.lastCRC
        let compressed = Int(header.compressedBytes)
        let blockBytes = BlockHeader.size + compressed
        if segment.size > 0, segment.size + UInt64(blockBytes) > configuration.segmentBytesMax, !segment.lastContinues {
            segment = try roll(from: segment, newBase: base)
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
        try reserve(&segment, through: end)
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
        indexBuffer.removeAll(keepingCapacity: true)
        BlockIndexFile.encode(IndexEntry(header: header, offset: segment.size), into: &indexBuffer)
        let indexOffset = UInt64(BlockIndexFile.headerBytes + segment.indexEntries * BlockIndexFile.entryBytes)
        try indexBuffer.withUnsafeBytes { try segment.index.write($0, at: indexOffset) }
        segment.size += UInt64(blockBytes)
        segment.lastCRC = header.blockCRC
        segment.lastContinues = header.continues
        segment.indexEntries += 1
        active = segment
    }

    /// Makes room for a block ending at `end` plus a filler header after it: extends the file
    /// with zeros in steps of 64 KiB doubling with the segment up to `preallocationBytesMax`,
    /// never past `segmentBytesMax`. Synced with the block that follows.
    private func reserve(_ segment: inout ActiveSegment, through end: UInt64) throws {
        let filler = UInt64(SegmentFiller.headerBytes)
        if end == segment.allocated || end + filler <= segment.allocated { return }
        let step = min(UInt64(configuration.preallocationBytesMax), max(64 << 10, segment.size))
        let target = min(end + step, max(configuration.segmentBytesMax, end))
        guard target >= end + filler else {
            // No room to preallocate (turned off, or the segment is full): the block ends the
            // file, cut if fewer than a filler header's bytes would be left after it.
            if segment.allocated > end { try segment.file.truncate(to: end) }
            segment.allocated = end
            return
        }
        // Zeros after the block only: the block itself is written over [size, end) next.
        var offset = max(segment.allocated, end)
        // Bound: each round writes up to 1 MiB of zeros until `target`.
        while offset < target {
            let n = Int(min(target - offset, UInt64(Self.zeros.count)))
            try Self.zeros.withUnsafeBytes { try segment.file.write(UnsafeRawBufferPointer(rebasing: $0[0..<n]), at: offset) }
            offset += UInt64(n)
        }
        segment.allocated = target
    }

    private static let zeros = [UInt8](repeating: 0, count: 1 << 20)

    /// Cuts the preallocated end off a segment that is being closed.
    static func trimPreallocation(_ segment: ActiveSegment) throws {
        if segment.allocated > segment.size { try segment.file.truncate(to: segment.size) }
    }

    /// Closes the full segment (cut to its last block and synced, so a closed segment is whole
    /// on disk whatever the policy) and starts a new one, synced together with its directory.
    private func roll(from segment: ActiveSegment, newBase: UInt64) throws -> ActiveSegment {
        // No sync of the old file may be in flight while it is closed (nor start after).
        lock.lock()
        while syncing { lock.waitForWork() }
        syncFile = nil
        lock.unlock()
        try Self.trimPreallocation(segment)
        try segment.file.sync()
        // Everything before the new segment is synced now.
        try watermark.store(newBase - 1)
        try watermark.sync()
        segment.file.close()
        segment.index.close()
        active = nil
        let next = try Recovery.createSegment(directory: directory, base: newBase, fileSystem: fileSystem)
        active = next
        lock.lock()
        syncFile = next.file
        lock.wakeAll()
        lock.unlock()
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
