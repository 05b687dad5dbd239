#if canImport(Glibc)
import Glibc
#endif
import HeraldThreads

extension LogCursor {
    /// Calls `body` with each block from ``nextPosition`` on, as repeated ``nextBlock()`` calls
    /// would, while a background thread reads, checks and decompresses the next blocks: the
    /// caller's work on one block overlaps the reading of the next ones.
    ///
    /// The work is shared, not just split: when the next block is not ready yet, the calling
    /// thread reads and decompresses a block itself instead of waiting, so whichever side
    /// is lighter (decompressing or the caller's `body`) helps the other, and a long scan
    /// costs about half the sum of the two on two cores.
    ///
    /// Stops after the block holding position `through`, when the cursor reaches the reader's
    /// `lastPosition` (``nextBlock()`` returns nil), or when `body` returns false or throws.
    /// At most `readAhead + 1` blocks are in flight (at least 2), each in one of as many
    /// buffers that are reused: memory stays flat however long the scan.
    ///
    /// Errors keep their meaning and order: every block before a damaged one is passed to
    /// `body` first, then the error ``nextBlock()`` raised (the same `LogError`) is thrown; an
    /// error `body` throws is rethrown as is. The background thread is stopped and joined
    /// before this returns or throws. If no thread can be started, the blocks are read on the
    /// calling thread.
    ///
    /// The cursor belongs to the scan during the call: `body` must not use it. Afterwards
    /// ``nextPosition`` is the position after the last block given to `body` (blocks read
    /// ahead and not delivered are read again by the next call), so a damaged block is
    /// reported again, never skipped.
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

    /// ``forEachBlock(through:readAhead:_:)`` that also runs `check` on each block right after
    /// it is decompressed, on the thread that decompressed it, and passes its answer to `body`
    /// with the block: work that only looks at a block's bytes (checking every payload, say)
    /// is shared by the scan's two threads like the decompression.
    ///
    /// `check` sees each block once, before `body` does; it must not keep the block. Its answer
    /// is advisory to `body` (a block `check` answered false for is simply handled the slow way).
    public func forEachBlock(through: UInt64 = .max, readAhead: Int = 2, check: (@Sendable (LogBlock) -> Bool)?,
                             _ body: (LogBlock, _ checked: Bool) throws -> Bool) throws {
        // Taken before the producer starts: it moves the cursor from then on.
        var resume = nextPosition
        let pipe = ReadAheadPipe(cursor: self, through: through, buffers: max(1, readAhead) + 1, check: check)
        guard let thread = JoinableThread({ pipe.produce() }) else {
            // No thread: the same loop, serially.
            while let block = try nextBlock(), try body(block, check?(block) ?? false), block.endPosition <= through {}
            return
        }
        defer {
            pipe.cancel()
            thread.join()
            rewind(to: resume)
        }
        // Bound: each round takes one block; reading stops after `through` or at the end.
        while let (block, checked) = try pipe.take() {
            resume = block.endPosition
            let more = try body(block, checked)
            pipe.recycle(block)
            if !more { return }
        }
    }
}

/// The work shared by `forEachBlock`'s background thread (the producer) and the caller.
///
/// A unit of work takes a spare buffer and the next block's number, reads the block from the
/// cursor (header, body, checksum: one thread at a time, in order), then decompresses and
/// checks it with no lock held, so both threads can decompress at once; blocks are delivered
/// in number order whichever thread finished them.
///
/// `@unchecked Sendable`: every mutable field is read and written only with `lock` held, except
/// `cursor`, used only by the thread that set `reading` (under `lock`) until it clears it, and
/// `callerCompressed`/`callerDecompressor`, used only by the calling thread.
private final class ReadAheadPipe: @unchecked Sendable {
    private enum Slot {
        case block(LogBlock, checked: Bool)
        case failure(any Error)
    }

    private let cursor: LogCursor
    private let through: UInt64
    private let check: (@Sendable (LogBlock) -> Bool)?
    private let lock = ConditionLock()
    /// Finished blocks by number: block `n` in slot `n % slots.count`, for `delivered..<issued`
    /// (at most one per buffer, so numbers in flight never share a slot).
    private var slots: [Slot?]
    /// The number the next block read gets.
    private var issued = 0
    /// The number of the next block the caller takes.
    private var delivered = 0
    /// Buffers free for the next block (empty arrays until first used).
    private var spare: [[UInt8]]
    /// One thread is reading from the cursor.
    private var reading = false
    /// Nothing more will be read: the end, `through`, or an error (in its slot).
    private var exhausted = false
    /// The caller has stopped: the producer exits at its next check.
    private var cancelled = false
    private var callerCompressed: [UInt8] = []
    private lazy var callerDecompressor = LZ4Decompressor()

    init(cursor: LogCursor, through: UInt64, buffers: Int, check: (@Sendable (LogBlock) -> Bool)?) {
        self.cursor = cursor
        self.through = through
        self.check = check
        self.spare = Array(repeating: [], count: buffers)
        self.slots = Array(repeating: nil, count: buffers)
    }

    /// The producer (on its own thread): works until nothing is left to read or the caller stops.
    func produce() {
        var compressed: [UInt8] = []
        let decompressor = LZ4Decompressor()
        lock.lock()
        // Bound: each round does one block's work or waits for a buffer; `exhausted` ends it.
        while !cancelled && !exhausted {
            if !work(compressed: &compressed, decompressor: decompressor) { lock.wait() }
        }
        lock.unlock()
    }

    /// One unit of work, if there is one this thread can take: true if it did one. Called and
    /// returns with `lock` held (released while reading and decompressing).
    private func work(compressed: inout [UInt8], decompressor: LZ4Decompressor) -> Bool {
        guard !reading, !exhausted, !cancelled, var buffer = spare.popLast() else { return false }
        reading = true
        let number = issued
        lock.unlock()
        let read = Result { () throws -> ReadBlock? in
            guard let read = try cursor.nextCompressed(into: &compressed) else { return nil }
            cursor.advance(past: read)
            return read
        }
        lock.lock()
        reading = false
        switch read {
        case .success(nil):
            exhausted = true
            spare.append(buffer)
        case let .failure(error):
            exhausted = true
            issued += 1
            slots[number % slots.count] = .failure(error)
            spare.append(buffer)
        case let .success(block?):
            issued += 1
            if block.header.endPosition > through { exhausted = true }
            lock.broadcast()  // the cursor is free for the other thread
            lock.unlock()
            let expanded = Result { try block.expand(compressed, into: &buffer, with: decompressor) }
            buffer = []  // the block (if any) now holds the only reference
            var checked = false
            if let check, case let .success(block) = expanded { checked = check(block) }
            lock.lock()
            switch expanded {
            case let .success(block):
                slots[number % slots.count] = .block(block, checked: checked)
            case let .failure(error):
                // Nothing after a damaged block is delivered: stop reading.
                exhausted = true
                slots[number % slots.count] = .failure(error)
                spare.append([])
            }
        }
        lock.broadcast()
        return true
    }

    /// The next block in order; nil after the last; throws the error of a damaged block once
    /// every block before it was taken. While the next block is not ready, the calling thread
    /// works on a later one instead of waiting.
    func take() throws -> (LogBlock, Bool)? {
        lock.lock()
        defer { lock.unlock() }
        // Bound: each round takes a slot, ends, does a unit of work or waits for the producer.
        while true {
            let index = delivered % slots.count
            if let slot = slots[index] {
                slots[index] = nil
                delivered += 1
                switch slot {
                case let .block(block, checked): return (block, checked)
                case let .failure(error): throw error
                }
            }
            if exhausted && !reading && delivered == issued { return nil }
            if !work(compressed: &callerCompressed, decompressor: callerDecompressor) { lock.wait() }
        }
    }

    /// Gives a taken block's buffer back. If the caller kept anything sharing the buffer (a
    /// copy of the block, or values decoded from it: `JSONText` shares its block), the next
    /// decompression into it copies the buffer (about 1 MiB) instead of changing it.
    func recycle(_ block: consuming LogBlock) {
        let bytes = block.bytes
        _ = consume block
        lock.changeAndBroadcast { spare.append(bytes) }
    }

    /// Tells the producer to stop (it finishes the block it is working on, if any).
    func cancel() {
        lock.changeAndBroadcast { cancelled = true }
    }
}
