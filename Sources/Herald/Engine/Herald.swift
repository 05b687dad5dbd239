import HeraldCore
import HeraldLog
import HeraldStore
import Dispatch
import Foundation
import Logging
import ServiceLifecycle
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
    /// The background projection saves an engine snapshot (the whole dispatcher state, read by
    /// the next open instead of the projection's rows) once this many records passed since the
    /// last one, and at least as many records as the state holds deliveries (so the writes
    /// stay a bounded share of projecting). A restart after a crash replays at most about that
    /// many records on top of it. `close` always saves one.
    public var snapshotRecords: UInt64
    /// What the engine does to its segment log in the background while it runs: LZ4-HC
    /// rewrites of closed segments (on by default) and retention (off by default).
    public var storage: StoragePolicy
    /// The size at which the writer starts a new segment (default 64 MiB): retention removes
    /// whole segments, so smaller segments follow a policy more closely.
    public var segmentBytesMax: UInt64
    /// Where the engine reports what it cannot return to a caller: outcomes dropped because
    /// their delivery was cancelled mid-attempt, failures of the background projection, a
    /// failed log append (after which it stops taking work).
    public var logger: Logger

    public init(durability: LogDurability = .always, clock: any HeraldClock = SystemClock(),
                executor: any ScriptExecutor = RuntimeRouter(["process": ProcessExecutor()]),
                concurrency: Int = 16, attemptTimeoutMs: Int64 = 30_000,
                environment: HeraldEnvironment = HeraldEnvironment(),
                projectionIntervalMs: Int64 = 1000, projectionSliceRecords: UInt64 = 100_000,
                snapshotRecords: UInt64 = 100_000, storage: StoragePolicy = StoragePolicy(),
                segmentBytesMax: UInt64 = 64 << 20, logger: Logger = Logger(label: "herald")) {
        self.durability = durability
        self.clock = clock
        self.executor = executor
        self.concurrency = max(1, concurrency)
        self.attemptTimeoutMs = max(1, attemptTimeoutMs)
        self.environment = environment
        self.projectionIntervalMs = max(0, projectionIntervalMs)
        self.projectionSliceRecords = max(1, projectionSliceRecords)
        self.snapshotRecords = max(1, snapshotRecords)
        self.storage = storage
        self.segmentBytesMax = segmentBytesMax
        self.logger = logger
    }
}

/// What an operator action (``Herald/redrive(_:by:reason:)``, ``Herald/cancel(_:by:reason:)``) did.
/// Told the positions of a batch before it is appended (``Herald/append(lines:intent:)``).
public struct AppendIntent {
    /// Runs with the positions the batch's records will get, before they are validated and
    /// handed to the log. Throwing refuses the batch.
    public var record: (ClosedRange<UInt64>) throws -> Void
    /// Runs when the batch was refused after `record` ran: nothing was appended. If it
    /// throws, what `record` kept may outlive the refusal, so the engine fails closed: it
    /// appends nothing more (no later record can take the positions it names) until reopened.
    public var withdraw: () throws -> Void

    public init(record: @escaping (ClosedRange<UInt64>) throws -> Void, withdraw: @escaping () throws -> Void) {
        self.record = record
        self.withdraw = withdraw
    }
}

public struct OperatorActionResult: Sendable {
    /// The deliveries acted on, in canonical order.
    public var deliveries: [DeliveryID]
    /// The records appended (one per 10,000 deliveries); `nil` when nothing was selected.
    public var positions: ClosedRange<UInt64>?
}

/// Where an engine keeps its records and its projection.
public struct EngineStorage {
    /// The log commands and outcomes are appended to.
    public var log: any RecordLog
    /// The projection the engine keeps caught up, which is also what a restart restores.
    public var projection: any ProjectionStore & EngineSnapshotStore

    public init(log: any RecordLog, projection: any ProjectionStore & EngineSnapshotStore) {
        self.log = log
        self.projection = projection
    }
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
    /// This Herald's version (semantic versioning; `herald --version` prints it). The
    /// changes of each are in CHANGELOG.md.
    public static let version = "0.9.0"

    /// The data directory (`nil` when opened on other storage: ``open(storage:options:)``).
    public let directory: DataDirectory?
    /// The options it was opened with.
    public let options: HeraldOptions
    /// Where commands and outcomes are appended, and sources read back.
    private let log: any RecordLog
    /// The scheduling state (see ``EngineStateMachine``): every event is fed under this lock.
    private let state: Locked<EngineStateMachine>
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
    /// Counters, gauges and timers for the process's swift-metrics backend.
    let metrics = EngineMetrics()
    /// When the gauges were last set (monotonic ns): at most four times a second.
    private let gaugesSetNs = Mutex<UInt64>(0)

    private init(directory: DataDirectory?, options: HeraldOptions, log: any RecordLog, state: EngineStateMachine,
                 projector: Projector?) {
        self.directory = directory
        self.options = options
        self.log = log
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
        log.onDurable { position in durability.acknowledged(position) }
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
        if let external = directory.externalLog {
            // A log kept elsewhere (a JetStream stream): the directory holds the projection.
            let log = try external.openEngineLog()
            do {
                try FileSystemPaths.makeDirectory(directory.path)
                let projection = try directory.openProjection()
                return try open(directory: directory, storage: EngineStorage(log: log, projection: projection), options: options)
            } catch {
                try? log.close()
                throw error
            }
        }
        let writer = try directory.openWriter(configuration: LogConfiguration(segmentBytesMax: options.segmentBytesMax, durability: options.durability))
        if let cut = writer.recovery.truncation, directory.diagnostics == nil {
            // Told to the data directory's diagnostics when it has them (the CLI), else logged.
            options.logger.warning("\(cut.description)", metadata: ["quarantine": "\(cut.quarantine ?? "-")"])
        }
        let log = SegmentRecordLog(writer: writer)
        do {
            let projection = try directory.openProjection()
            if directory.diagnostics == nil {
                let logger = options.logger
                projection.diagnostics = { note in logger.warning("\(note)") }
            }
            return try open(directory: directory, storage: EngineStorage(log: log, projection: projection), options: options)
        } catch {
            try? writer.close()
            throw error
        }
    }

    /// Opens the engine on `storage`: any ``HeraldCore/RecordLog`` and any projection store
    /// that is also the engine's snapshot. Catches the projection up with the log and resumes
    /// every pending delivery, as ``open(directory:options:)`` does.
    public static func open(storage: EngineStorage, options: HeraldOptions = HeraldOptions()) throws -> Herald {
        try open(directory: nil, storage: storage, options: options)
    }

    private static func open(directory: DataDirectory?, storage: EngineStorage, options: HeraldOptions) throws -> Herald {
        let log = storage.log
        let projector = try Projector(store: storage.projection, source: { log })
        try projector.catchUp()
        projector.periodicSnapshotRecords = options.snapshotRecords
        let state = EngineStateMachine(
            dispatcher: projector.dispatcher,
            configuration: .init(concurrency: options.concurrency, attemptTimeoutMs: options.attemptTimeoutMs,
                                 recordBytesMax: log.recordBytesMax))
        return Herald(directory: directory, options: options, log: log, state: state, projector: projector)
    }

    /// What recovery did when the log was opened: a torn tail or an append that never
    /// completed cut into `log/quarantine/` (`truncation`), indexes rebuilt. `nil` for a log
    /// other than the segment log.
    public var recovery: RecoveryReport? { (log as? SegmentRecordLog)?.recovery }

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
        try append(bodies, ts: ts, stamps: [], intent: nil)
    }

    /// Validates and appends decoded JSON lines as one batch, each stamped with its own `ts`
    /// when it has one (else the clock). `intent`, when given, is told the positions the
    /// records will get before they are validated and handed to the log, while no other record
    /// can be appended, and is withdrawn if the batch is then refused (nothing appended).
    /// (`herald serve` commits an idempotency key's intent there.)
    @discardableResult
    public func append(lines: [DecodedLine], intent: AppendIntent? = nil) throws -> ClosedRange<UInt64> {
        try append(lines.map(\.body), ts: nil, stamps: lines.map(\.ts), intent: intent)
    }

    private func append(_ bodies: [RecordBody], ts: Int64?, stamps: [Int64?], intent: AppendIntent?) throws -> ClosedRange<UInt64> {
        let now = options.clock.nowMs()
        let range: ClosedRange<UInt64> = try state.withLock { s in
            let batch: EngineStateMachine.Batch
            var intended: ClosedRange<UInt64>?
            if let intent, !bodies.isEmpty {
                let first = s.dispatcher.position + 1
                intended = first...(first + UInt64(bodies.count) - 1)
                try intent.record(first...(first + UInt64(bodies.count) - 1))
                do {
                    batch = try s.acceptCommands(bodies, ts: ts, now: now, stamps: stamps)
                } catch {
                    do {
                        try intent.withdraw()
                    } catch let withdrawal {
                        s.failed("withdrawing the intent of refused positions \(first)…\(first + UInt64(bodies.count) - 1) "
                                 + "failed (\(withdrawal)); nothing more is appended until Herald is reopened")
                    }
                    throw error
                }
            } else {
                batch = try s.acceptCommands(bodies, ts: ts, now: now, stamps: stamps)
            }
            let range: ClosedRange<UInt64>
            do {
                range = try log.enqueue(batch.records)
            } catch {
                s.failed("appending to the log failed: \(error)")
                throw error
            }
            if let intended, intended != range {
                // The intent named other positions: whatever it promised is not to be trusted.
                s.failed("an append intent named positions \(intended), the log gave \(range)")
                throw EngineError.failed("an append intent named positions \(intended), the log gave \(range)")
            }
            // Under the state lock, so the awaited position only grows. The run loop is woken
            // once these records are durable (the deliveries they queued may run then).
            if let through = s.appended(batch, at: range).awaitDurableThrough {
                durability.watch(through: through, durable: log.durablePosition)
            }
            return range
        }
        // The sync happens outside the state lock, so concurrent commands and attempt
        // outcomes share group commits; nothing runs for a record before it is durable.
        try waitDurable(through: range.upperBound)
        metrics.recordsAppended.increment(by: range.count)
        return range
    }

    private func waitDurable(through position: UInt64) throws {
        let start = Alarm.nowNs()
        do {
            try log.waitUntilDurable(through: position)
            metrics.syncWait.recordNanoseconds(Int64(clamping: Alarm.nowNs() &- start))
        } catch {
            let reason = "syncing the log failed: \(error)"
            state.withLock { $0.failed(reason) }
            options.logger.critical("the engine stopped taking work", metadata: ["reason": "\(reason)"])
            throw error
        }
    }

    // MARK: - Operator actions

    /// Redrives the dead and cancelled deliveries `selection` picks (docs/SEMANTICS.md §8):
    /// appends one `delivery.redriven` per 10,000 of them, as one batch. Nothing is appended
    /// when none is picked.
    @discardableResult
    public func redrive(_ selection: DeliverySelection, by: HeraldID, reason: String? = nil) throws -> OperatorActionResult {
        let ids = try OperatorActions.redrivable(in: dispatcher, selection).map(\.id)
        return try act(ids, OperatorActions.redriveRecords(ids, by: by, reason: reason))
    }

    /// Cancels the pending deliveries `selection` picks: one `delivery.cancelled` per 10,000.
    /// A cancelled delivery never starts again; if its attempt is running, the outcome is
    /// dropped when it comes back (the delivery is no longer pending).
    @discardableResult
    public func cancel(_ selection: DeliverySelection, by: HeraldID, reason: String? = nil) throws -> OperatorActionResult {
        let ids = try OperatorActions.cancellable(in: dispatcher, selection).map(\.id)
        return try act(ids, OperatorActions.cancelRecords(ids, by: by, reason: reason))
    }

    /// Runs `trigger`'s script once, now, with `payload` as its event (`delivery.invoked`);
    /// returns the record's position, which is the new delivery's source position.
    @discardableResult
    public func invoke(trigger: HeraldID, by: HeraldID, payload: JSONText) throws -> UInt64 {
        try append(.deliveryInvoked(ManualInvocation(triggerID: trigger, by: by, payload: payload)))
    }

    private func act(_ ids: [DeliveryID], _ records: [RecordBody]) throws -> OperatorActionResult {
        guard !records.isEmpty else { return OperatorActionResult(deliveries: [], positions: nil) }
        return OperatorActionResult(deliveries: ids, positions: try append(records))
    }

    // MARK: - Reads

    /// The last appended position.
    public var position: UInt64 { state.withLock { $0.dispatcher.position } }

    /// The dispatcher's state now (registry and pending deliveries). A copy that shares the
    /// engine's storage: while it is kept, the engine's next change copies that storage, so
    /// poll ``pendingCount`` (or ``status()``) rather than this.
    public var dispatcher: Dispatcher { state.withLock { $0.dispatcher } }

    /// The last position on disk under the engine's durability policy: readers of the log
    /// see records up to here that no crash can take back.
    public var durablePosition: UInt64 { log.durablePosition }

    /// The engine's state without its deliveries (``HeraldCore/Dispatcher/withoutDeliveries``):
    /// the registry, the position and the last ts. Cheap to take and to hold while the engine
    /// runs, unlike ``dispatcher``, whose copy makes the engine's next change copy every
    /// pending delivery.
    public var registryState: Dispatcher { state.withLock { $0.dispatcher.withoutDeliveries } }

    /// Pending deliveries now.
    public var pendingCount: Int { state.withLock { $0.dispatcher.pending.count } }

    /// Live triggers in registration order.
    public func triggers(app: HeraldID? = nil) -> [Registry.Trigger] {
        state.withLock { $0.dispatcher.registry.liveTriggers(app: app) }
    }

    /// Every delivery as of `position` (`nil` = now), in canonical order. Now, on a data
    /// directory: the projection's rows plus the records after its checkpoint; otherwise
    /// derived by a replay of the log.
    public func deliveries(at position: UInt64? = nil) throws -> [Delivery] {
        if position == nil, let directory {
            var all: [Delivery] = []
            try directory.forEachDelivery { all.append($0) }
            return all
        }
        return try log.deliveries(at: position)
    }

    /// `explain P`.
    public func explain(position: UInt64) throws -> RecordExplanation {
        try log.explain(position: position)
    }

    /// `explain P:TRIGGER_ID`: from the projection's rows when it is caught up and they can
    /// tell the story (on a data directory), else by a replay of the log.
    public func explain(delivery: DeliveryID) throws -> DeliveryTimeline {
        if let directory { return try directory.timeline(of: delivery) }
        return try log.timeline(of: delivery)
    }

    /// Why the engine stopped taking work (a failed append or sync), `nil` while it takes work.
    public var failure: String? { state.withLock { $0.failure } }

    /// Pending, due, in flight, next due time.
    public func status() -> EngineStatus {
        let now = options.clock.nowMs()
        return state.withLock { $0.status(now: now) }
    }

    /// The earliest due time of a pending delivery not in flight (stale queue entries are dropped).
    public func nextDueAt() -> Int64? {
        state.withLock { $0.nextDueAt() }
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
        let results = await withTaskGroup(of: (Int, ExecutionResult, Int64)?.self) { group -> [(result: ExecutionResult, measuredMs: Int64)?] in
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
            var collected = [(result: ExecutionResult, measuredMs: Int64)?](repeating: nil, count: invocations.count)
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
        let attempts = state.withLock { $0.outcomes(of: invocations, results: results) }
        let (reports, unsynced) = try recordOutcomes(attempts, pipelined: pipelined, report: report)
        if let unsynced {
            // Unpipelined: the round ends once its outcomes are durable. The sync is waited for
            // on the acknowledger's thread, not on the cooperative pool the attempts run on.
            try await withCheckedThrowingContinuation { (synced: CheckedContinuation<Void, any Error>) in
                acknowledger.async { [self] in synced.resume(with: Result { try waitDurable(through: unsynced) }) }
            }
            if let report { reports.forEach(report) }
        }
        return reports
    }

    /// Picks due deliveries (not in flight) and builds their invocations, marking them in
    /// flight; loads the sources a restart left uncached.
    private func takeDue(now: Int64) throws -> [Invocation] {
        // A delivery runs only once the record that created it (or scheduled its retry) is
        // durable: a script never acts on an event a crash could still erase.
        let durable = log.durablePosition
        let due = state.withLock { $0.takeDue(now: now, durable: durable) }
        guard !due.missingSources.isEmpty else { return due.invocations }
        try loadSources(due.missingSources)
        // Each call marks what it could not load as unresolvable: this ends.
        return due.invocations.isEmpty ? try takeDue(now: now) : due.invocations
    }

    /// Sources no cache holds (after a restart, or of a redriven delivery) come back from the
    /// log (KV mutations, manual invocations) and the engine snapshot (dead-letter events). A
    /// dead-letter event the snapshot does not have yet is looked for again once the
    /// projection has caught up (it may lag the log by its interval).
    private func loadSources(_ positions: [UInt64]) throws {
        var records: [UInt64: Record] = [:]
        var dead: [UInt64: DeadLetterEvent] = [:]
        func find(_ position: UInt64) throws {
            if let event = try projector.withLock({ try $0?.deadLetter(at: position) }) { dead[position] = event }
        }
        // A compacted log keeps the records that created its retained deliveries in its snapshot.
        let compacted = try log.compactedStart()
        for position in positions {
            var record: Record?
            if let compacted, position < compacted.start {
                record = compacted.sourceRecord(at: position)
            } else {
                do {
                    record = try log.record(at: position)
                } catch HeraldError.compacted {
                    // Compacted by the storage thread meanwhile: the new snapshot holds it.
                    record = try log.compactedStart()?.sourceRecord(at: position)
                }
            }
            switch record?.body {
            case .kv?, .deliveryInvoked?: records[position] = record?.compacted()
            default: try find(position)
            }
        }
        let missing = positions.filter { records[$0] == nil && dead[$0] == nil }
        if !missing.isEmpty {
            try projectNow()
            for position in missing { try find(position) }
        }
        state.withLock { $0.sourcesLoaded(records: records, deadLetters: dead, asked: positions) }
    }

    /// Validates and appends attempt outcomes as one batch; an outcome whose delivery was
    /// cancelled meanwhile is dropped (the log's rules decide).
    /// Returns the reports and, unless `pipelined`, the position the caller must wait to be
    /// durable before it reports them.
    private func recordOutcomes(_ attempts: [DeliveryAttempt], pipelined: Bool,
                                report: (@Sendable (AttemptReport) -> Void)?) throws -> (reports: [AttemptReport], unsynced: UInt64?) {
        let now = options.clock.nowMs()
        let reports: [AttemptReport] = try state.withLock { s in
            let batch = try s.acceptOutcomes(attempts, now: now)
            for (attempt, reason) in batch.dropped {
                options.logger.info("dropped the outcome of an attempt whose delivery finished meanwhile", metadata: [
                    "delivery": "\(attempt.sourcePosition):\(attempt.triggerID)", "attempt": "\(attempt.attempt)",
                    "reason": "\(reason)",
                ])
            }
            guard !batch.isEmpty else { return [] }
            let range: ClosedRange<UInt64>
            do {
                range = try log.enqueue(batch.records)
            } catch {
                let reason = "appending attempt outcomes to the log failed: \(error)"
                s.failed(reason)
                options.logger.critical("the engine stopped taking work", metadata: ["reason": "\(reason)"])
                throw error
            }
            let appended = s.appended(batch, at: range)
            // A retry or a dead-letter delivery these outcomes queued runs once they are durable:
            // the run loop is woken then, as for appended records.
            if let through = appended.awaitDurableThrough {
                durability.watch(through: through, durable: log.durablePosition)
            }
            return appended.reports
        }
        guard let last = reports.last?.position else { return (reports, nil) }
        metrics.recordsAppended.increment(by: reports.count)
        metrics.recorded(reports)
        if options.logger.logLevel <= .debug {
            for r in reports {
                options.logger.debug("attempt recorded", metadata: [
                    "delivery": "\(r.delivery.id)", "attempt": "\(r.attempt.attempt)", "outcome": "\(r.attempt.outcome)",
                    "duration_ms": "\(r.attempt.durationMs)", "status": "\(r.delivery.status)", "position": "\(r.position)",
                ])
            }
        }
        if pipelined {
            // Nothing to report: no hand-off (the run loop is woken by the durability watch, the
            // writer's own waiters and `run`'s end see the sync, and a failed sync fails every
            // later append).
            guard let report else { return (reports, nil) }
            // In order on one serial queue: each batch is reported once it is durable.
            acknowledger.async { [self] in
                guard (try? waitDurable(through: last)) != nil else { return }
                reports.forEach(report)
            }
            return (reports, nil)
        }
        return (reports, last)
    }

    /// Runs the dispatcher until ``stop()`` (or, with `untilIdle`, until no delivery is
    /// pending). Sleeps until the next due time or the next append.
    public func run(untilIdle: Bool = false, report: (@Sendable (AttemptReport) -> Void)? = nil) async throws {
        // The projection catches up beside the dispatcher, never inside a round: on its own
        // thread, at a lower priority, in slices.
        let projecting = BackgroundProjection(engine: self)
        projecting.start()
        defer { projecting.stop() }
        let storage = (log as? SegmentRecordLog).map { BackgroundStorage(engine: self, writer: $0.writer, policy: options.storage) }
        storage?.start()
        defer { storage?.stop() }
        let clock = options.clock
        rounds: while !Task.isCancelled, !state.withLock({ $0.stopping }) {
            // Real time: the next round starts while the last one's outcomes sync. Virtual
            // time: each round is synced and reported before the next, so runs replay exactly.
            let recorded = try await round(report: report, pipelined: clock.movesByItself)
            let now = clock.nowMs()
            setGauges(now: now)
            let next = state.withLock {
                $0.next(afterRoundThatRecorded: recorded.count, now: now, untilIdle: untilIdle,
                        clockMovesByItself: clock.movesByItself)
            }
            switch next {
            case .round: continue
            case .finish: break rounds
            case .advanceClock(let to): clock.advance(to: to)
            case .wait(let ms): await wakeup.wait(upToMs: ms)
            }
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

    /// Sets the pending and due-lag gauges, at most four times a second (O(1) reads of the state).
    private func setGauges(now: Int64) {
        let ns = Alarm.nowNs()
        guard gaugesSetNs.withLock({ last in
            guard ns &- last >= 250_000_000 else { return false }
            last = ns
            return true
        }) else { return }
        let (pending, next, position) = state.withLock { s in (s.dispatcher.pending.count, s.nextDueAt(), s.dispatcher.position) }
        metrics.pending.record(pending)
        metrics.dueLag.record(Double(max(0, now - (next ?? now))) / 1000)
        metrics.position.record(Int64(clamping: position))
    }

    /// Applies at most `limit` records to the projection; returns how many it applied.
    func projectSlice(limit: UInt64, pace: (() -> Void)? = nil) throws -> UInt64 {
        let (applied, checkpoint) = try projector.withLock { projector -> (UInt64, UInt64) in
            guard let projector else { return (0, 0) }
            return (try projector.catchUp(limit: limit, pace: pace).records, projector.dispatcher.position)
        }
        if checkpoint > 0 || applied > 0 {
            metrics.projectionLag.record(Int64(clamping: position &- min(position, checkpoint)))
        }
        return applied
    }

    /// Positions other components of this process still have to read (a PostgreSQL
    /// follower's checkpoint): retention never compacts past the smallest + 1.
    private let compactionLimits = Mutex<[@Sendable () -> UInt64]>([])

    /// Keeps the storage thread's retention from compacting past `checkpoint()` + 1: for a
    /// component that follows the log on its own (`PostgresFollower.checkpoint`).
    public func limitCompaction(_ checkpoint: @escaping @Sendable () -> UInt64) {
        compactionLimits.withLock { $0.append(checkpoint) }
    }

    /// The last position retention may compact before: the projection's and every other
    /// follower's checkpoint + 1, the smallest.
    func compactionLimit() -> UInt64 {
        let limits = compactionLimits.withLock { $0 }
        return limits.reduce(projectionCheckpoint()) { min($0, $1()) } + 1
    }

    /// Drops the projection's rows about what a compacted log no longer holds.
    func pruneProjection(to state: CompactedState) throws {
        try projector.withLock { try $0?.store.prune(to: state) }
    }

    /// The projection's checkpoint (0 once closed).
    func projectionCheckpoint() -> UInt64 {
        projector.withLock { $0?.dispatcher.position ?? 0 }
    }

    /// Brings the projection up to date with the log.
    public func projectNow() throws {
        _ = try projector.withLock { try $0?.catchUp() }
    }

    /// Stops taking new work; the run loop returns after the round in progress.
    public func stop() {
        state.withLock { $0.stop() }
        wakeup.notify()
    }

    /// Stops, catches the projection up (unless `projecting` is false), and releases the log
    /// (the writer lock).
    ///
    /// Catching up also saves the engine snapshot (``HeraldCore/EngineSnapshotStore/saveSnapshot(of:)``),
    /// so the next open reads the pending deliveries in one piece. `projecting: false` leaves
    /// both to whoever opens the data directory next (the projection is a cache of the log: a
    /// writer or a reader brings it up to date first); a short command that appended a few
    /// records which change many deliveries (`herald redrive`) returns without that work.
    ///
    /// A second `close` does nothing (``run()`` as a `Service` closes when it returns).
    public func close(projecting: Bool = true) throws {
        stop()
        guard try projector.withLock({ projector -> Bool in
            guard let open = projector else { return false }
            if projecting { try open.catchUp() }
            projector = nil
            return true
        }) else { return }
        try log.close()
    }
}

extension Herald: Service {
    /// Runs the engine as a swift-service-lifecycle `Service` (in a `ServiceGroup`): the
    /// dispatcher runs until graceful shutdown (SIGTERM, SIGINT, or
    /// `ServiceGroup.triggerGracefulShutdown()`), cancellation of its task, or ``stop()``; then
    /// the attempts in flight finish (or time out) and are recorded, and the engine closes:
    /// the projection is caught up, the engine snapshot saved, the writer lock released.
    ///
    /// `run(untilIdle:report:)` is the same loop without the shutdown handling and without
    /// closing.
    public func run() async throws {
        do {
            try await withGracefulShutdownHandler {
                try await withTaskCancellationHandler {
                    try await self.run(untilIdle: false, report: nil)
                } onCancel: {
                    self.stop()
                }
            } onGracefulShutdown: {
                self.stop()
            }
        } catch {
            try? close()
            throw error
        }
        try close()
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
