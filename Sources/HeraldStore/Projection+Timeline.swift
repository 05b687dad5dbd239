import HeraldCore

extension Projection {
    /// `herald explain P:TRIGGER_ID` from the projection's rows, as of the checkpoint: the
    /// delivery's row, its attempts, dead-letter events, the operator actions that listed it, its
    /// trigger, script and principal. What only the log holds comes from `record(at:)` (the
    /// source record). The result is the timeline a replay to the checkpoint builds.
    ///
    /// Returns `nil` when the rows cannot tell the story exactly, and the caller replays: the
    /// trigger is gone (deleted, or cascaded: its row no longer says what it was) or was updated
    /// after the delivery was created (the row holds the trigger as it is now).
    public func timeline(of id: DeliveryID, record: (UInt64) throws -> Record?) throws -> DeliveryTimeline? {
        try withReadSnapshot {
            var timeline = DeliveryTimeline(id: id)
            let checkpoint = try checkpointPosition()
            if id.sourcePosition >= 1, id.sourcePosition <= checkpoint {
                timeline.sourceRecord = try record(id.sourcePosition)?.compacted()
            }
            var current: Delivery?
            try forEachDelivery(matching: DeliverySelection(trigger: id.triggerID, from: id.sourcePosition,
                                                            to: id.sourcePosition)) { current = $0 }
            guard let current else { return timeline }  // no such delivery
            guard let trigger = try triggers(id: id.triggerID).first, trigger.updatedPosition <= id.sourcePosition,
                  let script = try scripts(id: current.scriptID).first,
                  let principal = try adminUsers(id: trigger.registeredBy).first else { return nil }
            guard let source = timeline.sourceRecord else {
                throw StoreError.damaged(path: database.path, reason: "delivery \(id) has no source record in the log")
            }
            timeline.trigger = trigger
            timeline.script = script
            timeline.principal = principal
            let created = Delivery(id: id, appID: current.appID, scriptID: current.scriptID, sourceKind: current.sourceKind,
                                   depth: current.depth, retry: current.retry, triggerRank: current.triggerRank,
                                   dueAt: source.ts)
            timeline.created = created
            timeline.current = current

            // Everything that happened to it, in log order: attempts, deaths (at their attempt,
            // after it), operator cancellations and redrives.
            enum Step { case attempt(DeliveryTimeline.Attempt), dead(DeadLetterEvent), action(position: UInt64, ts: Int64, cancel: Bool, by: HeraldID, reason: String?) }
            var steps: [(position: UInt64, order: Int, step: Step)] = []
            for attempt in try attemptRows(of: id) { steps.append((attempt.position, 0, .attempt(attempt))) }
            for event in try deadLetters(of: id) { steps.append((event.position, 1, .dead(event))) }
            for action in try operatorActionRows(listing: id) {
                steps.append((action.position, 0, .action(position: action.position, ts: action.ts, cancel: action.cancel,
                                                           by: action.by, reason: action.reason)))
            }
            steps.sort { ($0.position, $0.order) < ($1.position, $1.order) }

            var budgetBase: Int64 = 0
            var attempts: Int64 = 0
            for (_, _, step) in steps {
                switch step {
                case .attempt(var attempt):
                    attempts = attempt.attempt.attempt
                    if attempt.status == .pending {
                        attempt.delayMs = created.retry.delayMs(afterAttempt: attempt.attempt.attempt - budgetBase)
                    }
                    timeline.attempts.append(attempt)
                    timeline.events.append(.attempt(attempt))
                case .dead(let event):
                    let caused = try deliveriesCreated(byDeadLetterAt: event)
                    timeline.deadLetter = event
                    timeline.caused = caused
                    timeline.events.append(.dead(event, caused: caused))
                case .action(let position, let ts, let cancel, let by, let reason):
                    if cancel {
                        let cause = Explaining.describeCause(Record(ts: ts, body: .deliveryCancelled(
                            OperatorAction(deliveries: [id], by: by, reason: reason))))
                        timeline.cancelledAt = (position, cause)
                        timeline.events.append(.cancelled(position: position, cause: cause))
                    } else {
                        budgetBase = attempts
                        let redrive = DeliveryTimeline.Redrive(position: position, ts: ts, by: by, reason: reason,
                                                               attemptsBefore: attempts)
                        timeline.redrives.append(redrive)
                        timeline.events.append(.redriven(redrive))
                    }
                }
            }
            return timeline
        }
    }

    /// The `delivery_attempts` rows of `id`, in attempt order, with the status each left it in
    /// (its `delayMs` is the caller's: it depends on redrives).
    private func attemptRows(of id: DeliveryID) throws -> [DeliveryTimeline.Attempt] {
        let rows = try database.prepare("""
            SELECT attempt, position, ts, outcome, error, retryable, duration_ms, next_due_at
            FROM delivery_attempts WHERE source_position = ? AND trigger_id = ? ORDER BY attempt
            """)
        try rows.bind(.integer(Int64(bitPattern: id.sourcePosition)), at: 1)
        try rows.bind(.id(id.triggerID), at: 2)
        var attempts: [DeliveryTimeline.Attempt] = []
        while try rows.step() {
            guard rows.int64(at: 1) >= 0, let outcome = rows.text(at: 3).flatMap(AttemptOutcome.init(name:)) else {
                throw StoreError.damaged(path: database.path, reason: "a delivery_attempts row of \(id) holds a negative position or an unknown outcome")
            }
            let next = rows.isNull(at: 7) ? nil : rows.int64(at: 7)
            let status: DeliveryStatus = outcome == .ok ? .succeeded : next == nil ? .dead : .pending
            let attempt = DeliveryAttempt(sourcePosition: id.sourcePosition, triggerID: id.triggerID, attempt: rows.int64(at: 0),
                                          outcome: outcome, error: rows.text(at: 4), retryable: rows.int64(at: 5) != 0,
                                          durationMs: rows.int64(at: 6))
            attempts.append(DeliveryTimeline.Attempt(position: UInt64(rows.int64(at: 1)), ts: rows.int64(at: 2), attempt: attempt,
                                                     delayMs: nil, nextDueAt: next, status: status))
        }
        return attempts
    }

    /// The dead-letter events of `id` (one per death), in log order.
    private func deadLetters(of id: DeliveryID) throws -> [DeadLetterEvent] {
        let rows = try database.prepare(
            "SELECT position FROM dead_letters WHERE source_position = ? AND trigger_id = ? ORDER BY position")
        try rows.bind(.integer(Int64(bitPattern: id.sourcePosition)), at: 1)
        try rows.bind(.id(id.triggerID), at: 2)
        var events: [DeadLetterEvent] = []
        while try rows.step() {
            guard rows.int64(at: 0) >= 0, let event = try deadLetter(at: UInt64(rows.int64(at: 0))) else {
                throw StoreError.damaged(path: database.path, reason: "a dead_letters row of \(id) holds a negative position")
            }
            events.append(event)
        }
        return events
    }

    /// The `delivery.redriven` and `delivery.cancelled` records that listed `id`, in log order.
    private func operatorActionRows(listing id: DeliveryID) throws
        -> [(position: UInt64, ts: Int64, cancel: Bool, by: HeraldID, reason: String?)] {
        let rows = try database.prepare("""
            SELECT a.position, a.ts, a.type, a.by_admin_user_id, a.reason
            FROM operator_action_deliveries o JOIN operator_actions a ON a.position = o.position
            WHERE o.source_position = ? AND o.trigger_id = ? ORDER BY a.position
            """)
        try rows.bind(.integer(Int64(bitPattern: id.sourcePosition)), at: 1)
        try rows.bind(.id(id.triggerID), at: 2)
        var actions: [(position: UInt64, ts: Int64, cancel: Bool, by: HeraldID, reason: String?)] = []
        while try rows.step() {
            guard rows.int64(at: 0) >= 0, let by = rows.text(at: 3).flatMap(HeraldID.init) else {
                throw StoreError.damaged(path: database.path, reason: "an operator_actions row listing \(id) is invalid")
            }
            actions.append((UInt64(rows.int64(at: 0)), rows.int64(at: 1), rows.text(at: 2) == "delivery.cancelled", by,
                            rows.text(at: 4)))
        }
        return actions
    }

    /// The dead-letter deliveries `event` created, as created (they are the deliveries of its
    /// position), in canonical order.
    private func deliveriesCreated(byDeadLetterAt event: DeadLetterEvent) throws -> [Delivery] {
        var caused: [Delivery] = []
        try forEachDelivery(matching: DeliverySelection(from: event.position, to: event.position)) { d in
            caused.append(Delivery(id: d.id, appID: d.appID, scriptID: d.scriptID, sourceKind: d.sourceKind, depth: d.depth,
                                   retry: d.retry, triggerRank: d.triggerRank, dueAt: event.ts))
        }
        return caused
    }
}
