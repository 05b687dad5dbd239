import HeraldCore
import HeraldStore

/// Keeps a projection store caught up with a log, holding the dispatcher state that goes with
/// the store's checkpoint so each catch-up reads only the new records. The store is also the
/// engine's snapshot: the dispatcher comes from it.
/// `@unchecked Sendable`: the engine keeps it inside a `Mutex` and touches it only under that lock.
final class Projector: @unchecked Sendable {
    let store: any ProjectionStore & EngineSnapshotStore
    /// Read anew by each catch-up (a segment log's reader sees what was appended since).
    private let source: () throws -> any RecordSource
    private(set) var dispatcher: Dispatcher

    init(store: any ProjectionStore & EngineSnapshotStore, source: @escaping () throws -> any RecordSource) throws {
        self.store = store
        self.source = source
        let reader = try source()
        // A compacted log: an empty store starts from the log's snapshot; one stopped before
        // the log's start cannot go on (its records are gone) and must be rebuilt.
        if let start = try reader.compactedStart() {
            let checkpoint = try store.checkpointPosition()
            if checkpoint == 0 {
                try store.seed(from: start)
            } else if checkpoint + 1 < start.start {
                throw HeraldError.projectionBehindCompaction(location: store.location, checkpoint: checkpoint, firstPosition: start.start)
            } else {
                // It followed the log before the compaction: drop the rows the log no longer
                // explains (nothing when a compaction already pruned it).
                try store.prune(to: start)
            }
        }
        self.dispatcher = try reader.restoredState(from: store)
    }

    /// Where this projector last saved an engine snapshot (0: not yet).
    private var snapshotAt: UInt64 = 0
    /// When set, a catch-up that stops short of the log's end (the running engine's background
    /// projection) also saves an engine snapshot once ``snapshotInterval`` records passed since
    /// the last one. A catch-up to the log's end always saves one.
    var periodicSnapshotRecords: UInt64?

    /// Records between two periodic snapshots: at least ``periodicSnapshotRecords``, and at
    /// least as many as the deliveries the last snapshot held, so writing snapshots costs a
    /// bounded share of projecting however large the state is (and a restart replays no more
    /// records than it decodes deliveries).
    var snapshotInterval: UInt64? {
        periodicSnapshotRecords.map { max($0, snapshotDeliveries) }
    }
    /// Deliveries (pending and redrivable) the last snapshot this projector saved held.
    private var snapshotDeliveries: UInt64 = 0

    /// A projector of `directory`'s log into `projection` (default: its own projection).
    convenience init(directory: DataDirectory, projection: Projection? = nil) throws {
        try self.init(store: projection ?? directory.openProjection(), source: { try directory.openReader() })
    }

    /// Applies every record after the checkpoint, in batches that commit with their checkpoint.
    /// A catch-up to the log's end (no `target`, no `limit`) then saves the engine snapshot
    /// (``HeraldCore/EngineSnapshotStore/saveSnapshot(of:)``), as does one that passed
    /// ``snapshotInterval`` records since the last when ``periodicSnapshotRecords`` is set.
    @discardableResult
    /// - Parameters:
    ///   - limit: apply at most this many records (the live engine projects in slices).
    ///   - pace: called after every ``paceRecords`` records, inside the transaction (the live
    ///     engine's background projection sleeps there to bound its share of the CPU).
    ///   - target: stop at this position (default: the log's end).
    ///
    /// Another process may project the same log at the same time (`herald verify` or
    /// `herald project` beside a starting `herald run`): the store then refuses a batch that
    /// no longer starts at its checkpoint, and this resumes from the store's new checkpoint
    /// (both applied the same records: the result is the same).
    func catchUp(through target: UInt64? = nil, limit: UInt64 = .max, progress: ((UInt64) -> Void)? = nil,
                 pace: (() -> Void)? = nil) throws -> ProjectResult {
        let start = dispatcher.position
        var retries = 0
        while true {
            let before = dispatcher.position
            do {
                let done = try catchUpOnce(through: target, limit: limit, progress: progress, pace: pace)
                if (target == nil && limit == .max)
                    || snapshotInterval.map({ dispatcher.position - min(snapshotAt, dispatcher.position) >= $0 }) == true {
                    // Caught up with the log, or far enough from the last snapshot: leave the
                    // snapshot the next open reads (the store skips it when it holds one for
                    // this position already).
                    try store.saveSnapshot(of: dispatcher)
                    snapshotAt = dispatcher.position
                    snapshotDeliveries = UInt64(dispatcher.pending.count + dispatcher.redrivable.count)
                }
                return ProjectResult(from: start, to: done.to)
            } catch {
                // `dispatcher` is the store's again: moved on by another process, go on from there.
                retries += 1
                guard retries < 3, dispatcher.position > before else { throw error }
            }
        }
    }

    private func catchUpOnce(through target: UInt64?, limit: UInt64, progress: ((UInt64) -> Void)?,
                             pace: (() -> Void)?) throws -> ProjectResult {
        let start = dispatcher.position
        let reader = try source()
        let end = try reader.lastPosition
        if start > end {
            throw StoreError.aheadOfLog(path: store.location, checkpoint: start, lastPosition: end)
        }
        let last = min(target ?? end, end)
        if start >= last { return ProjectResult(from: start, to: start) }
        if let first = try reader.compactedStart()?.start, start + 1 < first {
            // Compacted past this projection while it ran: the records it needs are gone.
            throw HeraldError.projectionBehindCompaction(location: store.location, checkpoint: start, firstPosition: first)
        }
        var steps: [ProjectionStep] = []
        steps.reserveCapacity(DataDirectory.projectBatchRecords)
        var failure: Error?
        // `dispatcher` is advanced in place (no copy of the pending deliveries per batch). If a
        // batch fails to commit, the in-memory state is ahead of the projection: reload it.
        do {
            let through = start &+ limit < start ? last : min(last, start + limit)
            try reader.forEach(from: start + 1, through: through) { position, record in
                do throws(RecordError) {
                    try dispatcher.check(record, statelessRulesChecked: true)
                } catch {
                    failure = HeraldError.badLogRecord(position: position, reason: error.description)
                    return false
                }
                var effects: [DispatchEffect] = []
                dispatcher.applyChecked(record, effects: &effects)
                steps.append(ProjectionStep(position: position, record: record, effects: effects))
                if let pace, steps.count % Self.paceRecords == 0 { pace() }
                if steps.count >= DataDirectory.projectBatchRecords {
                    try store.apply(steps, registryAfter: dispatcher.registry)
                    steps.removeAll(keepingCapacity: true)
                    progress?(position)
                }
                return true
            }
            // Commit what was valid before reporting a bad record.
            try store.apply(steps, registryAfter: dispatcher.registry)
        } catch {
            dispatcher = try reader.restoredState(from: store)
            throw error
        }
        if let failure { throw failure }
        return ProjectResult(from: start, to: dispatcher.position)
    }

    /// The compacted log's start this projector last pruned its store to (1: none).
    private var prunedTo: UInt64 = 1

    /// After the log it follows was compacted (by another component, while this one runs):
    /// drops the store's rows about what the log no longer holds (``HeraldCore/ProjectionStore/prune(to:)``).
    /// Cheap when nothing changed: one look at the log's first position.
    func followCompaction() throws {
        let reader = try source()
        guard let start = try reader.compactedStart(), start.start > prunedTo, dispatcher.position + 1 >= start.start else { return }
        try store.prune(to: start)
        prunedTo = start.start
    }

    /// How often `catchUp` calls its `pace` (records).
    static let paceRecords = 2048

    /// The dead-letter event recorded at `position`, if any.
    func deadLetter(at position: UInt64) throws -> DeadLetterEvent? {
        try store.deadLetter(at: position)
    }
}
