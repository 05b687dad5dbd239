/// Which deliveries an operator acts on (`herald redrive`, `herald cancel`, and the library's
/// `Herald.redrive` / `Herald.cancel`): every filter that is set must hold.
public struct DeliverySelection: Sendable, Equatable {
    public var app: HeraldID?
    public var trigger: HeraldID?
    public var script: HeraldID?
    public var status: DeliveryStatus?
    /// Only deliveries whose last error contains this text.
    public var errorContains: String?
    /// Source positions from … through (inclusive).
    public var from: UInt64?
    public var to: UInt64?
    /// At most this many, the first in canonical order.
    public var limit: Int?

    public init(app: HeraldID? = nil, trigger: HeraldID? = nil, script: HeraldID? = nil, status: DeliveryStatus? = nil,
                errorContains: String? = nil, from: UInt64? = nil, to: UInt64? = nil, limit: Int? = nil) {
        self.app = app
        self.trigger = trigger
        self.script = script
        self.status = status
        self.errorContains = errorContains
        self.from = from
        self.to = to
        self.limit = limit
    }

    /// True when `delivery` passes every filter set (``limit`` aside).
    public func matches(_ delivery: Delivery) -> Bool {
        if let app, delivery.appID != app { return false }
        if let trigger, delivery.id.triggerID != trigger { return false }
        if let script, delivery.scriptID != script { return false }
        if let status, delivery.status != status { return false }
        if let from, delivery.id.sourcePosition < from { return false }
        if let to, delivery.id.sourcePosition > to { return false }
        if let errorContains, !(delivery.lastError ?? "").contains(errorContains) { return false }
        return true
    }

    /// The deliveries of `deliveries` (in their order) that pass every filter, at most
    /// ``limit`` of them.
    public func picked(from deliveries: some Sequence<Delivery>) -> [Delivery] {
        var picked: [Delivery] = []
        for delivery in deliveries where matches(delivery) {
            if picked.count >= (limit ?? .max) { break }
            picked.append(delivery)
        }
        return picked
    }
}

/// The records of operator actions, built from a dispatcher's state (pure: the CLI, the
/// library and a server share it). docs/SEMANTICS.md §8.
public enum OperatorActions {
    /// What a redrive may take: dead or cancelled deliveries whose trigger still exists.
    public static func redrivable(in state: Dispatcher, _ selection: DeliverySelection) throws(OperatorActionError) -> [Delivery] {
        if let status = selection.status, status != .dead && status != .cancelled {
            throw .statusNotAllowed(action: "redrive", status: status, allowed: "dead or cancelled")
        }
        // Filtered before sorting: a selection usually takes few of the redrivable deliveries.
        return selection.picked(from: state.redrivable.values.filter(selection.matches).sorted { $0.orderKey < $1.orderKey })
    }

    /// What a cancel may take: pending deliveries.
    public static func cancellable(in state: Dispatcher, _ selection: DeliverySelection) throws(OperatorActionError) -> [Delivery] {
        if let status = selection.status, status != .pending {
            throw .statusNotAllowed(action: "cancel", status: status, allowed: "pending")
        }
        var selected: [Delivery] = []
        state.pending.forEach { delivery in
            if selection.matches(delivery), selected.count < (selection.limit ?? .max) { selected.append(delivery) }
        }
        return selected
    }

    /// `delivery.redriven` records for `ids`, at most ``OperatorAction/deliveriesMax`` each, in order.
    public static func redriveRecords(_ ids: [DeliveryID], by: HeraldID, reason: String?) -> [RecordBody] {
        chunks(ids).map { .deliveryRedriven(OperatorAction(deliveries: $0, by: by, reason: reason)) }
    }

    /// `delivery.cancelled` records for `ids`, at most ``OperatorAction/deliveriesMax`` each, in order.
    public static func cancelRecords(_ ids: [DeliveryID], by: HeraldID, reason: String?) -> [RecordBody] {
        chunks(ids).map { .deliveryCancelled(OperatorAction(deliveries: $0, by: by, reason: reason)) }
    }

    private static func chunks(_ ids: [DeliveryID]) -> [[DeliveryID]] {
        stride(from: 0, to: ids.count, by: OperatorAction.deliveriesMax).map {
            Array(ids[$0..<min($0 + OperatorAction.deliveriesMax, ids.count)])
        }
    }
}

/// An operator action that cannot be built.
public enum OperatorActionError: Error, Sendable, Equatable, CustomStringConvertible {
    case statusNotAllowed(action: String, status: DeliveryStatus, allowed: String)

    public var description: String {
        switch self {
        case .statusNotAllowed(let action, let status, let allowed):
            "--status \(status): \(action) takes \(allowed) deliveries"
        }
    }
}
