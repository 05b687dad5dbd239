/// A record that breaks a rule of docs/SEMANTICS.md §2: where (JSONL line or log position, record
/// type, field) and why.
///
/// ```swift
/// // line 12: trigger.registered: field 'script_id': script 3f… belongs to app 9a…, not to app 41…
/// ```
public struct RecordError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Where the record came from: `"line 12"`, `"position 40"`, or empty when unknown.
    public var location: String
    /// The record's type, when known (`"trigger.registered"`).
    public var recordType: String?
    /// The field, as a JSON path (`"retry.max_attempts"`), when one field is at fault.
    public var field: String?
    /// Why, as a phrase a person can act on.
    public var reason: String

    public init(location: String = "", recordType: String? = nil, field: String? = nil, reason: String) {
        self.location = location
        self.recordType = recordType
        self.field = field
        self.reason = reason
    }

    /// The same error, placed at `location`.
    public func at(_ location: String) -> RecordError {
        var copy = self
        copy.location = location
        return copy
    }

    public var description: String {
        var parts: [String] = []
        if !location.isEmpty { parts.append(location) }
        if let recordType { parts.append(recordType) }
        if let field { parts.append("field '\(field)'") }
        parts.append(reason)
        return parts.joined(separator: ": ")
    }
}
