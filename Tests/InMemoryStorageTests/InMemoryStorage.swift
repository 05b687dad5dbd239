import HeraldCore
import Synchronization

/// A second implementation of the engine's log, in memory: records in an array, durable as
/// soon as they are queued. Shows that the engine, replay and the reads need nothing of the
/// segment log; a log on another engine plugs in the same way.
final class InMemoryRecordLog: RecordLog {
    private struct State {
        var records: [Record] = []
        var closed = false
        var listener: (@Sendable (UInt64) -> Void)?
    }

    private let state = Mutex(State())

    /// Fails the next append this many appends from now (0: never), to test failing closed.
    let failAfterAppends = Mutex(0)

    enum Failure: Error, CustomStringConvertible {
        case closed, injected
        var description: String { self == .closed ? "the log is closed" : "the disk is gone (injected)" }
    }

    var recordBytesMax: Int { 16 << 20 }

    var lastPosition: UInt64 {
        state.withLock { UInt64($0.records.count) }
    }

    var durablePosition: UInt64 { lastPosition }

    func forEach(from: UInt64, through: UInt64?, _ body: (UInt64, Record) throws -> Bool) throws {
        // A snapshot: records appended while `body` runs are not part of this read.
        let records = state.withLock { $0.records }
        let last = min(through ?? UInt64(records.count), UInt64(records.count))
        var position = max(from, 1)
        while position <= last {
            guard try body(position, records[Int(position - 1)]) else { return }
            position += 1
        }
    }

    func enqueue(_ records: [Record]) throws -> ClosedRange<UInt64> {
        let fail = failAfterAppends.withLock { countdown -> Bool in
            guard countdown > 0 else { return false }
            countdown -= 1
            return countdown == 0
        }
        if fail { throw Failure.injected }
        let (range, listener) = try state.withLock { s -> (ClosedRange<UInt64>, (@Sendable (UInt64) -> Void)?) in
            guard !s.closed else { throw Failure.closed }
            let first = UInt64(s.records.count) + 1
            s.records.append(contentsOf: records.map { $0.compacted() })
            return (first...UInt64(s.records.count), s.listener)
        }
        listener?(range.upperBound)
        return range
    }

    func waitUntilDurable(through position: UInt64) throws {
        guard position <= lastPosition else { throw Failure.closed }
    }

    func onDurable(_ listener: @escaping @Sendable (UInt64) -> Void) {
        state.withLock { $0.listener = listener }
    }

    func close() throws {
        state.withLock {
            $0.closed = true
            $0.listener = nil
        }
    }

    /// Opens the log again after ``close()`` (a restart keeps the records).
    func reopen() {
        state.withLock { $0.closed = false }
    }
}

/// A second implementation of the projection store and the engine snapshot, in memory: the
/// canonical deliveries (a ``DeliveryLedger`` fed the effects), the registry, and the
/// dead-letter events.
final class InMemoryProjection: ProjectionStore, EngineSnapshotStore {
    private var checkpoint: UInt64 = 0
    private var lastTs: Int64?
    private var registry = Registry()
    private var ledger = DeliveryLedger()
    private var createdCount: UInt64 = 0
    private var deadLetters: [UInt64: DeadLetterEvent] = [:]

    enum Failure: Error {
        case checkpointMoved(expected: UInt64, found: UInt64)
    }

    var location: String { "memory" }

    func checkpointPosition() throws -> UInt64 { checkpoint }

    func apply(_ steps: [ProjectionStep], registryAfter: Registry) throws {
        guard let first = steps.first, let last = steps.last else { return }
        guard first.position == checkpoint + 1 else {
            throw Failure.checkpointMoved(expected: checkpoint + 1, found: first.position)
        }
        for step in steps {
            ledger.absorb(step.effects)
            for effect in step.effects {
                switch effect {
                case .created: createdCount += 1
                case .deadLetter(let event): deadLetters[event.position] = event
                case .attempted, .cancelled, .redriven: break
                }
            }
        }
        checkpoint = last.position
        lastTs = last.record.ts
        registry = registryAfter
    }

    func seed(from state: CompactedState) throws {
        guard checkpoint == 0 else { throw Failure.checkpointMoved(expected: 0, found: checkpoint) }
        ledger = DeliveryLedger(deliveries: state.deliveries)
        registry = state.dispatcher.registry
        createdCount = state.dispatcher.createdCount
        for timeline in state.timelines {
            for case .dead(let event, _) in timeline.events { deadLetters[event.position] = event }
        }
        checkpoint = state.start - 1
        lastTs = state.dispatcher.lastTs
    }

    func prune(to state: CompactedState) throws {
        let kept = Set(state.timelines.map(\.id))
        ledger = DeliveryLedger(deliveries: ledger.deliveries.filter { $0.id.sourcePosition >= state.start || kept.contains($0.id) })
    }

    func forEachDelivery(matching selection: DeliverySelection, _ body: (Delivery) throws -> Void) throws {
        try selection.picked(from: ledger.deliveries).forEach(body)
    }

    func loadDispatcher() throws -> Dispatcher {
        Dispatcher(registry: registry, pending: ledger.deliveries.filter { $0.status == .pending },
                   position: checkpoint, lastTs: lastTs, createdCount: createdCount,
                   redrivable: ledger.deliveries.filter {
                       ($0.status == .dead || $0.status == .cancelled) && registry.triggers[$0.id.triggerID] != nil
                   })
    }

    func deadLetter(at position: UInt64) throws -> DeadLetterEvent? {
        deadLetters[position]
    }
}
