import HeraldCore
import Testing

/// What-if replay (docs/SEMANTICS.md §8.4): each override field, its timing (after the
/// registration and after each update), skipped records, and the usage errors.
@Suite struct WhatIfTests {
    func whatIf(_ log: LogText, _ overrides: [String]) throws -> (deliveries: String, skipped: Int) {
        var replay = WhatIfReplay(overrides: try overrides.map { text throws(WhatIfError) in
            text.hasPrefix("disable ") ? try .disable(String(text.dropFirst(8))) : try .parse(text)
        })
        let decoder = RecordJSONDecoder()
        for line in log.lines {
            let (ts, body) = try decoder.decode(line: line)
            replay.apply(Record(ts: ts ?? 0, body: body))
        }
        try replay.validate()
        return (canonical(replay.ledger.deliveries), replay.skipped)
    }

    /// standard() + kv trigger t1 on "c" (position 5) with max_attempts 1, a failing attempt.
    func dyingLog() -> LogText {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":1,"backoff":"constant","base_ms":100}"#)
        log.kv(ts: 10)                                     // 6
        log.attempt(6, IDs.t1, 1, ok: false, ts: 20)       // 7: dead
        return log
    }

    @Test func moreAttemptsKeepTheDeliveryPending() throws {
        let result = try whatIf(dyingLog(), ["\(IDs.t1).retry.max_attempts=3"])
        #expect(result.deliveries == line(6, IDs.t1, status: "pending", attempts: 1, due: 120, error: "boom") + "\n")
        #expect(result.skipped == 0)
    }

    @Test func aDisabledTriggerCreatesNothingAndItsAttemptsAreSkipped() throws {
        let result = try whatIf(dyingLog(), ["disable \(IDs.t1)"])
        #expect(result.deliveries == "")
        #expect(result.skipped == 1)
    }

    @Test func aGlobOrOpsOverrideChangesWhatMatches() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, glob: "c")
        log.kv(collection: "orders", ts: 10)               // 6
        log.kv("update", collection: "c", ts: 11)          // 7
        #expect(try whatIf(log, ["\(IDs.t1).kv.collection_glob=ord*"]).deliveries
                == line(6, IDs.t1, status: "pending", attempts: 0, due: 10) + "\n")
        #expect(try whatIf(log, ["\(IDs.t1).kv.ops=insert,delete"]).deliveries == "")
        #expect(try whatIf(log, ["\(IDs.t1).kv.ops="]).deliveries == line(7, IDs.t1, status: "pending", attempts: 0, due: 11) + "\n")
    }

    @Test func aLaterBackoffSkipsAnAttemptThatCameTooEarly() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":3,"backoff":"constant","base_ms":100}"#)
        log.kv(ts: 10)                                     // 6
        log.attempt(6, IDs.t1, 1, ok: false, ts: 20)       // 7: due again at 120
        log.attempt(6, IDs.t1, 2, ok: true, ts: 120)       // 8
        let result = try whatIf(log, ["\(IDs.t1).retry.base_ms=1000"])
        #expect(result.skipped == 1, "attempt 2 at 120 is before the what-if due time 1020")
        #expect(result.deliveries == line(6, IDs.t1, status: "pending", attempts: 1, due: 1020, error: "boom") + "\n")
    }

    @Test func theOverrideWinsAgainOverEachUpdate() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, enabled: false)              // 5
        log.add(#"{"ts":5,"type":"trigger.updated","trigger_id":"\#(IDs.t1)","enabled":true}"#)
        log.kv(ts: 10)                                     // 7
        #expect(try whatIf(log, ["\(IDs.t1).enabled=false"]).deliveries == "")
        var enabledLater = LogText.standard()
        enabledLater.kvTrigger(IDs.t1)
        enabledLater.add(#"{"ts":5,"type":"trigger.updated","trigger_id":"\#(IDs.t1)","enabled":false}"#)
        enabledLater.kv(ts: 10)                            // 7
        #expect(try whatIf(enabledLater, ["\(IDs.t1).enabled=true"]).deliveries
                == line(7, IDs.t1, status: "pending", attempts: 0, due: 10) + "\n")
    }

    @Test func aDeadLetterFilterOverrideChangesWhatADeathCreates() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":1}"#)                  // 5
        log.dlTrigger(IDs.t2, filters: #"{"source_filter":"dead_letter"}"#)   // 6
        log.kv(ts: 10)                                                         // 7
        log.attempt(7, IDs.t1, 1, ok: false, ts: 20)                           // 8: dead
        let recorded = try whatIf(log, ["\(IDs.t2).retry.max_attempts=1"]).deliveries
        #expect(!recorded.contains(IDs.t2), "the recorded filter admits no kv dead letter")
        let changed = try whatIf(log, ["\(IDs.t2).dead_letter.source_filter=kv"]).deliveries
        #expect(changed.contains(#""trigger_id":"\#(IDs.t2)""#) && changed.contains(#""source_kind":"dead_letter""#))
    }

    @Test func aRedriveAppliesToTheIdsThatStillFit() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":1}"#)
        log.kvTrigger(IDs.t3, retry: #"{"max_attempts":1}"#)
        log.kv(ts: 10)                                     // 7
        log.attempt(7, IDs.t1, 1, ok: false, ts: 20)       // 8
        log.attempt(7, IDs.t3, 1, ok: false, ts: 20)       // 9
        log.add(#"{"ts":30,"type":"delivery.redriven","deliveries":["7:\#(IDs.t1)","7:\#(IDs.t3)"],"by":"\#(IDs.admin)"}"#)
        // t1 no longer dies (3 attempts): only 7:t3 is redriven; nothing is skipped.
        let partly = try whatIf(log, ["\(IDs.t1).retry.max_attempts=3"])
        #expect(partly.skipped == 0)
        #expect(partly.deliveries.contains(#""source_position":7,"trigger_id":"\#(IDs.t3)","app_id":"\#(IDs.app)","script_id":"\#(IDs.s1)","source_kind":"kv","depth":0,"status":"pending","attempts":1,"due_at":30"#))
        // Neither dies: the whole redrive is skipped.
        let none = try whatIf(log, ["\(IDs.t1).retry.max_attempts=3", "\(IDs.t3).retry.max_attempts=3"])
        #expect(none.skipped == 1)
    }

    @Test func badOverridesAreUsageErrorsThatNameThem() throws {
        let log = dyingLog()
        let cases: [(String, String)] = [
            ("\(IDs.t1).retry.max_attempts=0", "between 1 and 100"),
            ("\(IDs.t1).retry.backoff=fast", "'exponential', 'linear' or 'constant'"),
            ("\(IDs.t1).kv.collection_glob=a*b", "not a valid glob"),
            ("\(IDs.t1).kv.ops=insert,insert", "twice"),
            ("\(IDs.t1).colour=red", "unknown field 'colour'"),
            ("\(IDs.t1).dead_letter.source_filter=kv", "is kind kv"),
            ("\(IDs.t5).enabled=false", "no trigger \(IDs.t5)"),
            ("nope.enabled=false", "TRIGGER_ID.FIELD=VALUE"),
        ]
        for (override, expected) in cases {
            do {
                _ = try whatIf(log, [override])
                Issue.record("\(override) was accepted")
            } catch let error as WhatIfError {
                #expect(error.description.contains(expected), "\(override): \(error)")
            }
        }
    }
}

/// `WhatIfScope`: both worlds replayed over one app's records give that app's deliveries and
/// skipped count exactly as the whole replay does.
@Suite struct WhatIfScopeReplayTests {
    /// Replays `log` whole and scoped to `app`; returns both worlds' deliveries of `app` and
    /// the skipped counts.
    func both(_ log: LogText, app: String, _ overrides: [String]) throws
        -> (whole: String, scoped: String, wholeSkipped: Int, scopedSkipped: Int) {
        let parsed = try overrides.map { text throws(WhatIfError) in try TriggerOverride.parse(text) }
        var whole = WhatIfReplay(overrides: parsed)
        var scoped = WhatIfReplay(overrides: parsed)
        var scope = WhatIfScope(apps: [try #require(HeraldID(app))])
        let decoder = RecordJSONDecoder()
        for line in log.lines {
            let (ts, body) = try decoder.decode(line: line)
            let record = Record(ts: ts ?? 0, body: body)
            whole.apply(record)
            switch scope.admit(record) {
            case .pass: scoped.pass(record)
            case .replay(let narrowed, let skippable): scoped.apply(narrowed, skippable: skippable)
            }
        }
        let appID = try #require(HeraldID(app))
        return (canonical(whole.ledger.deliveries.filter { $0.appID == appID }), canonical(scoped.ledger.deliveries),
                whole.skipped, scoped.skipped)
    }

    /// Two apps, one dead delivery each; a redrive and a cancel name deliveries of both. With
    /// app 1's trigger given more attempts, its delivery is not dead in the what-if world: the
    /// redrive still fits app 2's delivery, so it is not skipped in either replay.
    @Test func aRedriveNamingTwoAppsIsNarrowedAndNotSkipped() throws {
        var log = LogText.standard()
        log.add(#"{"type":"app.created","app_id":"\#(IDs.app2)","name":"other"}"#)                                       // 5
        log.add(#"{"type":"script.registered","script_id":"\#(IDs.s3)","app_id":"\#(IDs.app2)","name":"three","runtime":"process","source":"true"}"#)  // 6
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":1,"backoff":"constant","base_ms":100}"#)                         // 7
        log.add(#"{"type":"trigger.registered","trigger_id":"\#(IDs.t2)","app_id":"\#(IDs.app2)","script_id":"\#(IDs.s3)","kind":"kv","retry":{"max_attempts":1,"backoff":"constant","base_ms":100},"registered_by":"\#(IDs.admin)","kv":{"collection_glob":"c","ops":[]}}"#)  // 8
        log.kv(ts: 10)                                      // 9: t1
        log.kv(app: IDs.app2, ts: 11)                       // 10: t2
        log.attempt(9, IDs.t1, 1, ok: false, ts: 20)        // 11: dead
        log.attempt(10, IDs.t2, 1, ok: false, ts: 21)       // 12: dead
        log.add(#"{"type":"delivery.redriven","deliveries":["9:\#(IDs.t1)","10:\#(IDs.t2)"],"by":"\#(IDs.admin)"}"#, ts: 30)  // 13
        log.kv(ts: 40)                                      // 14: t1 again
        log.kv(app: IDs.app2, ts: 41)                       // 15: t2 again
        log.add(#"{"type":"delivery.cancelled","deliveries":["14:\#(IDs.t1)","15:\#(IDs.t2)"],"by":"\#(IDs.admin)"}"#, ts: 50)  // 16
        for overrides in [["\(IDs.t1).retry.max_attempts=3"], ["\(IDs.t1).enabled=false"], ["\(IDs.t1).retry.base_ms=5"]] {
            let result = try both(log, app: IDs.app, overrides)
            #expect(result.scoped == result.whole, "\(overrides)")
            #expect(result.scopedSkipped == result.wholeSkipped, "\(overrides)")
        }
        // The redrive's app-1 id does not fit with three attempts, but app 2's does: not skipped.
        #expect(try both(log, app: IDs.app, ["\(IDs.t1).retry.max_attempts=3"]).wholeSkipped == 0)
        // Disabled, t1 makes no deliveries: the cancel's app-1 id does not fit either, and
        // neither record counts as skipped (the attempt on 9:t1 does).
        #expect(try both(log, app: IDs.app, ["\(IDs.t1).enabled=false"]).wholeSkipped == 1)
    }
}
