import HeraldCore
import HeraldLog

/// Generates random *valid* logs (docs/SEMANTICS.md): every record is checked against the
/// dispatcher built by the records before it, so attempts name real pending deliveries at or
/// after their due time, redrives name dead or cancelled ones, cancels pending ones. Every
/// record type appears, the operator actions of §8 included; the same seed gives the same
/// records on every machine (`herald random-log` prints them as JSON Lines).
///
/// ```swift
/// var generator = RandomLog(seed: 7)
/// let records = generator.generate(records: 2_000)   // [Record], each with its ts
/// ```
public struct RandomLog: Sendable {
    var random: SplitMix64
    /// The state after the records generated so far.
    public private(set) var state = Dispatcher()
    /// The records generated so far.
    public private(set) var records: [Record] = []
    var ts: Int64 = 1_000
    var nextID: UInt64 = 1

    public init(seed: UInt64) {
        random = SplitMix64(seed: seed)
    }

    /// A new id: readable in failure messages (`00000000-0000-4000-8000-00000000000N`).
    mutating func fresh() -> HeraldID {
        nextID += 1
        return HeraldID(high: 0x0000_0000_0000_4000, low: 0x8000_0000_0000_0000 | nextID)
    }

    /// Appends `body` if valid; returns whether it was.
    @discardableResult
    mutating func offer(_ body: RecordBody, ts: Int64? = nil) -> Bool {
        let record = Record(ts: ts ?? self.ts, body: body)
        do {
            _ = try state.apply(record)
            records.append(record)
            self.ts = max(self.ts, record.ts)
            return true
        } catch {
            return false
        }
    }

    mutating func pick<T>(_ items: [T]) -> T? {
        items.isEmpty ? nil : items[Int.random(in: 0..<items.count, using: &random)]
    }

    /// Generates `count` more attempts at a record (each one that breaks a rule is dropped, so
    /// a few fewer records may come) and returns every record so far.
    public mutating func generate(records count: Int) -> [Record] {
        let globs = ["*", "u:*", "u:1", "o", "o*", "x"]
        let collections = ["u:1", "u:2", "o", "oo", "x"]
        for _ in 0..<count {
            ts += Int64.random(in: 0...300, using: &random)
            let registry = state.registry
            let apps = registry.apps.keys.sorted()
            let admins = registry.adminUsers.keys.sorted()
            let scripts = registry.scripts.values.sorted { $0.id < $1.id }
            let triggers = registry.triggers.values.sorted { $0.registeredPosition < $1.registeredPosition }
            let pending = state.pendingInOrder
            switch Int.random(in: 0..<100, using: &random) {
            case 0..<4: offer(.adminUserCreated(adminUserID: fresh(), email: "a@example.com"))
            case 4..<8: offer(.appCreated(appID: fresh(), name: "app"))
            case 8..<14:
                if let app = pick(apps) {
                    offer(.scriptRegistered(ScriptRegistration(scriptID: fresh(), appID: app, name: "s", runtime: "r", source: "")))
                }
            case 14..<26:
                guard let script = pick(scripts), let admin = pick(admins) else { break }
                let kind: TriggerKind = Bool.random(using: &random) ? .kv : .deadLetter
                let retry = RetryConfig(maxAttempts: Int64.random(in: 1...4, using: &random),
                                        backoff: pick(Backoff.allCases) ?? .constant,
                                        baseMs: pick([0, 5, 100, 2_000_000]) ?? 0)
                let sameApp = triggers.filter { $0.appID == script.appID }
                let dl = DeadLetterDetails(sourceFilter: pick([nil, .kv, .deadLetter, .http]) ?? nil,
                                           triggerIDFilter: Int.random(in: 0..<3, using: &random) == 0 ? pick(sameApp)?.id : nil,
                                           scriptIDFilter: Int.random(in: 0..<4, using: &random) == 0 ? script.id : nil)
                offer(.triggerRegistered(TriggerRegistration(
                    triggerID: fresh(), appID: script.appID, scriptID: script.id, kind: kind,
                    enabled: Int.random(in: 0..<6, using: &random) != 0, retry: retry, registeredBy: admin,
                    kv: kind == .kv ? KVDetails(collectionGlob: pick(globs) ?? "*", ops: OpSet(rawValue: UInt8.random(in: 0...7, using: &random))) : nil,
                    deadLetter: kind == .deadLetter ? dl : nil)))
            case 26..<30:
                if let trigger = pick(triggers) {
                    offer(.triggerUpdated(TriggerUpdate(
                        triggerID: trigger.id, enabled: Bool.random(using: &random),
                        retry: Bool.random(using: &random) ? RetryPatch(maxAttempts: Int64.random(in: 1...5, using: &random)) : nil)))
                }
            case 30..<32:
                if let trigger = pick(triggers) { offer(.triggerDeleted(triggerID: trigger.id)) }
            case 32:
                if let script = pick(scripts) { offer(.scriptDeleted(scriptID: script.id)) }
            case 33:
                if Int.random(in: 0..<3, using: &random) == 0, let admin = pick(admins) { offer(.adminUserDeleted(adminUserID: admin)) }
            case 34:
                if Int.random(in: 0..<4, using: &random) == 0, let app = pick(apps) { offer(.appDeleted(appID: app)) }
            case 35..<65:
                guard let app = pick(apps) else { break }
                let op = pick(KVOp.allCases) ?? .insert
                offer(.kv(KVMutation(op: op, appID: app, collection: pick(collections) ?? "x", key: "k",
                                     value: op == .delete ? nil : "[1,\"\\u00e9\"]")))
            case 65..<68:
                // docs/SEMANTICS.md §8: redrive dead or cancelled deliveries, cancel pending ones.
                guard let admin = pick(admins) else { break }
                let redrivable = state.redrivable.keys.sorted()
                if Int.random(in: 0..<4, using: &random) != 0, !redrivable.isEmpty {
                    var ids: [DeliveryID] = []
                    for _ in 0..<Int.random(in: 1...3, using: &random) {
                        if let id = pick(redrivable), !ids.contains(id) { ids.append(id) }
                    }
                    offer(.deliveryRedriven(OperatorAction(deliveries: ids, by: admin, reason: pick([nil, "fixed"]) ?? nil)))
                } else if let delivery = pick(pending) {
                    offer(.deliveryCancelled(OperatorAction(deliveries: [delivery.id], by: admin)))
                }
            case 68:
                guard let trigger = pick(triggers), let admin = pick(admins) else { break }
                offer(.deliveryInvoked(ManualInvocation(triggerID: trigger.id, by: admin, payload: #"{"n":1}"#)))
            default:
                guard let delivery = pick(pending), let due = delivery.dueAt else { break }
                let outcome: AttemptOutcome = Int.random(in: 0..<3, using: &random) == 0 ? .ok : .error
                offer(.deliveryAttempted(DeliveryAttempt(
                    sourcePosition: delivery.id.sourcePosition, triggerID: delivery.id.triggerID,
                    attempt: delivery.attempts + 1, outcome: outcome, error: outcome == .error ? "e\(records.count)" : nil,
                    retryable: Int.random(in: 0..<8, using: &random) != 0, durationMs: 3)), ts: max(ts, due))
            }
        }
        return records
    }
}
