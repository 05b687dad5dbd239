import HeraldCore
import Testing

@Suite struct RetryScheduleTests {
    @Test func exponentialBackoffDoublesFrom1000() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":4,"backoff":"exponential","base_ms":1000}"#)  // 5
        log.kv(ts: 10_000)                                                                              // 6
        log.attempt(6, IDs.t1, 1, ok: false, ts: 10_000)                                                // 7
        var (deliveries, _, _) = try derive(log)
        #expect(canonical(deliveries) == line(6, IDs.t1, status: "pending", attempts: 1, due: 11_000, error: "boom") + "\n")
        log.attempt(6, IDs.t1, 2, ok: false, ts: 11_000)                                                // 8
        (deliveries, _, _) = try derive(log)
        #expect(deliveries[0].dueAt == 13_000)
        log.attempt(6, IDs.t1, 3, ok: false, ts: 13_000)                                                // 9
        (deliveries, _, _) = try derive(log)
        #expect(deliveries[0].dueAt == 17_000)
        log.attempt(6, IDs.t1, 4, ok: false, ts: 17_000)                                                // 10
        (deliveries, _, _) = try derive(log)
        #expect(canonical(deliveries) == line(6, IDs.t1, status: "dead", attempts: 4, due: nil, error: "boom", finished: 10) + "\n")
    }

    @Test(arguments: [
        ("exponential", 1000, [1000, 2000, 4000, 8000]),
        ("linear", 1000, [1000, 2000, 3000, 4000]),
        ("constant", 700, [700, 700, 700, 700]),
        ("exponential", 0, [0, 0, 0, 0]),
    ] as [(String, Int64, [Int64])])
    func delaysPerBackoff(backoff: String, base: Int64, delays: [Int64]) throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":10,"backoff":"\#(backoff)","base_ms":\#(base)}"#)
        log.kv(ts: 0)
        var due: Int64 = 0
        for (index, delay) in delays.enumerated() {
            log.attempt(6, IDs.t1, index + 1, ok: false, ts: due)
            let (deliveries, _, _) = try derive(log)
            #expect(deliveries[0].dueAt == due + delay, "after attempt \(index + 1)")
            due += delay
        }
    }

    @Test func delayIsCappedAtOneHour() throws {
        let retry = RetryConfig(maxAttempts: 100, backoff: .exponential, baseMs: 86_400_000)
        #expect(retry.delayMs(afterAttempt: 1) == 3_600_000)
        let slow = RetryConfig(maxAttempts: 100, backoff: .exponential, baseMs: 1000)
        #expect(slow.delayMs(afterAttempt: 12) == 2_048_000)
        #expect(slow.delayMs(afterAttempt: 13) == 3_600_000)
        #expect(slow.delayMs(afterAttempt: 100) == 3_600_000)
        let linear = RetryConfig(maxAttempts: 100, backoff: .linear, baseMs: 86_400_000)
        #expect(linear.delayMs(afterAttempt: 100) == 3_600_000)

        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":3,"backoff":"constant","base_ms":86400000}"#)
        log.kv(ts: 5)
        log.attempt(6, IDs.t1, 1, ok: false, ts: 5)
        let (deliveries, _, _) = try derive(log)
        #expect(deliveries[0].dueAt == 3_600_005)
    }

    @Test func maxAttemptsOneDiesOnFirstError() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":1}"#)
        log.kv(ts: 100)
        log.attempt(6, IDs.t1, 1, ok: false, ts: 150)
        let (deliveries, _, deadLetters) = try derive(log)
        #expect(canonical(deliveries) == line(6, IDs.t1, status: "dead", attempts: 1, due: nil, error: "boom", finished: 7) + "\n")
        #expect(deadLetters.map(\.depth) == [1])
    }

    @Test func notRetryableDiesAtOnce() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":5}"#)
        log.kv(ts: 100)
        log.attempt(6, IDs.t1, 1, ok: false, error: "bad input", retryable: false, ts: 100)
        let (deliveries, _, deadLetters) = try derive(log)
        #expect(deliveries[0].status == .dead)
        #expect(deliveries[0].attempts == 1)
        #expect(deadLetters.first?.lastError == "bad input")
    }

    @Test func successAfterFailureKeepsLastError() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1)
        log.kv(ts: 100)
        log.attempt(6, IDs.t1, 1, ok: false, error: "flaky", ts: 100)
        log.attempt(6, IDs.t1, 2, ok: true, ts: 1100)
        let (deliveries, _, _) = try derive(log)
        #expect(canonical(deliveries) == line(6, IDs.t1, status: "succeeded", attempts: 2, due: nil, error: "flaky", finished: 8) + "\n")
    }

    @Test func retryChangeAppliesOnlyToNewDeliveries() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":2,"backoff":"constant","base_ms":100}"#)   // 5
        log.kv(ts: 0)                                                                              // 6
        log.add(#"{"type":"trigger.updated","trigger_id":"\#(IDs.t1)","retry":{"max_attempts":9,"base_ms":5000}}"#)  // 7
        log.kv(ts: 0)                                                                              // 8
        log.attempt(6, IDs.t1, 1, ok: false, ts: 0)                                                // 9
        log.attempt(8, IDs.t1, 1, ok: false, ts: 0)                                                // 10
        log.attempt(6, IDs.t1, 2, ok: false, ts: 100)                                              // 11
        let (deliveries, _, _) = try derive(log)
        #expect(deliveries[0].status == .dead, "the old delivery keeps max_attempts 2")
        #expect(deliveries[1].status == .pending)
        #expect(deliveries[1].dueAt == 5000, "the new delivery uses base_ms 5000, backoff kept constant")
        #expect(deliveries[1].retry == RetryConfig(maxAttempts: 9, backoff: .constant, baseMs: 5000))
    }

    @Test func attemptsAreValidated() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1)
        log.kv(ts: 100)
        var early = log
        early.attempt(6, IDs.t1, 1, ok: false, ts: 100)
        early.attempt(6, IDs.t1, 2, ok: true, ts: 200)  // due at 1100
        #expect(throws: RecordError.self) { try derive(early) }
        var wrongNumber = log
        wrongNumber.attempt(6, IDs.t1, 2, ok: true, ts: 100)
        #expect(throws: RecordError.self) { try derive(wrongNumber) }
        var unknown = log
        unknown.attempt(5, IDs.t1, 1, ok: true, ts: 100)
        #expect(throws: RecordError.self) { try derive(unknown) }
        var finished = log
        finished.attempt(6, IDs.t1, 1, ok: true, ts: 100)
        finished.attempt(6, IDs.t1, 2, ok: true, ts: 100)
        #expect(throws: RecordError.self) { try derive(finished) }
    }
}

@Suite struct MatchingTests {
    @Test func globsOpsAndRegistrationOrder() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, glob: "users:*", ops: #"["insert","update"]"#)  // 5
        log.kvTrigger(IDs.t2, glob: "*", ops: #"["delete"]"#)                 // 6
        log.kvTrigger(IDs.t3, glob: "users:eu")                                // 7
        log.kvTrigger(IDs.t4, glob: "users")                                   // 8
        log.kv("insert", collection: "users:eu")                               // 9: t1, t3
        log.kv("delete", collection: "users:eu")                               // 10: t2, t3
        log.kv("update", collection: "users")                                  // 11: t4
        log.kv("update", collection: "users:")                                 // 12: t1
        log.kv("insert", collection: "orders")                                 // 13: none
        let (deliveries, _, _) = try derive(log)
        #expect(deliveries.map { "\($0.id.sourcePosition):\($0.id.triggerID)" } == [
            "9:\(IDs.t1)", "9:\(IDs.t3)", "10:\(IDs.t2)", "10:\(IDs.t3)", "11:\(IDs.t4)", "12:\(IDs.t1)",
        ])
    }

    @Test func disabledTriggerStopsMatchingButPendingGoesOn() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1)                                                               // 5
        log.kv(ts: 0)                                                                       // 6
        log.add(#"{"type":"trigger.updated","trigger_id":"\#(IDs.t1)","enabled":false}"#)   // 7
        log.kv(ts: 0)                                                                       // 8: no match
        log.attempt(6, IDs.t1, 1, ok: true, ts: 0)                                          // 9
        log.add(#"{"type":"trigger.updated","trigger_id":"\#(IDs.t1)","enabled":true}"#)    // 10
        log.kv(ts: 0)                                                                       // 11
        let (deliveries, _, _) = try derive(log)
        #expect(canonical(deliveries) == [
            line(6, IDs.t1, status: "succeeded", attempts: 1, due: nil, finished: 9),
            line(11, IDs.t1, status: "pending", attempts: 0, due: 0),
        ].joined(separator: "\n") + "\n")
    }

    @Test func otherAppsNeverMatch() throws {
        var log = LogText.standard()
        log.add(#"{"type":"app.created","app_id":"\#(IDs.app2)","name":"other"}"#)
        log.kvTrigger(IDs.t1, glob: "*")
        log.kv(app: IDs.app2)
        let (deliveries, _, _) = try derive(log)
        #expect(deliveries.isEmpty)
    }

    @Test func matcherAgreesWithGlobRule() {
        // The trie and the plain rule agree on a table of globs and names.
        let globs = ["*", "a", "a*", "ab*", "abc", "b*", "", "é*"]
        let names = ["a", "ab", "abc", "abcd", "b", "ba", "é", "éa", "e"]
        var triggers: [Registry.Trigger] = []
        for (index, glob) in globs.enumerated() where !glob.isEmpty {
            triggers.append(Registry.Trigger(
                id: HeraldID(high: 0, low: UInt64(index)), appID: HeraldID(high: 1, low: 0), scriptID: HeraldID(high: 2, low: 0),
                kind: .kv, enabled: true, dispatchMode: .async, retry: .builtIn, registeredBy: HeraldID(high: 3, low: 0),
                kv: KVDetails(collectionGlob: glob, ops: []), deadLetter: nil, registeredPosition: UInt64(index + 1),
                createdTs: 0, updatedTs: 0, updatedPosition: 0))
        }
        let matcher = KVMatcher(triggers: triggers)
        var result: [KVMatcher.Entry] = []
        for name in names {
            matcher.match(collection: name, op: .insert, into: &result)
            let expected = triggers.filter { CollectionGlob.matches($0.kv?.collectionGlob ?? "", name) }.map(\.id)
            #expect(result.map(\.triggerID) == expected, "collection \(name)")
        }
    }
}

@Suite struct DeadLetterTests {
    /// kv trigger t1 (max 1 attempt) fails at 6:t1 → dead letter at position 7.
    func failingSetup(filters: String) -> LogText {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":1}"#)  // 5
        log.dlTrigger(IDs.t2, filters: filters)               // 6
        log.kv(ts: 50)                                         // 7
        log.attempt(7, IDs.t1, 1, ok: false, error: "down", ts: 60)  // 8
        return log
    }

    @Test(arguments: [
        (#"{}"#, true),
        (#"{"source_filter":null,"trigger_id_filter":null,"script_id_filter":null}"#, true),
        (#"{"source_filter":"kv"}"#, true),
        (#"{"source_filter":"dead_letter"}"#, false),
        (#"{"source_filter":"http"}"#, false),
        (#"{"trigger_id_filter":"\#(IDs.t1)"}"#, true),
        (#"{"script_id_filter":"\#(IDs.s1)"}"#, true),
        (#"{"script_id_filter":"\#(IDs.s2)"}"#, false),
        (#"{"source_filter":"kv","trigger_id_filter":"\#(IDs.t1)","script_id_filter":"\#(IDs.s1)"}"#, true),
        (#"{"source_filter":"kv","trigger_id_filter":"\#(IDs.t1)","script_id_filter":"\#(IDs.s2)"}"#, false),
    ])
    func filters(filters: String, fires: Bool) throws {
        let (deliveries, _, deadLetters) = try derive(failingSetup(filters: filters))
        #expect(deadLetters.count == 1)
        let expected = fires
            ? [line(7, IDs.t1, status: "dead", attempts: 1, due: nil, error: "down", finished: 8),
               line(8, IDs.t2, script: IDs.s2, kind: "dead_letter", depth: 1, status: "pending", attempts: 0, due: 60)]
            : [line(7, IDs.t1, status: "dead", attempts: 1, due: nil, error: "down", finished: 8)]
        #expect(canonical(deliveries) == expected.joined(separator: "\n") + "\n")
    }

    @Test func aTriggerFilterNamingAnotherTriggerDoesNotFire() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":1}"#)            // 5
        log.kvTrigger(IDs.t3, glob: "other")                             // 6
        log.dlTrigger(IDs.t2, filters: #"{"trigger_id_filter":"\#(IDs.t3)"}"#)  // 7
        log.kv(ts: 50)                                                   // 8
        log.attempt(8, IDs.t1, 1, ok: false, ts: 60)                     // 9
        let (deliveries, _, _) = try derive(log)
        #expect(deliveries.count == 1)
    }

    @Test func chainStopsAtDepthThree() throws {
        // A dead-letter handler that always fails, catching every dead letter, including its own.
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":1}"#)            // 5
        log.dlTrigger(IDs.t2, retry: #"{"max_attempts":1}"#)            // 6
        log.kv(ts: 0)                                                    // 7: 7:t1
        log.attempt(7, IDs.t1, 1, ok: false, ts: 0)                      // 8: dead, depth 1 → 8:t2
        log.attempt(8, IDs.t2, 1, ok: false, ts: 0)                      // 9: dead, depth 2 → 9:t2
        log.attempt(9, IDs.t2, 1, ok: false, ts: 0)                      // 10: dead, depth 3 → 10:t2
        log.attempt(10, IDs.t2, 1, ok: false, ts: 0)                     // 11: dead, depth 4 → nothing
        let (deliveries, dispatcher, deadLetters) = try derive(log)
        #expect(deliveries.map(\.depth) == [0, 1, 2, 3])
        #expect(deliveries.allSatisfy { $0.status == .dead })
        #expect(deadLetters.map(\.depth) == [1, 2, 3, 4])
        #expect(dispatcher.pending.isEmpty)
        #expect(canonical(deliveries).split(separator: "\n").last.map(String.init)
                == line(10, IDs.t2, script: IDs.s2, kind: "dead_letter", depth: 3, status: "dead", attempts: 1, due: nil,
                        error: "boom", finished: 11))
    }

    @Test func disabledDeadLetterTriggerDoesNotFire() throws {
        var log = failingSetup(filters: "{}")
        log.lines.insert(#"{"ts":0,"type":"trigger.updated","trigger_id":"\#(IDs.t2)","enabled":false}"#, at: 6)
        // positions shift by one: the kv insert is now 8 and the attempt names 7 → fix it up.
        var fixed = LogText.standard()
        fixed.kvTrigger(IDs.t1, retry: #"{"max_attempts":1}"#)
        fixed.dlTrigger(IDs.t2)
        fixed.add(#"{"type":"trigger.updated","trigger_id":"\#(IDs.t2)","enabled":false}"#)
        fixed.kv(ts: 50)
        fixed.attempt(8, IDs.t1, 1, ok: false, ts: 60)
        let (deliveries, _, deadLetters) = try derive(fixed)
        #expect(deadLetters.count == 1)
        #expect(deliveries.count == 1)
    }
}

@Suite struct CancellationTests {
    /// t1 (script s1, registered by admin) has pending 6:t1; `deletion` is appended at 7.
    func cancelled(by deletion: String, extra: (inout LogText) -> Void = { _ in }) throws -> [Delivery] {
        var log = LogText.standard()
        extra(&log)
        log.kvTrigger(IDs.t1)
        log.kv(ts: 0)
        let position = log.lines.count
        log.add(deletion)
        let (deliveries, dispatcher, _) = try derive(log)
        #expect(dispatcher.pending.isEmpty)
        #expect(deliveries.first?.finishedAt == UInt64(position + 1))
        return deliveries
    }

    @Test(arguments: [
        #"{"type":"trigger.deleted","trigger_id":"\#(IDs.t1)"}"#,
        #"{"type":"script.deleted","script_id":"\#(IDs.s1)"}"#,
        #"{"type":"admin_user.deleted","admin_user_id":"\#(IDs.admin)"}"#,
        #"{"type":"app.deleted","app_id":"\#(IDs.app)"}"#,
    ])
    func deletionCancelsPending(deletion: String) throws {
        let deliveries = try cancelled(by: deletion)
        #expect(canonical(deliveries) == line(6, IDs.t1, status: "cancelled", attempts: 0, due: nil, finished: 7) + "\n")
    }

    @Test func cascadesRemoveExactlyTheDependents() throws {
        var log = LogText.standard()
        log.add(#"{"type":"admin_user.created","admin_user_id":"\#(IDs.admin2)","email":"b@example.com"}"#)  // 5
        log.kvTrigger(IDs.t1)                                 // 6 admin, s1
        log.kvTrigger(IDs.t2, script: IDs.s2)                 // 7 admin, s2
        log.kvTrigger(IDs.t3, by: IDs.admin2)                 // 8 admin2, s1
        log.add(#"{"type":"admin_user.deleted","admin_user_id":"\#(IDs.admin)"}"#)  // 9
        var (_, dispatcher, _) = try derive(log)
        #expect(dispatcher.registry.liveTriggers().map(\.id.description) == [IDs.t3])
        log.add(#"{"type":"script.deleted","script_id":"\#(IDs.s1)"}"#)  // 10
        (_, dispatcher, _) = try derive(log)
        #expect(dispatcher.registry.liveTriggers().isEmpty)
        #expect(dispatcher.registry.scripts.count == 1)
        log.add(#"{"type":"app.deleted","app_id":"\#(IDs.app)"}"#)  // 11
        (_, dispatcher, _) = try derive(log)
        #expect(dispatcher.registry.scripts.isEmpty)
        #expect(dispatcher.registry.apps.isEmpty)
        #expect(dispatcher.registry.adminUsers.count == 1)
    }

    @Test func deletingATriggerLeavesFiltersNamingIt() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":1}"#)                     // 5
        log.dlTrigger(IDs.t2, filters: #"{"trigger_id_filter":"\#(IDs.t1)"}"#)  // 6
        log.add(#"{"type":"trigger.deleted","trigger_id":"\#(IDs.t1)"}"#)        // 7
        let (_, dispatcher, _) = try derive(log)
        #expect(dispatcher.registry.triggers.count == 1)
        #expect(dispatcher.registry.liveTriggers().first?.deadLetter?.triggerIDFilter?.description == IDs.t1)
    }
}
