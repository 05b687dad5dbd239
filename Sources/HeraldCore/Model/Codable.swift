/// `Codable` for the public models, in the spellings of the canonical JSON outputs
/// (docs/SEMANTICS.md §4): ids as their canonical text, a delivery id as `P:TRIGGER_ID`, enums
/// by their wire names, snake_case keys. Decoding checks what parsing checks and names the
/// field (the coding path) when it refuses.

/// A single text value, parsed by `parse`; refused as not `expected`, naming the coding path.
func decodeText<T>(from decoder: any Decoder, expected: @autoclosure () -> String, _ parse: (String) -> T?) throws -> T {
    let container = try decoder.singleValueContainer()
    let text = try container.decode(String.self)
    guard let value = parse(text) else {
        throw DecodingError.dataCorruptedError(in: container, debugDescription: "\"\(text)\" is not \(expected())")
    }
    return value
}

func encodeText(_ text: String, to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(text)
}

extension WireNamed {
    public func encode(to encoder: any Encoder) throws {
        try encodeText(wireName, to: encoder)
    }

    public init(from decoder: any Decoder) throws {
        self = try decodeText(from: decoder, expected: "one of " + Self.wireCases.map(\.wireName).joined(separator: ", "),
                              Self.init(name:))
    }
}

extension DeliveryStatus: Codable {}
extension KVOp: Codable {}
extension Backoff: Codable {}
extension TriggerKind: Codable {}
extension SourceKind: Codable {}
extension DispatchMode: Codable {}
extension AttemptOutcome: Codable {}
extension RecordType: Codable {}

/// A value coded as its text (`description`), parsed back with `init?(_:)`.
protocol CodableAsText: Codable, CustomStringConvertible {
    init?(_ text: String)
    /// What the text must be, for the refusal.
    static var expectedText: String { get }
}

extension CodableAsText {
    public func encode(to encoder: any Encoder) throws {
        try encodeText(description, to: encoder)
    }

    public init(from decoder: any Decoder) throws {
        self = try decodeText(from: decoder, expected: Self.expectedText, Self.init)
    }
}

extension HeraldID: CodableAsText {
    static var expectedText: String { "a canonical 8-4-4-4-12 id" }
}

extension DeliveryID: CodableAsText {
    static var expectedText: String { "a delivery id P:TRIGGER_ID" }
}

extension RetryConfig: Codable {
    enum CodingKeys: String, CodingKey {
        case maxAttempts = "max_attempts", backoff, baseMs = "base_ms"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(maxAttempts, forKey: .maxAttempts)
        try container.encode(backoff, forKey: .backoff)
        try container.encode(baseMs, forKey: .baseMs)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let maxAttempts = try container.decode(Int64.self, forKey: .maxAttempts)
        let baseMs = try container.decode(Int64.self, forKey: .baseMs)
        guard (1...100).contains(maxAttempts) else {
            throw DecodingError.dataCorruptedError(forKey: .maxAttempts, in: container, debugDescription: "\(maxAttempts) is not in 1…100")
        }
        guard (0...86_400_000).contains(baseMs) else {
            throw DecodingError.dataCorruptedError(forKey: .baseMs, in: container, debugDescription: "\(baseMs) is not in 0…86400000")
        }
        self.init(maxAttempts: maxAttempts, backoff: try container.decode(Backoff.self, forKey: .backoff), baseMs: baseMs)
    }
}

/// The canonical delivery line's fields (`herald deliveries --format jsonl`), plus `retry`,
/// `trigger_rank` and `budget_base`, which the line leaves out and a decoded delivery needs.
extension Delivery: Codable {
    enum CodingKeys: String, CodingKey {
        case sourcePosition = "source_position", triggerID = "trigger_id", appID = "app_id", scriptID = "script_id"
        case sourceKind = "source_kind", depth, status, attempts, dueAt = "due_at", lastError = "last_error"
        case finishedAt = "finished_at", retry, triggerRank = "trigger_rank", budgetBase = "budget_base"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id.sourcePosition, forKey: .sourcePosition)
        try container.encode(id.triggerID, forKey: .triggerID)
        try container.encode(appID, forKey: .appID)
        try container.encode(scriptID, forKey: .scriptID)
        try container.encode(sourceKind, forKey: .sourceKind)
        try container.encode(depth, forKey: .depth)
        try container.encode(status, forKey: .status)
        try container.encode(attempts, forKey: .attempts)
        try container.encode(dueAt, forKey: .dueAt)
        try container.encode(lastError, forKey: .lastError)
        try container.encode(finishedAt, forKey: .finishedAt)
        try container.encode(retry, forKey: .retry)
        try container.encode(triggerRank, forKey: .triggerRank)
        try container.encode(budgetBase, forKey: .budgetBase)
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let status = try c.decode(DeliveryStatus.self, forKey: .status)
        let dueAt = try c.decodeIfPresent(Int64.self, forKey: .dueAt)
        let finishedAt = try c.decodeIfPresent(UInt64.self, forKey: .finishedAt)
        guard (status == .pending) == (dueAt != nil), (status == .pending) == (finishedAt == nil) else {
            throw DecodingError.dataCorruptedError(forKey: .status, in: c,
                                                   debugDescription: "a \(status) delivery with due_at \(dueAt.map(String.init) ?? "null") and finished_at \(finishedAt.map(String.init) ?? "null")")
        }
        self.init(id: DeliveryID(sourcePosition: try c.decode(UInt64.self, forKey: .sourcePosition),
                                 triggerID: try c.decode(HeraldID.self, forKey: .triggerID)),
                  appID: try c.decode(HeraldID.self, forKey: .appID), scriptID: try c.decode(HeraldID.self, forKey: .scriptID),
                  sourceKind: try c.decode(SourceKind.self, forKey: .sourceKind), depth: try c.decode(Int64.self, forKey: .depth),
                  retry: try c.decode(RetryConfig.self, forKey: .retry), triggerRank: try c.decode(UInt64.self, forKey: .triggerRank),
                  status: status, attempts: try c.decode(Int64.self, forKey: .attempts), dueAt: dueAt,
                  lastError: try c.decodeIfPresent(String.self, forKey: .lastError), finishedAt: finishedAt,
                  budgetBase: try c.decodeIfPresent(Int64.self, forKey: .budgetBase) ?? 0)
    }
}

extension DeliveryCounts: Codable {
    enum CodingKeys: String, CodingKey { case pending, succeeded, dead, cancelled }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(pending, forKey: .pending)
        try container.encode(succeeded, forKey: .succeeded)
        try container.encode(dead, forKey: .dead)
        try container.encode(cancelled, forKey: .cancelled)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(pending: try container.decode(Int64.self, forKey: .pending),
                  succeeded: try container.decode(Int64.self, forKey: .succeeded),
                  dead: try container.decode(Int64.self, forKey: .dead),
                  cancelled: try container.decode(Int64.self, forKey: .cancelled))
    }
}
