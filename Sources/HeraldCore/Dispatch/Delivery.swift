/// Where a delivery stands.
public enum DeliveryStatus: UInt8, Sendable, CaseIterable, WireNamed {
    case pending = 0
    case succeeded = 1
    case dead = 2
    case cancelled = 3

    public var wireName: String {
        switch self {
        case .pending: "pending"
        case .succeeded: "succeeded"
        case .dead: "dead"
        case .cancelled: "cancelled"
        }
    }

    public init?(name: String) {
        guard let found = DeliveryStatus.allCases.first(where: { $0.description.utf8.elementsEqual(name.utf8) }) else {
            return nil
        }
        self = found
    }
}

/// One delivery: a trigger's script to run for one event (docs/SEMANTICS.md §3.2).
public struct Delivery: Equatable, Sendable {
    public var id: DeliveryID
    public var appID: HeraldID
    public var scriptID: HeraldID
    public var sourceKind: SourceKind
    public var depth: Int64
    /// The retry policy copied from the trigger when the delivery was created.
    public var retry: RetryConfig
    /// The trigger's registration position: orders deliveries created at one position.
    public var triggerRank: UInt64
    public var status: DeliveryStatus
    public var attempts: Int64
    /// When the next attempt is due; `nil` unless pending.
    public var dueAt: Int64?
    /// The error of the most recent failed attempt (kept after a later success).
    public var lastError: String?
    /// Position where it succeeded, died or was cancelled; `nil` while pending.
    public var finishedAt: UInt64?
    /// Attempts it had when it was last redriven (0: never): its retry budget counts from
    /// there (docs/SEMANTICS.md §8.2). Not part of the canonical output.
    public var budgetBase: Int64 = 0

    /// The canonical order: (source_position, trigger registration position).
    public var orderKey: (UInt64, UInt64) { (id.sourcePosition, triggerRank) }

    public init(id: DeliveryID, appID: HeraldID, scriptID: HeraldID, sourceKind: SourceKind, depth: Int64,
                retry: RetryConfig, triggerRank: UInt64, status: DeliveryStatus = .pending, attempts: Int64 = 0,
                dueAt: Int64?, lastError: String? = nil, finishedAt: UInt64? = nil, budgetBase: Int64 = 0) {
        self.id = id
        self.appID = appID
        self.scriptID = scriptID
        self.sourceKind = sourceKind
        self.depth = depth
        self.retry = retry
        self.triggerRank = triggerRank
        self.status = status
        self.attempts = attempts
        self.dueAt = dueAt
        self.lastError = lastError
        self.finishedAt = finishedAt
        self.budgetBase = budgetBase
    }
}

/// A delivery that ran out of attempts (or gave up), at the position of its last attempt.
public struct DeadLetterEvent: Equatable, Sendable {
    /// Position of the `delivery.attempted` that killed the delivery.
    public var position: UInt64
    public var ts: Int64
    /// The dead delivery.
    public var delivery: DeliveryID
    public var appID: HeraldID
    public var sourceKind: SourceKind
    public var triggerID: HeraldID
    public var scriptID: HeraldID
    /// The dead delivery's depth + 1. Dead-letter deliveries are created only while ≤ ``maxDepth``.
    public var depth: Int64
    public var lastError: String?

    /// Deepest dead-letter delivery created: stops a failing handler from looping on its own dead letters.
    public static let maxDepth: Int64 = 3

    public init(position: UInt64, ts: Int64, delivery: DeliveryID, appID: HeraldID, sourceKind: SourceKind,
                triggerID: HeraldID, scriptID: HeraldID, depth: Int64, lastError: String?) {
        self.position = position
        self.ts = ts
        self.delivery = delivery
        self.appID = appID
        self.sourceKind = sourceKind
        self.triggerID = triggerID
        self.scriptID = scriptID
        self.depth = depth
        self.lastError = lastError
    }
}

/// What applying one record changed in the derived state, in a deterministic order.
public enum DispatchEffect: Equatable, Sendable {
    /// A new pending delivery.
    case created(Delivery)
    /// An attempt was recorded; the delivery as it is after it (maybe finished).
    case attempted(Delivery, DeliveryAttempt, position: UInt64, ts: Int64)
    /// A pending delivery was cancelled: its trigger was deleted, or an operator cancelled it
    /// (`delivery.cancelled`).
    case cancelled(Delivery)
    /// A delivery died; dead-letter deliveries it caused follow as `.created`.
    case deadLetter(DeadLetterEvent)
    /// A dead or cancelled delivery was redriven (`delivery.redriven`): the delivery, pending
    /// again, and the status it had before.
    case redriven(Delivery, from: DeliveryStatus)
}
