/// The pure reducer of docs/SEMANTICS.md §3: from records alone, derives every delivery, retry,
/// dead letter and cancellation.
///
/// State after position P depends on records 1…P only. Finished deliveries leave the state
/// as effects (only dead and cancelled ones stay, while an operator may redrive them), so
/// memory is bounded by the pending and redrivable deliveries and the registry, not by the
/// length of the log.
/// ```swift
/// var dispatcher = Dispatcher()
/// for (position, record) in log {
///     let effects = try dispatcher.apply(record, at: position)   // validates, then applies
/// }
/// ```
public struct Dispatcher: Sendable {
    /// The registry as of ``position``.
    public private(set) var registry = Registry()
    /// Last applied position (0 = before the log).
    public private(set) var position: UInt64 = 0
    /// ts of the last applied record.
    public private(set) var lastTs: Int64?
    /// Pending deliveries, in canonical order.
    public private(set) var pending = PendingDeliveries()
    /// Number of deliveries created so far.
    public private(set) var createdCount: UInt64 = 0
    /// Dead and cancelled deliveries an operator may redrive (docs/SEMANTICS.md §8.2): those
    /// whose trigger still exists. A delivery leaves when it is redriven or its trigger is
    /// deleted. Succeeded deliveries are not kept (memory stays bounded by what is pending or
    /// redrivable), so a redrive of one is refused as "not dead or cancelled".
    package private(set) var redrivable = FastTable<DeliveryID, Delivery>()
    /// The dead and cancelled deliveries an operator may redrive, in canonical order.
    public var redrivableDeliveries: [Delivery] { redrivable.values.sorted { $0.orderKey < $1.orderKey } }
    private var matchers = FastTable<HeraldID, AppMatcher>()
    /// Each app's live dead-letter triggers in registration order, as of a registry
    /// generation: a death looks them up here instead of filtering and sorting every trigger.
    private var deadLetterTriggers = FastTable<HeraldID, AppDeadLetterTriggers>()
    /// (app, collection) pairs already matched → the deliveries a mutation of each op
    /// creates there; see ``MatchMemo``.
    private var memo = MatchMemo()
    /// Pairs the memo holds before it starts over (tests lower it).
    var memoLimit = MatchMemo.limit
    /// When false the dispatcher keeps only the registry, ts and position: KV records match
    /// nothing and no delivery is created or cancelled. An import validates this way until
    /// its first `delivery.attempted` line (see ``ImportValidator``), because deriving
    /// deliveries is most of the cost and only attempts need them.
    public var tracksDeliveries = true

    public init() {}

    /// This state without its deliveries (``tracksDeliveries`` off): what checking registry
    /// records and KV mutations needs. It shares no storage with the pending deliveries, so
    /// holding it while the original changes copies none of them (a plain copy, held meanwhile,
    /// makes the original's next change copy every pending delivery).
    public var withoutDeliveries: Dispatcher {
        var copy = self
        copy.pending = PendingDeliveries()
        copy.redrivable = FastTable()
        copy.memo = MatchMemo()
        copy.tracksDeliveries = false
        return copy
    }

    /// The pending deliveries in canonical order.
    public var pendingInOrder: [Delivery] { pending.values }

    /// An app's KV matcher and the registry generation it was built from.
    private struct AppMatcher: Sendable {
        var generation: UInt64
        var matcher: KVMatcher
    }

    /// An app's live dead-letter triggers and the registry generation they were read at.
    private struct AppDeadLetterTriggers: Sendable {
        var generation: UInt64
        var triggers: [Registry.Trigger]
    }

    /// What a KV mutation creates, remembered per (app, collection): most workloads use a
    /// bounded set of names, so one hash lookup replaces the walk of the app's trie, the
    /// filtering by op and the interning of each delivery's snapshot. Forgotten whenever any
    /// trigger changes (``Registry/triggerChanges``) and when it outgrows ``limit``.
    private struct MatchMemo: Sendable {
        /// One delivery to create: the trigger's snapshot, and its index in the pending
        /// table's snapshots while that table's ``PendingDeliveries/snapshotEpoch`` is `epoch`.
        struct Target: Sendable {
            var snapshot: PendingDeliveries.Snapshot
            var index: UInt32 = 0
            var epoch: UInt64 = 0
        }

        /// A remembered pair: the indices into ``targets`` of its deliveries for insert, update
        /// and delete are `pool[bounds.0..<bounds.1]`, `[bounds.1..<bounds.2]` and
        /// `[bounds.2..<bounds.3]`.
        struct Entry: Sendable {
            var bounds: (Int32, Int32, Int32, Int32)

            @inline(__always)
            func range(_ op: KVOp) -> Range<Int> {
                switch op {
                case .insert: Int(bounds.0)..<Int(bounds.1)
                case .update: Int(bounds.1)..<Int(bounds.2)
                case .delete: Int(bounds.2)..<Int(bounds.3)
                }
            }
        }

        var table = FastTable<AppCollection, Entry>()
        /// One target per indexed trigger of each app seen (`firstTarget` says where an app's
        /// start, in its matcher's entry order), so each trigger's cached index is shared by
        /// every pair it matches.
        var targets: [Target] = []
        var firstTarget = FastTable<HeraldID, Int32>()
        var pool: [Int32] = []
        /// ``Registry/triggerChanges`` when the memo was last valid.
        var triggerChanges: UInt64 = 0
        /// Pairs remembered before the memo starts over.
        static let limit = 65_536
        /// Pool entries before the memo starts over (16 MiB): with many triggers matching
        /// every name, pairs alone would not bound the memory.
        static let poolLimit = 4_194_304

        mutating func reset(triggerChanges changes: UInt64) {
            table = FastTable()
            // Fresh storage: a memo that outgrew its limit starts small again.
            targets = []
            firstTarget = FastTable()
            pool = []
            triggerChanges = changes
        }
    }

    // MARK: - Checking

    /// Checks `record` as the record at ``position`` + 1 would be checked: stateless rules,
    /// ts order, the registry's rules and the delivery rules. Changes nothing.
    /// - Parameter statelessRulesChecked: true for records whose ``RecordRules`` already passed
    ///   (decoded by ``RecordJSONDecoder``, or read back from the log, where every record was
    ///   checked before it was appended and is covered by a checksum since): skips re-validating
    ///   KV values on the hot path.
    public func check(_ record: Record, statelessRulesChecked: Bool = false) throws(RecordError) {
        if !statelessRulesChecked {
            try RecordRules.check(record.body, ts: record.ts)
        } else if record.ts < 0 || record.ts > Record.tsMax {
            try RecordRules.check(record.body, ts: record.ts)
        }
        if let lastTs, record.ts < lastTs {
            throw RecordError(recordType: record.body.type.name, field: "ts",
                              reason: "ts \(record.ts) is before the previous record's ts \(lastTs) (ts never decreases)")
        }
        switch record.body {
        case .kv(let mutation):
            try registry.checkKV(app: mutation.appID, type: record.body.type.name)
        case .deliveryAttempted(let attempt):
            precondition(tracksDeliveries, "a dispatcher that does not track deliveries cannot check attempts")
            try checkAttempt(attempt, ts: record.ts)
        case .deliveryRedriven(let action):
            precondition(tracksDeliveries, "a dispatcher that does not track deliveries cannot check redrives")
            try registry.check(record.body)
            try checkRedrive(action)
        case .deliveryCancelled(let action):
            precondition(tracksDeliveries, "a dispatcher that does not track deliveries cannot check cancellations")
            try registry.check(record.body)
            try checkCancel(action)
        default:
            try registry.check(record.body)
        }
    }

    private func checkAttempt(_ attempt: DeliveryAttempt, ts: Int64) throws(RecordError) {
        let id = DeliveryID(sourcePosition: attempt.sourcePosition, triggerID: attempt.triggerID)
        func fail(_ field: String, _ reason: String) -> RecordError {
            RecordError(recordType: "delivery.attempted", field: field, reason: reason)
        }
        guard let row = pending.row(of: id) else {
            if attempt.sourcePosition > position {
                throw fail("source_position", "delivery \(id) does not exist (position \(attempt.sourcePosition) is not in the log yet)")
            }
            throw fail("source_position", "delivery \(id) does not exist or is no longer pending")
        }
        let (attempts, due) = pending.attemptsAndDue(row: row)
        let next = attempts + 1
        if attempt.attempt != next {
            throw fail("attempt", "delivery \(id) expects attempt \(next), not \(attempt.attempt)")
        }
        if ts < due {
            throw fail("ts", "attempt \(next) of delivery \(id) is due at \(due); ts \(ts) is before that")
        }
    }

    /// Every listed delivery is dead or cancelled, and its trigger still exists.
    private func checkRedrive(_ action: OperatorAction) throws(RecordError) {
        for (index, id) in action.deliveries.enumerated() where redrivable[id] == nil {
            let reason: String
            if pending.row(of: id) != nil {
                reason = "is pending, not dead or cancelled"
            } else if id.sourcePosition > position {
                reason = "does not exist (position \(id.sourcePosition) is not in the log yet)"
            } else if registry.triggers[id.triggerID] == nil {
                reason = "cannot be redriven: trigger \(id.triggerID) does not exist (a delivery whose trigger was deleted cannot come back)"
            } else {
                reason = "is not dead or cancelled (it succeeded, or it does not exist)"
            }
            throw RecordError(recordType: "delivery.redriven", field: "deliveries[\(index)]", reason: "\(id) \(reason)")
        }
    }

    /// Every listed delivery is pending.
    private func checkCancel(_ action: OperatorAction) throws(RecordError) {
        for (index, id) in action.deliveries.enumerated() where pending.row(of: id) == nil {
            let reason: String
            if let finished = redrivable[id] {
                reason = "is \(finished.status), not pending"
            } else if id.sourcePosition > position {
                reason = "does not exist (position \(id.sourcePosition) is not in the log yet)"
            } else {
                reason = "is not pending (it succeeded, was cancelled with its trigger, or does not exist)"
            }
            throw RecordError(recordType: "delivery.cancelled", field: "deliveries[\(index)]", reason: "\(id) \(reason)")
        }
    }

    // MARK: - Applying

    /// Validates `record` as position ``position`` + 1 and applies it; on error nothing changes.
    public mutating func apply(_ record: Record) throws(RecordError) -> [DispatchEffect] {
        try check(record)
        var effects: [DispatchEffect] = []
        applyChecked(record, effects: &effects)
        return effects
    }

    /// Applies a record that already passed ``check(_:)``, appending its effects.
    public mutating func applyChecked(_ record: Record, effects: inout [DispatchEffect]) {
        let at = position + 1
        position = at
        lastTs = record.ts
        switch record.body {
        case .kv(let mutation):
            if tracksDeliveries { matchKV(mutation, at: at, ts: record.ts, effects: &effects) }
        case .deliveryAttempted(let attempt):
            if tracksDeliveries { recordAttempt(attempt, at: at, ts: record.ts, effects: &effects) }
        case .deliveryRedriven(let action):
            if tracksDeliveries { redrive(action.deliveries, ts: record.ts, effects: &effects) }
        case .deliveryCancelled(let action):
            if tracksDeliveries { cancel(action.deliveries, at: at, effects: &effects) }
        case .deliveryInvoked(let invocation):
            if tracksDeliveries { invoke(invocation, at: at, ts: record.ts, effects: &effects) }
        default:
            let removed = registry.apply(record, at: at)
            guard tracksDeliveries, !removed.isEmpty else { return }
            for trigger in removed where pending.hasPending(ofTrigger: trigger.id) {
                cancelPending(of: trigger.id, at: at, effects: &effects)
            }
            if !redrivable.isEmpty {
                // Their deliveries can never be redriven now.
                let gone = Set(removed.map(\.id))
                for id in redrivable.keys where gone.contains(id.triggerID) { redrivable[id] = nil }
            }
        }
    }

    /// Moves past a record without applying it (what-if replay skips recorded records that
    /// no longer fit): its position and ts are taken, nothing else changes.
    public mutating func skip(_ record: Record) {
        skip(ts: record.ts)
    }

    /// ``skip(_:)`` of a record with timestamp `ts`.
    public mutating func skip(ts: Int64) {
        position += 1
        lastTs = max(lastTs ?? ts, ts)
    }

    /// Builds every app's KV matcher for the current registry now, instead of at the app's
    /// first KV record after a trigger change (which then pays for indexing its triggers).
    /// Changes no derived state.
    public mutating func prepareMatchers() {
        for app in registry.apps.keys where matchers[app]?.generation != registry.generation(of: app) {
            matchers[app] = currentMatcher(of: app)
        }
    }

    /// The app's matcher for its live KV triggers now.
    private func currentMatcher(of app: HeraldID) -> AppMatcher {
        AppMatcher(generation: registry.generation(of: app), matcher: KVMatcher(triggers: registry.liveTriggers(app: app, kind: .kv)))
    }

    private mutating func matchKV(_ mutation: KVMutation, at: UInt64, ts: Int64, effects: inout [DispatchEffect]) {
        if memo.triggerChanges != registry.triggerChanges || memo.table.count >= memoLimit
            || memo.pool.count >= MatchMemo.poolLimit {
            memo.reset(triggerChanges: registry.triggerChanges)
        }
        let app = mutation.appID
        let hash = AppCollection.hash(app: app, collection: mutation.collection)
        let found = memo.table.position(hash: hash) { $0.appID == app && $0.collection == mutation.collection }
        let range: Range<Int>
        if let found {
            range = memo.table.values[found].range(mutation.op)
        } else {
            range = remember(app: app, collection: mutation.collection, hash: hash).range(mutation.op)
        }
        let epoch = pending.snapshotEpoch
        for slot in range {
            let target = Int(memo.pool[slot])
            if memo.targets[target].epoch != epoch {
                memo.targets[target].index = pending.intern(memo.targets[target].snapshot)
                memo.targets[target].epoch = epoch
            }
            create(memo.targets[target].snapshot, interned: memo.targets[target].index, at: at, depth: 0, ts: ts,
                   effects: &effects)
        }
    }

    /// Matches `collection` against the app's triggers (rebuilding the app's matcher if its
    /// triggers changed) and remembers the targets of each op.
    private mutating func remember(app: HeraldID, collection: String, hash: UInt64) -> MatchMemo.Entry {
        let matcher: KVMatcher
        if let current = matchers[app], current.generation == registry.generation(of: app) {
            matcher = current.matcher
        } else {
            let built = currentMatcher(of: app)
            matchers[app] = built
            matcher = built.matcher
        }
        var indices: [Int32] = []
        matcher.matchIndices(collection: collection, into: &indices)
        let first: Int32
        if let known = memo.firstTarget[app] {
            first = known
        } else {
            first = Int32(memo.targets.count)
            for entry in matcher.entries {
                memo.targets.append(MatchMemo.Target(snapshot: PendingDeliveries.Snapshot(
                    triggerID: entry.triggerID, appID: app, scriptID: entry.scriptID, sourceKind: .kv,
                    retry: entry.retry, triggerRank: entry.registeredPosition)))
            }
            memo.firstTarget.insertNew(app, first)
        }
        var bounds: [Int32] = [Int32(memo.pool.count)]
        for op in [KVOp.insert, .update, .delete] {
            for index in indices where matcher.entries[Int(index)].ops.admits(op) {
                memo.pool.append(first + index)
            }
            bounds.append(Int32(memo.pool.count))
        }
        let entry = MatchMemo.Entry(bounds: (bounds[0], bounds[1], bounds[2], bounds[3]))
        memo.table.insertNew(AppCollection(appID: app, collection: collection, fastHash: hash), entry)
        return entry
    }

    /// Creates a pending delivery at `at` (the record being applied, so rows stay in canonical
    /// order) from `snapshot`, whose index in the pending table is `index` (``PendingDeliveries/intern(_:)``).
    @inline(__always)
    private mutating func create(_ snapshot: PendingDeliveries.Snapshot, interned index: UInt32, at: UInt64, depth: Int64,
                                 ts: Int64, effects: inout [DispatchEffect]) {
        pending.append(sourcePosition: at, snapshotIndex: index, depth: depth, dueAt: ts)
        createdCount += 1
        effects.append(.created(Delivery(id: DeliveryID(sourcePosition: at, triggerID: snapshot.triggerID), appID: snapshot.appID,
                                         scriptID: snapshot.scriptID, sourceKind: snapshot.sourceKind, depth: depth,
                                         retry: snapshot.retry, triggerRank: snapshot.triggerRank, dueAt: ts)))
    }

    /// Ends a pending delivery at `at` with `status`: it leaves the pending table (at `row`
    /// when the caller found it already).
    private mutating func finish(_ delivery: inout Delivery, _ status: DeliveryStatus, at: UInt64, row: Int? = nil) {
        delivery.status = status
        delivery.dueAt = nil
        delivery.finishedAt = at
        if let row { pending.remove(row: row, id: delivery.id) } else { pending.remove(delivery.id) }
    }

    private mutating func recordAttempt(_ attempt: DeliveryAttempt, at: UInt64, ts: Int64,
                                        effects: inout [DispatchEffect]) {
        let id = DeliveryID(sourcePosition: attempt.sourcePosition, triggerID: attempt.triggerID)
        guard let row = pending.row(of: id) else { return }
        var delivery = pending.delivery(row)
        let k = delivery.attempts + 1
        delivery.attempts = k
        switch attempt.outcome {
        case .ok:
            finish(&delivery, .succeeded, at: at, row: row)
            effects.append(.attempted(delivery, attempt, position: at, ts: ts))
        case .error:
            delivery.lastError = attempt.error ?? ""
            // A redriven delivery's budget counts from its attempts at the redrive.
            let used = k - delivery.budgetBase
            if attempt.retryable && used < delivery.retry.maxAttempts {
                let due = ts + delivery.retry.delayMs(afterAttempt: used)
                delivery.dueAt = due
                pending.update(row: row, id: id, attempts: k, dueAt: due, lastError: delivery.lastError)
                effects.append(.attempted(delivery, attempt, position: at, ts: ts))
            } else {
                finish(&delivery, .dead, at: at, row: row)
                redrivable[id] = delivery
                effects.append(.attempted(delivery, attempt, position: at, ts: ts))
                deadLetter(delivery, at: at, ts: ts, effects: &effects)
            }
        }
    }

    private mutating func deadLetter(_ dead: Delivery, at: UInt64, ts: Int64, effects: inout [DispatchEffect]) {
        let event = DeadLetterEvent(position: at, ts: ts, delivery: dead.id, appID: dead.appID,
                                    sourceKind: dead.sourceKind, triggerID: dead.id.triggerID,
                                    scriptID: dead.scriptID, depth: dead.depth + 1, lastError: dead.lastError)
        effects.append(.deadLetter(event))
        guard event.depth <= DeadLetterEvent.maxDepth else { return }
        let generation = registry.generation(of: dead.appID)
        let triggers: [Registry.Trigger]
        if let known = deadLetterTriggers[dead.appID], known.generation == generation {
            triggers = known.triggers
        } else {
            triggers = registry.liveTriggers(app: dead.appID, kind: .deadLetter)
            deadLetterTriggers[dead.appID] = AppDeadLetterTriggers(generation: generation, triggers: triggers)
        }
        for trigger in triggers where trigger.enabled && DeadLetterMatch.admits(trigger.deadLetter, event) {
            let snapshot = PendingDeliveries.Snapshot(triggerID: trigger.id, appID: trigger.appID, scriptID: trigger.scriptID,
                                                      sourceKind: .deadLetter, retry: trigger.retry,
                                                      triggerRank: trigger.registeredPosition)
            create(snapshot, interned: pending.intern(snapshot), at: at, depth: event.depth, ts: ts, effects: &effects)
        }
    }

    /// `delivery.redriven` (checked): each delivery is pending again, due at `ts`, with a fresh
    /// retry budget.
    private mutating func redrive(_ ids: [DeliveryID], ts: Int64, effects: inout [DispatchEffect]) {
        var revived: [Delivery] = []
        revived.reserveCapacity(ids.count)
        for id in ids {
            guard var delivery = redrivable[id] else { continue }
            redrivable[id] = nil
            let before = delivery.status
            delivery.status = .pending
            delivery.dueAt = ts
            delivery.finishedAt = nil
            delivery.budgetBase = delivery.attempts
            revived.append(delivery)
            effects.append(.redriven(delivery, from: before))
        }
        pending.insert(revived)
    }

    /// `delivery.cancelled` (checked): each delivery is cancelled now; an operator may redrive it.
    private mutating func cancel(_ ids: [DeliveryID], at: UInt64, effects: inout [DispatchEffect]) {
        for id in ids {
            guard let row = pending.row(of: id) else { continue }
            var delivery = pending.delivery(row)
            finish(&delivery, .cancelled, at: at, row: row)
            redrivable[id] = delivery
            effects.append(.cancelled(delivery))
        }
    }

    /// `delivery.invoked` (checked): one delivery of the trigger, source kind `manual`, due now.
    private mutating func invoke(_ invocation: ManualInvocation, at: UInt64, ts: Int64, effects: inout [DispatchEffect]) {
        guard let trigger = registry.triggers[invocation.triggerID] else { return }
        let snapshot = PendingDeliveries.Snapshot(triggerID: trigger.id, appID: trigger.appID, scriptID: trigger.scriptID,
                                                  sourceKind: .manual, retry: trigger.retry,
                                                  triggerRank: trigger.registeredPosition)
        create(snapshot, interned: pending.intern(snapshot), at: at, depth: 0, ts: ts, effects: &effects)
    }

    private mutating func cancelPending(of trigger: HeraldID, at: UInt64, effects: inout [DispatchEffect]) {
        for var delivery in pending.values(ofTrigger: trigger) {
            finish(&delivery, .cancelled, at: at)
            effects.append(.cancelled(delivery))
        }
    }
}

/// Dead-letter filter matching (docs/SEMANTICS.md §3.3).
public enum DeadLetterMatch {
    /// Every non-null filter equals the event's (source_kind, trigger_id, script_id).
    public static func admits(_ filters: DeadLetterDetails?, _ event: DeadLetterEvent) -> Bool {
        guard let filters else { return true }
        if let source = filters.sourceFilter, source != event.sourceKind { return false }
        if let trigger = filters.triggerIDFilter, trigger != event.triggerID { return false }
        if let script = filters.scriptIDFilter, script != event.scriptID { return false }
        return true
    }
}

extension Dispatcher {
    /// Resumes from saved state (the projection) instead of replaying the log: the registry,
    /// the pending deliveries and the redrivable ones (dead or cancelled, trigger alive) as of
    /// `position`.
    public init(registry: Registry, pending: [Delivery], position: UInt64, lastTs: Int64?, createdCount: UInt64,
                redrivable: [Delivery] = []) {
        self.init()
        self.registry = registry
        self.position = position
        self.lastTs = lastTs
        self.createdCount = createdCount
        for delivery in pending.sorted(by: { $0.orderKey < $1.orderKey }) {
            self.pending.append(delivery)
        }
        for delivery in redrivable.sorted(by: { $0.orderKey < $1.orderKey }) {
            self.redrivable[delivery.id] = delivery
        }
    }

    /// Resumes from saved state whose pending deliveries come whole (a snapshot of them,
    /// ``PendingDeliveries/init(snapshotBytes:)``) rather than one by one.
    public init(registry: Registry, pending: PendingDeliveries, position: UInt64, lastTs: Int64?, createdCount: UInt64,
                redrivable: [Delivery] = []) {
        self.init(registry: registry, pending: [], position: position, lastTs: lastTs, createdCount: createdCount,
                  redrivable: redrivable)
        self.pending = pending
    }

    /// Adds a pending delivery while restoring saved state (a store that streams its rows
    /// instead of building the array `init` takes): each after every one added before it in
    /// canonical order (source position, then trigger registration order).
    public mutating func restorePending(_ delivery: Delivery) {
        pending.append(delivery)
    }
}

/// A memo key of the dispatcher: an app and a collection name, with a hash of both.
struct AppCollection: FastKey {
    var appID: HeraldID
    var collection: String
    var fastHash: UInt64

    /// FNV-1a over the name's bytes, seeded with the app's hash (no per-process seed).
    @inline(__always)
    static func hash(app: HeraldID, collection: String) -> UInt64 {
        var collection = collection
        return collection.withUTF8 { bytes in
            var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ app.fastHash
            for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
            return hash
        }
    }

    static func == (lhs: AppCollection, rhs: AppCollection) -> Bool {
        lhs.fastHash == rhs.fastHash && lhs.appID == rhs.appID && lhs.collection == rhs.collection
    }
}
