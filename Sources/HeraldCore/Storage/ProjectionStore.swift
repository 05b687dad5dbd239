/// One record the projector applied: its position, the record, and the dispatcher's effects.
///
/// The projection stores no KV data (its deliveries come from the effects), so a step keeps a
/// KV record without its value, and an invocation's payload as a copy: a batch of steps then
/// holds no value read from the log, and with it no log block (``JSONText`` shares its block's
/// buffer).
public struct ProjectionStep: Sendable {
    public var position: UInt64
    public var record: Record
    public var effects: [DispatchEffect]

    public init(position: UInt64, record: Record, effects: [DispatchEffect]) {
        self.position = position
        if case .kv(var mutation) = record.body, mutation.value != nil {
            mutation.value = nil
            self.record = Record(ts: record.ts, body: .kv(mutation))
        } else {
            self.record = record.compacted()  // an invocation's payload: its own bytes only
        }
        self.effects = effects
    }
}

/// Where the projector writes what the log means for users (the Layout E tables and the
/// deliveries): fed every record with its effects, in order, a batch at a time. Implemented by
/// the SQLite projection (`Projection`); the projector, validation and dispatch stay the same
/// for any other store.
public protocol ProjectionStore: AnyObject {
    /// Where the store lives, for messages (a file path, a URL).
    var location: String { get }

    /// Positions 1 through this one are applied (0: none).
    func checkpointPosition() throws -> UInt64

    /// Applies `steps` (positions checkpoint + 1 onwards, contiguous) and moves the checkpoint
    /// to the last one, all or nothing. `registryAfter`: the registry after the last step.
    /// Refuses steps that do not start right after the checkpoint (another writer moved it).
    func apply(_ steps: [ProjectionStep], registryAfter: Registry) throws

    /// Fills an empty store (checkpoint 0) with what a compacted log starts from — its
    /// registry, used ids, retained deliveries with their attempts and deaths, counts and
    /// engine snapshot — and moves the checkpoint to `state.start - 1`, all or nothing, so
    /// ``apply(_:registryAfter:)`` goes on with the log's first record.
    func seed(from state: CompactedState) throws

    /// Removes the rows about what a compacted log no longer holds — deliveries created before
    /// `state.start` that it does not keep, with their attempts and dead-letter events, and
    /// operator actions before it — so the store reads as one seeded from `state` and then
    /// projected (the counts stay: they count every delivery ever created). Idempotent, all or
    /// nothing; a store that holds none of them changes nothing.
    func prune(to state: CompactedState) throws

    /// The deliveries `selection` picks as of the checkpoint (``DeliverySelection/matches(_:)``,
    /// at most its `limit`), in canonical order (source position, then trigger registration
    /// order). A store answers from its own indexes where it can.
    func forEachDelivery(matching selection: DeliverySelection, _ body: (Delivery) throws -> Void) throws

    /// Deliveries per status and the pending ones' due times as of the checkpoint. The default
    /// counts every delivery; a store that keeps counters and a due-time index answers from them.
    func summary(now: Int64) throws -> DeliverySummary
}

extension ProjectionStore {
    public func summary(now: Int64) throws -> DeliverySummary {
        var counts = DeliveryCounts()
        var due: Int64 = 0
        var earliest: Int64?
        let position = try checkpointPosition()
        try forEachDelivery { delivery in
            counts[delivery.status] += 1
            guard delivery.status == .pending, let at = delivery.dueAt else { return }
            if at <= now { due += 1 }
            if earliest.map({ at < $0 }) ?? true { earliest = at }
        }
        return DeliverySummary(position: position, counts: counts, dueNow: due, nextDueAt: earliest)
    }

    /// Every delivery as of the checkpoint, in canonical order.
    public func forEachDelivery(_ body: (Delivery) throws -> Void) throws {
        try forEachDelivery(matching: DeliverySelection(), body)
    }
}

/// What a restart restores without replaying finished work: the dispatcher (registry,
/// pending and redrivable deliveries) as of the checkpoint, an engine snapshot of the whole
/// state at or before it, and the dead-letter events pending deliveries were created by (their
/// KV sources come from the log). The SQLite projection is one (it derives the dispatcher from
/// its tables and keeps the snapshot beside them); a store of its own, or none (replay from 1),
/// also works.
public protocol EngineSnapshotStore: AnyObject {
    /// The dispatcher as of the store's checkpoint (`Dispatcher()` when there is none yet).
    func loadDispatcher() throws -> Dispatcher

    /// The latest engine snapshot, whose position is at or before the checkpoint: a restore
    /// continues it through the checkpoint from the log, which is cheaper than
    /// ``loadDispatcher()`` when there are many deliveries. `nil` when there is none (by default).
    func loadSnapshot() throws -> Dispatcher?

    /// The dead-letter event that happened at `position`, if the snapshot holds one.
    func deadLetter(at position: UInt64) throws -> DeadLetterEvent?

    /// Keeps `dispatcher` (at or before the checkpoint) as the snapshot ``loadSnapshot()``
    /// returns; called every so many records by a running engine and when it closes. Optional:
    /// by default nothing is kept.
    func saveSnapshot(of dispatcher: Dispatcher) throws
}

extension EngineSnapshotStore {
    public func loadSnapshot() throws -> Dispatcher? { nil }
    public func saveSnapshot(of dispatcher: Dispatcher) throws {}
}
