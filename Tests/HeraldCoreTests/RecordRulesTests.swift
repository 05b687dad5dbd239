import HeraldCore
import Testing

struct RuleCase: CustomTestStringConvertible, Sendable {
    var rule: String
    var body: RecordBody
    var ts: Int64?
    var error: String
    var testDescription: String { rule }
}

/// Records built through the Swift API meet the same rules as imported ones.
@Suite struct RecordRulesTests {
    static let a = CodecFixtures.app, s = CodecFixtures.script, t = CodecFixtures.trigger, ad = CodecFixtures.admin

    static func kvTrigger(_ kv: KVDetails?, dl: DeadLetterDetails? = nil, retry: RetryConfig = .builtIn,
                          mode: DispatchMode = .async) -> RecordBody {
        .triggerRegistered(TriggerRegistration(triggerID: t, appID: a, scriptID: s, kind: .kv, dispatchMode: mode,
                                               retry: retry, registeredBy: ad, kv: kv, deadLetter: dl))
    }

    static let cases: [RuleCase] = [
        RuleCase(rule: "ts", body: .appDeleted(appID: a), ts: Int64.min, error: "app.deleted: field 'ts': must be between 0 and 253402300799999, not -9223372036854775808"),
        RuleCase(rule: "sync", body: kvTrigger(KVDetails(collectionGlob: "*", ops: []), mode: .sync), error: "trigger.registered: field 'dispatch_mode': dispatch_mode 'sync' is not supported"),
        RuleCase(rule: "kv without details", body: kvTrigger(nil), error: "trigger.registered: field 'kv': required with kind kv"),
        RuleCase(rule: "glob star first", body: kvTrigger(KVDetails(collectionGlob: "*x", ops: [])),
                 error: "trigger.registered: field 'kv.collection_glob': '*x' is not a valid glob: '*' may appear only once, as the last character ('*', a literal, or a literal prefix ending in one '*')"),
        RuleCase(rule: "op bits", body: kvTrigger(KVDetails(collectionGlob: "x", ops: OpSet(rawValue: 8))), error: "trigger.registered: field 'kv.ops': holds unknown op bits 0x8"),
        RuleCase(rule: "retry", body: kvTrigger(KVDetails(collectionGlob: "x", ops: []), retry: RetryConfig(maxAttempts: 5, backoff: .linear, baseMs: 86_400_001)),
                 error: "trigger.registered: field 'retry.base_ms': must be between 0 and 86400000, not 86400001"),
        RuleCase(rule: "update patch retry", body: .triggerUpdated(TriggerUpdate(triggerID: t, retry: RetryPatch(maxAttempts: -3))),
                 error: "trigger.updated: field 'retry.max_attempts': must be between 1 and 100, not -3"),
        RuleCase(rule: "insert without value", body: .kv(KVMutation(op: .insert, appID: a, collection: "c", key: "k", value: nil)),
                 error: "kv.insert: field 'value': required for kv.insert"),
        RuleCase(rule: "value not JSON", body: .kv(KVMutation(op: .update, appID: a, collection: "c", key: "k", value: "{")),
                 error: "kv.update: field 'value': is not one JSON value: invalid JSON at column 2: expected a string key, found the end of the line"),
        RuleCase(rule: "two values", body: .kv(KVMutation(op: .update, appID: a, collection: "c", key: "k", value: "1 2")),
                 error: "kv.update: field 'value': is not one JSON value: invalid JSON at column 2: unexpected data after the value, found ' '"),
        RuleCase(rule: "padded value", body: .kv(KVMutation(op: .insert, appID: a, collection: "c", key: "k", value: " 1")),
                 error: "kv.insert: field 'value': is not one JSON value: invalid JSON at column 1: expected a value, found ' '"),
        RuleCase(rule: "ok with error", body: .deliveryAttempted(DeliveryAttempt(sourcePosition: 1, triggerID: t, attempt: 1, outcome: .ok, error: "", durationMs: 0)),
                 error: "delivery.attempted: field 'error': must be absent or null with outcome ok"),
    ]

    @Test(arguments: cases)
    func rejects(_ row: RuleCase) {
        do {
            try RecordRules.check(row.body, ts: row.ts)
            Issue.record("accepted")
        } catch {
            #expect(error.description == row.error)
        }
    }

    @Test(arguments: ["*", "users", "users:*", "a b/c*", "😀*"])
    func acceptsGlob(_ glob: String) {
        #expect(RecordRules.collectionGlobProblem(glob) == nil)
    }

    @Test func acceptsEdgeValues() throws {
        try RecordRules.check(.kv(KVMutation(op: .update, appID: Self.a, collection: "c", key: "k", value: "[1, {\"a\": null}]")), ts: Record.tsMax)
        try RecordRules.check(.appCreated(appID: Self.a, name: ""), ts: 0)
        try RecordRules.check(.deliveryAttempted(DeliveryAttempt(sourcePosition: 0, triggerID: Self.t, attempt: 1, outcome: .error, error: "", durationMs: 0)), ts: nil)
    }
}
