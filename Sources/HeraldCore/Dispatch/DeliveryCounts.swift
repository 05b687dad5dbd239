/// Deliveries per status, moved by each record's effects: what `herald status` counts. The
/// projection keeps one (the `delivery_counts` table) so a read need not count its rows.
public struct DeliveryCounts: Sendable, Equatable {
    public var pending: Int64
    public var succeeded: Int64
    public var dead: Int64
    public var cancelled: Int64

    public init(pending: Int64 = 0, succeeded: Int64 = 0, dead: Int64 = 0, cancelled: Int64 = 0) {
        self.pending = pending
        self.succeeded = succeeded
        self.dead = dead
        self.cancelled = cancelled
    }

    public subscript(status: DeliveryStatus) -> Int64 {
        get {
            switch status {
            case .pending: pending
            case .succeeded: succeeded
            case .dead: dead
            case .cancelled: cancelled
            }
        }
        set {
            switch status {
            case .pending: pending = newValue
            case .succeeded: succeeded = newValue
            case .dead: dead = newValue
            case .cancelled: cancelled = newValue
            }
        }
    }

    /// Every delivery ever created (each has exactly one status).
    public var created: Int64 { pending &+ succeeded &+ dead &+ cancelled }

    /// Takes in one record's effects: a creation adds a pending delivery, a finishing attempt
    /// or a cancellation moves one out of pending, a redrive moves one back.
    public mutating func absorb(_ effects: [DispatchEffect]) {
        for effect in effects {
            switch effect {
            case .created:
                pending &+= 1
            case .attempted(let delivery, _, _, _):
                if delivery.status != .pending {
                    pending &-= 1
                    self[delivery.status] &+= 1
                }
            case .cancelled:
                pending &-= 1
                cancelled &+= 1
            case .redriven(_, let from):
                self[from] &-= 1
                pending &+= 1
            case .deadLetter:
                break
            }
        }
    }

    /// The difference `self - other`, status by status.
    public func subtracting(_ other: DeliveryCounts) -> DeliveryCounts {
        DeliveryCounts(pending: pending &- other.pending, succeeded: succeeded &- other.succeeded,
                       dead: dead &- other.dead, cancelled: cancelled &- other.cancelled)
    }
}

/// `herald status`: deliveries per status and when the pending ones are due, as of `position`.
public struct DeliverySummary: Sendable, Equatable {
    public var position: UInt64
    public var counts: DeliveryCounts
    /// Pending deliveries due at or before the `now` the summary was asked for.
    public var dueNow: Int64
    /// The earliest due time of a pending delivery (`nil`: none is pending).
    public var nextDueAt: Int64?

    public init(position: UInt64, counts: DeliveryCounts, dueNow: Int64, nextDueAt: Int64?) {
        self.position = position
        self.counts = counts
        self.dueNow = dueNow
        self.nextDueAt = nextDueAt
    }
}
