/// A KV operation.
public enum KVOp: UInt8, CaseIterable, Sendable, WireNamed {
    case insert = 0
    case update = 1
    case delete = 2

    public var wireName: String {
        switch self {
        case .insert: "insert"
        case .update: "update"
        case .delete: "delete"
        }
    }
}

/// A set of KV operations; empty means "any op". Always listed in the order insert, update, delete.
public struct OpSet: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let insert = OpSet(rawValue: 1 << 0)
    public static let update = OpSet(rawValue: 1 << 1)
    public static let delete = OpSet(rawValue: 1 << 2)
    public static let all: OpSet = [.insert, .update, .delete]

    /// The set holding one op.
    public init(_ op: KVOp) { self.init(rawValue: 1 << op.rawValue) }

    /// The ops in canonical order.
    public var ops: [KVOp] { KVOp.allCases.filter { contains(OpSet($0)) } }

    /// True when a mutation with `op` passes this filter (empty = any).
    public func admits(_ op: KVOp) -> Bool { isEmpty || contains(OpSet(op)) }

    public var description: String { "[" + ops.map(\.description).joined(separator: ",") + "]" }
}

/// How the delay between attempts grows.
public enum Backoff: UInt8, CaseIterable, Sendable, WireNamed {
    case exponential = 0
    case linear = 1
    case constant = 2

    public var wireName: String {
        switch self {
        case .exponential: "exponential"
        case .linear: "linear"
        case .constant: "constant"
        }
    }

    public init?(name: String) {
        guard let found = Backoff.allCases.first(where: { $0.description.utf8.elementsEqual(name.utf8) }) else {
            return nil
        }
        self = found
    }
}

/// A complete retry policy, as written into every `trigger.registered` record.
public struct RetryConfig: Equatable, Hashable, Sendable {
    /// 1…100.
    public var maxAttempts: Int64
    public var backoff: Backoff
    /// 0…86,400,000.
    public var baseMs: Int64

    public init(maxAttempts: Int64, backoff: Backoff, baseMs: Int64) {
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.baseMs = baseMs
    }

    /// The defaults when no HERALD_RETRY_* variable is set: 5 attempts, exponential, 1000 ms.
    public static let builtIn = RetryConfig(maxAttempts: 5, backoff: .exponential, baseMs: 1000)

    /// Largest delay between two attempts.
    public static let maxDelayMs: Int64 = 3_600_000
    public static let maxAttemptsRange: ClosedRange<Int64> = 1...100
    public static let baseMsRange: ClosedRange<Int64> = 0...86_400_000

    /// The delay after failed attempt `attempt` (1-based): constant base, linear base·k,
    /// exponential base·2^(k−1); capped at ``maxDelayMs``. Never overflows.
    public func delayMs(afterAttempt attempt: Int64) -> Int64 {
        let k = max(attempt, 1)
        let raw: Int64
        switch backoff {
        case .constant:
            raw = baseMs
        case .linear:
            let (product, overflow) = baseMs.multipliedReportingOverflow(by: k)
            raw = overflow ? Int64.max : product
        case .exponential:
            if baseMs == 0 {
                raw = 0
            } else if k - 1 >= 62 {
                raw = Int64.max
            } else {
                let (product, overflow) = baseMs.multipliedReportingOverflow(by: Int64(1) << (k - 1))
                raw = overflow ? Int64.max : product
            }
        }
        return min(raw, RetryConfig.maxDelayMs)
    }
}

/// A partial retry policy: fields left `nil` take a default (registration) or keep the
/// current value (update).
public struct RetryPatch: Equatable, Sendable {
    public var maxAttempts: Int64?
    public var backoff: Backoff?
    public var baseMs: Int64?

    public init(maxAttempts: Int64? = nil, backoff: Backoff? = nil, baseMs: Int64? = nil) {
        self.maxAttempts = maxAttempts
        self.backoff = backoff
        self.baseMs = baseMs
    }

    /// The policy with each missing field taken from `base`.
    public func applied(to base: RetryConfig) -> RetryConfig {
        RetryConfig(maxAttempts: maxAttempts ?? base.maxAttempts,
                    backoff: backoff ?? base.backoff,
                    baseMs: baseMs ?? base.baseMs)
    }
}

public enum TriggerKind: UInt8, Sendable, WireNamed {
    case kv = 0
    case deadLetter = 1

    public var wireName: String {
        switch self {
        case .kv: "kv"
        case .deadLetter: "dead_letter"
        }
    }
}

/// Where a delivery's event came from.
public enum SourceKind: UInt8, CaseIterable, Sendable, WireNamed {
    case kv = 0
    case deadLetter = 1
    case http = 2
    /// `delivery.invoked` (docs/SEMANTICS.md §8).
    case manual = 3

    public var wireName: String {
        switch self {
        case .kv: "kv"
        case .deadLetter: "dead_letter"
        case .http: "http"
        case .manual: "manual"
        }
    }

    public init?(name: String) {
        guard let found = SourceKind.allCases.first(where: { $0.description.utf8.elementsEqual(name.utf8) }) else {
            return nil
        }
        self = found
    }
}

/// `dispatch_mode`. Only `async` is accepted by validation; `sync` parses so that the
/// rejection can say exactly why.
public enum DispatchMode: UInt8, Sendable, WireNamed {
    case async = 0
    case sync = 1

    public var wireName: String { self == .async ? "async" : "sync" }
}

/// The KV filter of a trigger.
public struct KVDetails: Equatable, Hashable, Sendable {
    /// `*`, a literal, or a literal prefix ending in one `*`.
    public var collectionGlob: String
    public var ops: OpSet

    public init(collectionGlob: String, ops: OpSet) {
        self.collectionGlob = collectionGlob
        self.ops = ops
    }
}

/// The filters of a dead-letter trigger; `nil` = no filter on that dimension.
public struct DeadLetterDetails: Equatable, Hashable, Sendable {
    public var sourceFilter: SourceKind?
    public var triggerIDFilter: HeraldID?
    public var scriptIDFilter: HeraldID?

    public init(sourceFilter: SourceKind? = nil, triggerIDFilter: HeraldID? = nil, scriptIDFilter: HeraldID? = nil) {
        self.sourceFilter = sourceFilter
        self.triggerIDFilter = triggerIDFilter
        self.scriptIDFilter = scriptIDFilter
    }
}

/// `trigger.registered`, with retry defaults already resolved (they are written into the record).
public struct TriggerRegistration: Equatable, Sendable {
    public var triggerID: HeraldID
    public var appID: HeraldID
    public var scriptID: HeraldID
    public var kind: TriggerKind
    public var enabled: Bool
    public var dispatchMode: DispatchMode
    public var retry: RetryConfig
    public var registeredBy: HeraldID
    /// Present exactly when `kind == .kv` in a valid record.
    public var kv: KVDetails?
    /// Present exactly when `kind == .deadLetter` in a valid record.
    public var deadLetter: DeadLetterDetails?

    public init(triggerID: HeraldID, appID: HeraldID, scriptID: HeraldID, kind: TriggerKind,
                enabled: Bool = true, dispatchMode: DispatchMode = .async, retry: RetryConfig,
                registeredBy: HeraldID, kv: KVDetails? = nil, deadLetter: DeadLetterDetails? = nil) {
        self.triggerID = triggerID
        self.appID = appID
        self.scriptID = scriptID
        self.kind = kind
        self.enabled = enabled
        self.dispatchMode = dispatchMode
        self.retry = retry
        self.registeredBy = registeredBy
        self.kv = kv
        self.deadLetter = deadLetter
    }
}

/// A field of an update: left as it is, or set to a new value (which may itself be `nil`).
public enum FieldUpdate<Value: Equatable & Sendable>: Equatable, Sendable {
    case keep
    case set(Value)

    /// The new value, or `current` when kept.
    public func applied(to current: Value) -> Value {
        switch self {
        case .keep: current
        case .set(let value): value
        }
    }
}

/// `kv` inside `trigger.updated`: omitted fields keep their values.
public struct KVPatch: Equatable, Sendable {
    public var collectionGlob: String?
    public var ops: OpSet?

    public init(collectionGlob: String? = nil, ops: OpSet? = nil) {
        self.collectionGlob = collectionGlob
        self.ops = ops
    }
}

/// `dead_letter` inside `trigger.updated`: omitted filters keep their values, `null` clears one.
public struct DeadLetterPatch: Equatable, Sendable {
    public var sourceFilter: FieldUpdate<SourceKind?>
    public var triggerIDFilter: FieldUpdate<HeraldID?>
    public var scriptIDFilter: FieldUpdate<HeraldID?>

    public init(sourceFilter: FieldUpdate<SourceKind?> = .keep,
                triggerIDFilter: FieldUpdate<HeraldID?> = .keep,
                scriptIDFilter: FieldUpdate<HeraldID?> = .keep) {
        self.sourceFilter = sourceFilter
        self.triggerIDFilter = triggerIDFilter
        self.scriptIDFilter = scriptIDFilter
    }
}

/// `trigger.updated`, stored as given: only the fields it names change.
public struct TriggerUpdate: Equatable, Sendable {
    public var triggerID: HeraldID
    public var enabled: Bool?
    public var retry: RetryPatch?
    public var kv: KVPatch?
    public var deadLetter: DeadLetterPatch?

    public init(triggerID: HeraldID, enabled: Bool? = nil, retry: RetryPatch? = nil,
                kv: KVPatch? = nil, deadLetter: DeadLetterPatch? = nil) {
        self.triggerID = triggerID
        self.enabled = enabled
        self.retry = retry
        self.kv = kv
        self.deadLetter = deadLetter
    }
}
