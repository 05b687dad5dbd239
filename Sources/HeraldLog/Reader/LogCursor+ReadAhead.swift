#if canImport(Glibc)
import Glibc
#endif

extension LogCursor {
    /// Calls `body` with each block from ``nextPosition`` on, as repeated ``nextBlock()`` calls
    /// would, while a background thread reads, checks and decompresses the next blocks: the
    /// caller's work on one block overlaps the reading of the next ones (a long scan then costs
    /// about the larger of the two instead of their sum).
    ///
    /// Stops after the block holding position `through`, when the cursor reaches the reader's
    /// `lastPosition` (``nextBlock()`` returns nil), or when `body` returns false or throws.
    /// At most `readAhead` blocks are read ahead (at least 1), each into one of
    /// `readAhead + 1` buffers that are reused: memory stays flat however long the scan.
    ///
    /// Errors keep their meaning and order: every block before a damaged one is passed to
    /// `body` first, then the error ``nextBlock()`` raised (the same `LogError`) is thrown; an
    /// error `body` throws is rethrown as is. The background thread is stopped and joined
    /// before this returns or throws. If no thread can be started, the blocks are read on the
    /// calling thread.
    ///
    /// The cursor belongs to the background thread during the call: `body` must not use it.
    /// Afterwards ``nextPosition`` may be past the last block given to `body` (blocks read
    /// ahead and not delivered are dropped).
    ///
    /// ```swift
    /// let cursor = try reader.makeCursor(from: 1)
    /// try cursor.forEachBlock(through: reader.lastPosition) { block in
    ///     block.forEachRecord { position, ts, payload in /* ... */ }
    ///     return true
    /// }
    /// ```
    public func forEachBlock(through: UInt64 = .max, readAhead: Int = 2, _ body: (LogBlock) throws -> Bool) throws {
        try forEachBlock(through: through, readAhead: readAhead, check: nil) { block, _ in try body(block) }
    }

    /// ``forEachBlock(through:readAhead:_:)`` that also runs `check` on each block on the
    /// background thread, right after the block is read, and passes its answer to `body` with
    /// the block: work that only looks at a block's bytes (checking every payload, say) moves
    /// off the calling thread, so a scan's two threads share its cost more evenly.
    ///
    /// `check` sees each block once, before `body` does; it must not keep the block. Its answer
    /// is advisory to `body` (a block `check` answered false for is simply handled the slow way);
    /// with no thread, `check` runs on the calling thread just before `body`.
    public func forEachBlock(through: UInt64 = .max, readAhead: Int = 2, check: (@Sendable (LogBlock) -> Bool)?,
                             _ body: (LogBlock, _ checked: Bool) throws -> Bool) throws {
        let pipe = ReadAheadPipe(cursor: self, through: through, buffers: max(1, readAhead) + 1, check: check)
        guard let thread = JoinableThread({ pipe.produce() }) else {
            // No thread: the same loop, serially.
            while let block = try nextBlock(), try body(block, check?(block) ?? false), block.endPosition <= through {}
            return
        }
        defer {
            pipe.cancel()
            thread.join()
        }
        // Bound: each round takes one block; the producer stops after `through` or at the end.
        while let (block, checked) = try pipe.take() {
            let more = try body(block, checked)
            pipe.recycle(block)
            if !more { return }
        }
    }
}

/// The handoff between `forEachBlock`'s background reader (the producer) and the caller.
///
/// `@unchecked Sendable`: every mutable field is read and written only with `lock` held,
/// except `cursor`, which only the producer thread uses between its start and the join in
/// `forEachBlock` (the caller is inside `forEachBlock` all that time and does not touch it).
private final class ReadAheadPipe: @unchecked Sendable {
    private let cursor: LogCursor
    private let through: UInt64
    private let check: (@Sendable (LogBlock) -> Bool)?
    private let lock = ConditionLock()
    /// Blocks read and not yet taken with `check`'s answer, oldest first (at most `buffers - 1`).
    private var ready: [(block: LogBlock, checked: Bool)] = []
    /// Buffers free for the producer (empty arrays until first used; the cursor sizes them).
    private var spare: [[UInt8]]
    /// The producer will add nothing more (`failure` says why if it was an error).
    private var done = false
    private var failure: (any Error)?
    /// The caller has stopped: the producer exits at its next check.
    private var cancelled = false

    init(cursor: LogCursor, through: UInt64, buffers: Int, check: (@Sendable (LogBlock) -> Bool)?) {
        self.cursor = cursor
        self.through = through
        self.check = check
        self.spare = Array(repeating: [], count: buffers)
        ready.reserveCapacity(buffers)
    }

    /// The producer (on its own thread): reads blocks into spare buffers until `through`, the
    /// end, an error or cancellation.
    func produce() {
        // Bound: each round reads one block (or ends); the cursor stops at lastPosition.
        while true {
            lock.lock()
            while spare.isEmpty && !cancelled { lock.wait() }
            if cancelled {
                lock.unlock()
                return
            }
            var buffer = spare.removeLast()
            lock.unlock()
            let result = Result { try cursor.nextBlock(into: &buffer) }
            buffer = []  // the block (if any) now holds the only reference
            var checked = false
            if let check, case let .success(block?) = result { checked = check(block) }
            lock.lock()
            switch result {
            case let .success(block?):
                ready.append((block, checked))
                done = block.endPosition > through
            case .success(nil):
                done = true
            case let .failure(error):
                failure = error
                done = true
            }
            let finished = done
            lock.broadcast()
            lock.unlock()
            if finished { return }
        }
    }

    /// The next block in order; nil after the last; throws the producer's error once every
    /// block read before it was taken.
    func take() throws -> (LogBlock, Bool)? {
        lock.lock()
        defer { lock.unlock() }
        while ready.isEmpty && !done { lock.wait() }
        if !ready.isEmpty {
            let first = ready.removeFirst()
            return (first.block, first.checked)
        }
        if let failure { throw failure }
        return nil
    }

    /// Gives a taken block's buffer back to the producer. If the caller kept anything sharing
    /// the buffer (a copy of the block, or values decoded from it: `JSONText` shares its
    /// block), the producer's next write copies the buffer (about 1 MiB) instead of changing it.
    func recycle(_ block: consuming LogBlock) {
        let bytes = block.bytes
        _ = consume block
        lock.lock()
        spare.append(bytes)
        lock.broadcast()
        lock.unlock()
    }

    /// Tells the producer to stop (it finishes the block it is reading, if any).
    func cancel() {
        lock.lock()
        cancelled = true
        lock.broadcast()
        lock.unlock()
    }
}
