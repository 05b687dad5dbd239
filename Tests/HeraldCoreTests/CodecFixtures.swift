import HeraldCore

/// Ids, lines and a seeded generator shared by the codec tests.
enum CodecFixtures {
    static let app = id("a0000000-0000-4000-8000-000000000001")
    static let app2 = id("a0000000-0000-4000-8000-000000000002")
    static let admin = id("ad000000-0000-4000-8000-000000000001")
    static let script = id("5c000000-0000-4000-8000-000000000001")
    static let trigger = id("70000000-0000-4000-8000-000000000001")
    static let trigger2 = id("70000000-0000-4000-8000-000000000002")

    static func id(_ text: String) -> HeraldID {
        guard let parsed = HeraldID(text) else { preconditionFailure("bad fixture id \(text)") }
        return parsed
    }

    /// The canonical text of an id.
    static func s(_ id: HeraldID) -> String { id.description }
}

/// SplitMix64: small, fast and the same on every platform, so a printed seed replays exactly.
struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Random valid records (they pass RecordRules), covering every type, every optional part and
/// strings that need escaping.
struct RecordGenerator {
    var rng: SeededGenerator

    init(seed: UInt64) { rng = SeededGenerator(seed: seed) }

    mutating func int(_ range: ClosedRange<Int64>) -> Int64 { Int64.random(in: range, using: &rng) }
    mutating func bool() -> Bool { Bool.random(using: &rng) }
    mutating func id() -> HeraldID { HeraldID(high: rng.next(), low: rng.next()) }
    mutating func optionalID() -> HeraldID? { bool() ? id() : nil }

    /// Strings with ASCII, escapes, control characters and multi-byte scalars.
    mutating func string(nonEmpty: Bool = false, noStar: Bool = true) -> String {
        let pieces = ["a", "users", ":", "/", "\"", "\\", "\n", "\t", "\u{0}", "\u{1F}", "é", "€", "😀", "x y", "\u{7F}", "*"]
        let count = Int.random(in: (nonEmpty ? 1 : 0)...6, using: &rng)
        var result = ""
        for _ in 0..<count {
            var piece = pieces[Int.random(in: 0..<pieces.count, using: &rng)]
            if noStar && piece == "*" { piece = "s" }
            result += piece
        }
        if nonEmpty && result.isEmpty { result = "k" }
        return result
    }

    mutating func glob() -> String {
        switch int(0...2) {
        case 0: "*"
        case 1: string(nonEmpty: true)
        default: string(nonEmpty: true) + "*"
        }
    }

    mutating func ops() -> OpSet { OpSet(rawValue: UInt8(int(0...7))) }

    mutating func jsonValue(depth: Int = 0) -> String {
        switch int(depth > 3 ? 0...4 : 0...6) {
        case 0: return "null"
        case 1: return bool() ? "true" : "false"
        case 2: return String(int(-1_000_000...1_000_000))
        case 3: return "-12.5e+3"
        case 4:
            var out = JSONOutput()
            out.string(string())
            return out.text
        case 5:
            let count = Int(int(0...3))
            var parts: [String] = []
            for _ in 0..<count { parts.append(jsonValue(depth: depth + 1)) }
            return "[" + parts.joined(separator: ", ") + "]"
        default:
            let count = Int(int(0...3))
            var parts: [String] = []
            for index in 0..<count {
                var key = JSONOutput()
                key.string("k\(index)" + string())
                parts.append(key.text + ":" + jsonValue(depth: depth + 1))
            }
            return "{" + parts.joined(separator: ",") + "}"
        }
    }

    mutating func retry() -> RetryConfig {
        RetryConfig(maxAttempts: int(1...100), backoff: Backoff.allCases[Int(int(0...2))], baseMs: int(0...86_400_000))
    }

    mutating func sourceKind() -> SourceKind? { bool() ? SourceKind.allCases[Int(int(0...3))] : nil }

    mutating func body() -> RecordBody {
        switch int(0...15) {
        case 0: return .adminUserCreated(adminUserID: id(), email: string())
        case 1: return .adminUserDeleted(adminUserID: id())
        case 2: return .appCreated(appID: id(), name: string())
        case 3: return .appDeleted(appID: id())
        case 4:
            return .scriptRegistered(ScriptRegistration(scriptID: id(), appID: id(), name: string(),
                                                        runtime: string(), source: string()))
        case 5: return .scriptDeleted(scriptID: id())
        case 6:
            let isKV = bool()
            return .triggerRegistered(TriggerRegistration(
                triggerID: id(), appID: id(), scriptID: id(), kind: isKV ? .kv : .deadLetter, enabled: bool(),
                dispatchMode: .async, retry: retry(), registeredBy: id(),
                kv: isKV ? KVDetails(collectionGlob: glob(), ops: ops()) : nil,
                deadLetter: isKV ? nil : DeadLetterDetails(sourceFilter: sourceKind(), triggerIDFilter: optionalID(),
                                                           scriptIDFilter: optionalID())))
        case 7:
            var update = TriggerUpdate(triggerID: id())
            if bool() { update.enabled = bool() }
            if bool() {
                update.retry = RetryPatch(maxAttempts: bool() ? int(1...100) : nil,
                                          backoff: bool() ? Backoff.allCases[Int(int(0...2))] : nil,
                                          baseMs: bool() ? int(0...86_400_000) : nil)
            }
            if bool() {
                update.kv = KVPatch(collectionGlob: bool() ? glob() : nil, ops: bool() ? ops() : nil)
            } else if bool() {
                var patch = DeadLetterPatch()
                if bool() { patch.sourceFilter = .set(sourceKind()) }
                if bool() { patch.triggerIDFilter = .set(optionalID()) }
                if bool() { patch.scriptIDFilter = .set(optionalID()) }
                update.deadLetter = patch
            }
            return .triggerUpdated(update)
        case 8: return .triggerDeleted(triggerID: id())
        case 9, 10, 11:
            let op = KVOp.allCases[Int(int(0...2))]
            return .kv(KVMutation(op: op, appID: id(), collection: string(nonEmpty: true), key: string(nonEmpty: true, noStar: false),
                                  value: op == .delete ? nil : JSONText(jsonValue())))
        case 13, 14:
            // Positions of every size (varint lengths), no duplicates (a stateless rule).
            var ids: [DeliveryID] = []
            for _ in 0..<Int(int(1...5)) {
                let id = DeliveryID(sourcePosition: bool() ? UInt64(int(0...300)) : rng.next(), triggerID: id())
                if !ids.contains(id) { ids.append(id) }
            }
            let action = OperatorAction(deliveries: ids, by: id(), reason: bool() ? string() : nil)
            return int(0...1) == 0 ? .deliveryRedriven(action) : .deliveryCancelled(action)
        case 15:
            return .deliveryInvoked(ManualInvocation(triggerID: id(), by: id(), payload: JSONText(jsonValue())))
        default:
            let ok = bool()
            return .deliveryAttempted(DeliveryAttempt(
                sourcePosition: rng.next(), triggerID: id(), attempt: int(1...Int64.max), outcome: ok ? .ok : .error,
                error: ok ? nil : string(), retryable: bool(), durationMs: int(0...Int64.max)))
        }
    }

    mutating func record() -> Record { Record(ts: int(0...Record.tsMax), body: body()) }
}
