public enum AttemptOutcome: UInt8, Sendable, WireNamed {
    case ok = 0
    case error = 1

    public var wireName: String { self == .ok ? "ok" : "error" }
}

/// `delivery.attempted`: the outcome of one script attempt.
public struct DeliveryAttempt: Equatable, Sendable {
    public var sourcePosition: UInt64
    public var triggerID: HeraldID
    /// 1-based; must be the delivery's next attempt.
    public var attempt: Int64
    public var outcome: AttemptOutcome
    /// With `.error`: the message (may be empty). With `.ok`: `nil`.
    public var error: String?
    /// `false` = give up now (ignored with `.ok`).
    public var retryable: Bool
    /// ≥ 0.
    public var durationMs: Int64

    public init(sourcePosition: UInt64, triggerID: HeraldID, attempt: Int64, outcome: AttemptOutcome,
                error: String? = nil, retryable: Bool = true, durationMs: Int64) {
        self.sourcePosition = sourcePosition
        self.triggerID = triggerID
        self.attempt = attempt
        self.outcome = outcome
        self.error = error
        self.retryable = retryable
        self.durationMs = durationMs
    }
}

/// A delivery's identity: `(source_position, trigger_id)`, written `P:TRIGGER_ID`.
public struct DeliveryID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var sourcePosition: UInt64
    public var triggerID: HeraldID

    public init(sourcePosition: UInt64, triggerID: HeraldID) {
        self.sourcePosition = sourcePosition
        self.triggerID = triggerID
    }

    /// Parses `P:TRIGGER_ID`.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, let position = UInt64(parts[0]), let trigger = HeraldID(String(parts[1])) else {
            return nil
        }
        self.init(sourcePosition: position, triggerID: trigger)
    }

    public static func < (lhs: DeliveryID, rhs: DeliveryID) -> Bool {
        (lhs.sourcePosition, lhs.triggerID) < (rhs.sourcePosition, rhs.triggerID)
    }

    public var description: String { "\(sourcePosition):\(triggerID)" }
}
