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
        }
    }

    @inline(__always)
    var bit: UInt32 { 1 << UInt32(rawValue) }

    /// UTF-8 names indexed by raw value.
    static let utf8Names: [[UInt8]] = JSONField.allCases.map { Array($0.jsonName.utf8) }

    /// The field named by `key` (raw UTF-8, escapes already resolved), if any.
    static func match(_ key: UnsafeBufferPointer<UInt8>) -> JSONField? {
        let names = utf8Names
        let count = key.count
        guard count > 0 else { return nil }
        let first = key[0]
        for (index, name) in names.enumerated() where name.count == count && name[0] == first {
            if name.withUnsafeBufferPointer({ $0.elementsEqual(key) }) { return JSONField(rawValue: index) }
        }
        return nil
    }

    /// The fields of each record type in DESIGN.md §2 table order (without `type` and `ts`),
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
        }
    }

    /// Allowed and required masks per type, indexed by `RecordType.rawValue`.
    static let masks: [(allowed: UInt32, required: UInt32)] = {
        var table = [(allowed: UInt32, required: UInt32)](repeating: (0, 0), count: 16)
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

    /// UTF-8 type names with their types.
    static let typeNames: [(name: [UInt8], type: RecordType)] = RecordType.allCases.map { (Array($0.name.utf8), $0) }

    static func recordType(_ name: UnsafeBufferPointer<UInt8>) -> RecordType? {
        for entry in typeNames where entry.name.count == name.count {
            if entry.name.withUnsafeBufferPointer({ $0.elementsEqual(name) }) { return entry.type }
        }
        return nil
    }
}
