/// The canonical derived outputs of docs/SEMANTICS.md §3.4–§3.6, byte for byte: regression fixtures and
/// cross-checks compare these.
public enum CanonicalOutput {
    /// One `herald deliveries --format jsonl` line (without the newline).
    public static func append(_ d: Delivery, to out: inout JSONOutput) {
        out.beginObject()
        out.key("source_position"); out.uint(d.id.sourcePosition)
        out.key("trigger_id"); out.id(d.id.triggerID)
        out.key("app_id"); out.id(d.appID)
        out.key("script_id"); out.id(d.scriptID)
        out.key("source_kind"); out.string(d.sourceKind.description)
        out.key("depth"); out.int(d.depth)
        out.key("status"); out.string(d.status.description)
        out.key("attempts"); out.int(d.attempts)
        out.key("due_at")
        if let due = d.dueAt { out.int(due) } else { out.null() }
        out.key("last_error"); out.string(d.lastError)
        out.key("finished_at")
        if let finished = d.finishedAt { out.uint(finished) } else { out.null() }
        out.endObject()
    }

    /// One `herald triggers --format jsonl` line (without the newline): the registration's
    /// fields as they are now (updates applied), then `registered_position`.
    public static func append(_ t: Registry.Trigger, to out: inout JSONOutput) {
        out.beginObject()
        RecordJSONEncoder.appendTriggerFields(t.registration, to: &out)
        out.key("registered_position"); out.uint(t.registeredPosition)
        out.endObject()
    }
}

extension CanonicalOutput {
    /// True when the two deliveries' canonical lines are the same (what `herald deliveries
    /// --format jsonl` prints for each), without building them.
    public static func same(_ a: Delivery, _ b: Delivery) -> Bool {
        a.id == b.id && a.appID == b.appID && a.scriptID == b.scriptID && a.sourceKind == b.sourceKind
            && a.depth == b.depth && a.status == b.status && a.attempts == b.attempts && a.dueAt == b.dueAt
            && a.lastError == b.lastError && a.finishedAt == b.finishedAt
    }
}

/// Every delivery ever created, kept in canonical order with its latest state: what
/// `herald deliveries` prints. (The ``Dispatcher`` itself keeps only pending ones.)
///
/// Deliveries are created in canonical order, so their source positions never decrease: a
/// delivery is found by a binary search of `positions` (8 bytes a delivery, beside the array)
/// and a scan of the few deliveries of its position, instead of a dictionary of every id
/// (hashing and growing it was 40 % of `herald whatif`'s time on a 1M-record log).
public struct DeliveryLedger: Sendable {
    /// All deliveries, in canonical order (creation order is canonical order).
    public private(set) var deliveries: [Delivery] = []
    /// `deliveries[i].id.sourcePosition`, ascending.
    private var positions: [UInt64] = []

    public init() {}

    /// Starts from `deliveries` (in canonical order): a compacted log's retained deliveries.
    ///
    /// - Precondition: `deliveries` is in canonical order (a lookup would miss deliveries otherwise).
    public init(deliveries: [Delivery]) {
        precondition(zip(deliveries, deliveries.dropFirst()).allSatisfy { $0.orderKey < $1.orderKey },
                     "a ledger starts from deliveries in canonical order")
        self.deliveries = deliveries
        positions = deliveries.map(\.id.sourcePosition)
    }

    /// Takes in one record's effects.
    public mutating func absorb(_ effects: [DispatchEffect]) {
        for effect in effects {
            switch effect {
            case .created(let delivery):
                assert(positions.last.map { $0 <= delivery.id.sourcePosition } ?? true, "deliveries are created in canonical order")
                positions.append(delivery.id.sourcePosition)
                deliveries.append(delivery)
            case .attempted(let delivery, _, _, _), .cancelled(let delivery), .redriven(let delivery, _):
                if let at = index(of: delivery) { deliveries[at] = delivery }
            case .deadLetter:
                break
            }
        }
    }

    /// The delivery with this id, if any.
    public func delivery(_ id: DeliveryID) -> Delivery? {
        index(of: id).map { deliveries[$0] }
    }

    /// The first index whose position is not below `position`.
    private func firstIndex(atOrAfter position: UInt64) -> Int {
        var low = 0
        var high = positions.count
        while low < high {
            let middle = low + (high - low) / 2
            if positions[middle] < position { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// By id alone: the deliveries of its position are scanned for its trigger.
    private func index(of id: DeliveryID) -> Int? {
        var at = firstIndex(atOrAfter: id.sourcePosition)
        while at < positions.count && positions[at] == id.sourcePosition {
            if deliveries[at].id.triggerID == id.triggerID { return at }
            at += 1
        }
        return nil
    }

    /// By canonical order key: a binary search all the way (a record that matched many
    /// triggers leaves many deliveries at one position).
    private func index(of delivery: Delivery) -> Int? {
        let key = delivery.orderKey
        var low = firstIndex(atOrAfter: key.0)
        var high = key.0 == .max ? positions.count : firstIndex(atOrAfter: key.0 + 1)
        while low < high {
            let middle = low + (high - low) / 2
            if deliveries[middle].orderKey < key { low = middle + 1 } else { high = middle }
        }
        return low < deliveries.count && deliveries[low].id == delivery.id ? low : nil
    }
}
