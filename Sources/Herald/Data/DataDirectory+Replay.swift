import HeraldCore
import HeraldStore

/// Derivation over any log: replay, deliveries, `explain`. Every read validates each record
/// against the state before it, as the dispatcher does when it appends.
extension RecordSource {
    /// Replays the log from position 1 through `through` (`nil` = the end), validating every
    /// record, and returns the dispatcher's state. `observe` sees each record with its
    /// effects and the state after it.
    public func replay(through: UInt64? = nil,
                       observe: ((UInt64, Record, [DispatchEffect], Dispatcher) throws -> Void)? = nil) throws -> Dispatcher {
        var dispatcher = try startingState(through: through)
        try replay(into: &dispatcher, through: through, observe: observe)
        return dispatcher
    }

    /// The state a replay of the log starts from: empty, or a compacted log's snapshot.
    ///
    /// - Throws: ``HeraldError/compacted(position:firstPosition:)`` when `through` is before
    ///   the snapshot's position.
    public func startingState(through: UInt64? = nil) throws -> Dispatcher {
        guard let start = try compactedStart() else { return Dispatcher() }
        if let through, through < start.start - 1 {
            throw HeraldError.compacted(position: through, firstPosition: start.start)
        }
        return start.dispatcher
    }

    /// Continues `dispatcher` from its position through `through`.
    public func replay(into dispatcher: inout Dispatcher, through: UInt64? = nil,
                       observe: ((UInt64, Record, [DispatchEffect], Dispatcher) throws -> Void)? = nil) throws {
        guard let observe else { return try replay(into: &dispatcher, through: through, step: { _, _, _, _ in }) }
        try replay(into: &dispatcher, through: through, step: { position, record, effects, state in
            try observe(position, record, effects, state)
        })
    }

    /// Replays like ``replay(through:observe:)``, showing `observe` each record and its effects
    /// but not the state after it: handing the state to a closure copies the dispatcher for
    /// each record (14 % of a what-if replay's time on a 1M-record log).
    public func replay(through: UInt64? = nil, effects observe: (UInt64, Record, [DispatchEffect]) throws -> Void) throws -> Dispatcher {
        var dispatcher = try startingState(through: through)
        try replay(into: &dispatcher, through: through, effects: observe)
        return dispatcher
    }

    /// Continues `dispatcher` like ``replay(into:through:observe:)``, showing `observe` each
    /// record and its effects only.
    public func replay(into dispatcher: inout Dispatcher, through: UInt64? = nil,
                       effects observe: (UInt64, Record, [DispatchEffect]) throws -> Void) throws {
        try replay(into: &dispatcher, through: through, step: { position, record, effects, _ in try observe(position, record, effects) })
    }

    /// The replay loop: `step` sees each record, its effects and the state after it, in place.
    private func replay(into dispatcher: inout Dispatcher, through: UInt64?,
                        step: (UInt64, Record, [DispatchEffect], inout Dispatcher) throws -> Void) throws {
        // One snapshot of the log's end: records appended meanwhile are not part of this replay.
        let last = try lastPosition
        if let through, through > last {
            throw HeraldError.positionOutOfRange(position: through, lastPosition: last)
        }
        let through = through ?? last
        guard dispatcher.position < through else { return }
        if dispatcher.position == 0, let start = try compactedStart() {
            throw HeraldError.compacted(position: 1, firstPosition: start.start)
        }
        var effects: [DispatchEffect] = []
        // Advanced in place: a copy would duplicate every pending delivery on the first change.
        // On a bad record `dispatcher` holds the state after the last good one.
        try forEach(from: dispatcher.position + 1, through: through) { position, record in
            do throws(RecordError) {
                try dispatcher.check(record, statelessRulesChecked: true)
            } catch {
                throw HeraldError.badLogRecord(position: position, reason: error.description)
            }
            effects.removeAll(keepingCapacity: true)
            dispatcher.applyChecked(record, effects: &effects)
            try step(position, record, effects, &dispatcher)
            return true
        }
    }

    /// The dispatcher as of `store`'s checkpoint: its engine snapshot continued through the
    /// checkpoint with the records between the two, or, without a usable snapshot, the state
    /// it derives from its rows. A snapshot past the log's end (the log was cut) is not used.
    public func restoredState(from store: any ProjectionStore & EngineSnapshotStore) throws -> Dispatcher {
        let checkpoint = try store.checkpointPosition()
        if let start = try compactedStart() {
            if checkpoint + 1 < start.start {
                // A projection behind a compacted log's start: the log's own start is the state.
                return start.dispatcher
            }
            if checkpoint <= (try lastPosition) {
                // An engine snapshot older than the start cannot be continued (its records are
                // gone): the log's snapshot is the later state to continue from.
                var state = start.dispatcher
                if let snapshot = try store.loadSnapshot(), snapshot.position + 1 >= start.start, snapshot.position <= checkpoint {
                    state = snapshot
                }
                try replay(into: &state, through: checkpoint)
                return state
            }
        }
        if checkpoint <= (try lastPosition), var snapshot = try store.loadSnapshot(), snapshot.position <= checkpoint {
            try replay(into: &snapshot, through: checkpoint)
            return snapshot
        }
        return try store.loadDispatcher()
    }

    /// Every delivery as of `position` (`nil` = the end), in canonical order.
    public func deliveries(at position: UInt64? = nil) throws -> [Delivery] {
        var ledger = DeliveryLedger(deliveries: try compactedStart()?.deliveries ?? [])
        _ = try replay(through: position, effects: { _, _, effects in ledger.absorb(effects) })
        return ledger.deliveries
    }

    /// `herald explain P`.
    public func explain(position: UInt64) throws -> RecordExplanation {
        let last = try lastPosition
        guard position >= 1, position <= last else {
            throw HeraldError.positionOutOfRange(position: position, lastPosition: last)
        }
        if let start = try compactedStart(), position < start.start {
            throw HeraldError.compacted(position: position, firstPosition: start.start)
        }
        var before = try replay(through: position - 1)
        var target: Record?
        var effects: [DispatchEffect] = []
        var later: [(position: UInt64, registration: TriggerRegistration)] = []
        try forEach(from: position, through: nil) { at, record in
            if at == position {
                target = record.compacted()  // kept in the result: not its whole log block
            } else if case .triggerRegistered(let r) = record.body {
                later.append((at, r))
            }
            return true
        }
        guard let record = target else {
            throw HeraldError.positionOutOfRange(position: position, lastPosition: last)
        }
        let snapshot = before
        do throws(RecordError) {
            try before.check(record, statelessRulesChecked: true)
        } catch {
            throw HeraldError.badLogRecord(position: position, reason: error.description)
        }
        before.applyChecked(record, effects: &effects)
        return Explainer.explain(record: record, at: position, before: snapshot, effects: effects,
                                 laterRegistrations: later)
    }

    /// `herald explain P:TRIGGER_ID`: the delivery's timeline up to `through` (`nil` = the end).
    public func timeline(of id: DeliveryID, through: UInt64? = nil) throws -> DeliveryTimeline {
        // A compacted log keeps the story of each delivery it retains; it goes on from there.
        var timeline = try compactedStart()?.timeline(of: id) ?? DeliveryTimeline(id: id)
        _ = try replay(through: through) { position, record, effects, state in
            timeline.observe(position: position, record: record, effects: effects, registry: state.registry)
        }
        return timeline
    }
}


extension DataDirectory {
    /// Replays the log from position 1 through `through` (`nil` = the end); see
    /// ``HeraldCore/RecordSource/replay(through:observe:)``.
    public func replay(through: UInt64? = nil,
                       observe: ((UInt64, Record, [DispatchEffect], Dispatcher) throws -> Void)? = nil) throws -> Dispatcher {
        try openReader().replay(through: through, observe: observe)
    }

    /// Continues `dispatcher` from its position through `through`.
    public func replay(into dispatcher: inout Dispatcher, through: UInt64? = nil,
                       observe: ((UInt64, Record, [DispatchEffect], Dispatcher) throws -> Void)? = nil) throws {
        try openReader().replay(into: &dispatcher, through: through, observe: observe)
    }

    /// The dispatcher as of the log's end, resumed from the projection's checkpoint when the
    /// projection exists and is usable (so startup does not replay finished work), else
    /// replayed from position 1.
    public func currentState() throws -> Dispatcher {
        var dispatcher = Dispatcher()
        if let projection = try openProjectionForReading() {
            let reader = try openReader()
            let lastPosition = try reader.lastPosition
            let loaded = try reader.restoredState(from: projection)
            if loaded.position <= lastPosition {
                dispatcher = loaded
            }
        }
        try replay(into: &dispatcher)
        return dispatcher
    }

    /// Every delivery as of `position` (`nil` = the end), in canonical order.
    public func deliveries(at position: UInt64? = nil) throws -> [Delivery] {
        try openReader().deliveries(at: position)
    }

    /// `herald explain P`.
    public func explain(position: UInt64) throws -> RecordExplanation {
        try openReader().explain(position: position)
    }

    /// `herald explain P:TRIGGER_ID`: the delivery's timeline up to `through` (`nil` = the end).
    /// At the end, from the projection's rows when it is caught up and they can tell it
    /// (``HeraldStore/Projection/timeline(of:record:)``); else by replay.
    public func timeline(of id: DeliveryID, through: UInt64? = nil) throws -> DeliveryTimeline {
        let reader = try openReader()
        // A delivery created before a compacted log's start: its story is in the snapshot.
        let compacted = try reader.compactedStart().map { id.sourcePosition < $0.start } ?? false
        if through == nil, !compacted, let projection = try openProjectionForReading(),
           try projection.checkpointPosition() == reader.lastPosition,
           let timeline = try projection.timeline(of: id, record: { try reader.record(at: $0) }) {
            return timeline
        }
        return try reader.timeline(of: id, through: through)
    }
}

extension RecordSource {
    /// The record at `position`, or `nil` when the log does not reach it.
    public func record(at position: UInt64) throws -> Record? {
        var found: Record?
        try forEach(from: position, through: position) { _, record in
            found = record
            return false
        }
        return found
    }
}

extension RecordSource {
    /// The deliveries `selection` picks as of the log's end, in canonical order: streamed from
    /// `projection` when it is caught up (filtered and limited by the store; memory stays flat
    /// however many deliveries there are), otherwise derived by replay and filtered here.
    ///
    /// A projection behind the log (a running engine projects about once a second) is read as
    /// its state at the checkpoint plus a replay of the records after it: its rows with the
    /// tail's changes laid over them, then the deliveries the tail created.
    public func forEachDelivery(projection: (any ProjectionStore)?, matching selection: DeliverySelection = DeliverySelection(),
                                _ body: (Delivery) throws -> Void) throws {
        let last = try lastPosition
        if let projection {
            let checkpoint = try projection.checkpointPosition()
            if checkpoint == last {
                try projection.forEachDelivery(matching: selection, body)
                return
            }
            if checkpoint < last, let store = projection as? any ProjectionStore & EngineSnapshotStore,
               case var dispatcher = try restoredState(from: store), dispatcher.position == checkpoint {
                var tail = TailChanges()
                try replay(into: &dispatcher, effects: { _, _, effects in tail.absorb(effects) })
                try tail.overlay(on: projection, through: last, matching: selection, body)
                return
            }
        }
        try selection.picked(from: deliveries()).forEach(body)
    }
}

/// What the records after a projection's checkpoint did to deliveries: the latest state of
/// each delivery they touched, and the ones they created, in canonical order.
struct TailChanges {
    /// Looked up only, never iterated (its order is not deterministic).
    private var latest: [DeliveryID: Delivery] = [:]
    private var created: [DeliveryID] = []

    mutating func absorb(_ effects: [DispatchEffect]) {
        for effect in effects {
            switch effect {
            case .created(let d):
                created.append(d.id)
                latest[d.id] = d
            case .attempted(let d, _, _, _), .cancelled(let d), .redriven(let d, _):
                latest[d.id] = d
            case .deadLetter:
                break
            }
        }
    }

    /// Streams `projection`'s deliveries with these changes laid over them, then the created
    /// ones it does not hold yet, each once, through `last`, as `selection` picks them.
    func overlay(on projection: any ProjectionStore, through last: UInt64, matching selection: DeliverySelection,
                 _ body: (Delivery) throws -> Void) throws {
        var remaining = selection.limit ?? .max
        var emitted = Set<DeliveryID>()  // tail deliveries the projection already held (a writer moved it meanwhile)
        func emit(_ delivery: Delivery) throws -> Bool {
            guard remaining > 0 else { return false }
            if selection.matches(delivery) {
                remaining -= 1
                try body(delivery)
            }
            return remaining > 0
        }
        // The rows' own state may not match the selection while the tail's does: every row is read.
        var all = selection
        all.limit = nil
        all.status = nil
        all.errorContains = nil
        struct Done: Error {}
        do {
            try projection.forEachDelivery(matching: all) { row in
                guard row.id.sourcePosition <= last else { throw Done() }
                var delivery = row
                if let changed = latest[row.id] {
                    delivery = changed
                    emitted.insert(row.id)
                }
                guard try emit(delivery) else { throw Done() }
            }
            for id in created where !emitted.contains(id) {
                guard let delivery = latest[id], try emit(delivery) else { break }
            }
        } catch is Done {}
    }
}

extension RecordSource {
    /// `herald status` as of the log's end: from `store` alone when it is caught up (its
    /// counters and due-time index), else its state at the checkpoint plus a replay of the
    /// records after it; with no store, a replay from position 1.
    public func summary(store: (any ProjectionStore & EngineSnapshotStore)?, now: Int64) throws -> DeliverySummary {
        let last = try lastPosition
        let start = try compactedStart()
        var dispatcher = start?.dispatcher ?? Dispatcher()
        var counts = start?.counts ?? DeliveryCounts()
        if let store {
            // The counters and the state must describe one checkpoint: a writer may move it
            // between the two reads, then both are read again.
            for _ in 0..<3 {
                let atCheckpoint = try store.summary(now: now)
                if atCheckpoint.position == last { return atCheckpoint }
                guard atCheckpoint.position < last else { break }  // a projection ahead of its log: replay
                let loaded = try restoredState(from: store)
                if loaded.position == atCheckpoint.position, loaded.position >= dispatcher.position {
                    dispatcher = loaded
                    counts = atCheckpoint.counts
                    break
                }
            }
        }
        try replay(into: &dispatcher, effects: { _, _, effects in counts.absorb(effects) })
        let (due, earliest) = dispatcher.pending.dueSummary(now: now)
        return DeliverySummary(position: dispatcher.position, counts: counts, dueNow: Int64(due), nextDueAt: earliest)
    }
}

extension DataDirectory {
    /// The registry as of the log's end and that position: the projection's registry tables
    /// plus the registry records after its checkpoint (every record from position 1 without a
    /// projection), each checked as a replay checks it. No delivery is derived.
    public func currentRegistry() throws -> (registry: Registry, position: UInt64) {
        let reader = try openReader()
        var (registry, position) = try openProjectionForReading()?.loadRegistry() ?? (Registry(), 0)
        if let start = try reader.compactedStart(), position + 1 < start.start {
            (registry, position) = (start.dispatcher.registry, start.start - 1)
        }
        try reader.forEach(from: position + 1, through: nil) { at, record in
            switch record.body {
            case .kv, .deliveryAttempted, .deliveryRedriven, .deliveryCancelled, .deliveryInvoked:
                break  // no registry change
            default:
                do throws(RecordError) {
                    try registry.check(record.body)
                } catch {
                    throw HeraldError.badLogRecord(position: at, reason: error.description)
                }
                _ = registry.apply(record, at: at)
            }
            position = at
            return true
        }
        return (registry, position)
    }

    /// `herald status`: deliveries per status and the next due time as of the log's end (see
    /// ``HeraldCore/RecordSource/summary(store:now:)``). Never writes.
    public func summary(now: Int64) throws -> DeliverySummary {
        try openReader().summary(store: openProjectionForReading(), now: now)
    }

    /// Throws ``HeraldError/unknownID(id:expected:found:)`` when an id of `selection` (app,
    /// trigger, script) was never created as that kind, so a mistyped id is an error rather
    /// than an empty answer. Ids are never reused, so the kind it was created as is the answer:
    /// looked up in the projection's `used_ids` as of its checkpoint, then in the records after
    /// it (all of them without a projection).
    public func requireKnownIDs(of selection: DeliverySelection) throws {
        var wanted: [(id: HeraldID, kind: String)] = []
        for (id, kind) in [(selection.app, "app"), (selection.trigger, "trigger"), (selection.script, "script")] {
            if let id { wanted.append((id, kind)) }
        }
        guard !wanted.isEmpty else { return }
        var found: [String?] = Array(repeating: nil, count: wanted.count)
        var checkpoint: UInt64 = 0
        if let projection = try openProjectionForReading() {
            checkpoint = try projection.checkpointPosition()
            for (index, entry) in wanted.enumerated() { found[index] = try projection.createdKind(of: entry.id) }
        }
        let reader = try openReader()
        if found.contains(where: { $0 == nil }), let start = try reader.compactedStart(), checkpoint + 1 < start.start {
            for (index, entry) in wanted.enumerated() where found[index] == nil {
                found[index] = start.usedIDs.first { $0.id == entry.id }?.kind.wireName
            }
            checkpoint = start.start - 1
        }
        if found.contains(where: { $0 == nil }) {
            try reader.forEach(from: checkpoint + 1, through: nil) { _, record in
                let created: (HeraldID, String)? = switch record.body {
                case .appCreated(let id, _): (id, "app")
                case .adminUserCreated(let id, _): (id, "admin_user")
                case .scriptRegistered(let script): (script.scriptID, "script")
                case .triggerRegistered(let trigger): (trigger.triggerID, "trigger")
                default: nil
                }
                if let (id, kind) = created {
                    for (index, entry) in wanted.enumerated() where entry.id == id { found[index] = kind }
                }
                return found.contains { $0 == nil }
            }
        }
        for (index, entry) in wanted.enumerated() where found[index] != entry.kind {
            throw HeraldError.unknownID(id: entry.id, expected: entry.kind, found: found[index])
        }
    }

    /// The deliveries `selection` picks as of the log's end, in canonical order (see
    /// ``HeraldCore/RecordSource/forEachDelivery(projection:matching:_:)``). Never writes: a
    /// read must not race a running engine's projection.
    public func forEachDelivery(matching selection: DeliverySelection = DeliverySelection(),
                                _ body: (Delivery) throws -> Void) throws {
        let reader = try openReader()
        let projection = try openProjectionForReading()
        try reader.forEachDelivery(projection: projection, matching: selection, body)
    }

    /// The canonical `herald deliveries --format jsonl` line (newline included) of each
    /// delivery `selection` picks as of the log's end: written straight from the projection's
    /// columns when it is caught up (``HeraldStore/Projection/forEachDeliveryLine(matching:_:)``),
    /// else from ``forEachDelivery(matching:_:)``'s deliveries. Never writes.
    public func forEachDeliveryLine(matching selection: DeliverySelection = DeliverySelection(),
                                    _ body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        let reader = try openReader()
        let projection = try openProjectionForReading()
        if let projection, try projection.checkpointPosition() == reader.lastPosition {
            try projection.forEachDeliveryLine(matching: selection, body)
            return
        }
        var line = JSONOutput()
        try reader.forEachDelivery(projection: projection, matching: selection) { delivery in
            line.removeAll()
            CanonicalOutput.append(delivery, to: &line)
            line.newline()
            try line.bytes.withUnsafeBufferPointer { try body($0) }
        }
    }
}
