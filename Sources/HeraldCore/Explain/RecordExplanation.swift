/// Why each trigger did or did not fire for one record: `herald explain P`.
public struct RecordExplanation: Sendable {
    /// One trigger that was considered, and the verdict.
    public struct Consideration: Sendable {
        public var triggerID: HeraldID
        public var kind: TriggerKind
        /// Registration position, when the trigger was ever registered before the end of the log.
        public var registeredPosition: UInt64?
        public var matched: Bool
        /// In words: "matched", "disabled", "collection 'x' does not match glob 'y'", …
        public var reason: String
    }

    public var position: UInt64
    public var record: Record
    /// What the record did, in one sentence.
    public var summary: String
    public var considered: [Consideration]
    /// Deliveries the record created, in canonical order.
    public var created: [Delivery]
    /// Deliveries the record finished or cancelled.
    public var finished: [Delivery]
    /// Deliveries the record (a `delivery.redriven`) made pending again.
    public var redriven: [Delivery] = []
}

/// Builds ``RecordExplanation``s (pure: the shell replays the log and hands over the state).
public enum Explainer {
    /// Explains record `position`.
    /// - Parameters:
    ///   - before: the dispatcher as of `position − 1`.
    ///   - effects: what applying the record produced.
    ///   - laterRegistrations: triggers registered after `position` (to say "not yet registered").
    public static func explain(record: Record, at position: UInt64, before: Dispatcher, effects: [DispatchEffect],
                               laterRegistrations: [(position: UInt64, registration: TriggerRegistration)]) -> RecordExplanation {
        var considered: [RecordExplanation.Consideration] = []
        let created: [Delivery] = effects.compactMap { if case .created(let d) = $0 { d } else { nil } }
        let finished: [Delivery] = effects.compactMap {
            switch $0 {
            case .attempted(let d, _, _, _) where d.status != .pending: d
            case .cancelled(let d): d
            default: nil
            }
        }
        let createdTriggers = Set(created.map(\.id.triggerID))
        let registry = before.registry
        var summary: String

        func gather(app: HeraldID, kind: TriggerKind,
                    verdict: (Registry.Trigger) -> (Bool, String)) {
            var rows: [(UInt64, RecordExplanation.Consideration)] = []
            for removed in registry.removedTriggers
            where removed.trigger.appID == app && removed.trigger.kind == kind {
                let t = removed.trigger
                rows.append((t.registeredPosition, .init(
                    triggerID: t.id, kind: kind, registeredPosition: t.registeredPosition, matched: false,
                    reason: "deleted at position \(removed.deletedPosition) by \(removed.cause)")))
            }
            for t in registry.liveTriggers(app: app, kind: kind) {
                let (matched, reason) = verdict(t)
                let confirmed = matched && createdTriggers.contains(t.id)
                rows.append((t.registeredPosition, .init(triggerID: t.id, kind: kind, registeredPosition: t.registeredPosition,
                                                         matched: confirmed, reason: reason)))
            }
            for later in laterRegistrations
            where later.registration.appID == app && later.registration.kind == kind {
                rows.append((later.position, .init(
                    triggerID: later.registration.triggerID, kind: kind, registeredPosition: later.position,
                    matched: false, reason: "not yet registered (registered later, at position \(later.position))")))
            }
            considered = rows.sorted { $0.0 < $1.0 }.map(\.1)
        }

        switch record.body {
        case .kv(let m):
            summary = "kv.\(m.op) of key '\(m.key)' in collection '\(m.collection)' of app \(m.appID)"
            gather(app: m.appID, kind: .kv) { t in
                if !t.enabled { return (false, "disabled") }
                guard let kv = t.kv else { return (false, "has no kv details") }
                if !CollectionGlob.matches(kv.collectionGlob, m.collection) {
                    return (false, "collection '\(m.collection)' does not match glob '\(kv.collectionGlob)'")
                }
                if !kv.ops.admits(m.op) {
                    return (false, "op \(m.op) is not in ops \(kv.ops)")
                }
                return (true, "matched: glob '\(kv.collectionGlob)' and ops \(kv.ops.isEmpty ? "[] (any op)" : kv.ops.description)")
            }
        case .deliveryAttempted(let a):
            let id = DeliveryID(sourcePosition: a.sourcePosition, triggerID: a.triggerID)
            let delivery = before.pending[id]
            let budgetBase = delivery?.budgetBase ?? 0
            let dead = effects.compactMap { if case .deadLetter(let e) = $0 { e } else { nil } }.first
            switch (a.outcome, dead) {
            case (.ok, _):
                summary = "attempt \(a.attempt) of delivery \(id) succeeded in \(a.durationMs) ms"
            case (.error, nil):
                let next = effects.compactMap { if case .attempted(let d, _, _, _) = $0 { d.dueAt } else { nil } }.first
                let delay = delivery.map { $0.retry.delayMs(afterAttempt: a.attempt - budgetBase) }
                summary = "attempt \(a.attempt) of delivery \(id) failed (\(a.error ?? "")); retry in \(delay.map(String.init) ?? "?") ms, due at \(next.map(String.init) ?? "?")"
            case (.error, let event?):
                let why = !a.retryable ? "the error was marked not retryable"
                    : budgetBase == 0 ? "it was attempt \(a.attempt) of \(delivery?.retry.maxAttempts ?? a.attempt)"
                    : "it was attempt \(a.attempt - budgetBase) of \(delivery?.retry.maxAttempts ?? a.attempt) since its redrive after attempt \(budgetBase)"
                summary = "attempt \(a.attempt) of delivery \(id) failed (\(a.error ?? "")) and the delivery is dead: \(why); dead-letter event of depth \(event.depth)"
                gather(app: event.appID, kind: .deadLetter) { t in
                    if !t.enabled { return (false, "disabled") }
                    if event.depth > DeadLetterEvent.maxDepth {
                        return (false, "depth \(event.depth) exceeds the limit \(DeadLetterEvent.maxDepth) (stops dead-letter loops)")
                    }
                    let f = t.deadLetter ?? DeadLetterDetails()
                    if let s = f.sourceFilter, s != event.sourceKind {
                        return (false, "source_filter \(s) ≠ source kind \(event.sourceKind)")
                    }
                    if let tf = f.triggerIDFilter, tf != event.triggerID {
                        return (false, "trigger_id_filter \(tf) ≠ trigger \(event.triggerID)")
                    }
                    if let sf = f.scriptIDFilter, sf != event.scriptID {
                        return (false, "script_id_filter \(sf) ≠ script \(event.scriptID)")
                    }
                    return (true, "matched: every non-null filter equals the dead letter's (source_kind, trigger_id, script_id)")
                }
            }
        case .deliveryRedriven(let action):
            let reason = action.reason.map { " (reason \"\($0)\")" } ?? ""
            summary = "delivery.redriven by admin user \(action.by)\(reason): \(action.deliveries.count) dead or cancelled deliveries pending again, due at \(record.ts), each with a fresh retry budget"
        case .deliveryCancelled(let action):
            let reason = action.reason.map { " (reason \"\($0)\")" } ?? ""
            summary = "delivery.cancelled by admin user \(action.by)\(reason): \(finished.count) pending deliveries cancelled"
        case .deliveryInvoked(let invocation):
            summary = "delivery.invoked of trigger \(invocation.triggerID) by admin user \(invocation.by): one delivery of source kind manual, due at \(record.ts)"
        case .triggerDeleted, .scriptDeleted, .appDeleted, .adminUserDeleted:
            summary = "\(record.body.type.name): registry change; \(finished.count) pending deliveries cancelled"
        default:
            summary = "\(record.body.type.name): registry change; no trigger is considered for this record"
        }
        let redriven: [Delivery] = effects.compactMap { if case .redriven(let d, _) = $0 { d } else { nil } }
        return RecordExplanation(position: position, record: record, summary: summary, considered: considered,
                                 created: created, finished: finished, redriven: redriven)
    }
}
