import HeraldCore
import HeraldLog
import HeraldStore
import Dispatch
import Foundation
import Logging
import Synchronization

/// Options of a live engine.
public struct HeraldOptions: Sendable {
    /// Log durability for every append (commands and outcomes).
    public var durability: LogDurability
    /// Stamps new records and times attempts. A ``VirtualClock`` makes the engine deterministic.
    public var clock: any HeraldClock
    /// Runs scripts.
    public var executor: any ScriptExecutor
    /// Attempts running at once.
    public var concurrency: Int
    /// An attempt still running after this long is cancelled and recorded as an error.
    public var attemptTimeoutMs: Int64
    /// HERALD_RETRY_* defaults.
    public var environment: HeraldEnvironment
    /// How often `run` brings the projection up to date in the background (0: only when
    /// `run` returns and on `close`). The projection makes restarts fast; it may lag the log.
    public var projectionIntervalMs: Int64
    /// Records the background projection applies per pass (one transaction) before it lets go
    /// of the projection's lock. It runs on its own thread at a lower priority and uses at most
    /// half of one core: after every 2,048 records it pauses as long as they took. Large by
    /// default: fewer, larger transactions write fewer pages.
    public var projectionSliceRecords: UInt64
    /// Where the engine reports what it cannot return to a caller: outcomes dropped because
    /// their delivery was cancelled mid-attempt, failures of the background projection, a
    /// failed log append (after which it stops taking work).
    public var logger: Logger

    public init(durability: LogDurability = .always, clock: any HeraldClock = SystemClock(),
                executor: any ScriptExecutor = RuntimeRouter(["process": ProcessExecutor()]),
                concurrency: Int = 16, attemptTimeoutMs: Int64 = 30_000,
                environment: HeraldEnvironment = HeraldEnvironment(),
                projectionIntervalMs: Int64 = 1000, projectionSliceRecords: UInt64 = 100_000,
                logger: Logger = Logger(label: "herald")) {
        self.durability = durability
        self.clock = clock
        self.executor = executor
        self.concurrency = max(1, concurrency)
        self.attemptTimeoutMs = max(1, attemptTimeoutMs)
        self.environment = environment
        self.projectionIntervalMs = max(0, projectionIntervalMs)
        self.projectionSliceRecords = max(1, projectionSliceRecords)
        self.logger = logger
    }
}

/// One finished attempt, as the engine reports it (`herald run` prints one line each).
public struct AttemptReport: Sendable {
    public var position: UInt64
    public var ts: Int64
    public var delivery: Delivery
    public var attempt: DeliveryAttempt
}

/// Why the engine refused work.
public enum EngineError: Error, Sendable, CustomStringConvertible {
    /// An append to the log failed after the engine's state moved on: it fails closed; reopen it.
    case failed(String)
    /// `append` was called with no records.
    case emptyBatch

    public var description: String {
        switch self {
        case .failed(let reason): "The engine stopped taking work: \(reason). Reopen the data directory to recover from the log."
        case .emptyBatch: "append needs at least one record."
        }
    }
}

/// Counts for `herald status`.
public struct EngineStatus: Sendable {
    public var position: UInt64
    public var pending: Int
    public var due: Int
    public var inFlight: Int
    public var nextDueAt: Int64?
}

/// The embeddable engine: opens a data directory, validates and appends commands, and
/// dispatches due deliveries through a ``ScriptExecutor``, appending each outcome.
///
/// ```swift
/// let herald = try Herald.open(directory: DataDirectory(path: "data"),
///                              options: HeraldOptions(executor: ClosureExecutor(fallback: { _ in .ok })))
/// try herald.append(.appCreated(appID: app, name: "shop"))
/// try await herald.run(untilIdle: true)
/// try herald.close()
/// ```
/// Safe to call from many tasks: commands and outcomes are validated and appended in one order.
public final class Herald: Sendable {
    /// The data directory.
    public let directory: DataDirectory
    /// The options it was opened with.
    public let options: HeraldOptions
    private let writer: RecordWriter
    private let reader: RecordReader
    private let state: Locked<State>
    /// Deadlines of rounds and of the run loop's waits, on one thread (see ``Alarm``).
    private let alarm: Alarm
    private let wakeup: Notifier
    /// Waits for the sync of pipelined rounds' outcomes and reports them, in order (only when
    /// `run` has a report callback).
    private let acknowledger = DispatchQueue(label: "herald.acknowledger")
    private let projector: Mutex<Projector?>
    /// Wakes the run loop from the log writer's thread once appended records that created
    /// deliveries are durable (see ``DurabilityWatch``).
    private let durability: DurabilityWatch

    struct State: Sendable {
        var dispatcher: Dispatcher
        var queue = DueQueue()
        var inFlight: Set<DeliveryID> = []
        /// Source records (KV mutations) of pending deliveries, by position.
        var kvSources: [UInt64: Record] = [:]
        /// Dead-letter events of pending dead-letter deliveries, by position.
        var deadLetters: [UInt64: DeadLetterEvent] = [:]
        /// Pending deliveries per source position: a cached source goes when its count reaches 0.
        var sourceRefs: [UInt64: Int] = [:]
        /// Source positions that neither the log nor the projection can describe.
        var unresolvable: Set<UInt64> = []
        var stopping = false
        /// The last position of attempt outcomes queued to the log (0: none yet).
        var lastOutcome: UInt64 = 0
        /// Set when an append failed after the state moved on: the engine fails closed.
        var failure: String?
    }

    private init(directory: DataDirectory, options: HeraldOptions, writer: RecordWriter, reader: RecordReader,
                 state: State, projector: Projector?) {
        self.directory = directory
        self.options = options
        self.writer = writer
        self.reader = reader
        self.state = Locked(state)
        self.projector = Mutex(projector)
        let alarm = Alarm()
        self.alarm = alarm
        let wakeup = Notifier(alarm: alarm)
        self.wakeup = wakeup
        let durability = DurabilityWatch(wakeup: wakeup)
        self.durability = durability
        // The listener holds the watch, not the engine: the writer's thread never holds the
        // last reference to the engine (whose release would join that very thread).
        writer.writer.setAcknowledgedListener { position in durability.acknowledged(position) }
    }

    /// Opens `directory` (created when missing), recovers the log, catches the projection up
    /// and resumes every pending delivery at its due time (at-least-once: an attempt whose
    /// outcome was never recorded runs again).
    ///
    /// - Throws: `LogError.acknowledgedDamaged` when acknowledged records at the end of the log
    ///   are damaged (restore the segment, or accept the loss: `herald repair --accept-loss`,
    ///   `DataDirectory.openWriter(acceptLoss: true)`); `LogError.corruptBlock` for damage
    ///   anywhere else; `LogError.writerLocked` when another writer has the log.
    public static func open(directory: DataDirectory, options: HeraldOptions = HeraldOptions()) throws -> Herald {
        let writer = try directory.openWriter(durability: options.durability)
        if let cut = writer.recovery.truncation, directory.diagnostics == nil {
            // Told to the data directory's diagnostics when it has them (the CLI), else logged.
            options.logger.warning("\(cut.description)", metadata: ["quarantine": "\(cut.quarantine ?? "-")"])
        }
        let reader = try directory.openReader()
        let projector = try Projector(directory: directory)
        try projector.catchUp()
        var state = State(dispatcher: projector.dispatcher)
        for delivery in state.dispatcher.pendingInOrder {
            state.queue.push(delivery)
            state.sourceRefs[delivery.id.sourcePosition, default: 0] += 1
        }
        let engine = Herald(directory: directory, options: options, writer: writer, reader: reader, state: state,
                            projector: projector)
        return engine
    }

    /// What recovery did when the log was opened: a torn tail or an append that never
    /// completed cut into `log/quarantine/` (`truncation`), indexes rebuilt.
    public var recovery: RecoveryReport { writer.recovery }

    // MARK: - Commands

    /// Validates and appends one record; `ts` defaults to the clock (`max(now, last ts)`).
    /// Returns its position. On a rule violation nothing is appended.
    @discardableResult
    public func append(_ body: RecordBody, ts: Int64? = nil) throws -> UInt64 {
        try append([body], ts: ts).upperBound
    }

    /// Validates and appends records as one batch (one block, one fsync): all or nothing.
    @discardableResult
    public func append(_ bodies: [RecordBody], ts: Int64? = nil) throws -> ClosedRange<UInt64> {
        let now = options.clock.nowMs()
        let range: ClosedRange<UInt64> = try state.withLock { s in
            if let failure = s.failure { throw EngineError.failed(failure) }
            var records: [Record] = []
            records.reserveCapacity(bodies.count)
            var effects = EffectsByRecord(capacity: bodies.count)
            if bodies.count == 1, let body = bodies.first {
                // The common case: check, then apply in place (no copy of the pending deliveries).
                let record = Record(ts: ts ?? max(now, s.dispatcher.lastTs ?? 0), body: body)
                // Before any state changes: the log refuses a payload over its limit, and
                // that failure would stop the engine (fail closed).
                try RecordBinaryCodec.checkEncodedSize(body, limitBytes: writer.recordBytesMax)
                try s.dispatcher.check(record)
                effects.apply(record, to: &s.dispatcher)
                records.append(record)
            } else {
                // A batch is all or nothing: validate it first. Without attempts in it, a
                // registry-only copy suffices (no rule but an attempt's depends on deliveries),
                // so validating costs nothing per pending delivery; with attempts, a full copy.
                let hasAttempts = bodies.contains { if case .deliveryAttempted = $0 { true } else { false } }
                do {
                    // The trial shares the dispatcher's storage; it must be gone before the
                    // dispatcher changes, or the first change copies every pending delivery.
                    var trial = s.dispatcher
                    if !hasAttempts { trial.tracksDeliveries = false }
                    for (index, body) in bodies.enumerated() {
                        let record = Record(ts: ts ?? max(now, trial.lastTs ?? 0), body: body)
                        do throws(RecordError) {
                            try RecordBinaryCodec.checkEncodedSize(body, limitBytes: writer.recordBytesMax)
                            try trial.check(record)
                        } catch {
                            throw error.at("record \(index + 1) of \(bodies.count)")
                        }
                        effects.apply(record, to: &trial)
                        records.append(record)
                    }
                    if hasAttempts { s.dispatcher = trial }
                }
                if !hasAttempts {
                    // Every record passed: apply them for real, in place.
                    effects.removeAll()
                    for record in records { effects.apply(record, to: &s.dispatcher) }
                }
            }
            guard !records.isEmpty else { throw EngineError.emptyBatch }
            let range: ClosedRange<UInt64>
            do {
                range = try writer.enqueue(records, helping: false)
            } catch {
                s.failure = "appending to the log failed: \(error)"
                throw error
            }
            var queued = false
            for (index, record) in records.enumerated() {
                queued = Herald.absorb(effects[index], record: record, at: range.lowerBound + UInt64(index), into: &s) || queued
            }
            // Under the state lock, so the awaited position only grows. The run loop is woken
            // once these records are durable (the deliveries they queued may run then).
            if queued { durability.watch(through: range.upperBound, durable: writer.durablePosition) }
            return range
        }
        // The sync happens outside the state lock, so concurrent commands and attempt
        // outcomes share group commits; nothing runs for a record before it is durable.
        try waitDurable(through: range.upperBound)
        return range
    }

    private func waitDurable(through position: UInt64) throws {
        do {
            try writer.waitUntilDurable(through: position)
        } catch {
            let reason = "syncing the log failed: \(error)"
            state.withLock { s in s.failure = s.failure ?? reason }
            options.logger.critical("the engine stopped taking work", metadata: ["reason": "\(reason)"])
            throw error
        }
    }

    /// Applies `record`'s effects to the engine's queue and caches; true when they queued a
    /// delivery (a new one, or a retry), which may run once the record is durable.
    private static func absorb(_ effects: ArraySlice<DispatchEffect>, record: Record, at position: UInt64, into s: inout State) -> Bool {
        var queued = false
        for effect in effects {
            switch effect {
            case .created(let d):
                queued = true
                s.queue.push(d)
                s.sourceRefs[d.id.sourcePosition, default: 0] += 1
                // Compact: a record read from the log would keep its whole block alive.
                if d.sourceKind == .kv { s.kvSources[position] = record.compacted() }
            case .attempted(let d, _, _, _):
                if d.status == .pending {
                    queued = true
                    s.queue.push(d)
                } else {
                    release(d.id.sourcePosition, in: &s)
                }
            case .deadLetter(let event):
                s.deadLetters[event.position] = event
            case .cancelled(let d):
                release(d.id.sourcePosition, in: &s)
            }
        }
        return queued
    }

    /// One fewer pending delivery of this source: forget the cached source at zero.
    private static func release(_ position: UInt64, in s: inout State) {
        let left = s.sourceRefs[position, default: 1] - 1
        if left > 0 {
            s.sourceRefs[position] = left
        } else {
            s.sourceRefs[position] = nil
            s.kvSources[position] = nil
            s.deadLetters[position] = nil
        }
    }

    // MARK: - Reads

    /// The last appended position.
    public var position: UInt64 { state.withLock { $0.dispatcher.position } }

    /// The dispatcher's state now (registry and pending deliveries). A copy that shares the
    /// engine's storage: while it is kept, the engine's next change copies that storage, so
    /// poll ``pendingCount`` (or ``status()``) rather than this.
    public var dispatcher: Dispatcher { state.withLock { $0.dispatcher } }

    /// Pending deliveries now.
    public var pendingCount: Int { state.withLock { $0.dispatcher.pending.count } }

    /// Live triggers in registration order.
    public func triggers(app: HeraldID? = nil) -> [Registry.Trigger] {
        state.withLock { $0.dispatcher.registry.liveTriggers(app: app) }
    }

    /// Every delivery as of `position` (`nil` = now), in canonical order, derived from the log.
    public func deliveries(at position: UInt64? = nil) throws -> [Delivery] {
        try directory.deliveries(at: position)
    }

    /// `explain P`.
    public func explain(position: UInt64) throws -> RecordExplanation {
        try directory.explain(position: position)
    }

    /// `explain P:TRIGGER_ID`.
    public func explain(delivery: DeliveryID) throws -> DeliveryTimeline {
        try directory.timeline(of: delivery)
    }

    /// Pending, due, in flight, next due time.
    public func status() -> EngineStatus {
        let now = options.clock.nowMs()
        return state.withLock { s in
            let due = s.dispatcher.pending.dueSummary(now: now)
            return EngineStatus(position: s.dispatcher.position, pending: s.dispatcher.pending.count,
                                due: due.due, inFlight: s.inFlight.count, nextDueAt: due.earliest)
        }
    }

    /// The earliest due time of a pending delivery not in flight (stale queue entries are dropped).
    public func nextDueAt() -> Int64? {
        state.withLock { s in
            while let top = s.queue.first {
                if let delivery = s.dispatcher.pending[top.id], delivery.dueAt == top.dueAt, !s.inFlight.contains(top.id) {
                    return top.dueAt
                }
                _ = s.queue.popFirst()
            }
            return nil
        }
    }

    // MARK: - Dispatching

    /// Runs one round: every delivery due now (up to `concurrency`) runs concurrently (each
    /// started in turn on the calling thread, see ``ScriptExecutor``); their
    /// outcomes are appended as one batch. Returns the attempts recorded.
    @discardableResult
    public func runDue(report: (@Sendable (AttemptReport) -> Void)? = nil) async throws -> [AttemptReport] {
        try await round(report: report, pipelined: false)
    }

    /// One round. `pipelined`: return once the outcomes are queued, and let the acknowledger
    /// wait for their sync and report them (if there is a report callback), so the next round
    /// starts while the disk syncs.
    private func round(report: (@Sendable (AttemptReport) -> Void)?, pipelined: Bool) async throws -> [AttemptReport] {
        let now = options.clock.nowMs()
        let invocations = try takeDue(now: now)
        guard !invocations.isEmpty else { return [] }
        let timeout = options.attemptTimeoutMs
        let executor = options.executor
        let clock = options.clock
        let alarm = self.alarm
        // One deadline for the round, from when its attempts start: when it fires, the
        // attempts still running are cancelled and recorded as timed out.
        let deadline = Alarm.deadline(afterMs: timeout)
        let results = await withTaskGroup(of: (Int, ExecutionResult, Int64)?.self) { group in
            group.addTask {
                // An alarm, not `Task.sleep`: cancelling the group below removes it (a cancelled
                // `Task.sleep` keeps its timer until the deadline, one per round).
                await alarm.sleep(untilNs: deadline)
                return nil
            }
            // Each attempt starts here, on the run loop's thread, and runs until it first
            // suspends (an executor that waits for a process or a reply suspends at once): no
            // scheduling hop per attempt. With an in-process executor that never suspends, a
            // round costs a function call per attempt instead of a task switched to another
            // thread (which was 40 % of the sustained run's time).
            for (index, invocation) in invocations.enumerated() {
                group.addImmediateTask {
                    let start = clock.nowMs()
                    let result = await executor.execute(invocation)
                    return (index, result, max(0, clock.nowMs() - start))
                }
            }
            var collected = [(ExecutionResult, Int64)?](repeating: nil, count: invocations.count)
            var remaining = invocations.count
            while remaining > 0, let next = await group.next() {
                guard let (index, result, measured) = next else {
                    group.cancelAll()  // the deadline: whatever is still running timed out
                    break
                }
                collected[index] = (result, measured)
                remaining -= 1
            }
            group.cancelAll()
            return collected
        }
        var attempts: [DeliveryAttempt] = []
        for (index, invocation) in invocations.enumerated() {
            let (result, measured) = results[index] ?? (.error("timed out after \(timeout) ms", retryable: true), timeout)
            var duration = result.durationMs ?? measured
            var outcome = result.outcome
            if duration > timeout {
                outcome = .error("timed out after \(timeout) ms", retryable: true)
                duration = timeout
            }
            switch outcome {
            case .ok:
                attempts.append(DeliveryAttempt(sourcePosition: invocation.delivery.sourcePosition,
                                                triggerID: invocation.delivery.triggerID, attempt: invocation.attempt,
                                                outcome: .ok, durationMs: duration))
            case .error(let message, let retryable):
                attempts.append(DeliveryAttempt(sourcePosition: invocation.delivery.sourcePosition,
                                                triggerID: invocation.delivery.triggerID, attempt: invocation.attempt,
                                                outcome: .error, error: message, retryable: retryable,
                                                durationMs: duration))
            }
        }
        return try recordOutcomes(attempts, pipelined: pipelined, report: report)
    }

    /// Picks due deliveries (not in flight) and builds their invocations, marking them in flight.
    private func takeDue(now: Int64) throws -> [Invocation] {
        var needSources: [UInt64] = []
        var picked: [Invocation] = []
        // A delivery runs only once the record that created it (or scheduled its retry) is
        // durable: a script never acts on an event a crash could still erase.
        let durable = writer.durablePosition
        state.withLock { s in
            guard !s.stopping else { return }
            var slots = options.concurrency - s.inFlight.count
            var deferred: [Delivery] = []
            defer { for delivery in deferred { s.queue.push(delivery) } }
            while slots > 0, let top = s.queue.first, top.dueAt <= now {
                _ = s.queue.popFirst()
                guard let delivery = s.dispatcher.pending[top.id], delivery.dueAt == top.dueAt,
                      !s.inFlight.contains(top.id) else { continue }
                if delivery.id.sourcePosition > durable {
                    deferred.append(delivery)
                    continue
                }
                guard let script = s.dispatcher.registry.scripts[delivery.scriptID],
                      !s.unresolvable.contains(delivery.id.sourcePosition) else { continue }
                let principal = s.dispatcher.registry.triggers[delivery.id.triggerID].flatMap { s.dispatcher.registry.adminUsers[$0.registeredBy] }
                let event: Invocation.Event
                switch delivery.sourceKind {
                case .kv, .http:
                    if let record = s.kvSources[delivery.id.sourcePosition], case .kv(let m) = record.body {
                        event = .kv(position: delivery.id.sourcePosition, ts: record.ts, mutation: m)
                    } else {
                        needSources.append(delivery.id.sourcePosition)
                        deferred.append(delivery)
                        continue
                    }
                case .deadLetter:
                    if let dead = s.deadLetters[delivery.id.sourcePosition] {
                        event = .deadLetter(dead)
                    } else {
                        needSources.append(delivery.id.sourcePosition)
                        deferred.append(delivery)
                        continue
                    }
                }
                s.inFlight.insert(delivery.id)
                slots -= 1
                picked.append(Invocation(delivery: delivery.id, attempt: delivery.attempts + 1,
                                         dueAt: delivery.dueAt ?? now, depth: delivery.depth, event: event,
                                         script: script, app: s.dispatcher.registry.apps[script.appID], principal: principal))
            }
        }
        if !needSources.isEmpty {
            try loadSources(Array(Set(needSources)).sorted())
            if picked.isEmpty { return try takeDue(now: now) }
        }
        return picked
    }

    /// After a restart, pending deliveries' source records come back from the log and the projection.
    private func loadSources(_ positions: [UInt64]) throws {
        var kv: [UInt64: Record] = [:]
        var dead: [UInt64: DeadLetterEvent] = [:]
        for position in positions {
            try reader.forEach(from: position, through: position) { at, record in
                if case .kv = record.body { kv[at] = record.compacted() }
                return false
            }
            if kv[position] == nil, let event = try projector.withLock({ try $0?.deadLetter(at: position) }) {
                dead[position] = event
            }
        }
        state.withLock { s in
            s.kvSources.merge(kv) { old, _ in old }
            s.deadLetters.merge(dead) { old, _ in old }
            for position in positions where kv[position] == nil && dead[position] == nil {
                // Nothing describes this event: its deliveries stay pending (visible in
                // `herald status`) instead of spinning.
                s.unresolvable.insert(position)
            }
        }
    }

    /// Validates and appends attempt outcomes as one batch; an outcome whose delivery was
    /// cancelled meanwhile is dropped (the log's rules decide).
    private func recordOutcomes(_ attempts: [DeliveryAttempt], pipelined: Bool,
                                report: (@Sendable (AttemptReport) -> Void)?) throws -> [AttemptReport] {
        let now = options.clock.nowMs()
        let reports: [AttemptReport] = try state.withLock { s in
            defer { for a in attempts { s.inFlight.remove(DeliveryID(sourcePosition: a.sourcePosition, triggerID: a.triggerID)) } }
            if let failure = s.failure { throw EngineError.failed(failure) }
            var records: [Record] = []
            records.reserveCapacity(attempts.count)
            var effects = EffectsByRecord(capacity: attempts.count)
            // Each outcome is checked and applied in place; one whose delivery was cancelled
            // or finished meanwhile fails its check and is dropped.
            for attempt in attempts {
                let record = Record(ts: max(now, s.dispatcher.lastTs ?? 0), body: .deliveryAttempted(attempt))
                do throws(RecordError) {
                    try s.dispatcher.check(record)
                } catch {
                    options.logger.info("dropped the outcome of an attempt whose delivery finished meanwhile", metadata: [
                        "delivery": "\(attempt.sourcePosition):\(attempt.triggerID)", "attempt": "\(attempt.attempt)",
                        "reason": "\(error.reason)",
                    ])
                    continue
                }
                effects.apply(record, to: &s.dispatcher)
                records.append(record)
            }
            guard !records.isEmpty else { return [] }
            let range: ClosedRange<UInt64>
            do {
                range = try writer.enqueue(records, helping: false)
            } catch {
                s.failure = "appending attempt outcomes to the log failed: \(error)"
                options.logger.critical("the engine stopped taking work", metadata: ["reason": "\(s.failure ?? "")"])
                throw error
            }
            s.lastOutcome = range.upperBound
            var reports: [AttemptReport] = []
            reports.reserveCapacity(records.count)
            var queued = false
            for (offset, record) in records.enumerated() {
                let position = range.lowerBound + UInt64(offset)
                queued = Herald.absorb(effects[offset], record: record, at: position, into: &s) || queued
                for case .attempted(let d, let a, _, _) in effects[offset] {
                    reports.append(AttemptReport(position: position, ts: record.ts, delivery: d, attempt: a))
                }
            }
            // A retry or a dead-letter delivery these outcomes queued runs once they are durable:
            // the run loop is woken then, as for appended records.
            if queued { durability.watch(through: range.upperBound, durable: writer.durablePosition) }
            return reports
        }
        guard let last = reports.last?.position else { return reports }
        if pipelined {
            // Nothing to report: no hand-off (the run loop is woken by the durability watch, the
            // writer's own waiters and `run`'s end see the sync, and a failed sync fails every
            // later append).
            guard let report else { return reports }
            // In order on one serial queue: each batch is reported once it is durable.
            acknowledger.async { [self] in
                guard (try? waitDurable(through: last)) != nil else { return }
                reports.forEach(report)
            }
        } else {
            try waitDurable(through: last)
            if let report { reports.forEach(report) }
        }
        return reports
    }

    /// Runs the dispatcher until ``stop()`` (or, with `untilIdle`, until no delivery is
    /// pending). Sleeps until the next due time or the next append.
    public func run(untilIdle: Bool = false, report: (@Sendable (AttemptReport) -> Void)? = nil) async throws {
        // The projection catches up beside the dispatcher, never inside a round: on its own
        // thread, at a lower priority, in slices.
        let projecting = BackgroundProjection(engine: self)
        projecting.start()
        defer { projecting.stop() }
        while !Task.isCancelled {
            if state.withLock({ $0.stopping }) { break }
            // Real time: the next round starts while the last one's outcomes sync. Virtual
            // time: each round is synced and reported before the next, so runs replay exactly.
            let done = try await round(report: report, pipelined: !(options.clock is VirtualClock))
            if !done.isEmpty { continue }
            if untilIdle && state.withLock({ $0.dispatcher.pending.isEmpty }) { break }
            let now = options.clock.nowMs()
            let next = nextDueAt()
            if let virtual = options.clock as? VirtualClock {
                // Virtual time never passes by itself: jump to the next due time.
                if let next {
                    virtual.advance(to: next)
                    continue
                }
                if untilIdle { break }
                await wakeup.wait(upToMs: 50)
                continue
            }
            // A round that ran nothing while a delivery is due left it waiting for its source
            // record's sync (nothing is in flight between rounds, and undeliverable entries
            // leave the queue): the durability watch wakes the loop once it is durable, so wait
            // for that instead of spinning (5 ms at most).
            let waitMs = next.map { max(0, min($0 - now, 1000)) } ?? 1000
            await wakeup.wait(upToMs: waitMs == 0 ? 5 : waitMs)
        }
        // Every pipelined round is reported and synced before run returns (the acknowledger
        // only has rounds with a report callback).
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            acknowledger.async { done.resume() }
        }
        // A failed sync records the engine's failure, thrown just below.
        let lastOutcome = state.withLock { $0.lastOutcome }
        if lastOutcome > 0 { _ = try? waitDurable(through: lastOutcome) }
        if let failure = state.withLock({ $0.failure }) { throw EngineError.failed(failure) }
        // The background pass in progress (if any) finishes at full speed, then this catches up.
        projecting.stop()
        try projectNow()
    }

    /// Applies at most `limit` records to the projection; returns how many it applied.
    func projectSlice(limit: UInt64, pace: (() -> Void)? = nil) throws -> UInt64 {
        try projector.withLock { try $0?.catchUp(limit: limit, pace: pace).records } ?? 0
    }

    /// Brings the projection up to date with the log.
    public func projectNow() throws {
        _ = try projector.withLock { try $0?.catchUp() }
    }

    /// Stops taking new work; the run loop returns after the round in progress.
    public func stop() {
        state.withLock { $0.stopping = true }
        wakeup.notify()
    }

    /// Stops, catches the projection up, and releases the log (the writer lock).
    public func close() throws {
        stop()
        try projectNow()
        projector.withLock { $0 = nil }
        try writer.close()
    }
}

/// The live engine's projection thread: every `projectionIntervalMs`, applies slices of
/// `projectionSliceRecords` records until caught up. A plain thread at nice 10 (Linux sets
/// niceness per thread), outside Swift's cooperative pool, so SQLite work yields the cores to
/// dispatch. Not `SCHED_IDLE`: the thread holds the projector's lock for a slice, which engine
/// paths also take (dead-letter sources after a restart, `close`), and an idle-class holder
/// could be starved while they wait.
final class BackgroundProjection: Sendable {
    private let engine: Herald
    private let stopped = Mutex(false)

    init(engine: Herald) {
        self.engine = engine
    }

    func start() {
        let interval = engine.options.projectionIntervalMs
        guard interval > 0 else { return }
        let thread = Thread { [self] in
            // On Linux the nice value is per thread (`who = 0` is the calling thread), and threads
            // it starts (the log reader's read-ahead) inherit it.
            setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
            // At most half of one core: after each stretch of work (`Projector.paceRecords`
            // records), the thread sleeps as long as the stretch took. A backlog (after a burst
            // of appends, or a restart) is then worked off at a bounded rate instead of with a
            // whole core, which left dispatch one core and made the host stop the VM more often
            // (p99 delay 35 – 46 ms while catching up; see docs/BENCHMARKS.md).
            var resumed = Alarm.nowNs()
            let pace = { [self] in
                guard !stopped.withLock({ $0 }) else { return }  // stopping: finish at full speed
                let worked = Alarm.nowNs() &- resumed
                Thread.sleep(forTimeInterval: Double(worked) / 1e9)
                resumed = Alarm.nowNs()
            }
            while !stopped.withLock({ $0 }) {
                Thread.sleep(forTimeInterval: Double(interval) / 1000)
                resumed = Alarm.nowNs()
                do {
                    while !stopped.withLock({ $0 }),
                          try engine.projectSlice(limit: engine.options.projectionSliceRecords, pace: pace) > 0 {}
                } catch {
                    engine.options.logger.error("the projection could not catch up", metadata: ["error": "\(error)"])
                }
            }
        }
        thread.name = "herald-projection"
        thread.start()
    }

    func stop() {
        stopped.withLock { $0 = true }
    }
}

/// Positions of records (appended commands or attempt outcomes) that queued deliveries, while
/// their sync is awaited: the run loop is woken as soon as one of them is durable, from the log
/// writer's thread, with no other thread in between.
final class DurabilityWatch: Sendable {
    /// The first awaited position not yet woken for, and the last awaited one (0, 0: none).
    private let awaited = Mutex<(from: UInt64, through: UInt64)>((0, 0))
    private let wakeup: Notifier

    init(wakeup: Notifier) {
        self.wakeup = wakeup
    }

    /// Awaits `position`. `durable` is read after: if the writer acknowledged the position
    /// before it was recorded here, this call does the wake itself.
    func watch(through position: UInt64, durable: @autoclosure () -> UInt64) {
        awaited.withLock { a in
            if a.from == 0 { a.from = position }
            a.through = max(a.through, position)
        }
        acknowledged(durable())
    }

    /// Called by the log writer's thread each time its acknowledged position advances: wakes
    /// the run loop when that covers an awaited position. What lies past `position` stays
    /// awaited (a later position never hides an earlier one's wake).
    func acknowledged(_ position: UInt64) {
        let wake = awaited.withLock { a -> Bool in
            guard a.from != 0, position >= a.from else { return false }
            a = position >= a.through ? (0, 0) : (position + 1, a.through)
            return true
        }
        if wake { wakeup.notify() }
    }
}

/// Each record's dispatch effects, in one array for a whole batch (an array per record was an
/// allocation per record).
private struct EffectsByRecord {
    private var all: [DispatchEffect] = []
    /// `ends[i]`: where record i's effects end in `all`.
    private var ends: [Int] = []

    init(capacity: Int) {
        ends.reserveCapacity(capacity)
    }

    /// Applies `record` (already checked) to `dispatcher`, keeping its effects as the next record's.
    mutating func apply(_ record: Record, to dispatcher: inout Dispatcher) {
        dispatcher.applyChecked(record, effects: &all)
        ends.append(all.count)
    }

    /// The effects of record `index`.
    subscript(index: Int) -> ArraySlice<DispatchEffect> {
        all[(index == 0 ? 0 : ends[index - 1])..<ends[index]]
    }

    mutating func removeAll() {
        all.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
    }
}
