/// Writes a record as one compact JSON Lines object (`herald dump`): `type`, `ts`, then the
/// fields in docs/SEMANTICS.md §2.3 table order with the defaults filled in.
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
        out.field("type")
        out.string(record.body.type.name)
        out.field("ts")
        out.int(record.ts)
        switch record.body {
        case .adminUserCreated(let adminUserID, let email):
            out.field("admin_user_id"); out.id(adminUserID)
            out.field("email"); out.string(email)
        case .adminUserDeleted(let adminUserID):
            out.field("admin_user_id"); out.id(adminUserID)
        case .appCreated(let appID, let name):
            out.field("app_id"); out.id(appID)
            out.field("name"); out.string(name)
        case .appDeleted(let appID):
            out.field("app_id"); out.id(appID)
        case .scriptRegistered(let script):
            out.field("script_id"); out.id(script.scriptID)
            out.field("app_id"); out.id(script.appID)
            out.field("name"); out.string(script.name)
            out.field("runtime"); out.string(script.runtime)
            out.field("source"); out.string(script.source)
        case .scriptDeleted(let scriptID):
            out.field("script_id"); out.id(scriptID)
        case .triggerRegistered(let trigger):
            Self.appendTriggerFields(trigger, to: &out)
        case .triggerUpdated(let update):
            out.field("trigger_id"); out.id(update.triggerID)
            if let enabled = update.enabled { out.field("enabled"); out.bool(enabled) }
            if let retry = update.retry {
                out.field("retry")
                out.beginObject()
                if let maxAttempts = retry.maxAttempts { out.field("max_attempts"); out.int(maxAttempts) }
                if let backoff = retry.backoff { out.field("backoff"); out.string(backoff.description) }
                if let baseMs = retry.baseMs { out.field("base_ms"); out.int(baseMs) }
                out.endObject()
            }
            if let kv = update.kv {
                out.field("kv")
                out.beginObject()
                if let glob = kv.collectionGlob { out.field("collection_glob"); out.string(glob) }
                if let ops = kv.ops { out.field("ops"); Self.appendOps(ops, to: &out) }
                out.endObject()
            }
            if let deadLetter = update.deadLetter {
                out.field("dead_letter")
                out.beginObject()
                if case .set(let source) = deadLetter.sourceFilter {
                    out.field("source_filter"); out.string(source?.description)
                }
                if case .set(let trigger) = deadLetter.triggerIDFilter {
                    out.field("trigger_id_filter"); out.id(trigger)
                }
                if case .set(let script) = deadLetter.scriptIDFilter {
                    out.field("script_id_filter"); out.id(script)
                }
                out.endObject()
            }
        case .triggerDeleted(let triggerID):
            out.field("trigger_id"); out.id(triggerID)
        case .kv(let mutation):
            out.field("app_id"); out.id(mutation.appID)
            out.field("collection"); out.string(mutation.collection)
            out.field("key"); out.string(mutation.key)
            if let value = mutation.value { out.field("value"); out.raw(value) }
        case .deliveryAttempted(let attempt):
            out.field("source_position"); out.uint(attempt.sourcePosition)
            out.field("trigger_id"); out.id(attempt.triggerID)
            out.field("attempt"); out.int(attempt.attempt)
            out.field("outcome"); out.string(attempt.outcome.description)
            if let error = attempt.error { out.field("error"); out.string(error) }
            out.field("retryable"); out.bool(attempt.retryable)
            out.field("duration_ms"); out.int(attempt.durationMs)
        case .deliveryRedriven(let action), .deliveryCancelled(let action):
            out.field("deliveries")
            out.beginArray()
            for id in action.deliveries { out.string(id.description) }
            out.endArray()
            out.field("by"); out.id(action.by)
            if let reason = action.reason { out.field("reason"); out.string(reason) }
        case .deliveryInvoked(let invocation):
            out.field("trigger_id"); out.id(invocation.triggerID)
            out.field("by"); out.id(invocation.by)
            out.field("payload"); out.raw(invocation.payload)
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

private extension JSONOutput {
    /// A key of the record format, taken as a `StaticString` (a plain `key("…")` literal
    /// would pick the `String` overload).
    @inline(__always)
    mutating func field(_ name: StaticString) { key(name) }
}

extension RecordJSONEncoder {
    /// A registration's fields in docs/SEMANTICS.md §2.3 table order, every default written out: shared
    /// by `herald dump` and the canonical `herald triggers` output, which lists the same keys.
    static func appendTriggerFields(_ trigger: TriggerRegistration, to out: inout JSONOutput) {
        out.field("trigger_id"); out.id(trigger.triggerID)
        out.field("app_id"); out.id(trigger.appID)
        out.field("script_id"); out.id(trigger.scriptID)
        out.field("kind"); out.string(trigger.kind.description)
        out.field("enabled"); out.bool(trigger.enabled)
        out.field("dispatch_mode"); out.string(trigger.dispatchMode.description)
        out.field("retry")
        out.beginObject()
        out.field("max_attempts"); out.int(trigger.retry.maxAttempts)
        out.field("backoff"); out.string(trigger.retry.backoff.description)
        out.field("base_ms"); out.int(trigger.retry.baseMs)
        out.endObject()
        out.field("registered_by"); out.id(trigger.registeredBy)
        if let kv = trigger.kv {
            out.field("kv")
            out.beginObject()
            out.field("collection_glob"); out.string(kv.collectionGlob)
            out.field("ops"); appendOps(kv.ops, to: &out)
            out.endObject()
        }
        if let deadLetter = trigger.deadLetter {
            out.field("dead_letter")
            out.beginObject()
            out.field("source_filter"); out.string(deadLetter.sourceFilter?.description)
            out.field("trigger_id_filter"); out.id(deadLetter.triggerIDFilter)
            out.field("script_id_filter"); out.id(deadLetter.scriptIDFilter)
            out.endObject()
        }
    }
}
