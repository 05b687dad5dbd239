import HeraldCore
import Testing

/// Every stateful rule of docs/SEMANTICS.md §2.5, each with its exact message. The log before each
/// case: admin (1), app (10), scripts s1 s2 of app (20, 21), app2 (11) with script s3 (22),
/// kv trigger t1 (30) and dead-letter trigger t2 (31) of app; admin2 (2) created and deleted;
/// a kv.insert at 11 (delivery 11:t1, due 5).
@Suite struct RegistryRuleTests {
    static func base() -> LogText {
        var log = LogText.standard()
        log.add(#"{"type":"app.created","app_id":"\#(IDs.app2)","name":"other"}"#)
        log.add(#"{"type":"script.registered","script_id":"\#(IDs.s3)","app_id":"\#(IDs.app2)","name":"three","runtime":"process","source":"true"}"#)
        log.kvTrigger(IDs.t1)
        log.dlTrigger(IDs.t2)
        log.add(#"{"type":"admin_user.created","admin_user_id":"\#(IDs.admin2)","email":"gone@example.com"}"#)
        log.add(#"{"type":"admin_user.deleted","admin_user_id":"\#(IDs.admin2)"}"#)
        log.add(#"{"ts":5,"type":"kv.insert","app_id":"\#(IDs.app)","collection":"c","key":"k","value":1}"#)  // 11: delivery 11:t1
        return log
    }

    static let cases: [(String, String)] = [
        // Ids of created things are new, also after deletion; across every kind.
        (#"{"ts":5,"type":"admin_user.created","admin_user_id":"\#(IDs.admin2)","email":"x@example.com"}"#,
         "admin_user.created: field 'admin_user_id': id \(IDs.admin2) is already in use (ids are never reused, also after deletion)"),
        (#"{"ts":5,"type":"app.created","app_id":"\#(IDs.s1)","name":"x"}"#,
         "app.created: field 'app_id': id \(IDs.s1) is already in use (ids are never reused, also after deletion)"),
        (#"{"ts":5,"type":"script.registered","script_id":"\#(IDs.t1)","app_id":"\#(IDs.app)","name":"x","runtime":"r","source":""}"#,
         "script.registered: field 'script_id': id \(IDs.t1) is already in use (ids are never reused, also after deletion)"),
        // Referenced things exist.
        (#"{"ts":5,"type":"script.registered","script_id":"\#(uid(99))","app_id":"\#(uid(98))","name":"x","runtime":"r","source":""}"#,
         "script.registered: field 'app_id': app \(uid(98)) does not exist"),
        (#"{"ts":5,"type":"app.deleted","app_id":"\#(uid(98))"}"#, "app.deleted: field 'app_id': app \(uid(98)) does not exist"),
        (#"{"ts":5,"type":"script.deleted","script_id":"\#(uid(98))"}"#, "script.deleted: field 'script_id': script \(uid(98)) does not exist"),
        (#"{"ts":5,"type":"trigger.deleted","trigger_id":"\#(uid(98))"}"#, "trigger.deleted: field 'trigger_id': trigger \(uid(98)) does not exist"),
        (#"{"ts":5,"type":"admin_user.deleted","admin_user_id":"\#(IDs.admin2)"}"#,
         "admin_user.deleted: field 'admin_user_id': admin user \(IDs.admin2) does not exist"),
        (#"{"ts":5,"type":"kv.insert","app_id":"\#(uid(98))","collection":"c","key":"k","value":1}"#,
         "kv.insert: field 'app_id': app \(uid(98)) does not exist"),
        (#"{"ts":5,"type":"trigger.updated","trigger_id":"\#(uid(98))","enabled":false}"#,
         "trigger.updated: field 'trigger_id': trigger \(uid(98)) does not exist"),
        // A trigger's script belongs to the trigger's app; registered_by exists.
        (#"{"ts":5,"type":"trigger.registered","trigger_id":"\#(uid(99))","app_id":"\#(IDs.app)","script_id":"\#(IDs.s3)","kind":"kv","registered_by":"\#(IDs.admin)","kv":{"collection_glob":"*","ops":[]}}"#,
         "trigger.registered: field 'script_id': script \(IDs.s3) belongs to app \(IDs.app2), not to app \(IDs.app)"),
        (#"{"ts":5,"type":"trigger.registered","trigger_id":"\#(uid(99))","app_id":"\#(IDs.app)","script_id":"\#(IDs.s1)","kind":"kv","registered_by":"\#(IDs.admin2)","kv":{"collection_glob":"*","ops":[]}}"#,
         "trigger.registered: field 'registered_by': admin user \(IDs.admin2) does not exist"),
        // Dead-letter filters name a trigger / script of the same app; not itself at registration.
        (#"{"ts":5,"type":"trigger.registered","trigger_id":"\#(uid(99))","app_id":"\#(IDs.app2)","script_id":"\#(IDs.s3)","kind":"dead_letter","registered_by":"\#(IDs.admin)","dead_letter":{"trigger_id_filter":"\#(IDs.t1)"}}"#,
         "trigger.registered: field 'dead_letter.trigger_id_filter': trigger \(IDs.t1) belongs to app \(IDs.app), not to app \(IDs.app2)"),
        (#"{"ts":5,"type":"trigger.registered","trigger_id":"\#(uid(99))","app_id":"\#(IDs.app2)","script_id":"\#(IDs.s3)","kind":"dead_letter","registered_by":"\#(IDs.admin)","dead_letter":{"script_id_filter":"\#(IDs.s1)"}}"#,
         "trigger.registered: field 'dead_letter.script_id_filter': script \(IDs.s1) belongs to app \(IDs.app), not to app \(IDs.app2)"),
        (#"{"ts":5,"type":"trigger.registered","trigger_id":"\#(uid(99))","app_id":"\#(IDs.app)","script_id":"\#(IDs.s1)","kind":"dead_letter","registered_by":"\#(IDs.admin)","dead_letter":{"trigger_id_filter":"\#(uid(99))"}}"#,
         "trigger.registered: field 'dead_letter.trigger_id_filter': trigger \(uid(99)) does not exist"),
        // Kind never changes: the other kind's details are an error.
        (#"{"ts":5,"type":"trigger.updated","trigger_id":"\#(IDs.t1)","dead_letter":{"source_filter":"kv"}}"#,
         "trigger.updated: field 'dead_letter': trigger \(IDs.t1) is kind kv, so 'dead_letter' details are an error"),
        (#"{"ts":5,"type":"trigger.updated","trigger_id":"\#(IDs.t2)","kv":{"ops":["insert"]}}"#,
         "trigger.updated: field 'kv': trigger \(IDs.t2) is kind dead_letter, so 'kv' details are an error"),
        // ts never decreases.
        (#"{"ts":4,"type":"app.created","app_id":"\#(uid(99))","name":"x"}"#,
         "app.created: field 'ts': ts 4 is before the previous record's ts 5 (ts never decreases)"),
        // delivery.attempted names a pending delivery, its next attempt, at or after its due time.
        (#"{"ts":5,"type":"delivery.attempted","source_position":10,"trigger_id":"\#(IDs.t1)","attempt":1,"outcome":"ok","duration_ms":1}"#,
         "delivery.attempted: field 'source_position': delivery 10:\(IDs.t1) does not exist or is no longer pending"),
        (#"{"ts":5,"type":"delivery.attempted","source_position":99,"trigger_id":"\#(IDs.t1)","attempt":1,"outcome":"ok","duration_ms":1}"#,
         "delivery.attempted: field 'source_position': delivery 99:\(IDs.t1) does not exist (position 99 is not in the log yet)"),
        (#"{"ts":5,"type":"delivery.attempted","source_position":11,"trigger_id":"\#(IDs.t1)","attempt":2,"outcome":"ok","duration_ms":1}"#,
         "delivery.attempted: field 'attempt': delivery 11:\(IDs.t1) expects attempt 1, not 2"),
    ]

    @Test(arguments: cases)
    func ruleIsEnforcedWithItsMessage(line: String, message: String) throws {
        var log = RegistryRuleTests.base()
        _ = try derive(log)  // the base itself is valid
        log.lines.append(line)
        #expect {
            try derive(log)
        } throws: { error in
            let text = String(describing: error)
            let expected = "line \(log.lines.count): " + message
            if text != expected { Issue.record("got:      \(text)\nexpected: \(expected)") }
            return text == expected
        }
    }

    @Test func attemptBeforeDueIsRejected() throws {
        var log = RegistryRuleTests.base()
        log.add(#"{"ts":5,"type":"delivery.attempted","source_position":11,"trigger_id":"\#(IDs.t1)","attempt":1,"outcome":"error","error":"x","duration_ms":1}"#)
        log.add(#"{"ts":6,"type":"delivery.attempted","source_position":11,"trigger_id":"\#(IDs.t1)","attempt":2,"outcome":"ok","duration_ms":1}"#)
        #expect {
            try derive(log)
        } throws: { error in
            String(describing: error) == "line 13: delivery.attempted: field 'ts': attempt 2 of delivery 11:\(IDs.t1) is due at 1005; ts 6 is before that"
        }
    }

    @Test func aDeadLetterTriggerMayNameItselfThroughAnUpdate() throws {
        var log = RegistryRuleTests.base()
        log.add(#"{"ts":5,"type":"trigger.updated","trigger_id":"\#(IDs.t2)","dead_letter":{"trigger_id_filter":"\#(IDs.t2)"}}"#)
        let (_, dispatcher, _) = try derive(log)
        #expect(dispatcher.registry.triggers[HeraldID(IDs.t2)!]?.deadLetter?.triggerIDFilter == HeraldID(IDs.t2))
    }
}
