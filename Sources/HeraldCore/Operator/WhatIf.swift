/// One what-if change of a trigger: `--set TRIGGER_ID.FIELD=VALUE` or `--disable TRIGGER_ID`
/// (docs/SEMANTICS.md §8.4).
public struct TriggerOverride: Sendable, Equatable {
    /// The field and its what-if value.
    public enum Field: Sendable, Equatable {
        case enabled(Bool)
        case maxAttempts(Int64)
        case backoff(Backoff)
        case baseMs(Int64)
        case collectionGlob(String)
        case ops(OpSet)
        case sourceFilter(SourceKind?)
        case triggerIDFilter(HeraldID?)
        case scriptIDFilter(HeraldID?)

        /// The field's name on the command line.
        public var name: String {
            switch self {
            case .enabled: "enabled"
            case .maxAttempts: "retry.max_attempts"
            case .backoff: "retry.backoff"
            case .baseMs: "retry.base_ms"
            case .collectionGlob: "kv.collection_glob"
            case .ops: "kv.ops"
            case .sourceFilter: "dead_letter.source_filter"
            case .triggerIDFilter: "dead_letter.trigger_id_filter"
            case .scriptIDFilter: "dead_letter.script_id_filter"
            }
        }

        /// The trigger kind the field belongs to (`nil`: both).
        var kind: TriggerKind? {
            switch self {
            case .enabled, .maxAttempts, .backoff, .baseMs: nil
            case .collectionGlob, .ops: .kv
            case .sourceFilter, .triggerIDFilter, .scriptIDFilter: .deadLetter
            }
        }
    }

    public var triggerID: HeraldID
    public var field: Field

    public init(triggerID: HeraldID, field: Field) {
        self.triggerID = triggerID
        self.field = field
    }

    /// `--disable TRIGGER_ID`.
    public static func disable(_ text: String) throws(WhatIfError) -> TriggerOverride {
        guard let id = HeraldID(text) else { throw .usage("--disable \(text): not a trigger id (a UUID)") }
        return TriggerOverride(triggerID: id, field: .enabled(false))
    }

    /// Parses `TRIGGER_ID.FIELD=VALUE`, checking the value as a registration would (bounds, glob
    /// and ops rules, source filter names). Whether the trigger and filter ids exist in the log
    /// is checked after the replay (``WhatIfReplay/validate()``).
    public static func parse(_ text: String) throws(WhatIfError) -> TriggerOverride {
        func fail(_ why: String) -> WhatIfError { .usage("--set \(text): \(why)") }
        guard let dot = text.firstIndex(of: "."), let id = HeraldID(String(text[..<dot])) else {
            throw fail("expected TRIGGER_ID.FIELD=VALUE, with TRIGGER_ID a UUID")
        }
        let rest = text[text.index(after: dot)...]
        guard let equals = rest.firstIndex(of: "=") else { throw fail("expected FIELD=VALUE after the trigger id") }
        let name = String(rest[..<equals])
        let value = String(rest[rest.index(after: equals)...])
        func integer(_ range: ClosedRange<Int64>) throws(WhatIfError) -> Int64 {
            guard let number = Int64(value), range.contains(number) else {
                throw fail("\(name) must be an integer between \(range.lowerBound) and \(range.upperBound), not '\(value)'")
            }
            return number
        }
        func optionalID() throws(WhatIfError) -> HeraldID? {
            if value == "null" { return nil }
            guard let id = HeraldID(value) else { throw fail("\(name) must be null or a UUID, not '\(value)'") }
            return id
        }
        let field: Field
        switch name {
        case "enabled":
            guard value == "true" || value == "false" else { throw fail("enabled must be true or false, not '\(value)'") }
            field = .enabled(value == "true")
        case "retry.max_attempts": field = .maxAttempts(try integer(RetryConfig.maxAttemptsRange))
        case "retry.base_ms": field = .baseMs(try integer(RetryConfig.baseMsRange))
        case "retry.backoff":
            guard let backoff = Backoff(name: value) else {
                throw fail("retry.backoff must be \(Backoff.wireNamesPhrase()), not '\(value)'")
            }
            field = .backoff(backoff)
        case "kv.collection_glob":
            if let problem = RecordRules.collectionGlobProblem(value) { throw fail("kv.collection_glob \(problem)") }
            field = .collectionGlob(value)
        case "kv.ops":
            var ops = OpSet()
            for piece in value.split(separator: ",", omittingEmptySubsequences: false) where !value.isEmpty {
                guard let op = KVOp(name: String(piece)) else {
                    throw fail("kv.ops is a comma-separated list of \(KVOp.wireNamesPhrase()) (possibly empty), not '\(value)'")
                }
                guard !ops.contains(OpSet(op)) else { throw fail("kv.ops lists '\(piece)' twice") }
                ops.insert(OpSet(op))
            }
            field = .ops(ops)
        case "dead_letter.source_filter":
            if value == "null" {
                field = .sourceFilter(nil)
            } else {
                guard let kind = SourceKind(name: value) else {
                    throw fail("dead_letter.source_filter must be \(SourceKind.wireNamesPhrase(orNull: true)), not '\(value)'")
                }
                field = .sourceFilter(kind)
            }
        case "dead_letter.trigger_id_filter": field = .triggerIDFilter(try optionalID())
        case "dead_letter.script_id_filter": field = .scriptIDFilter(try optionalID())
        default:
            throw fail("unknown field '\(name)' (enabled, retry.max_attempts, retry.backoff, retry.base_ms, kv.collection_glob, kv.ops, dead_letter.source_filter, dead_letter.trigger_id_filter, dead_letter.script_id_filter)")
        }
        return TriggerOverride(triggerID: id, field: field)
    }
}

/// The records a what-if replays when it replays only the apps of the overridden triggers
/// (docs/DECISIONS.md "What-if replays the changed apps"). Apps do not reach into each other:
/// a KV record matches its own app's triggers, a dead letter its own app's dead-letter
/// triggers, and filters name triggers and scripts of the same app. So every delivery of an
/// app without an overridden trigger is the same in both worlds, and both worlds can be
/// replayed over the records of the changed apps alone — every registry record (few, and
/// the overrides' checks need them), and the KV, attempt, invoke, redrive and cancel records
/// of those apps — while every other record only takes its position.
public struct WhatIfScope: Sendable {
    /// The apps replayed.
    public let apps: Set<HeraldID>
    /// The app of each trigger registered so far (registry records are always replayed, and a
    /// trigger is registered before any record names it or its deliveries).
    private var triggerApps: [HeraldID: HeraldID] = [:]

    public init(apps: Set<HeraldID>) {
        self.apps = apps
    }

    /// The app of a trigger registered in the records admitted so far.
    public func app(of trigger: HeraldID) -> HeraldID? {
        triggerApps[trigger]
    }

    /// What to do with the next record.
    public enum Admission: Sendable {
        /// Replay it (narrowed to the scope's deliveries); `skippable` false when it also named
        /// deliveries outside the scope (see ``WhatIfReplay/apply(_:skippable:)``).
        case replay(Record, skippable: Bool)
        /// Only take its position and ts (``WhatIfReplay/pass(_:)``).
        case pass
    }

    /// Decides for the next record of the log, in order.
    public mutating func admit(_ record: Record) -> Admission {
        func inScope(_ trigger: HeraldID) -> Bool {
            triggerApps[trigger].map(apps.contains) ?? false
        }
        func narrowed(_ action: OperatorAction, _ body: (OperatorAction) -> RecordBody) -> Admission {
            let kept = action.deliveries.filter { inScope($0.triggerID) }
            if kept.isEmpty { return .pass }
            if kept.count == action.deliveries.count { return .replay(record, skippable: true) }
            var narrowed = action
            narrowed.deliveries = kept
            return .replay(Record(ts: record.ts, body: body(narrowed)), skippable: false)
        }
        switch record.body {
        case .triggerRegistered(let registration):
            triggerApps[registration.triggerID] = registration.appID
            return .replay(record, skippable: true)
        case .adminUserCreated, .adminUserDeleted, .appCreated, .appDeleted, .scriptRegistered, .scriptDeleted,
             .triggerUpdated, .triggerDeleted:
            return .replay(record, skippable: true)
        case .kv(let mutation):
            return apps.contains(mutation.appID) ? .replay(record, skippable: true) : .pass
        case .deliveryAttempted(let attempt):
            return inScope(attempt.triggerID) ? .replay(record, skippable: true) : .pass
        case .deliveryInvoked(let invocation):
            return inScope(invocation.triggerID) ? .replay(record, skippable: true) : .pass
        case .deliveryRedriven(let action):
            return narrowed(action) { .deliveryRedriven($0) }
        case .deliveryCancelled(let action):
            return narrowed(action) { .deliveryCancelled($0) }
        }
    }
}

/// Why a what-if cannot run: a usage error (`herald whatif` exits 2) naming the override.
public enum WhatIfError: Error, Sendable, Equatable, CustomStringConvertible {
    case usage(String)

    public var description: String {
        switch self {
        case .usage(let message): message
        }
    }
}

/// Replays a log with some triggers changed (docs/SEMANTICS.md §8.4): registry and KV records
/// apply as recorded, each override right after its trigger's registration and after each of
/// its updates; a recorded attempt, redrive or cancel that does not fit the what-if state is
/// skipped and counted. Feed it records 1…P in order (``apply(_:)``), then ``validate()``.
public struct WhatIfReplay: Sendable {
    /// The what-if state.
    public private(set) var state = Dispatcher()
    /// Every what-if delivery, in canonical order.
    public private(set) var ledger = DeliveryLedger()
    /// Recorded records that did not fit the what-if state.
    public private(set) var skipped = 0
    private let overrides: [HeraldID: [TriggerOverride.Field]]
    private let order: [TriggerOverride]
    /// Every trigger and script registered so far: (app, kind) and app.
    private var triggersSeen: [HeraldID: (app: HeraldID, kind: TriggerKind)] = [:]
    private var scriptsSeen: [HeraldID: HeraldID] = [:]
    private var effects: [DispatchEffect] = []

    public init(overrides: [TriggerOverride]) {
        var byTrigger: [HeraldID: [TriggerOverride.Field]] = [:]
        for override in overrides { byTrigger[override.triggerID, default: []].append(override.field) }
        self.overrides = byTrigger
        order = overrides
    }

    /// Takes the next record's position and ts without replaying it: a record of an app
    /// outside a ``WhatIfScope`` (it changes nothing replayed, and it fits in both worlds).
    public mutating func pass(_ record: Record) {
        state.skip(ts: record.ts)
    }

    /// ``pass(_:)`` of a record with timestamp `ts`.
    public mutating func pass(ts: Int64) {
        state.skip(ts: ts)
    }

    /// Applies the next recorded record (already valid in the recorded log). `skippable`
    /// false: a redrive or cancel whose ids were narrowed to a ``WhatIfScope``'s apps also named
    /// deliveries outside them, which fit in both worlds, so it never counts as skipped.
    public mutating func apply(_ record: Record, skippable: Bool = true) {
        var record = record
        switch record.body {
        case .triggerRegistered(var registration):
            triggersSeen[registration.triggerID] = (registration.appID, registration.kind)
            if let fields = overrides[registration.triggerID] {
                for field in fields { Self.patch(&registration, field) }
                record.body = .triggerRegistered(registration)
            }
        case .triggerUpdated(var update):
            if let fields = overrides[update.triggerID], let kind = triggersSeen[update.triggerID]?.kind {
                for field in fields where field.kind == nil || field.kind == kind { Self.patch(&update, field) }
                record.body = .triggerUpdated(update)
            }
        case .scriptRegistered(let script):
            scriptsSeen[script.scriptID] = script.appID
        case .deliveryAttempted:
            do throws(RecordError) {
                try state.check(record, statelessRulesChecked: true)
            } catch {
                skip(record)
                return
            }
        case .deliveryRedriven(var action):
            action.deliveries = action.deliveries.filter { state.redrivable[$0] != nil }
            guard !action.deliveries.isEmpty else {
                skippable ? skip(record) : pass(record)
                return
            }
            record.body = .deliveryRedriven(action)
        case .deliveryCancelled(var action):
            action.deliveries = action.deliveries.filter { state.pending[$0] != nil }
            guard !action.deliveries.isEmpty else {
                skippable ? skip(record) : pass(record)
                return
            }
            record.body = .deliveryCancelled(action)
        default:
            break
        }
        // Everything else was valid in the recorded log, and the overrides change no id, app
        // or existence the rules look at.
        effects.removeAll(keepingCapacity: true)
        state.applyChecked(record, effects: &effects)
        ledger.absorb(effects)
    }

    /// A recorded record that does not fit: counted, and its position is taken all the same.
    private mutating func skip(_ record: Record) {
        skipped += 1
        state.skip(record)
    }

    /// The overrides' usage errors, now that the log 1…P has been seen: each trigger was
    /// registered, each field is of its kind, each filter id names a trigger or script of the
    /// same app registered somewhere in 1…P.
    public func validate() throws(WhatIfError) {
        for override in order {
            let id = override.triggerID
            guard let (app, kind) = triggersSeen[id] else {
                throw .usage("\(id): no trigger \(id) is registered in the replayed records")
            }
            if let fieldKind = override.field.kind, fieldKind != kind {
                throw .usage("\(id).\(override.field.name): trigger \(id) is kind \(kind), so it has no \(override.field.name)")
            }
            switch override.field {
            case .triggerIDFilter(let filter?):
                guard triggersSeen[filter]?.app == app else {
                    throw .usage("\(id).dead_letter.trigger_id_filter: \(filter) is not a trigger of app \(app) registered in the replayed records")
                }
            case .scriptIDFilter(let filter?):
                guard scriptsSeen[filter] == app else {
                    throw .usage("\(id).dead_letter.script_id_filter: \(filter) is not a script of app \(app) registered in the replayed records")
                }
            default:
                break
            }
        }
    }

    private static func patch(_ r: inout TriggerRegistration, _ field: TriggerOverride.Field) {
        switch field {
        case .enabled(let value): r.enabled = value
        case .maxAttempts(let value): r.retry.maxAttempts = value
        case .backoff(let value): r.retry.backoff = value
        case .baseMs(let value): r.retry.baseMs = value
        case .collectionGlob(let value): r.kv?.collectionGlob = value
        case .ops(let value): r.kv?.ops = value
        case .sourceFilter(let value): r.deadLetter?.sourceFilter = value
        case .triggerIDFilter(let value): r.deadLetter?.triggerIDFilter = value
        case .scriptIDFilter(let value): r.deadLetter?.scriptIDFilter = value
        }
    }

    private static func patch(_ u: inout TriggerUpdate, _ field: TriggerOverride.Field) {
        switch field {
        case .enabled(let value): u.enabled = value
        case .maxAttempts(let value): u.retry = RetryPatch(maxAttempts: value, backoff: u.retry?.backoff, baseMs: u.retry?.baseMs)
        case .backoff(let value): u.retry = RetryPatch(maxAttempts: u.retry?.maxAttempts, backoff: value, baseMs: u.retry?.baseMs)
        case .baseMs(let value): u.retry = RetryPatch(maxAttempts: u.retry?.maxAttempts, backoff: u.retry?.backoff, baseMs: value)
        case .collectionGlob(let value): u.kv = KVPatch(collectionGlob: value, ops: u.kv?.ops)
        case .ops(let value): u.kv = KVPatch(collectionGlob: u.kv?.collectionGlob, ops: value)
        case .sourceFilter(let value):
            var p = u.deadLetter ?? DeadLetterPatch()
            p.sourceFilter = .set(value)
            u.deadLetter = p
        case .triggerIDFilter(let value):
            var p = u.deadLetter ?? DeadLetterPatch()
            p.triggerIDFilter = .set(value)
            u.deadLetter = p
        case .scriptIDFilter(let value):
            var p = u.deadLetter ?? DeadLetterPatch()
            p.scriptIDFilter = .set(value)
            u.deadLetter = p
        }
    }
}

/// The default `herald whatif` output: `-` / `+` lines for deliveries that exist in one world
/// only or differ, in canonical order, then a summary line.
public struct WhatIfDiff: Sendable {
    public private(set) var unchanged = 0
    public private(set) var onlyRecorded = 0
    public private(set) var onlyWhatIf = 0
    public private(set) var changed = 0

    /// Starts with `unchanged` deliveries already counted (those of apps a what-if did not replay).
    public init(unchanged: Int = 0) {
        self.unchanged = unchanged
    }

    /// Merges the two worlds' deliveries (each in canonical order), calling `line` with each
    /// output line (without its newline).
    public mutating func compare(recorded: some Sequence<Delivery>, whatIf: [Delivery], line: (String) -> Void) {
        func text(_ prefix: String, _ d: Delivery) -> String {
            var out = JSONOutput()
            CanonicalOutput.append(d, to: &out)
            return prefix + out.text
        }
        var next = 0
        // A trigger's rank is its registration position: unique, so this names one delivery.
        func key(_ d: Delivery) -> (UInt64, UInt64) { d.orderKey }
        for r in recorded {
            while next < whatIf.count, key(whatIf[next]) < key(r) {
                line(text("+", whatIf[next])); onlyWhatIf += 1; next += 1
            }
            if next < whatIf.count, key(whatIf[next]) == key(r) {
                let w = whatIf[next]
                next += 1
                if CanonicalOutput.same(r, w) { unchanged += 1 } else {
                    line(text("-", r)); line(text("+", w)); changed += 1
                }
            } else {
                line(text("-", r)); onlyRecorded += 1
            }
        }
        while next < whatIf.count {
            line(text("+", whatIf[next])); onlyWhatIf += 1; next += 1
        }
    }

    /// `N unchanged, A only recorded, B only what-if, C changed; S recorded records skipped`.
    public func summary(skipped: Int) -> String {
        "\(unchanged) unchanged, \(onlyRecorded) only recorded, \(onlyWhatIf) only what-if, \(changed) changed; \(skipped) recorded records skipped"
    }
}
