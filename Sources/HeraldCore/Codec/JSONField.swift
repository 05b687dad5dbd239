/// Every top-level field of the JSON Lines form, in one enum so one line can be scanned
/// before its type is known (internal to the codecs).
enum JSONField: Int, CaseIterable {
    case type, ts
    case adminUserID, email
    case appID, name
    case scriptID, runtime, source
    case triggerID, kind, enabled, dispatchMode, retry, registeredBy, kv, deadLetter
    case collection, key, value
    case sourcePosition, attempt, outcome, error, retryable, durationMs
    case deliveries, by, reason, payload

    var jsonName: String {
        switch self {
        case .type: "type"
        case .ts: "ts"
        case .adminUserID: "admin_user_id"
        case .email: "email"
        case .appID: "app_id"
        case .name: "name"
        case .scriptID: "script_id"
        case .runtime: "runtime"
        case .source: "source"
        case .triggerID: "trigger_id"
        case .kind: "kind"
        case .enabled: "enabled"
        case .dispatchMode: "dispatch_mode"
        case .retry: "retry"
        case .registeredBy: "registered_by"
        case .kv: "kv"
        case .deadLetter: "dead_letter"
        case .collection: "collection"
        case .key: "key"
        case .value: "value"
        case .sourcePosition: "source_position"
        case .attempt: "attempt"
        case .outcome: "outcome"
        case .error: "error"
        case .retryable: "retryable"
        case .durationMs: "duration_ms"
        case .deliveries: "deliveries"
        case .by: "by"
        case .reason: "reason"
        case .payload: "payload"
        }
    }

    /// The number of fields (`allCases.count` without building the array).
    static let count = JSONField.payload.rawValue + 1

    @inline(__always)
    var bit: UInt32 { 1 << UInt32(rawValue) }

    /// The field named by `key` (raw UTF-8, escapes already resolved), if any.
    @inline(__always)
    static func match(_ key: UnsafeBufferPointer<UInt8>) -> JSONField? {
        byName.lookup(key)
    }

    private static let byName = WireNameTable(allCases.map { ($0.jsonName, $0) })

    /// The fields of each record type in docs/SEMANTICS.md §2.3 table order (without `type` and `ts`),
    /// each with whether it is required.
    static func layout(of type: RecordType) -> [(field: JSONField, required: Bool)] {
        switch type {
        case .adminUserCreated: [(.adminUserID, true), (.email, true)]
        case .adminUserDeleted: [(.adminUserID, true)]
        case .appCreated: [(.appID, true), (.name, true)]
        case .appDeleted: [(.appID, true)]
        case .scriptRegistered: [(.scriptID, true), (.appID, true), (.name, true), (.runtime, true), (.source, true)]
        case .scriptDeleted: [(.scriptID, true)]
        case .triggerRegistered:
            [(.triggerID, true), (.appID, true), (.scriptID, true), (.kind, true), (.enabled, false),
             (.dispatchMode, false), (.retry, false), (.registeredBy, true), (.kv, false), (.deadLetter, false)]
        case .triggerUpdated: [(.triggerID, true), (.enabled, false), (.retry, false), (.kv, false), (.deadLetter, false)]
        case .triggerDeleted: [(.triggerID, true)]
        case .kvInsert, .kvUpdate: [(.appID, true), (.collection, true), (.key, true), (.value, true)]
        // A value is parsed so that RecordRules can say exactly why it is wrong.
        case .kvDelete: [(.appID, true), (.collection, true), (.key, true), (.value, false)]
        case .deliveryAttempted:
            [(.sourcePosition, true), (.triggerID, true), (.attempt, true), (.outcome, true), (.error, false),
             (.retryable, false), (.durationMs, true)]
        case .deliveryRedriven, .deliveryCancelled: [(.deliveries, true), (.by, true), (.reason, false)]
        case .deliveryInvoked: [(.triggerID, true), (.by, true), (.payload, true)]
        }
    }

    /// Allowed and required masks per type, indexed by `RecordType.rawValue`.
    static let masks: [(allowed: UInt32, required: UInt32)] = {
        var table = [(allowed: UInt32, required: UInt32)](repeating: (0, 0), count: Int(UInt8.max) + 1)
        for type in RecordType.allCases {
            var allowed = JSONField.type.bit | JSONField.ts.bit
            var required = JSONField.type.bit
            for (field, isRequired) in layout(of: type) {
                allowed |= field.bit
                if isRequired { required |= field.bit }
            }
            table[Int(type.rawValue)] = (allowed, required)
        }
        return table
    }()

    /// The record type named by `name` (raw UTF-8), if any.
    @inline(__always)
    static func recordType(_ name: UnsafeBufferPointer<UInt8>) -> RecordType? {
        recordTypes.lookup(name)
    }

    private static let recordTypes = WireNameTable(RecordType.wireCases.map { ($0.wireName, $0) })
}

/// Parses a canonical 8-4-4-4-12 UUID in either case; the same language as
/// `HeraldID(utf8:)`, unrolled for the decoder's hot path.
@inline(__always)
func parseHeraldID(_ bytes: UnsafeBufferPointer<UInt8>) -> HeraldID? {
    guard bytes.count == 36, bytes[8] == 0x2D, bytes[13] == 0x2D, bytes[18] == 0x2D, bytes[23] == 0x2D else {
        return nil
    }
    var valid = true
    @inline(__always) func nibble(_ byte: UInt8) -> UInt64 {
        let digit = byte &- 0x30
        if digit < 10 { return UInt64(digit) }
        let letter = (byte | 0x20) &- 0x61
        if letter < 6 { return UInt64(letter) &+ 10 }
        valid = false
        return 0
    }
    var high: UInt64 = 0
    var low: UInt64 = 0
    for index in 0..<8 { high = high << 4 | nibble(bytes[index]) }
    for index in 9..<13 { high = high << 4 | nibble(bytes[index]) }
    for index in 14..<18 { high = high << 4 | nibble(bytes[index]) }
    for index in 19..<23 { low = low << 4 | nibble(bytes[index]) }
    for index in 24..<36 { low = low << 4 | nibble(bytes[index]) }
    return valid ? HeraldID(high: high, low: low) : nil
}
