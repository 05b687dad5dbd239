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
        var dispatcher = Dispatcher()
        try replay(into: &dispatcher, through: through, observe: observe)
        return dispatcher
    }

    /// Continues `dispatcher` from its position through `through`.
    public func replay(into dispatcher: inout Dispatcher, through: UInt64? = nil,
                       observe: ((UInt64, Record, [DispatchEffect], Dispatcher) throws -> Void)? = nil) throws {
        // One snapshot of the log's end: records appended meanwhile are not part of this replay.
        let last = try lastPosition
        if let through, through > last {
            throw HeraldError.positionOutOfRange(position: through, lastPosition: last)
        }
        let through = through ?? last
        guard dispatcher.position < through else { return }
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
            try observe?(position, record, effects, dispatcher)
            return true
        }
    }

    /// Every delivery as of `position` (`nil` = the end), in canonical order.
    public func deliveries(at position: UInt64? = nil) throws -> [Delivery] {
        var ledger = DeliveryLedger()
        _ = try replay(through: position) { _, _, effects, _ in ledger.absorb(effects) }
        return ledger.deliveries
    }

    /// `herald explain P`.
    public func explain(position: UInt64) throws -> RecordExplanation {
        let last = try lastPosition
        guard position >= 1, position <= last else {
            throw HeraldError.positionOutOfRange(position: position, lastPosition: last)
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
        var timeline = DeliveryTimeline(id: id)
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
            let lastPosition = try openReader().lastPosition
            let loaded = try projection.loadDispatcher()
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
    public func timeline(of id: DeliveryID, through: UInt64? = nil) throws -> DeliveryTimeline {
        try openReader().timeline(of: id, through: through)
    }
}

extension RecordSource {
    /// The deliveries `selection` picks as of the log's end, in canonical order: streamed from
    /// `projection` when it is caught up (filtered and limited by the store; memory stays flat
    /// however many deliveries there are), otherwise derived by replay and filtered here.
    public func forEachDelivery(projection: (any ProjectionStore)?, matching selection: DeliverySelection = DeliverySelection(),
                                _ body: (Delivery) throws -> Void) throws {
        let last = try lastPosition
        if let projection, try projection.checkpointPosition() == last {
            try projection.forEachDelivery(matching: selection, body)
            return
        }
        try selection.picked(from: deliveries()).forEach(body)
    }
}

extension DataDirectory {
    /// Throws ``HeraldError/unknownID(id:expected:found:)`` when an id of `selection` (app,
    /// trigger, script) was never created as that kind, so a mistyped id is an error rather
    /// than an empty answer. Checked against the projection when it is caught up with the log
    /// (an id created after its checkpoint would look unknown otherwise); not checked without one.
    public func requireKnownIDs(of selection: DeliverySelection) throws {
        guard let projection = try openProjectionForReading(),
              try projection.checkpointPosition() == (try openReader().lastPosition) else { return }
        for (id, kind) in [(selection.app, "app"), (selection.trigger, "trigger"), (selection.script, "script")] {
            guard let id else { continue }
            let found = try projection.createdKind(of: id)
            if found != kind { throw HeraldError.unknownID(id: id, expected: kind, found: found) }
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
}
