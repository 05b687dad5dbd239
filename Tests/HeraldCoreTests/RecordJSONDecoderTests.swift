import HeraldCore
import Testing

private let A = "a0000000-0000-4000-8000-000000000001"
private let AD = "ad000000-0000-4000-8000-000000000001"
private let S = "5c000000-0000-4000-8000-000000000001"
private let T = "70000000-0000-4000-8000-000000000001"
private let T2 = "70000000-0000-4000-8000-000000000002"

private let kvTrigger = #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"kv","registered_by":"\#(AD)","kv":{"collection_glob":"users:*","ops":[]}"#
private func dlTriggerWith(_ details: String) -> String {
    #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"dead_letter","registered_by":"\#(AD)","dead_letter":"# + details
}
private let dlTrigger = dlTriggerWith("{}")
private let insert = #"{"type":"kv.insert","app_id":"\#(A)","collection":"users","key":"k1""#
private let attempt = #"{"type":"delivery.attempted","source_position":3,"trigger_id":"\#(T)","attempt":1,"duration_ms":5"#

/// One valid line and what it decodes to.
struct ValidLine: CustomTestStringConvertible, Sendable {
    var line: String
    var ts: Int64?
    var body: RecordBody
    var testDescription: String { line }
}

/// One invalid line and the exact error description.
struct InvalidLine: CustomTestStringConvertible, Sendable {
    var rule: String
    var line: String
    var error: String
    var testDescription: String { rule }
}

private let a = CodecFixtures.app
private let ad = CodecFixtures.admin
private let s = CodecFixtures.script
private let t = CodecFixtures.trigger
private let t2 = CodecFixtures.trigger2

@Suite struct RecordJSONDecoderTests {
    static let valid: [ValidLine] = [
        ValidLine(line: #"{"type":"admin_user.created","ts":0,"admin_user_id":"\#(AD)","email":"ops@example.com"}"#,
                  ts: 0, body: .adminUserCreated(adminUserID: ad, email: "ops@example.com")),
        ValidLine(line: #"{"type":"admin_user.deleted","admin_user_id":"\#(AD.uppercased())"}"#,
                  ts: nil, body: .adminUserDeleted(adminUserID: ad)),
        ValidLine(line: #" { "name" : "shop" , "app_id" : "\#(A)" , "type" : "app.created" , "ts" : 253402300799999 } "# + "\r",
                  ts: 253_402_300_799_999, body: .appCreated(appID: a, name: "shop")),
        ValidLine(line: #"{"type":"app.deleted","app_id":"\#(A)"}"#, ts: nil, body: .appDeleted(appID: a)),
        ValidLine(line: #"{"type":"script.registered","script_id":"\#(S)","app_id":"\#(A)","name":"n\u00e9\ud83d\ude00","runtime":"process","source":"echo \"hi\"\n/x"}"#,
                  ts: nil, body: .scriptRegistered(ScriptRegistration(scriptID: s, appID: a, name: "né😀", runtime: "process", source: "echo \"hi\"\n/x"))),
        ValidLine(line: #"{"type":"script.deleted","script_id":"\#(S)"}"#, ts: nil, body: .scriptDeleted(scriptID: s)),
        ValidLine(line: kvTrigger + "}", ts: nil, body: .triggerRegistered(TriggerRegistration(
            triggerID: t, appID: a, scriptID: s, kind: .kv, retry: .builtIn, registeredBy: ad,
            kv: KVDetails(collectionGlob: "users:*", ops: [])))),
        ValidLine(line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"kv","enabled":false,"dispatch_mode":"async","retry":{"base_ms":0,"backoff":"linear"},"registered_by":"\#(AD)","kv":{"ops":["delete","insert"],"collection_glob":"*"}}"#,
                  ts: nil, body: .triggerRegistered(TriggerRegistration(
                    triggerID: t, appID: a, scriptID: s, kind: .kv, enabled: false, retry: RetryConfig(maxAttempts: 5, backoff: .linear, baseMs: 0),
                    registeredBy: ad, kv: KVDetails(collectionGlob: "*", ops: [.insert, .delete])))),
        ValidLine(line: dlTrigger + "}", ts: nil, body: .triggerRegistered(TriggerRegistration(
            triggerID: t, appID: a, scriptID: s, kind: .deadLetter, retry: .builtIn, registeredBy: ad,
            deadLetter: DeadLetterDetails()))),
        ValidLine(line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"dead_letter","retry":{"max_attempts":100,"backoff":"constant","base_ms":86400000},"registered_by":"\#(AD)","dead_letter":{"source_filter":"http","trigger_id_filter":"\#(T2)","script_id_filter":null}}"#,
                  ts: nil, body: .triggerRegistered(TriggerRegistration(
                    triggerID: t, appID: a, scriptID: s, kind: .deadLetter, retry: RetryConfig(maxAttempts: 100, backoff: .constant, baseMs: 86_400_000),
                    registeredBy: ad, deadLetter: DeadLetterDetails(sourceFilter: .http, triggerIDFilter: t2)))),
        ValidLine(line: #"{"type":"trigger.updated","trigger_id":"\#(T)"}"#, ts: nil, body: .triggerUpdated(TriggerUpdate(triggerID: t))),
        ValidLine(line: #"{"type":"trigger.updated","trigger_id":"\#(T)","enabled":true,"retry":{"max_attempts":1},"kv":{"ops":["update"]}}"#,
                  ts: nil, body: .triggerUpdated(TriggerUpdate(triggerID: t, enabled: true, retry: RetryPatch(maxAttempts: 1),
                                                               kv: KVPatch(ops: [.update])))),
        ValidLine(line: #"{"type":"trigger.updated","trigger_id":"\#(T)","dead_letter":{"source_filter":null,"script_id_filter":"\#(S)"}}"#,
                  ts: nil, body: .triggerUpdated(TriggerUpdate(triggerID: t, deadLetter: DeadLetterPatch(
                    sourceFilter: .set(nil), triggerIDFilter: .keep, scriptIDFilter: .set(s))))),
        ValidLine(line: #"{"type":"trigger.deleted","trigger_id":"\#(T)"}"#, ts: nil, body: .triggerDeleted(triggerID: t)),
        ValidLine(line: insert + #","value":{"a": [1, 2.5e3, "x\/y"], "a": null}}"#, ts: nil,
                  body: .kv(KVMutation(op: .insert, appID: a, collection: "users", key: "k1", value: #"{"a": [1, 2.5e3, "x\/y"], "a": null}"#))),
        ValidLine(line: #"{"type":"kv.update","app_id":"\#(A)","collection":"c","key":"k","value":null}"#, ts: nil,
                  body: .kv(KVMutation(op: .update, appID: a, collection: "c", key: "k", value: "null"))),
        ValidLine(line: #"{"type":"kv.update","app_id":"\#(A)","collection":"c","key":"k","value":"\u0041"}"#, ts: nil,
                  body: .kv(KVMutation(op: .update, appID: a, collection: "c", key: "k", value: #""\u0041""#))),
        ValidLine(line: #"{"type":"kv.delete","ts":-0,"app_id":"\#(A)","collection":"c","key":"k"}"#, ts: 0,
                  body: .kv(KVMutation(op: .delete, appID: a, collection: "c", key: "k", value: nil))),
        ValidLine(line: attempt + #","outcome":"ok"}"#, ts: nil, body: .deliveryAttempted(DeliveryAttempt(
            sourcePosition: 3, triggerID: t, attempt: 1, outcome: .ok, durationMs: 5))),
        ValidLine(line: attempt + #","outcome":"ok","error":null,"retryable":false}"#, ts: nil, body: .deliveryAttempted(DeliveryAttempt(
            sourcePosition: 3, triggerID: t, attempt: 1, outcome: .ok, retryable: false, durationMs: 5))),
        ValidLine(line: #"{"type":"delivery.attempted","source_position":18446744073709551615,"trigger_id":"\#(T)","attempt":9223372036854775807,"outcome":"error","error":"","duration_ms":0}"#,
                  ts: nil, body: .deliveryAttempted(DeliveryAttempt(
                    sourcePosition: UInt64.max, triggerID: t, attempt: Int64.max, outcome: .error, error: "", durationMs: 0))),
        ValidLine(line: #"{"t\u0079pe":"app.deleted","app_id":"\#(A)"}"#, ts: nil, body: .appDeleted(appID: a)),
        ValidLine(line: #"{"type":"trigger.updated","trigger_id":"\#(T)","retry":{"max\u005fattempts":3,"backoff":"\u0063onstant"}}"#,
                  ts: nil, body: .triggerUpdated(TriggerUpdate(triggerID: t, retry: RetryPatch(maxAttempts: 3, backoff: .constant)))),
        ValidLine(line: #"{"type":"trigger.updated","trigger_id":"\#(T)","kv":{"collection_glob":"orders"},"retry":{}}"#,
                  ts: nil, body: .triggerUpdated(TriggerUpdate(triggerID: t, retry: RetryPatch(), kv: KVPatch(collectionGlob: "orders")))),
    ]

    @Test(arguments: valid)
    func decodesValidLine(_ row: ValidLine) throws {
        let decoded = try RecordJSONDecoder().decode(line: row.line)
        #expect(decoded.ts == row.ts)
        #expect(decoded.body == row.body)
    }

    @Test func omittedRetryFieldsTakeTheConfiguredDefaults() throws {
        let defaults = RetryConfig(maxAttempts: 9, backoff: .constant, baseMs: 250)
        let decoder = RecordJSONDecoder(retryDefaults: defaults)
        guard case .triggerRegistered(let whole) = try decoder.decode(line: kvTrigger + "}").body,
              case .triggerRegistered(let partial) = try decoder.decode(line: kvTrigger + #","retry":{"backoff":"linear"}}"#).body
        else {
            Issue.record("not a registration")
            return
        }
        #expect(whole.retry == defaults)
        #expect(partial.retry == RetryConfig(maxAttempts: 9, backoff: .linear, baseMs: 250))
    }

    static let invalid: [InvalidLine] = [
        // The line as a whole.
        InvalidLine(rule: "blank line", line: "  \r", error: "blank line; expected a JSON object"),
        InvalidLine(rule: "empty line", line: "", error: "blank line; expected a JSON object"),
        InvalidLine(rule: "byte-order mark", line: "\u{FEFF}{\"type\":\"app.deleted\"}",
                    error: "byte-order mark at the start of the line; expected a JSON object"),
        InvalidLine(rule: "not an object", line: "[1]", error: "invalid JSON at column 1: expected a JSON object ('{'), found '['"),
        InvalidLine(rule: "trailing garbage", line: #"{"type":"app.deleted","app_id":"\#(A)"} x"#,
                    error: "invalid JSON at column 72: unexpected data after the object, found 'x'"),
        InvalidLine(rule: "two objects", line: #"{}{}"#, error: "invalid JSON at column 3: unexpected data after the object, found '{'"),
        InvalidLine(rule: "unterminated", line: #"{"type":"app.deleted""#,
                    error: "invalid JSON at column 22: expected ',' or '}' after a field, found the end of the line"),
        InvalidLine(rule: "trailing comma", line: #"{"type":"app.deleted",}"#,
                    error: "invalid JSON at column 23: expected a string key, found '}'"),
        InvalidLine(rule: "single quotes", line: #"{'type':1}"#, error: "invalid JSON at column 2: expected a string key, found '''"),
        InvalidLine(rule: "lone high surrogate", line: #"{"type":"app.created","app_id":"\#(A)","name":"\ud800x"}"#,
                    error: "field 'name': invalid JSON at column 79: lone surrogate \\uD800 (a high surrogate must be followed by a low one)"),
        InvalidLine(rule: "lone low surrogate", line: #"{"name":"\udc00"}"#,
                    error: "field 'name': invalid JSON at column 10: lone surrogate \\uDC00"),
        InvalidLine(rule: "raw control character", line: "{\"name\":\"a\u{1}\"}",
                    error: "field 'name': invalid JSON at column 11: control character U+0001 in a string must be escaped"),
        InvalidLine(rule: "bad escape", line: #"{"name":"\x"}"#, error: "field 'name': invalid JSON at column 10: invalid escape sequence '\\x'"),
        InvalidLine(rule: "leading zero", line: #"{"ts":01}"#, error: "field 'ts': invalid JSON at column 7: a number must not have a leading zero"),
        InvalidLine(rule: "nesting bound", line: insert + #","value":"# + String(repeating: "[", count: 513) + String(repeating: "]", count: 513) + "}",
                    error: "field 'value': invalid JSON at column 621: nesting deeper than 512 levels"),
        InvalidLine(rule: "bad literal", line: #"{"enabled":tru}"#, error: "field 'enabled': invalid JSON at column 12: expected 'true'"),
        // Type.
        InvalidLine(rule: "missing type", line: #"{"app_id":"\#(A)"}"#, error: "field 'type': required field is missing"),
        InvalidLine(rule: "unknown type", line: #"{"type":"app.renamed"}"#, error: "field 'type': unknown record type 'app.renamed'"),
        InvalidLine(rule: "type case", line: #"{"type":"App.Deleted"}"#, error: "field 'type': unknown record type 'App.Deleted'"),
        InvalidLine(rule: "null type", line: #"{"type":null}"#, error: "field 'type': must not be null"),
        InvalidLine(rule: "numeric type", line: #"{"type":4}"#, error: "field 'type': must be a string, not a number"),
        InvalidLine(rule: "duplicate type", line: #"{"type":"app.deleted","type":"app.deleted"}"#, error: "field 'type': duplicate key"),
        // Fields.
        InvalidLine(rule: "unknown field", line: #"{"type":"app.deleted","app_id":"\#(A)","color":"red"}"#,
                    error: "app.deleted: field 'color': unknown field"),
        InvalidLine(rule: "field of another type", line: #"{"type":"app.deleted","app_id":"\#(A)","name":"x"}"#,
                    error: "app.deleted: field 'name': unknown field"),
        InvalidLine(rule: "duplicate field", line: #"{"type":"app.deleted","app_id":"\#(A)","app_id":"\#(A)"}"#,
                    error: "app.deleted: field 'app_id': duplicate key"),
        InvalidLine(rule: "missing field", line: #"{"type":"app.created","app_id":"\#(A)"}"#,
                    error: "app.created: field 'name': required field is missing"),
        InvalidLine(rule: "null required field", line: #"{"type":"app.created","app_id":"\#(A)","name":null}"#,
                    error: "app.created: field 'name': must not be null"),
        InvalidLine(rule: "wrong JSON type", line: #"{"type":"app.created","app_id":"\#(A)","name":7}"#,
                    error: "app.created: field 'name': must be a string, not a number"),
        InvalidLine(rule: "bad id", line: #"{"type":"app.deleted","app_id":"a0000000000040008000000000000001"}"#,
                    error: "app.deleted: field 'app_id': 'a0000000000040008000000000000001' is not a UUID in canonical 8-4-4-4-12 form"),
        InvalidLine(rule: "braced id", line: #"{"type":"app.deleted","app_id":"{\#(A)}"}"#,
                    error: "app.deleted: field 'app_id': '{\(A)}' is not a UUID in canonical 8-4-4-4-12 form"),
        InvalidLine(rule: "null ts", line: #"{"type":"app.deleted","ts":null,"app_id":"\#(A)"}"#, error: "app.deleted: field 'ts': must not be null"),
        InvalidLine(rule: "fraction", line: #"{"type":"app.deleted","ts":1.0,"app_id":"\#(A)"}"#,
                    error: "app.deleted: field 'ts': must be an integer without a fraction or exponent, not 1.0"),
        InvalidLine(rule: "exponent", line: #"{"type":"app.deleted","ts":1e3,"app_id":"\#(A)"}"#,
                    error: "app.deleted: field 'ts': must be an integer without a fraction or exponent, not 1e3"),
        InvalidLine(rule: "Int64 range", line: #"{"type":"app.deleted","ts":9223372036854775808,"app_id":"\#(A)"}"#,
                    error: "app.deleted: field 'ts': 9223372036854775808 is out of range for a 64-bit signed integer"),
        InvalidLine(rule: "ts range low", line: #"{"type":"app.deleted","ts":-1,"app_id":"\#(A)"}"#,
                    error: "app.deleted: field 'ts': must be between 0 and 253402300799999, not -1"),
        InvalidLine(rule: "ts range high", line: #"{"type":"app.deleted","ts":253402300800000,"app_id":"\#(A)"}"#,
                    error: "app.deleted: field 'ts': must be between 0 and 253402300799999, not 253402300800000"),
        InvalidLine(rule: "ts as string", line: #"{"type":"app.deleted","ts":"5","app_id":"\#(A)"}"#,
                    error: "app.deleted: field 'ts': must be an integer, not a string"),
        // trigger.registered.
        InvalidLine(rule: "registered_by required", line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"kv","kv":{"collection_glob":"*","ops":[]}}"#,
                    error: "trigger.registered: field 'registered_by': required field is missing"),
        InvalidLine(rule: "unknown kind", line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"http","registered_by":"\#(AD)"}"#,
                    error: "trigger.registered: field 'kind': must be 'kv' or 'dead_letter', not 'http'"),
        InvalidLine(rule: "sync", line: kvTrigger + #","dispatch_mode":"sync"}"#,
                    error: "trigger.registered: field 'dispatch_mode': dispatch_mode 'sync' is not supported"),
        InvalidLine(rule: "unknown dispatch mode", line: kvTrigger + #","dispatch_mode":"later"}"#,
                    error: "trigger.registered: field 'dispatch_mode': must be 'async' or 'sync', not 'later'"),
        InvalidLine(rule: "null enabled", line: kvTrigger + #","enabled":null}"#, error: "trigger.registered: field 'enabled': must not be null"),
        InvalidLine(rule: "enabled as string", line: kvTrigger + #","enabled":"true"}"#,
                    error: "trigger.registered: field 'enabled': must be true or false, not a string"),
        InvalidLine(rule: "max_attempts 0", line: kvTrigger + #","retry":{"max_attempts":0}}"#,
                    error: "trigger.registered: field 'retry.max_attempts': must be between 1 and 100, not 0"),
        InvalidLine(rule: "max_attempts 101", line: kvTrigger + #","retry":{"max_attempts":101}}"#,
                    error: "trigger.registered: field 'retry.max_attempts': must be between 1 and 100, not 101"),
        InvalidLine(rule: "base_ms negative", line: kvTrigger + #","retry":{"base_ms":-1}}"#,
                    error: "trigger.registered: field 'retry.base_ms': must be between 0 and 86400000, not -1"),
        InvalidLine(rule: "base_ms too large", line: kvTrigger + #","retry":{"base_ms":86400001}}"#,
                    error: "trigger.registered: field 'retry.base_ms': must be between 0 and 86400000, not 86400001"),
        InvalidLine(rule: "unknown backoff", line: kvTrigger + #","retry":{"backoff":"fibonacci"}}"#,
                    error: "trigger.registered: field 'retry.backoff': must be 'exponential', 'linear' or 'constant', not 'fibonacci'"),
        InvalidLine(rule: "null retry field", line: kvTrigger + #","retry":{"max_attempts":null}}"#,
                    error: "trigger.registered: field 'retry.max_attempts': must not be null"),
        InvalidLine(rule: "null retry", line: kvTrigger + #","retry":null}"#, error: "trigger.registered: field 'retry': must not be null"),
        InvalidLine(rule: "unknown retry field", line: kvTrigger + #","retry":{"jitter":true}}"#,
                    error: "trigger.registered: field 'retry.jitter': unknown field"),
        InvalidLine(rule: "duplicate retry field", line: kvTrigger + #","retry":{"base_ms":1,"base_ms":1}}"#,
                    error: "trigger.registered: field 'retry.base_ms': duplicate key"),
        InvalidLine(rule: "retry fraction", line: kvTrigger + #","retry":{"base_ms":1.5}}"#,
                    error: "trigger.registered: field 'retry.base_ms': must be an integer without a fraction or exponent, not 1.5"),
        InvalidLine(rule: "kv missing", line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"kv","registered_by":"\#(AD)"}"#,
                    error: "trigger.registered: field 'kv': required with kind kv"),
        InvalidLine(rule: "dead_letter missing", line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"dead_letter","registered_by":"\#(AD)"}"#,
                    error: "trigger.registered: field 'dead_letter': required with kind dead_letter"),
        InvalidLine(rule: "other kind's details (kv)", line: kvTrigger + #","dead_letter":{}}"#,
                    error: "trigger.registered: field 'dead_letter': not allowed with kind kv (the other kind's details are an error)"),
        InvalidLine(rule: "other kind's details (dead_letter)", line: dlTrigger + #","kv":{"collection_glob":"*","ops":[]}}"#,
                    error: "trigger.registered: field 'kv': not allowed with kind dead_letter (the other kind's details are an error)"),
        InvalidLine(rule: "glob required", line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"kv","registered_by":"\#(AD)","kv":{"ops":[]}}"#,
                    error: "trigger.registered: field 'kv.collection_glob': required field is missing"),
        InvalidLine(rule: "ops required", line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"kv","registered_by":"\#(AD)","kv":{"collection_glob":"*"}}"#,
                    error: "trigger.registered: field 'kv.ops': required field is missing"),
        InvalidLine(rule: "empty glob", line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"kv","registered_by":"\#(AD)","kv":{"collection_glob":"","ops":[]}}"#,
                    error: "trigger.registered: field 'kv.collection_glob': must not be empty"),
        InvalidLine(rule: "star in the middle", line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"kv","registered_by":"\#(AD)","kv":{"collection_glob":"a*b","ops":[]}}"#,
                    error: "trigger.registered: field 'kv.collection_glob': 'a*b' is not a valid glob: '*' may appear only once, as the last character ('*', a literal, or a literal prefix ending in one '*')"),
        InvalidLine(rule: "two stars", line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"kv","registered_by":"\#(AD)","kv":{"collection_glob":"users**","ops":[]}}"#,
                    error: "trigger.registered: field 'kv.collection_glob': 'users**' is not a valid glob: '*' may appear only once, as the last character ('*', a literal, or a literal prefix ending in one '*')"),
        InvalidLine(rule: "unknown op", line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"kv","registered_by":"\#(AD)","kv":{"collection_glob":"*","ops":["insert","upsert"]}}"#,
                    error: "trigger.registered: field 'kv.ops[1]': must be 'insert', 'update' or 'delete', not 'upsert'"),
        InvalidLine(rule: "duplicate op", line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"kv","registered_by":"\#(AD)","kv":{"collection_glob":"*","ops":["delete","delete"]}}"#,
                    error: "trigger.registered: field 'kv.ops[1]': duplicate op 'delete'"),
        InvalidLine(rule: "ops not an array", line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"kv","registered_by":"\#(AD)","kv":{"collection_glob":"*","ops":"insert"}}"#,
                    error: "trigger.registered: field 'kv.ops': must be an array, not a string"),
        InvalidLine(rule: "null kv", line: #"{"type":"trigger.registered","trigger_id":"\#(T)","app_id":"\#(A)","script_id":"\#(S)","kind":"kv","registered_by":"\#(AD)","kv":null}"#,
                    error: "trigger.registered: field 'kv': must not be null"),
        InvalidLine(rule: "unknown source filter", line: dlTriggerWith(#"{"source_filter":"cron"}"#) + "}",
                    error: "trigger.registered: field 'dead_letter.source_filter': must be null, 'kv', 'dead_letter', 'http' or 'manual', not 'cron'"),
        InvalidLine(rule: "bad filter id", line: dlTriggerWith(#"{"trigger_id_filter":"x"}"#) + "}",
                    error: "trigger.registered: field 'dead_letter.trigger_id_filter': 'x' is not a UUID in canonical 8-4-4-4-12 form"),
        InvalidLine(rule: "duplicate filter", line: dlTriggerWith(#"{"script_id_filter":null,"script_id_filter":null}"#) + "}",
                    error: "trigger.registered: field 'dead_letter.script_id_filter': duplicate key"),
        // trigger.updated.
        InvalidLine(rule: "update with both kinds", line: #"{"type":"trigger.updated","trigger_id":"\#(T)","kv":{},"dead_letter":{}}"#,
                    error: "trigger.updated: field 'dead_letter': not allowed together with kv (a trigger has one kind)"),
        InvalidLine(rule: "update retry range", line: #"{"type":"trigger.updated","trigger_id":"\#(T)","retry":{"max_attempts":0}}"#,
                    error: "trigger.updated: field 'retry.max_attempts': must be between 1 and 100, not 0"),
        InvalidLine(rule: "update glob", line: #"{"type":"trigger.updated","trigger_id":"\#(T)","kv":{"collection_glob":"*a"}}"#,
                    error: "trigger.updated: field 'kv.collection_glob': '*a' is not a valid glob: '*' may appear only once, as the last character ('*', a literal, or a literal prefix ending in one '*')"),
        InvalidLine(rule: "update sync not a field", line: #"{"type":"trigger.updated","trigger_id":"\#(T)","dispatch_mode":"async"}"#,
                    error: "trigger.updated: field 'dispatch_mode': unknown field"),
        InvalidLine(rule: "update null dead_letter", line: #"{"type":"trigger.updated","trigger_id":"\#(T)","dead_letter":null}"#,
                    error: "trigger.updated: field 'dead_letter': must not be null"),
        // KV.
        InvalidLine(rule: "value required", line: insert + "}", error: "kv.insert: field 'value': required field is missing"),
        InvalidLine(rule: "value on delete", line: #"{"type":"kv.delete","app_id":"\#(A)","collection":"c","key":"k","value":null}"#,
                    error: "kv.delete: field 'value': must be absent for kv.delete"),
        InvalidLine(rule: "empty collection", line: #"{"type":"kv.update","app_id":"\#(A)","collection":"","key":"k","value":1}"#,
                    error: "kv.update: field 'collection': must not be empty"),
        InvalidLine(rule: "star in collection", line: #"{"type":"kv.update","app_id":"\#(A)","collection":"users*","key":"k","value":1}"#,
                    error: "kv.update: field 'collection': must not contain '*'"),
        InvalidLine(rule: "empty key", line: #"{"type":"kv.delete","app_id":"\#(A)","collection":"c","key":""}"#,
                    error: "kv.delete: field 'key': must not be empty"),
        InvalidLine(rule: "value too large", line: insert + #","value":""# + String(repeating: "x", count: 1_048_575) + #""}"#,
                    error: "kv.insert: field 'value': value is 1048577 bytes; the limit is 1048576"),
        InvalidLine(rule: "invalid value", line: insert + #","value":[1,]}"#,
                    error: "field 'value': invalid JSON at column 112: expected a value, found ']'"),
        // delivery.attempted.
        InvalidLine(rule: "duration_ms required", line: #"{"type":"delivery.attempted","source_position":3,"trigger_id":"\#(T)","attempt":1,"outcome":"ok"}"#,
                    error: "delivery.attempted: field 'duration_ms': required field is missing"),
        InvalidLine(rule: "negative duration", line: #"{"type":"delivery.attempted","source_position":3,"trigger_id":"\#(T)","attempt":1,"outcome":"ok","duration_ms":-1}"#,
                    error: "delivery.attempted: field 'duration_ms': must not be negative, not -1"),
        InvalidLine(rule: "attempt 0", line: #"{"type":"delivery.attempted","source_position":3,"trigger_id":"\#(T)","attempt":0,"outcome":"ok","duration_ms":1}"#,
                    error: "delivery.attempted: field 'attempt': must be at least 1, not 0"),
        InvalidLine(rule: "error with ok", line: attempt + #","outcome":"ok","error":"boom"}"#,
                    error: "delivery.attempted: field 'error': must be absent or null with outcome ok"),
        InvalidLine(rule: "error required", line: attempt + #","outcome":"error"}"#,
                    error: "delivery.attempted: field 'error': required with outcome error"),
        InvalidLine(rule: "null error with error", line: attempt + #","outcome":"error","error":null}"#,
                    error: "delivery.attempted: field 'error': required with outcome error"),
        InvalidLine(rule: "unknown outcome", line: attempt + #","outcome":"timeout"}"#,
                    error: "delivery.attempted: field 'outcome': must be 'ok' or 'error', not 'timeout'"),
        InvalidLine(rule: "negative source_position", line: #"{"type":"delivery.attempted","source_position":-1,"trigger_id":"\#(T)","attempt":1,"outcome":"ok","duration_ms":1}"#,
                    error: "delivery.attempted: field 'source_position': -1 is out of range for a 64-bit unsigned integer"),
        InvalidLine(rule: "source_position too large", line: #"{"type":"delivery.attempted","source_position":18446744073709551616,"trigger_id":"\#(T)","attempt":1,"outcome":"ok","duration_ms":1}"#,
                    error: "delivery.attempted: field 'source_position': 18446744073709551616 is out of range for a 64-bit unsigned integer"),
        InvalidLine(rule: "null retryable", line: attempt + #","outcome":"ok","retryable":null}"#,
                    error: "delivery.attempted: field 'retryable': must not be null"),
    ]

    @Test(arguments: invalid)
    func rejectsInvalidLine(_ row: InvalidLine) {
        #expect(throws: RecordError.self) { try RecordJSONDecoder().decode(line: row.line) }
        do {
            _ = try RecordJSONDecoder().decode(line: row.line)
        } catch {
            #expect(error.description == row.error)
            #expect(error.location.isEmpty)
        }
    }

    @Test func invalidUTF8IsAnError() {
        var line = Array(#"{"type":"app.created","app_id":"\#(A)","name":"ab"}"#.utf8)
        guard let position = line.firstIndex(of: UInt8(ascii: "b")) else { return }
        for bad: [UInt8] in [[0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82]] {
            var copy = line
            copy.replaceSubrange(position...position, with: bad)
            #expect(throws: RecordError.self) { try RecordJSONDecoder().decode(line: copy) }
        }
        line.replaceSubrange(position...position, with: [0xE2, 0x82, 0xAC]) // €
        #expect((try? RecordJSONDecoder().decode(line: line)) != nil)
    }

    @Test func valueAtTheSizeLimitIsAccepted() throws {
        let text = "\"" + String(repeating: "x", count: KVMutation.valueBytesMax - 2) + "\""
        let decoded = try RecordJSONDecoder().decode(line: insert + #","value":"# + text + "}")
        #expect(decoded.body == .kv(KVMutation(op: .insert, appID: a, collection: "users", key: "k1", value: JSONText(text))))
    }

    @Test func deepValueWithinTheBoundIsAccepted() throws {
        let text = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        let decoded = try RecordJSONDecoder().decode(line: insert + #","value":"# + text + "}")
        #expect(decoded.body == .kv(KVMutation(op: .insert, appID: a, collection: "users", key: "k1", value: JSONText(text))))
    }
}
