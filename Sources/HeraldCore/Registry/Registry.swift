/// Apps, admin users, scripts and triggers as a state machine over records (docs/SEMANTICS.md §2.5, §3.1 step 1).
///
/// The registry checks every stateful rule of §2 and applies cascades exactly as the seed's
/// `ON DELETE CASCADE`. It is a value: copy it to keep the state "as of" a position.
/// ```swift
/// var registry = Registry()
/// try registry.check(record.body, at: 1)     // throws RecordError, changes nothing
/// let removed = registry.apply(record, at: 1) // triggers deleted at this position
/// ```
public struct Registry: Sendable {
    /// An app and when it was created.
    public struct App: Equatable, Sendable {
        public var id: HeraldID
        public var name: String
        public var createdPosition: UInt64
        public var createdTs: Int64

        public init(id: HeraldID, name: String, createdPosition: UInt64, createdTs: Int64) {
            self.id = id
            self.name = name
            self.createdPosition = createdPosition
            self.createdTs = createdTs
        }
    }

    /// An admin user (a trigger's principal).
    public struct AdminUser: Equatable, Sendable {
        public var id: HeraldID
        public var email: String
        public var createdPosition: UInt64
        public var createdTs: Int64

        public init(id: HeraldID, email: String, createdPosition: UInt64, createdTs: Int64) {
            self.id = id
            self.email = email
            self.createdPosition = createdPosition
            self.createdTs = createdTs
        }
    }

    /// A script and the app it belongs to.
    public struct Script: Equatable, Sendable {
        public var id: HeraldID
        public var appID: HeraldID
        public var name: String
        public var runtime: String
        public var source: String
        public var createdPosition: UInt64
        public var createdTs: Int64

        public init(id: HeraldID, appID: HeraldID, name: String, runtime: String, source: String, createdPosition: UInt64, createdTs: Int64) {
            self.id = id
            self.appID = appID
            self.name = name
            self.runtime = runtime
            self.source = source
            self.createdPosition = createdPosition
            self.createdTs = createdTs
        }
    }

    /// A trigger as it is now (updates applied).
    public struct Trigger: Equatable, Sendable {
        public var id: HeraldID
        public var appID: HeraldID
        public var scriptID: HeraldID
        public var kind: TriggerKind
        public var enabled: Bool
        public var dispatchMode: DispatchMode
        public var retry: RetryConfig
        public var registeredBy: HeraldID
        public var kv: KVDetails?
        public var deadLetter: DeadLetterDetails?
        /// Position of its `trigger.registered`: the order of matching and listing.
        public var registeredPosition: UInt64
        public var createdTs: Int64
        public var updatedTs: Int64
        public var updatedPosition: UInt64

        public init(id: HeraldID, appID: HeraldID, scriptID: HeraldID, kind: TriggerKind, enabled: Bool, dispatchMode: DispatchMode, retry: RetryConfig, registeredBy: HeraldID, kv: KVDetails?, deadLetter: DeadLetterDetails?, registeredPosition: UInt64, createdTs: Int64, updatedTs: Int64, updatedPosition: UInt64) {
            self.id = id
            self.appID = appID
            self.scriptID = scriptID
            self.kind = kind
            self.enabled = enabled
            self.dispatchMode = dispatchMode
            self.retry = retry
            self.registeredBy = registeredBy
            self.kv = kv
            self.deadLetter = deadLetter
            self.registeredPosition = registeredPosition
            self.createdTs = createdTs
            self.updatedTs = updatedTs
            self.updatedPosition = updatedPosition
        }
    }

    /// A trigger that no longer exists, kept so `explain` can say why it did not match.
    public struct RemovedTrigger: Equatable, Sendable {
        public var trigger: Trigger
        /// Position of the record that deleted it (directly or by cascade).
        public var deletedPosition: UInt64
        /// What deleted it, e.g. "trigger.deleted" or "app.deleted (cascade)".
        public var cause: String
    }

    package private(set) var apps = FastTable<HeraldID, App>()
    package private(set) var adminUsers = FastTable<HeraldID, AdminUser>()
    package private(set) var scripts = FastTable<HeraldID, Script>()
    package private(set) var triggers = FastTable<HeraldID, Trigger>()
    /// Deleted triggers, in deletion order.
    public private(set) var removedTriggers: [RemovedTrigger] = []
    /// Every id ever created, of any kind: ids are never reused, also after deletion.
    private var usedIDs: Set<HeraldID> = []
    /// Bumped whenever the triggers of an app change, so matchers can rebuild lazily.
    private var triggerGeneration = FastTable<HeraldID, UInt64>()
    /// Bumped whenever any app's triggers change (the sum of every app's generation).
    public private(set) var triggerChanges: UInt64 = 0

    public init() {}

    /// Live triggers in registration order, optionally of one app.
    public func liveTriggers(app: HeraldID? = nil) -> [Trigger] {
        triggers.values
            .filter { app == nil || $0.appID == app }
            .sorted { $0.registeredPosition < $1.registeredPosition }
    }

    /// Live triggers of one app and kind, in registration order.
    public func liveTriggers(app: HeraldID, kind: TriggerKind) -> [Trigger] {
        triggers.values
            .filter { $0.appID == app && $0.kind == kind }
            .sorted { $0.registeredPosition < $1.registeredPosition }
    }

    // MARK: - Checking

    /// Checks every stateful rule of docs/SEMANTICS.md §2.5 for `body` against the current state.
    /// Stateless rules are ``RecordRules``'s. Throws without changing anything.
    public func check(_ body: RecordBody) throws(RecordError) {
        func fail(_ field: String?, _ reason: String) -> RecordError {
            RecordError(recordType: body.type.name, field: field, reason: reason)
        }
        func requireNew(_ id: HeraldID, _ field: String) throws(RecordError) {
            if usedIDs.contains(id) {
                throw fail(field, "id \(id) is already in use (ids are never reused, also after deletion)")
            }
        }
        func requireApp(_ id: HeraldID, _ field: String) throws(RecordError) {
            if apps[id] == nil { throw fail(field, "app \(id) does not exist") }
        }
        switch body {
        case .adminUserCreated(let id, _):
            try requireNew(id, "admin_user_id")
        case .adminUserDeleted(let id):
            if adminUsers[id] == nil { throw fail("admin_user_id", "admin user \(id) does not exist") }
        case .appCreated(let id, _):
            try requireNew(id, "app_id")
        case .appDeleted(let id):
            try requireApp(id, "app_id")
        case .scriptRegistered(let script):
            try requireNew(script.scriptID, "script_id")
            try requireApp(script.appID, "app_id")
        case .scriptDeleted(let id):
            if scripts[id] == nil { throw fail("script_id", "script \(id) does not exist") }
        case .triggerRegistered(let registration):
            try requireNew(registration.triggerID, "trigger_id")
            try requireApp(registration.appID, "app_id")
            try checkScript(registration.scriptID, app: registration.appID, field: "script_id", fail: fail)
            if adminUsers[registration.registeredBy] == nil {
                throw fail("registered_by", "admin user \(registration.registeredBy) does not exist")
            }
            if let filters = registration.deadLetter {
                try checkFilters(filters.triggerIDFilter, filters.scriptIDFilter, app: registration.appID,
                                 self: nil, fail: fail)
            }
        case .triggerUpdated(let update):
            guard let trigger = triggers[update.triggerID] else {
                throw fail("trigger_id", "trigger \(update.triggerID) does not exist")
            }
            if update.kv != nil && trigger.kind != .kv {
                throw fail("kv", "trigger \(trigger.id) is kind \(trigger.kind), so 'kv' details are an error")
            }
            if let patch = update.deadLetter {
                guard trigger.kind == .deadLetter else {
                    throw fail("dead_letter",
                               "trigger \(trigger.id) is kind \(trigger.kind), so 'dead_letter' details are an error")
                }
                let current = trigger.deadLetter ?? DeadLetterDetails()
                try checkFilters(patch.triggerIDFilter.applied(to: current.triggerIDFilter),
                                 patch.scriptIDFilter.applied(to: current.scriptIDFilter),
                                 app: trigger.appID, self: trigger.id, fail: fail,
                                 onlyChanged: (patch.triggerIDFilter != .keep, patch.scriptIDFilter != .keep))
            }
        case .triggerDeleted(let id):
            if triggers[id] == nil { throw fail("trigger_id", "trigger \(id) does not exist") }
        case .kv(let mutation):
            try checkKV(app: mutation.appID, type: body.type.name)
        case .deliveryAttempted:
            break  // the dispatcher checks deliveries
        case .deliveryRedriven(let action), .deliveryCancelled(let action):
            // The dispatcher checks each delivery.
            if adminUsers[action.by] == nil { throw fail("by", "admin user \(action.by) does not exist") }
        case .deliveryInvoked(let invocation):
            if triggers[invocation.triggerID] == nil {
                throw fail("trigger_id", "trigger \(invocation.triggerID) does not exist")
            }
            if adminUsers[invocation.by] == nil { throw fail("by", "admin user \(invocation.by) does not exist") }
        }
    }

    /// The one stateful rule of a KV mutation (its app exists), without copying the record.
    @inline(__always)
    func checkKV(app: HeraldID, type: @autoclosure () -> String) throws(RecordError) {
        if !apps.contains(app) { throw RecordError(recordType: type(), field: "app_id", reason: "app \(app) does not exist") }
    }

    private func checkScript(_ scriptID: HeraldID, app: HeraldID, field: String,
                             fail: (String?, String) -> RecordError) throws(RecordError) {
        guard let script = scripts[scriptID] else { throw fail(field, "script \(scriptID) does not exist") }
        if script.appID != app {
            throw fail(field, "script \(scriptID) belongs to app \(script.appID), not to app \(app)")
        }
    }

    /// Filters name a trigger / script of the same app. On update only the filters the
    /// update sets are checked: a filter naming a since-deleted trigger stays valid
    /// ("the filter stays and simply never matches again").
    private func checkFilters(_ triggerFilter: HeraldID?, _ scriptFilter: HeraldID?, app: HeraldID,
                              self selfID: HeraldID?, fail: (String?, String) -> RecordError,
                              onlyChanged: (Bool, Bool) = (true, true)) throws(RecordError) {
        if onlyChanged.0, let id = triggerFilter {
            let field = "dead_letter.trigger_id_filter"
            if id != selfID {
                guard let named = triggers[id] else { throw fail(field, "trigger \(id) does not exist") }
                if named.appID != app {
                    throw fail(field, "trigger \(id) belongs to app \(named.appID), not to app \(app)")
                }
            }
        }
        if onlyChanged.1, let id = scriptFilter {
            try checkScript(id, app: app, field: "dead_letter.script_id_filter", fail: fail)
        }
    }

    // MARK: - Applying

    /// Applies a record that passed ``check(_:)``. Returns the triggers removed at this
    /// position (directly or by cascade), in registration order.
    @discardableResult
    public mutating func apply(_ record: Record, at position: UInt64) -> [Trigger] {
        let ts = record.ts
        switch record.body {
        case .adminUserCreated(let id, let email):
            usedIDs.insert(id)
            adminUsers[id] = AdminUser(id: id, email: email, createdPosition: position, createdTs: ts)
            return []
        case .adminUserDeleted(let id):
            adminUsers[id] = nil
            return removeTriggers(where: { $0.registeredBy == id }, at: position, cause: "admin_user.deleted (cascade)")
        case .appCreated(let id, let name):
            usedIDs.insert(id)
            apps[id] = App(id: id, name: name, createdPosition: position, createdTs: ts)
            return []
        case .appDeleted(let id):
            apps[id] = nil
            for script in scripts.values where script.appID == id {
                scripts[script.id] = nil
            }
            return removeTriggers(where: { $0.appID == id }, at: position, cause: "app.deleted (cascade)")
        case .scriptRegistered(let script):
            usedIDs.insert(script.scriptID)
            scripts[script.scriptID] = Script(id: script.scriptID, appID: script.appID, name: script.name,
                                              runtime: script.runtime, source: script.source,
                                              createdPosition: position, createdTs: ts)
            return []
        case .scriptDeleted(let id):
            scripts[id] = nil
            return removeTriggers(where: { $0.scriptID == id }, at: position, cause: "script.deleted (cascade)")
        case .triggerRegistered(let r):
            usedIDs.insert(r.triggerID)
            triggers[r.triggerID] = Trigger(r, registeredPosition: position, ts: ts)
            bump(r.appID)
            return []
        case .triggerUpdated(let update):
            guard var trigger = triggers[update.triggerID] else { return [] }
            if let enabled = update.enabled { trigger.enabled = enabled }
            if let retry = update.retry { trigger.retry = retry.applied(to: trigger.retry) }
            if let patch = update.kv, var kv = trigger.kv {
                if let glob = patch.collectionGlob { kv.collectionGlob = glob }
                if let ops = patch.ops { kv.ops = ops }
                trigger.kv = kv
            }
            if let patch = update.deadLetter, var filters = trigger.deadLetter {
                filters.sourceFilter = patch.sourceFilter.applied(to: filters.sourceFilter)
                filters.triggerIDFilter = patch.triggerIDFilter.applied(to: filters.triggerIDFilter)
                filters.scriptIDFilter = patch.scriptIDFilter.applied(to: filters.scriptIDFilter)
                trigger.deadLetter = filters
            }
            trigger.updatedTs = ts
            trigger.updatedPosition = position
            triggers[trigger.id] = trigger
            bump(trigger.appID)
            return []
        case .triggerDeleted(let id):
            return removeTriggers(where: { $0.id == id }, at: position, cause: "trigger.deleted")
        case .kv, .deliveryAttempted, .deliveryRedriven, .deliveryCancelled, .deliveryInvoked:
            return []
        }
    }

    private mutating func removeTriggers(where predicate: (Trigger) -> Bool, at position: UInt64,
                                         cause: String) -> [Trigger] {
        let removed = triggers.values.filter(predicate).sorted { $0.registeredPosition < $1.registeredPosition }
        for trigger in removed {
            triggers[trigger.id] = nil
            removedTriggers.append(RemovedTrigger(trigger: trigger, deletedPosition: position, cause: cause))
            bump(trigger.appID)
        }
        return removed
    }

    private mutating func bump(_ app: HeraldID) {
        triggerGeneration.update(app, default: 0) { $0 &+= 1 }
        triggerChanges &+= 1
    }

    /// Changes whenever the app's triggers change: matchers rebuild lazily when it moves.
    public func generation(of app: HeraldID) -> UInt64 {
        triggerGeneration[app] ?? 0
    }
}

extension Registry {
    /// Rebuilds a registry from saved state (the projection), so a restart need not replay
    /// the log. `usedIDs` must hold every id ever created, deleted ones included.
    public init(apps: [App], adminUsers: [AdminUser], scripts: [Script], triggers: [Trigger], usedIDs: [HeraldID]) {
        self.init()
        for app in apps { self.apps[app.id] = app }
        for user in adminUsers { self.adminUsers[user.id] = user }
        for script in scripts { self.scripts[script.id] = script }
        for trigger in triggers { self.triggers[trigger.id] = trigger }
        self.usedIDs = Set(usedIDs)
    }

    /// The app `id`, if it exists.
    public func app(_ id: HeraldID) -> App? { apps[id] }
    /// The admin user `id`, if it exists.
    public func adminUser(_ id: HeraldID) -> AdminUser? { adminUsers[id] }
    /// The script `id`, if it exists.
    public func script(_ id: HeraldID) -> Script? { scripts[id] }
    /// The trigger `id`, if it exists (deleted ones are in ``removedTriggers``).
    public func trigger(_ id: HeraldID) -> Trigger? { triggers[id] }
    /// Every app, by id.
    public var allApps: [App] { apps.values.sorted { $0.id < $1.id } }
    /// Every admin user, by id.
    public var allAdminUsers: [AdminUser] { adminUsers.values.sorted { $0.id < $1.id } }
    /// Every script, by id.
    public var allScripts: [Script] { scripts.values.sorted { $0.id < $1.id } }

    /// Every id ever created, ascending (the engine snapshot's order).
    var usedIDsInOrder: [HeraldID] { usedIDs.sorted() }
}

extension Registry.Trigger {
    /// The trigger as a registration record describing its current state.
    public var registration: TriggerRegistration {
        TriggerRegistration(triggerID: id, appID: appID, scriptID: scriptID, kind: kind, enabled: enabled,
                            dispatchMode: dispatchMode, retry: retry, registeredBy: registeredBy, kv: kv,
                            deadLetter: deadLetter)
    }

    /// The trigger as a registration record would describe it.
    public init(_ r: TriggerRegistration, registeredPosition: UInt64, ts: Int64) {
        self.init(id: r.triggerID, appID: r.appID, scriptID: r.scriptID, kind: r.kind, enabled: r.enabled,
                  dispatchMode: r.dispatchMode, retry: r.retry, registeredBy: r.registeredBy,
                  kv: r.kind == .kv ? r.kv : nil,
                  deadLetter: r.kind == .deadLetter ? (r.deadLetter ?? DeadLetterDetails()) : nil,
                  registeredPosition: registeredPosition, createdTs: ts, updatedTs: ts,
                  updatedPosition: registeredPosition)
    }
}
