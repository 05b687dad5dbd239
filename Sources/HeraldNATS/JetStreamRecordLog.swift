import HeraldCore
import HeraldLog
import HeraldThreads

/// A JetStream stream as the live engine's ``HeraldCore/RecordLog`` (`herald run --log
/// nats://…`): ``enqueue(_:)`` gives positions at once and queues the batch; a publisher thread
/// of its own publishes the batches in order (each one append of ``JetStreamLog``, fenced and
/// deduplicated), and a batch is durable once the stream acknowledged its last block. Reads go
/// through a second connection.
///
/// A failed publish (fenced by another writer, the stream unreachable past its retries) fails
/// the log: every later enqueue and wait throws, so the engine stops taking work (fails closed).
public final class JetStreamRecordLog: RecordLog, @unchecked Sendable {
    // @unchecked: the queue, positions and failure are under `lock`; `writer` is used by the
    // publisher thread only (and by `init` before it starts); `reader` under `readLock`.
    private let writer: JetStreamLog
    private let reader: JetStreamLog
    private let readLock = ConditionLock()
    private let lock = ConditionLock()
    private var queue: [(first: UInt64, records: [Record])] = []
    private var nextPosition: UInt64
    private var durable: UInt64
    private var failure: String?
    private var closing = false
    private var listener: (@Sendable (UInt64) -> Void)?
    private var thread: JoinableThread?
    public let location: String

    /// Opens the stream for appending: reads its end (creating it when missing).
    public init(url: String, diagnostics: (@Sendable (String) -> Void)? = nil) throws {
        location = url
        writer = try JetStreamLog(url: url)
        reader = try JetStreamLog(url: url)
        writer.diagnostics = diagnostics
        reader.diagnostics = diagnostics
        let last = try writer.openForAppending()
        nextPosition = last + 1
        durable = last
        thread = JoinableThread { [self] in publish() }
        guard thread != nil else { throw JetStreamLogError.badStream(location: url, reason: "the system refused a publisher thread") }
    }

    /// The largest record the stream takes (``JetStreamLog/recordBytesMax``).
    public var recordBytesMax: Int { writer.recordBytesMax }

    public var lastPosition: UInt64 {
        get throws {
            readLock.lock()
            defer { readLock.unlock() }
            return try reader.lastPosition
        }
    }

    public func forEach(from: UInt64, through: UInt64?, _ body: (UInt64, Record) throws -> Bool) throws {
        readLock.lock()
        defer { readLock.unlock() }
        try reader.forEach(from: from, through: through, body)
    }

    public func enqueue(_ records: [Record]) throws -> ClosedRange<UInt64> {
        precondition(!records.isEmpty, "enqueue needs at least one record")
        lock.lock()
        defer { lock.unlock() }
        if let failure { throw JetStreamLogError.badStream(location: location, reason: failure) }
        guard !closing else { throw JetStreamLogError.badStream(location: location, reason: "the log is closed") }
        let first = nextPosition
        nextPosition += UInt64(records.count)
        queue.append((first, records))
        lock.signalWork()
        return first...(nextPosition - 1)
    }

    public var durablePosition: UInt64 {
        lock.lock()
        defer { lock.unlock() }
        return durable
    }

    public func waitUntilDurable(through position: UInt64) throws {
        lock.lock()
        defer { lock.unlock() }
        while durable < position {
            if let failure { throw JetStreamLogError.badStream(location: location, reason: failure) }
            lock.wait()
        }
    }

    public func onDurable(_ listener: @escaping @Sendable (UInt64) -> Void) {
        lock.lock()
        self.listener = listener
        lock.unlock()
    }

    /// Publishes what is queued, then stops the publisher.
    public func close() throws {
        lock.lock()
        closing = true
        lock.wakeAll()
        let running = thread
        thread = nil
        lock.unlock()
        running?.join()
        lock.lock()
        defer { lock.unlock() }
        if let failure { throw JetStreamLogError.badStream(location: location, reason: failure) }
    }

    /// The publisher thread: batches in order, each one append, up to closing.
    private func publish() {
        while true {
            lock.lock()
            while queue.isEmpty && !closing && failure == nil { lock.waitForWork() }
            if queue.isEmpty || failure != nil {
                lock.unlock()
                return
            }
            // Queued batches go out as one append (one transaction): fewer, larger messages.
            let batches = queue
            queue.removeAll(keepingCapacity: true)
            lock.unlock()
            let records = batches.flatMap(\.records)
            let first = batches[0].first
            var failed: String?
            do {
                let range = try writer.append(records)
                if range.lowerBound != first {
                    failed = "the stream gave positions \(range.lowerBound)…, the engine expected \(first)…"
                }
            } catch {
                failed = "\(error)"
            }
            lock.lock()
            if let failed {
                failure = failure ?? failed
                lock.wakeAll()
                lock.unlock()
                return
            }
            durable = first + UInt64(records.count) - 1
            let listener = self.listener
            let now = durable
            lock.wakeAll()
            lock.unlock()
            listener?(now)
        }
    }
}
