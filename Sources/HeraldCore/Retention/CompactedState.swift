/// What a compacted log starts from (docs/SEMANTICS.md, "Retention"): the derived state
/// through the position before the log's first one, standing in for the records it replaces.
///
/// - the dispatcher's whole state (registry, pending and redrivable deliveries);
/// - the counts of every delivery ever created, per status;
/// - every id ever used, with its kind and creation position (ids are never reused);
/// - the story of every delivery that is retained — pending, dead, or cancelled and still
///   redrivable — as ``DeliveryTimeline``s: how it was created and by which record, its
///   attempts with their errors, its death and the dead-letter deliveries that caused,
///   cancellations and redrives. Deliveries that succeeded (or were cancelled for good) are
///   only counted.
public struct CompactedState: Sendable {
    /// The state through `start - 1`.
    public var dispatcher: Dispatcher
    /// Deliveries per status through `start - 1`.
    public var counts: DeliveryCounts
    /// Every id ever used, in creation order.
    public var usedIDs: [UsedID]
    /// The retained deliveries' stories, in canonical order (source position, trigger rank).
    public var timelines: [DeliveryTimeline]

    /// The log's first position: the first record after this state.
    public var start: UInt64 { dispatcher.position + 1 }

    /// The retained deliveries as they are at `start - 1`, in canonical order.
    public var deliveries: [Delivery] { timelines.compactMap(\.current) }

    public init(dispatcher: Dispatcher, counts: DeliveryCounts, usedIDs: [UsedID], timelines: [DeliveryTimeline]) {
        self.dispatcher = dispatcher
        self.counts = counts
        self.usedIDs = usedIDs
        self.timelines = timelines
    }

    /// The record at `position` (before ``start``) that created a retained delivery, if any:
    /// what the engine invokes a pending delivery with once its record left the log.
    public func sourceRecord(at position: UInt64) -> Record? {
        var at = firstTimeline(atOrAfter: position)
        while at < timelines.count && timelines[at].id.sourcePosition == position {
            if let record = timelines[at].sourceRecord { return record }
            at += 1
        }
        return nil
    }

    private func firstTimeline(atOrAfter position: UInt64) -> Int {
        var low = 0
        var high = timelines.count
        while low < high {
            let mid = (low + high) / 2
            if timelines[mid].id.sourcePosition < position { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// The story of retained delivery `id`, if it is one.
    public func timeline(of id: DeliveryID) -> DeliveryTimeline? {
        // Within a position the order is by trigger rank, not by id.
        var at = firstTimeline(atOrAfter: id.sourcePosition)
        while at < timelines.count && timelines[at].id.sourcePosition == id.sourcePosition {
            if timelines[at].id == id { return timelines[at] }
            at += 1
        }
        return nil
    }
}

/// An id and what it named when it was created.
public struct UsedID: Equatable, Sendable {
    public enum Kind: UInt8, Sendable, CaseIterable {
        case adminUser = 0, app = 1, script = 2, trigger = 3

        /// The `used_ids.kind` value of the projection.
        public var wireName: String {
            switch self {
            case .adminUser: "admin_user"
            case .app: "app"
            case .script: "script"
            case .trigger: "trigger"
            }
        }
    }

    public var id: HeraldID
    public var kind: Kind
    public var createdPosition: UInt64

    public init(id: HeraldID, kind: Kind, createdPosition: UInt64) {
        self.id = id
        self.kind = kind
        self.createdPosition = createdPosition
    }

    /// The id a record creates, if it creates one.
    public static func created(by record: Record, at position: UInt64) -> UsedID? {
        switch record.body {
        case .adminUserCreated(let id, _): UsedID(id: id, kind: .adminUser, createdPosition: position)
        case .appCreated(let id, _): UsedID(id: id, kind: .app, createdPosition: position)
        case .scriptRegistered(let s): UsedID(id: s.scriptID, kind: .script, createdPosition: position)
        case .triggerRegistered(let r): UsedID(id: r.triggerID, kind: .trigger, createdPosition: position)
        default: nil
        }
    }
}

/// Builds a ``CompactedState`` while a replay runs: observe every record from the log's first
/// position through the compaction point, then ``finish(with:)`` with the replay's state.
///
/// Keeps the story of every delivery that has not succeeded, and forgets a delivery once it
/// succeeds, so what it holds stays about the size of the pending and dead deliveries.
public struct CompactionCollector: Sendable {
    private var counts: DeliveryCounts
    private var usedIDs: [UsedID]
    private var timelines = Stories()

    /// The stories, in slots reused as deliveries finish (a dictionary of such large values
    /// would hold about twice their size in empty buckets); the index is looked up only.
    private struct Stories: Sendable {
        var slots: [DeliveryTimeline?] = []
        var free: [Int32] = []
        var index: [DeliveryID: Int32] = [:]

        mutating func insert(_ timeline: DeliveryTimeline) {
            if let at = index[timeline.id] {
                slots[Int(at)] = timeline
            } else if let at = free.popLast() {
                slots[Int(at)] = timeline
                index[timeline.id] = at
            } else {
                index[timeline.id] = Int32(slots.count)
                slots.append(timeline)
            }
        }

        /// Runs `body` on the story of `id` in place, if there is one.
        mutating func update(_ id: DeliveryID, _ body: (inout DeliveryTimeline) -> Void) {
            guard let at = index[id], slots[Int(at)] != nil else { return }
            body(&slots[Int(at)]!)
        }

        func contains(_ id: DeliveryID, where predicate: (DeliveryTimeline) -> Bool) -> Bool {
            guard let at = index[id], let timeline = slots[Int(at)] else { return false }
            return predicate(timeline)
        }

        @discardableResult
        mutating func remove(_ id: DeliveryID) -> DeliveryTimeline? {
            guard let at = index.removeValue(forKey: id) else { return nil }
            let timeline = slots[Int(at)]
            slots[Int(at)] = nil
            free.append(at)
            return timeline
        }
    }

    /// Starts from the state a compacted log starts from (nil: a log starting at position 1).
    public init(from start: CompactedState?) {
        counts = start?.counts ?? DeliveryCounts()
        usedIDs = start?.usedIDs ?? []
        for timeline in start?.timelines ?? [] { timelines.insert(timeline) }
    }

    /// Takes in one replayed record with its effects; `registry` is the registry after it.
    public mutating func observe(position: UInt64, record: Record, effects: [DispatchEffect], registry: Registry) {
        if let used = UsedID.created(by: record, at: position) { usedIDs.append(used) }
        // One copy of a record that creates deliveries, shared by their stories (not one each,
        // nor the whole log block it was read from).
        let record = effects.contains(where: { if case .created = $0 { true } else { false } }) ? record.compacted() : record
        counts.absorb(effects)
        var dying: DeliveryID?
        for effect in effects {
            let id: DeliveryID
            switch effect {
            case .created(let d):
                if let dying, d.id.sourcePosition == position {
                    timelines.update(dying) { $0.observe(position: position, record: record, effects: [effect], registry: registry) }
                }
                timelines.insert(DeliveryTimeline(id: d.id))
                id = d.id
            case .attempted(let d, _, _, _), .cancelled(let d), .redriven(let d, _):
                id = d.id
            case .deadLetter(let e):
                dying = e.delivery
                id = e.delivery
            }
            timelines.update(id) { $0.observe(position: position, record: record, effects: [effect], registry: registry) }
            // Forgotten once it succeeds, unless it died before: a dead-letter delivery its
            // death caused may be kept, and links to it.
            if case .attempted(let d, _, _, _) = effect, d.status == .succeeded, timelines.contains(id, where: { $0.deadLetter == nil }) {
                timelines.remove(id)
            }
        }
    }

    /// The state through `dispatcher.position`: the deliveries kept are those pending, dead,
    /// or cancelled and still redrivable then, and the deliveries whose deaths caused a
    /// dead-letter delivery kept (its source: the dead-letter event, and the link back).
    public consuming func finish(with dispatcher: Dispatcher) -> CompactedState {
        var keep = Set<DeliveryID>()
        var diedAt: [UInt64: DeliveryID] = [:]
        for case let timeline? in timelines.slots {
            for case .dead(let event, _) in timeline.events { diedAt[event.position] = timeline.id }
            guard let d = timeline.current else { continue }
            switch d.status {
            case .pending, .dead: keep.insert(d.id)
            case .cancelled: if dispatcher.redrivable[d.id] != nil { keep.insert(d.id) }
            case .succeeded: break
            }
        }
        for id in keep where id.sourcePosition > 0 {
            if timelines.contains(id, where: { $0.current?.sourceKind == .deadLetter }), let source = diedAt[id.sourcePosition] { keep.insert(source) }
        }
        // The kept ids in canonical order (never equal: one delivery per source position and
        // trigger, one rank per trigger), then each story moved out of the table once: no
        // copy of the stories to sort them.
        var order: [(DeliveryID, (UInt64, UInt64))] = []
        for case let timeline? in timelines.slots where keep.contains(timeline.id) {
            if let current = timeline.current { order.append((timeline.id, current.orderKey)) }
        }
        order.sort { $0.1 < $1.1 }
        var kept: [DeliveryTimeline] = []
        kept.reserveCapacity(order.count)
        for (id, _) in order {
            if let timeline = timelines.remove(id) { kept.append(timeline) }
        }
        timelines = Stories()
        return CompactedState(dispatcher: dispatcher, counts: counts, usedIDs: usedIDs, timelines: kept)
    }
}
