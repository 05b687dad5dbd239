import HeraldCore
import HeraldPostgres
import HeraldThreads

/// Keeps a PostgreSQL projection following a data directory's log while an engine appends to
/// it (`herald run --postgres URL`, `herald serve --postgres URL`): on a thread of its own,
/// about once a second, it applies the records up to the log's durable position. The engine's
/// own state stays in its SQLite projection; PostgreSQL is for the other readers.
///
/// ```swift
/// let follower = try PostgresFollower(directory: directory, url: url)
/// follower.start(through: { herald.durablePosition }, report: { print($0) })
/// // …
/// follower.stop()   // a last catch-up, then the thread ends
/// ```
/// Holds the schema's writer lock from `init` to `stop()`: a second writer is refused.
public final class PostgresFollower: @unchecked Sendable {
    // @unchecked: `projector` is used by the follower's thread only (and by `stop` after it
    // joined it); `stopping`, `thread` and `lastError` are under `lock`.
    private let projector: Projector
    private let lock = ConditionLock()
    private var stopping = false
    private var thread: JoinableThread?
    private var through: (@Sendable () -> UInt64)?
    private var report: (@Sendable (String) -> Void)?
    /// The last failure of a catch-up (each failure is reported once, then retried).
    private var lastError: String?
    /// The projection's checkpoint after the last pass (under `lock`).
    private var checkpointAfterPass: UInt64 = 0

    /// The PostgreSQL projection's checkpoint as of the last pass: a running engine's
    /// retention never compacts past it (``Herald/limitCompaction(_:)``), so the follower never
    /// needs a record the log no longer holds.
    public var checkpoint: UInt64 {
        lock.lock()
        defer { lock.unlock() }
        return checkpointAfterPass
    }

    /// Opens (creating when needed) the projection in `schema` and takes its writer lock.
    public init(directory: DataDirectory, url: String, schema: String = "herald") throws {
        let store = try PostgresProjection(url: url, schema: schema)
        store.diagnostics = directory.diagnostics
        projector = try Projector(store: store, source: { try directory.openReader() })
        checkpointAfterPass = projector.dispatcher.position
    }

    /// Applies the records after the checkpoint, up to `through` (the log's end by default).
    @discardableResult
    public func catchUp(through: UInt64? = nil) throws -> ProjectResult {
        try projector.catchUp(through: through)
    }

    /// Follows the log every `intervalMs` on a thread of its own, up to `through()` (the
    /// engine's durable position: an acknowledged record, never one a crash could take back).
    /// A failed catch-up is told to `report` (once per distinct error) and retried.
    public func start(intervalMs: Int = 1_000, through: @escaping @Sendable () -> UInt64,
                      report: @escaping @Sendable (String) -> Void) {
        lock.lock()
        defer { lock.unlock() }
        guard thread == nil, !stopping else { return }
        self.through = through
        self.report = report
        thread = JoinableThread { [self] in
            while true {
                pass()
                lock.lock()
                if !stopping { _ = lock.waitForWrite(upToMs: intervalMs) }
                let done = stopping
                lock.unlock()
                if done { return }
            }
        }
    }

    private func pass() {
        guard let through else { return }
        do {
            try projector.catchUp(through: through())
            // The engine may have compacted the log since the last pass.
            try projector.followCompaction()
            let position = projector.dispatcher.position
            lock.lock(); lastError = nil; checkpointAfterPass = position; lock.unlock()
        } catch {
            let text = "\(error)"
            lock.lock()
            let fresh = lastError != text
            lastError = text
            lock.unlock()
            if fresh { report?("PostgreSQL projection: \(text) (retried every pass)") }
        }
    }

    /// Stops following: the thread makes a last pass (after the engine closed, everything
    /// durable) and ends. The writer lock is released when this object goes.
    public func stop() {
        lock.lock()
        stopping = true
        let running = thread
        thread = nil
        lock.wakeAll()
        lock.unlock()
        running?.join()
        pass()
    }
}
