/// A delivery's whole story: `herald explain P:TRIGGER_ID`. Built by observing a replay.
public struct DeliveryTimeline: Sendable {
    /// One recorded attempt.
    public struct Attempt: Sendable {
        public var position: UInt64
        public var ts: Int64
        public var attempt: DeliveryAttempt
        /// The delay computed after this failed attempt, when another attempt follows.
        public var delayMs: Int64?
        /// When the next attempt is due, when one follows.
        public var nextDueAt: Int64?
        /// The delivery's status after this attempt.
        public var status: DeliveryStatus

        public init(position: UInt64, ts: Int64, attempt: DeliveryAttempt, delayMs: Int64?, nextDueAt: Int64?,
                    status: DeliveryStatus) {
            self.position = position
            self.ts = ts
            self.attempt = attempt
            self.delayMs = delayMs
            self.nextDueAt = nextDueAt
            self.status = status
        }
    }

    public var id: DeliveryID
    /// The record that created the delivery (at `id.sourcePosition`).
    public var sourceRecord: Record?
    /// The trigger and script as they were when the delivery was created.
    public var trigger: Registry.Trigger?
    public var script: Registry.Script?
    /// The principal: the admin user who registered the trigger, as of creation.
    public var principal: Registry.AdminUser?
    /// The delivery as created.
    public var created: Delivery?
    public var attempts: [Attempt] = []
    /// The dead-letter event its death caused.
    public var deadLetter: DeadLetterEvent?
    /// Dead-letter deliveries created by that event.
    public var caused: [Delivery] = []
    /// Where and why it was (last) cancelled.
    public var cancelledAt: (position: UInt64, cause: String)?
    /// Each `delivery.redriven` that brought it back.
    public var redrives: [Redrive] = []
    /// Everything above in log order: the attempts, each death, cancellation and redrive.
    public var events: [Event] = []
    /// The delivery as it is at the end of the replay.
    public var current: Delivery?

    /// An operator's redrive (docs/SEMANTICS.md §8).
    public struct Redrive: Sendable {
        public var position: UInt64
        public var ts: Int64
        public var by: HeraldID
        public var reason: String?
        /// Attempts before it: the retry budget counts from here.
        public var attemptsBefore: Int64

        public init(position: UInt64, ts: Int64, by: HeraldID, reason: String?, attemptsBefore: Int64) {
            self.position = position
            self.ts = ts
            self.by = by
            self.reason = reason
            self.attemptsBefore = attemptsBefore
        }
    }

    /// One step of the timeline.
    public enum Event: Sendable {
        case attempt(Attempt)
        /// It died: the dead-letter event and the dead-letter deliveries it created.
        case dead(DeadLetterEvent, caused: [Delivery])
        case cancelled(position: UInt64, cause: String)
        case redriven(Redrive)
    }

    /// Starts an empty timeline for `id`.
    public init(id: DeliveryID) {
        self.id = id
    }

    /// Takes in one replayed record. `registry` is the registry after the record.
    public mutating func observe(position: UInt64, record: Record, effects: [DispatchEffect], registry: Registry) {
        if position == id.sourcePosition {
            sourceRecord = record.compacted()  // kept in the result: not its whole log block
        }
        for effect in effects {
            switch effect {
            case .created(let d) where d.id == id:
                created = d
                current = d
                trigger = registry.triggers[d.id.triggerID]
                script = registry.scripts[d.scriptID]
                if let principal = trigger?.registeredBy { self.principal = registry.adminUsers[principal] }
            case .attempted(let d, let a, let at, let ts) where d.id == id:
                let retrying = d.status == .pending
                let attempt = Attempt(position: at, ts: ts, attempt: a,
                                      delayMs: retrying ? d.retry.delayMs(afterAttempt: a.attempt - d.budgetBase) : nil,
                                      nextDueAt: retrying ? d.dueAt : nil, status: d.status)
                attempts.append(attempt)
                events.append(.attempt(attempt))
                current = d
            case .cancelled(let d) where d.id == id:
                current = d
                cancelledAt = (position, Explaining.describeCause(record))
                events.append(.cancelled(position: position, cause: Explaining.describeCause(record)))
            case .redriven(let d, _) where d.id == id:
                if case .deliveryRedriven(let action) = record.body {
                    let redrive = Redrive(position: position, ts: record.ts, by: action.by, reason: action.reason,
                                          attemptsBefore: d.budgetBase)
                    redrives.append(redrive)
                    events.append(.redriven(redrive))
                }
                current = d
            case .deadLetter(let e) where e.delivery == id:
                deadLetter = e
                caused = []
                events.append(.dead(e, caused: []))
            case .created(let d) where deadLetter != nil && d.id.sourcePosition == deadLetter?.position:
                caused.append(d)
                if case .dead(let e, var all)? = events.last {
                    all.append(d)
                    events[events.count - 1] = .dead(e, caused: all)
                }
            default:
                break
            }
        }
    }
}

/// Shared phrasing for explanations.
public enum Explaining {
    /// "trigger.deleted of trigger 3f…", "app.deleted of app 9a… (cascade)", …
    public static func describeCause(_ record: Record) -> String {
        switch record.body {
        case .triggerDeleted(let id): "trigger.deleted of trigger \(id)"
        case .scriptDeleted(let id): "script.deleted of script \(id) (cascade to its triggers)"
        case .appDeleted(let id): "app.deleted of app \(id) (cascade to its scripts and triggers)"
        case .adminUserDeleted(let id): "admin_user.deleted of admin user \(id) (cascade to the triggers it registered)"
        case .deliveryCancelled(let action):
            "delivery.cancelled by admin user \(action.by)" + (action.reason.map { " (reason \"\($0)\")" } ?? "")
        default: record.body.type.name
        }
    }
}
