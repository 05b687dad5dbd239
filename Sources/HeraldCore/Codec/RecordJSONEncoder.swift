/// Writes a record as one compact JSON Lines object (`herald dump`): `type`, `ts`, then the
/// fields in DESIGN.md §2 table order with the defaults filled in.
///
/// - `trigger.registered` always writes `enabled`, `dispatch_mode`, the full `retry` and, for
///   `dead_letter`, all three filters (`null` when unset).
/// - `trigger.updated` writes only the fields it carries; inside a patch only the set fields
///   (a filter set to nil as `null`).
/// - `delivery.attempted` writes `error` only when it is non-nil, and always `retryable`.
/// - A KV `value` is written as its stored JSON text.
///
/// For every record `r` that passes ``RecordRules``, `RecordJSONDecoder().decode(line:
/// encode(r))` gives back `r.ts` and `r.body`.
///
/// ```swift
/// let line = RecordJSONEncoder().encode(Record(ts: 5, body: .appDeleted(appID: app)))
/// // {"type":"app.deleted","ts":5,"app_id":"3f2504e0-4f89-11d3-9a0c-0305e82c3301"}
/// ```
public struct RecordJSONEncoder: Sendable {
    /// Creates an encoder.
    public init() {}

    /// The record as one line of JSON, without a line break.
    public func encode(_ record: Record) -> [UInt8] {
        var out = JSONOutput()
        append(record, to: &out)
        return out.bytes
    }

    /// Appends the record as one JSON object to `out` (no line break; call
    /// ``JSONOutput/newline()`` between records).
    public func append(_ record: Record, to out: inout JSONOutput) {
        out.beginObject()
        out.key("type")
        out.string(record.body.type.name)
        out.key("ts")
        out.int(record.ts)
        switch record.body {
        case .adminUserCreated(let adminUserID, let email):
            out.key("admin_user_id"); out.id(adminUserID)
            out.key("email"); out.string(email)
        case .adminUserDeleted(let adminUserID):
            out.key("admin_user_id"); out.id(adminUserID)
        case .appCreated(let appID, let name):
            out.key("app_id"); out.id(appID)
            out.key("name"); out.string(name)
        case .appDeleted(let appID):
            out.key("app_id"); out.id(appID)
        case .scriptRegistered(let script):
            out.key("script_id"); out.id(script.scriptID)
            out.key("app_id"); out.id(script.appID)
            out.key("name"); out.string(script.name)
            out.key("runtime"); out.string(script.runtime)
            out.key("source"); out.string(script.source)
        case .scriptDeleted(let scriptID):
            out.key("script_id"); out.id(scriptID)
        case .triggerRegistered(let trigger):
            out.key("trigger_id"); out.id(trigger.triggerID)
            out.key("app_id"); out.id(trigger.appID)
            out.key("script_id"); out.id(trigger.scriptID)
            out.key("kind"); out.string(trigger.kind.description)
            out.key("enabled"); out.bool(trigger.enabled)
            out.key("dispatch_mode"); out.string(trigger.dispatchMode.description)
            out.key("retry")
            out.beginObject()
            out.key("max_attempts"); out.int(trigger.retry.maxAttempts)
            out.key("backoff"); out.string(trigger.retry.backoff.description)
            out.key("base_ms"); out.int(trigger.retry.baseMs)
            out.endObject()
            out.key("registered_by"); out.id(trigger.registeredBy)
            if let kv = trigger.kv {
                out.key("kv")
                out.beginObject()
                out.key("collection_glob"); out.string(kv.collectionGlob)
                out.key("ops"); Self.appendOps(kv.ops, to: &out)
                out.endObject()
            }
            if let deadLetter = trigger.deadLetter {
                out.key("dead_letter")
                out.beginObject()
                out.key("source_filter"); out.string(deadLetter.sourceFilter?.description)
                out.key("trigger_id_filter"); out.id(deadLetter.triggerIDFilter)
                out.key("script_id_filter"); out.id(deadLetter.scriptIDFilter)
                out.endObject()
            }
        case .triggerUpdated(let update):
            out.key("trigger_id"); out.id(update.triggerID)
            if let enabled = update.enabled { out.key("enabled"); out.bool(enabled) }
            if let retry = update.retry {
                out.key("retry")
                out.beginObject()
                if let maxAttempts = retry.maxAttempts { out.key("max_attempts"); out.int(maxAttempts) }
                if let backoff = retry.backoff { out.key("backoff"); out.string(backoff.description) }
                if let baseMs = retry.baseMs { out.key("base_ms"); out.int(baseMs) }
                out.endObject()
            }
            if let kv = update.kv {
                out.key("kv")
                out.beginObject()
                if let glob = kv.collectionGlob { out.key("collection_glob"); out.string(glob) }
                if let ops = kv.ops { out.key("ops"); Self.appendOps(ops, to: &out) }
                out.endObject()
            }
            if let deadLetter = update.deadLetter {
                out.key("dead_letter")
                out.beginObject()
                if case .set(let source) = deadLetter.sourceFilter {
                    out.key("source_filter"); out.string(source?.description)
                }
                if case .set(let trigger) = deadLetter.triggerIDFilter {
                    out.key("trigger_id_filter"); out.id(trigger)
                }
                if case .set(let script) = deadLetter.scriptIDFilter {
                    out.key("script_id_filter"); out.id(script)
                }
                out.endObject()
            }
        case .triggerDeleted(let triggerID):
            out.key("trigger_id"); out.id(triggerID)
        case .kv(let mutation):
            out.key("app_id"); out.id(mutation.appID)
            out.key("collection"); out.string(mutation.collection)
            out.key("key"); out.string(mutation.key)
            if let value = mutation.value { out.key("value"); out.raw(value) }
        case .deliveryAttempted(let attempt):
            out.key("source_position"); out.uint(attempt.sourcePosition)
            out.key("trigger_id"); out.id(attempt.triggerID)
            out.key("attempt"); out.int(attempt.attempt)
            out.key("outcome"); out.string(attempt.outcome.description)
            if let error = attempt.error { out.key("error"); out.string(error) }
            out.key("retryable"); out.bool(attempt.retryable)
            out.key("duration_ms"); out.int(attempt.durationMs)
        }
        out.endObject()
    }

    private static func appendOps(_ ops: OpSet, to out: inout JSONOutput) {
        out.beginArray()
        if ops.contains(.insert) { out.string("insert") }
        if ops.contains(.update) { out.string("update") }
        if ops.contains(.delete) { out.string("delete") }
        out.endArray()
    }
}
