/// The live engine's scheduling, as a value with no I/O: which delivery runs when, how many at
/// once, what waits for the log's durability, what is appended after an attempt, and when the
/// run loop stops. The engine (`Herald`) owns one behind a lock: it feeds each event in and
/// carries out the action that comes back (run these attempts, append these records, load these
/// source records, wake when durable through P, wait, advance a virtual clock, finish).
///
/// The rules (docs/SEMANTICS.md, "The live engine"; each has a test in
/// `EngineStateMachineTests`):
/// 1. **Due order**: due deliveries start in order of due time, then source position, then the
///    trigger's registration order; none starts before its due time.
/// 2. **Concurrency bound**: at most `concurrency` attempts are in flight; a delivery in flight
///    is never started twice.
/// 3. **Durability first**: a delivery starts only once the record that created it (its source
///    record) is durable; an append that queued a delivery asks to be woken when it is.
/// 4. **Outcomes are records**: an attempt's outcome is validated like any record; one whose
///    delivery finished or was cancelled meanwhile is dropped, not appended.
/// 5. **Retries** follow the dispatcher: a failed attempt is queued again at its retry time, a
///    delivery out of attempts dead-letters, and the dead letter's deliveries queue like any.
/// 6. **Timeouts**: an attempt with no result by the round's deadline, or one that reports a
///    longer duration, is a retryable "timed out after N ms" error of duration N.
/// 7. **Sources**: a delivery's event comes from a cache filled as records are appended; after
///    a restart the engine is asked to load missing sources, and a source nothing describes
///    leaves its deliveries pending (visible in `status`) instead of retrying forever.
/// 8. **Fail closed**: once an append failed after the state moved on, every command and
///    outcome is refused.
/// 9. **Shutdown drain**: after `stop`, nothing new starts; outcomes of attempts in flight are
///    still recorded, and the run loop finishes after the round in progress.
/// 10. **Idle**: with nothing due the run loop waits until the next due time (at most 1 s),
///    or, on a clock that moves only when told, advances it to the next due time; `untilIdle`
///    finishes once nothing is pending.
public struct EngineStateMachine: Sendable {
    /// Limits of the engine.
    public struct Configuration: Sendable {
        /// Attempts in flight at most.
        public var concurrency: Int
        /// An attempt still running after this long is recorded as timed out.
        public var attemptTimeoutMs: Int64
        /// The log's limit on one encoded record; a bigger command is refused before any change.
        public var recordBytesMax: Int

        public init(concurrency: Int, attemptTimeoutMs: Int64, recordBytesMax: Int) {
            self.concurrency = max(1, concurrency)
            self.attemptTimeoutMs = max(1, attemptTimeoutMs)
            self.recordBytesMax = recordBytesMax
        }
    }

    /// Validated records, applied to the state, waiting for the log to give them positions
    /// (``appended(_:at:)``). Their effects are kept per record.
    public struct Batch: Sendable {
        public fileprivate(set) var records: [Record] = []
        fileprivate var effects: EffectsByRecord
        /// Outcomes that failed their check (their delivery finished or was cancelled while the
        /// attempt ran): not appended.
        public fileprivate(set) var dropped: [(attempt: DeliveryAttempt, reason: String)] = []
        fileprivate var isOutcomes = false

        fileprivate init(capacity: Int) {
            records.reserveCapacity(capacity)
            effects = EffectsByRecord(capacity: capacity)
        }

        public var isEmpty: Bool { records.isEmpty }
    }

    /// What the engine does once a batch has positions.
    public struct Appended: Sendable {
        /// The batch queued a delivery (new or a retry): wake the run loop once the log is
        /// durable through this position (rule 3).
        public var awaitDurableThrough: UInt64?
        /// One per recorded outcome, in log order.
        public var reports: [AttemptReport]
    }

    /// What a round starts.
    public struct Due: Sendable {
        /// Attempts to run now (marked in flight).
        public var invocations: [Invocation]
        /// Source positions to load (``sourcesLoaded(kv:deadLetters:asked:)``) before their
        /// deliveries can start: ascending, distinct.
        public var missingSources: [UInt64]
    }

    /// What the run loop does after a round.
    public enum Next: Sendable, Equatable {
        /// Start another round at once (the last one recorded outcomes).
        case round
        /// Sleep until woken (an append, a durability wake) or this many milliseconds pass.
        case wait(ms: Int64)
        /// Move a clock that moves only when told to this time, then start a round.
        case advanceClock(to: Int64)
        /// Return from `run`.
        case finish
    }

    public let configuration: Configuration
    /// The registry and every pending delivery.
    public private(set) var dispatcher: Dispatcher
    /// Deliveries whose attempt is running.
    public private(set) var inFlight: Set<DeliveryID> = []
    /// Set by ``stop()``: nothing new starts.
    public private(set) var stopping = false
    /// Why the engine stopped taking work (rule 8).
    public private(set) var failure: String?
    /// The last position of recorded outcomes (0: none yet).
    public private(set) var lastOutcome: UInt64 = 0

    private var queue = DueQueue()
    /// Source records (KV mutations, manual invocations) of pending deliveries, by position.
    private var sourceRecords: [UInt64: Record] = [:]
    /// Dead-letter events of pending dead-letter deliveries, by position.
    private var deadLetters: [UInt64: DeadLetterEvent] = [:]
    /// Pending deliveries per source position: a cached source goes when its count reaches 0.
    private var sourceRefs: [UInt64: Int] = [:]
    /// Source positions that nothing describes (rule 7).
    private var unresolvable: Set<UInt64> = []

    /// Resumes `dispatcher`'s pending deliveries (after a restart, their sources are loaded
    /// on demand).
    public init(dispatcher: Dispatcher, configuration: Configuration) {
        self.dispatcher = dispatcher
        self.configuration = configuration
        queue = DueQueue(dispatcher.pending)
        // Rows come in source position order: one entry per position, not one per delivery.
        var run: (position: UInt64, count: Int)?
        dispatcher.pending.forEachDueKey { _, position, _, _ in
            if let current = run, current.position == position {
                run = (position, current.count + 1)
            } else {
                if let current = run { sourceRefs[current.position] = current.count }
                run = (position, 1)
            }
        }
        if let current = run { sourceRefs[current.position] = current.count }
    }

    // MARK: - Records

    /// Validates commands as one batch (all or nothing) and applies them; `ts` defaults to
    /// `max(now, last ts)`. On a rule violation nothing changes.
    ///
    /// `stamps` (empty, or one per body): a body's own `ts`, when it has one, instead of `ts`.
    public mutating func acceptCommands(_ bodies: [RecordBody], ts: Int64?, now: Int64, stamps: [Int64?] = []) throws -> Batch {
        func stamp(_ index: Int) -> Int64? { index < stamps.count ? stamps[index] ?? ts : ts }
        if let failure { throw EngineError.failed(failure) }
        guard !bodies.isEmpty else { throw EngineError.emptyBatch }
        var batch = Batch(capacity: bodies.count)
        if bodies.count == 1, let body = bodies.first {
            // The common case: check, then apply in place (no copy of the pending deliveries).
            let record = Record(ts: stamp(0) ?? max(now, dispatcher.lastTs ?? 0), body: body)
            try RecordBinaryCodec.checkEncodedSize(body, limitBytes: configuration.recordBytesMax)
            try dispatcher.check(record)
            batch.effects.apply(record, to: &dispatcher)
            batch.records.append(record)
            return batch
        }
        // Validate first. Without attempts or actions on deliveries in it, a registry-only copy
        // suffices (no other rule depends on deliveries), so validating costs nothing per pending
        // delivery; with them, a full copy.
        let needsDeliveries = bodies.contains(where: \.actsOnDeliveries)
        do {
            // The trial shares the dispatcher's storage; it must be gone before the dispatcher
            // changes, or the first change copies every pending delivery.
            var trial = dispatcher
            if !needsDeliveries { trial.tracksDeliveries = false }
            for (index, body) in bodies.enumerated() {
                let record = Record(ts: stamp(index) ?? max(now, trial.lastTs ?? 0), body: body)
                do throws(RecordError) {
                    try RecordBinaryCodec.checkEncodedSize(body, limitBytes: configuration.recordBytesMax)
                    try trial.check(record)
                } catch {
                    throw error.at("record \(index + 1) of \(bodies.count)")
                }
                batch.effects.apply(record, to: &trial)
                batch.records.append(record)
            }
            if needsDeliveries { dispatcher = trial }
        }
        if !needsDeliveries {
            // Every record passed: apply them for real, in place.
            batch.effects.removeAll()
            for record in batch.records { batch.effects.apply(record, to: &dispatcher) }
        }
        return batch
    }

    /// Attempts finished (rule 4): each outcome is checked and applied in place; one whose
    /// delivery finished meanwhile is dropped (``Batch/dropped``). The deliveries leave the
    /// in-flight set either way.
    public mutating func acceptOutcomes(_ attempts: [DeliveryAttempt], now: Int64) throws -> Batch {
        for attempt in attempts { inFlight.remove(DeliveryID(sourcePosition: attempt.sourcePosition, triggerID: attempt.triggerID)) }
        if let failure { throw EngineError.failed(failure) }
        var batch = Batch(capacity: attempts.count)
        batch.isOutcomes = true
        for attempt in attempts {
            let record = Record(ts: max(now, dispatcher.lastTs ?? 0), body: .deliveryAttempted(attempt))
            do throws(RecordError) {
                try dispatcher.check(record)
            } catch {
                batch.dropped.append((attempt, error.reason))
                continue
            }
            batch.effects.apply(record, to: &dispatcher)
            batch.records.append(record)
        }
        return batch
    }

    /// The log gave `batch` the positions `range`: queues the deliveries its records created
    /// or rescheduled and caches their sources.
    public mutating func appended(_ batch: Batch, at range: ClosedRange<UInt64>) -> Appended {
        var queued = false
        var reports: [AttemptReport] = []
        for (index, record) in batch.records.enumerated() {
            let position = range.lowerBound + UInt64(index)
            let effects = batch.effects[index]
            queued = absorb(effects, record: record, at: position) || queued
            if batch.isOutcomes {
                for case .attempted(let d, let a, _, _) in effects {
                    reports.append(AttemptReport(position: position, ts: record.ts, delivery: d, attempt: a))
                }
            }
        }
        if batch.isOutcomes { lastOutcome = range.upperBound }
        return Appended(awaitDurableThrough: queued ? range.upperBound : nil, reports: reports)
    }

    /// An append (or a sync) failed after the state moved on: refuse all work from now on.
    public mutating func failed(_ reason: String) {
        failure = failure ?? reason
    }

    /// Applies `record`'s effects to the queue and caches; true when they queued a delivery.
    private mutating func absorb(_ effects: ArraySlice<DispatchEffect>, record: Record, at position: UInt64) -> Bool {
        var queued = false
        for effect in effects {
            switch effect {
            case .created(let d):
                queued = true
                queue.push(d)
                sourceRefs[d.id.sourcePosition, default: 0] += 1
                // Compact: a record read from the log would keep its whole block alive.
                if d.sourceKind == .kv || d.sourceKind == .manual { sourceRecords[position] = record.compacted() }
            case .attempted(let d, _, _, _):
                if d.status == .pending {
                    queued = true
                    queue.push(d)
                } else {
                    release(d.id.sourcePosition)
                }
            case .deadLetter(let event):
                deadLetters[event.position] = event
            case .cancelled(let d):
                release(d.id.sourcePosition)
            case .redriven(let d, _):
                // Its source is loaded when it is due (``Due/missingSources``).
                queued = true
                queue.push(d)
                sourceRefs[d.id.sourcePosition, default: 0] += 1
            }
        }
        return queued
    }

    /// One fewer pending delivery of this source: forget the cached source at zero.
    private mutating func release(_ position: UInt64) {
        let left = sourceRefs[position, default: 1] - 1
        if left > 0 {
            sourceRefs[position] = left
        } else {
            sourceRefs[position] = nil
            sourceRecords[position] = nil
            deadLetters[position] = nil
        }
    }

    // MARK: - Rounds

    /// Picks the deliveries due at `now` whose source is durable (`durable`: the log's durable
    /// position), up to the free slots, in due order, and marks them in flight (rules 1–3, 7, 9).
    public mutating func takeDue(now: Int64, durable: UInt64) -> Due {
        var due = Due(invocations: [], missingSources: [])
        guard !stopping, failure == nil else { return due }
        var slots = configuration.concurrency - inFlight.count
        var deferred: [Delivery] = []
        while slots > 0, let top = queue.first, top.dueAt <= now, due.missingSources.count < Self.sourcesPerLoad {
            _ = queue.popFirst()
            // The queue is a hint: an entry whose delivery finished, was rescheduled or is in
            // flight is stale.
            guard let delivery = dispatcher.pending[top.id], delivery.dueAt == top.dueAt,
                  !inFlight.contains(top.id) else { continue }
            if delivery.id.sourcePosition > durable {
                deferred.append(delivery)
                continue
            }
            guard let script = dispatcher.registry.scripts[delivery.scriptID],
                  !unresolvable.contains(delivery.id.sourcePosition) else { continue }
            let event: Invocation.Event
            switch delivery.sourceKind {
            case .kv, .http:
                guard let record = sourceRecords[delivery.id.sourcePosition], case .kv(let m) = record.body else {
                    due.missingSources.append(delivery.id.sourcePosition)
                    deferred.append(delivery)
                    continue
                }
                event = .kv(position: delivery.id.sourcePosition, ts: record.ts, mutation: m)
            case .deadLetter:
                guard let dead = deadLetters[delivery.id.sourcePosition] else {
                    due.missingSources.append(delivery.id.sourcePosition)
                    deferred.append(delivery)
                    continue
                }
                event = .deadLetter(dead)
            case .manual:
                guard let record = sourceRecords[delivery.id.sourcePosition], case .deliveryInvoked(let invocation) = record.body else {
                    due.missingSources.append(delivery.id.sourcePosition)
                    deferred.append(delivery)
                    continue
                }
                event = .manual(position: delivery.id.sourcePosition, ts: record.ts, invocation: invocation)
            }
            // Once a due delivery waits for its source, none after it starts in this call (due
            // order holds); the scan goes on only to collect more sources to load at once.
            if !due.missingSources.isEmpty {
                deferred.append(delivery)
                continue
            }
            let principal = dispatcher.registry.triggers[delivery.id.triggerID].flatMap { dispatcher.registry.adminUsers[$0.registeredBy] }
            inFlight.insert(delivery.id)
            slots -= 1
            due.invocations.append(Invocation(delivery: delivery.id, attempt: delivery.attempts + 1,
                                              dueAt: delivery.dueAt ?? now, depth: delivery.depth, event: event,
                                              script: script, app: dispatcher.registry.apps[script.appID],
                                              principal: principal))
        }
        for delivery in deferred { queue.push(delivery) }
        if !due.missingSources.isEmpty {
            var seen = Set<UInt64>()
            due.missingSources = due.missingSources.filter { seen.insert($0).inserted }.sorted()
        }
        return due
    }

    /// Most sources one ``takeDue(now:durable:)`` asks for.
    static let sourcesPerLoad = 4096

    /// The sources asked for by ``takeDue(now:durable:)``, as found in the log (`records`: KV
    /// mutations and manual invocations) and the snapshot (`deadLetters`); an asked position in
    /// neither is unresolvable (rule 7).
    public mutating func sourcesLoaded(records: [UInt64: Record], deadLetters loaded: [UInt64: DeadLetterEvent], asked: [UInt64]) {
        sourceRecords.merge(records) { old, _ in old }
        deadLetters.merge(loaded) { old, _ in old }
        for position in asked where records[position] == nil && loaded[position] == nil {
            unresolvable.insert(position)
        }
    }

    /// What each attempt of a round came to (rule 6): `results[i]` is invocation i's result and
    /// the duration the engine measured, `nil` when the round's deadline came first.
    public func outcomes(of invocations: [Invocation], results: [(result: ExecutionResult, measuredMs: Int64)?]) -> [DeliveryAttempt] {
        let timeout = configuration.attemptTimeoutMs
        var attempts: [DeliveryAttempt] = []
        attempts.reserveCapacity(invocations.count)
        for (index, invocation) in invocations.enumerated() {
            let finished = index < results.count ? results[index] : nil
            var outcome = finished?.result.outcome ?? .error("timed out after \(timeout) ms", retryable: true)
            var duration = finished.map { $0.result.durationMs ?? $0.measuredMs } ?? timeout
            if duration > timeout {
                outcome = .error("timed out after \(timeout) ms", retryable: true)
                duration = timeout
            }
            let id = invocation.delivery
            switch outcome {
            case .ok:
                attempts.append(DeliveryAttempt(sourcePosition: id.sourcePosition, triggerID: id.triggerID,
                                                attempt: invocation.attempt, outcome: .ok, durationMs: max(0, duration)))
            case .error(let message, let retryable):
                attempts.append(DeliveryAttempt(sourcePosition: id.sourcePosition, triggerID: id.triggerID,
                                                attempt: invocation.attempt, outcome: .error, error: message,
                                                retryable: retryable, durationMs: max(0, duration)))
            }
        }
        return attempts
    }

    /// The earliest due time of a pending delivery not in flight (stale queue entries are dropped).
    public mutating func nextDueAt() -> Int64? {
        while let top = queue.first {
            if let delivery = dispatcher.pending[top.id], delivery.dueAt == top.dueAt, !inFlight.contains(top.id) {
                return top.dueAt
            }
            _ = queue.popFirst()
        }
        return nil
    }

    /// What the run loop does after a round that recorded `recorded` outcomes (rules 9, 10).
    /// `clockMovesByItself`: false for a virtual clock, which the engine advances itself.
    public mutating func next(afterRoundThatRecorded recorded: Int, now: Int64, untilIdle: Bool, clockMovesByItself: Bool) -> Next {
        if stopping || failure != nil { return .finish }
        if recorded > 0 { return .round }
        if untilIdle && dispatcher.pending.isEmpty { return .finish }
        let next = nextDueAt()
        if !clockMovesByItself {
            if let next { return .advanceClock(to: next) }
            return untilIdle ? .finish : .wait(ms: 50)
        }
        // A round that ran nothing while a delivery is due left it waiting for its source
        // record's sync (nothing is in flight between rounds, and undeliverable entries leave
        // the queue): the durability wake ends the wait; 5 ms at most, never a spin.
        guard let next else { return .wait(ms: 1000) }
        let wait = max(0, min(next - now, 1000))
        return .wait(ms: wait == 0 ? 5 : wait)
    }

    /// Stop taking new work (rule 9).
    public mutating func stop() {
        stopping = true
    }

    /// Pending, due, in flight, next due time.
    public func status(now: Int64) -> EngineStatus {
        let due = dispatcher.pending.dueSummary(now: now)
        return EngineStatus(position: dispatcher.position, pending: dispatcher.pending.count,
                            due: due.due, inFlight: inFlight.count, nextDueAt: due.earliest)
    }
}

/// One recorded attempt, as the engine reports it (`herald run` prints one line each).
public struct AttemptReport: Sendable {
    public var position: UInt64
    public var ts: Int64
    public var delivery: Delivery
    public var attempt: DeliveryAttempt
}

/// Counts for `herald status`.
public struct EngineStatus: Sendable, Equatable {
    public var position: UInt64
    public var pending: Int
    public var due: Int
    public var inFlight: Int
    public var nextDueAt: Int64?

    public init(position: UInt64, pending: Int, due: Int, inFlight: Int, nextDueAt: Int64?) {
        self.position = position
        self.pending = pending
        self.due = due
        self.inFlight = inFlight
        self.nextDueAt = nextDueAt
    }
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

/// Each record's dispatch effects, in one array for a whole batch (an array per record was an
/// allocation per record).
struct EffectsByRecord: Sendable {
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
