import HeraldCore
import Testing

// The live engine's scheduling rules, one test (or a few) per rule of `EngineStateMachine`'s
// documentation, driven through the state machine alone: no file, thread or clock.

/// A state machine and a pretend log: commands and outcomes get the next positions.
private struct Engine {
    var machine: EngineStateMachine
    var position: UInt64 = 0

    init(concurrency: Int = 16, timeoutMs: Int64 = 1_000, dispatcher: Dispatcher = Dispatcher()) {
        machine = EngineStateMachine(dispatcher: dispatcher, configuration: .init(
            concurrency: concurrency, attemptTimeoutMs: timeoutMs, recordBytesMax: 16 << 20))
        position = dispatcher.position
    }

    /// Appends `log`'s lines, one command each (at their own ts).
    @discardableResult
    mutating func commands(_ log: LogText) throws -> [EngineStateMachine.Appended] {
        try log.lines.map { try command($0) }
    }

    @discardableResult
    mutating func command(_ line: String) throws -> EngineStateMachine.Appended {
        let (ts, body) = try RecordJSONDecoder().decode(line: line)
        return try append(machine.acceptCommands([body], ts: ts, now: 0))
    }

    mutating func append(_ batch: EngineStateMachine.Batch) -> EngineStateMachine.Appended {
        let range = position + 1 ... position + UInt64(max(1, batch.records.count))
        if !batch.isEmpty { position = range.upperBound }
        return machine.appended(batch, at: range)
    }

    /// Takes what is due at `now`, every record durable unless told otherwise.
    mutating func due(now: Int64, durable: UInt64? = nil) -> [Invocation] {
        machine.takeDue(now: now, durable: durable ?? position).invocations
    }

    /// Records outcomes for `invocations` (ok unless `error` is given), at `now`.
    @discardableResult
    mutating func finish(_ invocations: [Invocation], now: Int64, error: String? = nil, retryable: Bool = true) throws
        -> EngineStateMachine.Appended {
        let results = invocations.map { _ in (result: error.map { ExecutionResult.error($0, retryable: retryable) } ?? .ok, measuredMs: Int64(3)) }
        let attempts = machine.outcomes(of: invocations, results: results)
        return try append(machine.acceptOutcomes(attempts, now: now))
    }
}

/// "position:trigger" of each invocation, in order.
private func names(_ invocations: [Invocation]) -> [String] {
    invocations.map { "\($0.delivery.sourcePosition):\(trigger($0.delivery.triggerID))#\($0.attempt)" }
}

private func trigger(_ id: HeraldID) -> String {
    [("t1", IDs.t1), ("t2", IDs.t2), ("t3", IDs.t3), ("t4", IDs.t4)].first { HeraldID($0.1) == id }?.0 ?? "\(id)"
}

private let constant100 = #"{"max_attempts":2,"backoff":"constant","base_ms":100}"#

@Suite struct EngineStateMachineTests {
    // Rule 1: due time first, then source position, then the trigger's registration order;
    // nothing before its due time.
    @Test func dueDeliveriesStartInDueTimeThenCanonicalOrder() throws {
        var engine = Engine()
        var log = LogText.standard()                      // 1…4
        log.kvTrigger(IDs.t2, retry: constant100)          // 5: registered first
        log.kvTrigger(IDs.t1)                              // 6
        log.kv(ts: 0)                                      // 7
        try engine.commands(log)
        let first = engine.due(now: 0)
        #expect(names(first) == ["7:t2#1", "7:t1#1"])
        // 7:t2 fails at 0 (due again at 100); 7:t1 succeeds; then a KV record at 50 (position 10).
        try engine.finish([first[0]], now: 0, error: "boom")
        try engine.finish([first[1]], now: 0)
        try engine.command(#"{"ts":50,"type":"kv.update","app_id":"\#(IDs.app)","collection":"c","key":"k","value":{"n":2}}"#)
        #expect(engine.position == 10)
        #expect(names(engine.due(now: 99)) == ["10:t2#1", "10:t1#1"])  // 7:t2 is not due until 100
        #expect(engine.due(now: 99).isEmpty)                           // in flight: not again
        #expect(names(engine.due(now: 100)) == ["7:t2#2"])
    }

    @Test func equalDueTimesGoInSourcePositionOrder() throws {
        var engine = Engine()
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: constant100)          // 5
        log.kv(ts: 0)                                      // 6: due 0
        try engine.commands(log)
        try engine.finish(engine.due(now: 0), now: 0, error: "boom")  // 7: 6:t1 due at 100
        try engine.command(#"{"ts":100,"type":"kv.update","app_id":"\#(IDs.app)","collection":"c","key":"k","value":{"n":2}}"#)  // 8: due 100
        // Both due at 100: position 6 before position 8.
        #expect(names(engine.due(now: 100)) == ["6:t1#2", "8:t1#1"])
    }

    // Rule 2: at most `concurrency` in flight; a slot frees when its outcome is recorded.
    @Test func concurrencyBoundsTheAttemptsInFlight() throws {
        var engine = Engine(concurrency: 2)
        var log = LogText.standard()
        log.kvTrigger(IDs.t1)
        for key in ["a", "b", "c", "d", "e"] { log.kv(key: key) }  // 6…10
        try engine.commands(log)
        let first = engine.due(now: 0)
        #expect(names(first) == ["6:t1#1", "7:t1#1"])
        #expect(engine.due(now: 0).isEmpty)
        #expect(engine.machine.inFlight.count == 2)
        try engine.finish([first[0]], now: 1)
        #expect(names(engine.due(now: 1)) == ["8:t1#1"])
        try engine.finish([first[1]], now: 1)
        #expect(names(engine.due(now: 1)) == ["9:t1#1"])
        #expect(engine.machine.status(now: 1) == EngineStatus(position: 12, pending: 3, due: 3, inFlight: 2, nextDueAt: 0))
    }

    // Rule 3: nothing starts before its source record is durable; the append that queued it
    // asks to be woken at its position.
    @Test func aDeliveryWaitsForItsSourceRecordsDurability() throws {
        var engine = Engine()
        var log = LogText.standard()
        log.kvTrigger(IDs.t1)
        let registry = try engine.commands(log)
        #expect(registry.allSatisfy { $0.awaitDurableThrough == nil })  // nothing queued
        let kv = try engine.command(#"{"ts":0,"type":"kv.insert","app_id":"\#(IDs.app)","collection":"c","key":"k","value":{"n":1}}"#)
        #expect(kv.awaitDurableThrough == 6)
        #expect(engine.due(now: 0, durable: 5).isEmpty)
        #expect(engine.machine.nextDueAt() == 0)                        // still queued
        #expect(engine.machine.next(afterRoundThatRecorded: 0, now: 0, untilIdle: false, clockMovesByItself: true) == .wait(ms: 5))
        #expect(names(engine.due(now: 0, durable: 6)) == ["6:t1#1"])
    }

    // Rule 4: an outcome whose delivery was cancelled while it ran is dropped, not appended.
    @Test func anOutcomeForACancelledDeliveryIsDropped() throws {
        var engine = Engine()
        var log = LogText.standard()
        log.kvTrigger(IDs.t1)
        log.kv()
        try engine.commands(log)
        let running = engine.due(now: 0)
        try engine.command(#"{"ts":0,"type":"trigger.deleted","trigger_id":"\#(IDs.t1)"}"#)   // 7: cancels 6:t1
        let attempts = engine.machine.outcomes(of: running, results: [(.ok, 4)])
        let batch = try engine.machine.acceptOutcomes(attempts, now: 1)
        #expect(batch.isEmpty)
        #expect(try batch.dropped.map(\.attempt.triggerID) == [#require(HeraldID(IDs.t1))])
        #expect(engine.machine.inFlight.isEmpty)
        #expect(engine.machine.dispatcher.pending.isEmpty)
    }

    // Rule 5: a failed attempt is queued again at its retry time; the last one dead-letters,
    // and the dead letter's delivery runs with the dead-letter event.
    @Test func failuresRetryThenDeadLetter() throws {
        var engine = Engine()
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: constant100)          // 5
        log.dlTrigger(IDs.t3)                              // 6: on s2
        log.kv(ts: 1_000)                                  // 7
        try engine.commands(log)
        let outcome1 = try engine.finish(engine.due(now: 1_000), now: 1_010, error: "first")   // 8
        #expect(outcome1.awaitDurableThrough == 8)
        #expect(outcome1.reports.map(\.delivery.dueAt) == [1_110])
        #expect(outcome1.reports.map(\.position) == [8])
        #expect(engine.due(now: 1_109).isEmpty)
        let second = engine.due(now: 1_110)
        #expect(names(second) == ["7:t1#2"])
        let outcome2 = try engine.finish(second, now: 1_120, error: "second")                  // 9: dead
        #expect(outcome2.reports.map(\.delivery.status) == [.dead])
        #expect(outcome2.awaitDurableThrough == 9)
        let handler = engine.due(now: 1_120)
        #expect(names(handler) == ["9:t3#1"])
        guard case .deadLetter(let event) = handler.first?.event else {
            Issue.record("the dead letter's delivery carries no dead-letter event")
            return
        }
        #expect(try event.delivery == DeliveryID(sourcePosition: 7, triggerID: #require(HeraldID(IDs.t1))))
        #expect(event.lastError == "second")
        #expect(handler.first?.depth == 1)
        #expect(handler.first?.script.id == HeraldID(IDs.s2))
    }

    @Test func aNonRetryableFailureDeadLettersAtOnce() throws {
        var engine = Engine()
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: constant100)
        log.kv()
        try engine.commands(log)
        let outcome = try engine.finish(engine.due(now: 0), now: 0, error: "bad input", retryable: false)
        #expect(outcome.reports.map(\.delivery.status) == [.dead])
        #expect(engine.machine.dispatcher.pending.isEmpty)
        #expect(engine.machine.nextDueAt() == nil)
    }

    // Rule 6: no result by the deadline, or a reported duration over the timeout, is a
    // retryable timeout of exactly the timeout.
    @Test func lateAttemptsAreRecordedAsTimeouts() throws {
        var engine = Engine(timeoutMs: 200)
        var log = LogText.standard()
        log.kvTrigger(IDs.t1)
        log.kv(key: "a")
        log.kv(key: "b")
        log.kv(key: "c")
        try engine.commands(log)
        let running = engine.due(now: 0)
        let attempts = engine.machine.outcomes(of: running, results: [
            nil,                                          // the deadline came first
            (.error("slow", retryable: false, durationMs: 900), 1),  // its own clock says too long
            (.ok, 7),                                     // measured by the engine
        ])
        #expect(attempts.map(\.outcome) == [.error, .error, .ok])
        #expect(attempts.map(\.error) == ["timed out after 200 ms", "timed out after 200 ms", nil])
        #expect(attempts.map(\.retryable) == [true, true, true])
        #expect(attempts.map(\.durationMs) == [200, 200, 7])
        #expect(attempts.map(\.attempt) == [1, 1, 1])
    }

    // Rule 7: after a restart the sources are loaded on demand; one nothing describes leaves
    // its delivery pending instead of spinning.
    @Test func afterARestartSourcesAreLoadedOnDemand() throws {
        var log = LogText.standard()
        log.kvTrigger(IDs.t1)
        log.kv(key: "a")                                   // 6
        log.kv(key: "b")                                   // 7
        let derived = try derive(log)
        var engine = Engine(dispatcher: derived.dispatcher)
        let due = engine.machine.takeDue(now: 0, durable: 7)
        #expect(due.invocations.isEmpty)
        #expect(due.missingSources == [6, 7])
        let (ts, body) = try RecordJSONDecoder().decode(line: log.lines[5])
        engine.machine.sourcesLoaded(records: [6: Record(ts: ts ?? 0, body: body)], deadLetters: [:], asked: [6, 7])
        let resumed = engine.due(now: 0)
        #expect(names(resumed) == ["6:t1#1"])
        guard case .kv(let position, _, let mutation) = resumed.first?.event else {
            Issue.record("no KV event")
            return
        }
        #expect(position == 6 && mutation.key == "a")
        // 7 is unresolvable: pending, visible, never started.
        #expect(engine.due(now: 10).isEmpty)
        #expect(engine.machine.status(now: 10).pending == 2)
    }

    // Rules 1 and 7 together: a redriven delivery's source is no longer cached; a later one's
    // is, yet the redriven one still starts first (the later one waits while the source loads).
    @Test func dueOrderHoldsAcrossASourceThatMustBeLoaded() throws {
        var engine = Engine()
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":1}"#)
        log.kv(key: "a")                                   // 6
        try engine.commands(log)
        try engine.finish(engine.due(now: 0), now: 0, error: "down")     // 7: dead
        try engine.command(#"{"ts":5,"type":"delivery.redriven","deliveries":["6:\#(IDs.t1)"],"by":"\#(IDs.admin)"}"#)   // 8: due 5
        try engine.command(#"{"ts":6,"type":"kv.insert","app_id":"\#(IDs.app)","collection":"c","key":"b","value":{"n":2}}"#)  // 9: due 6
        let first = engine.machine.takeDue(now: 10, durable: engine.position)
        #expect(first.invocations.isEmpty, "nothing after the redriven delivery starts before it")
        #expect(first.missingSources == [6])
        let (ts, body) = try RecordJSONDecoder().decode(line: log.lines[5])
        engine.machine.sourcesLoaded(records: [6: Record(ts: ts ?? 0, body: body)], deadLetters: [:], asked: [6])
        #expect(names(engine.due(now: 10)) == ["6:t1#2", "9:t1#1"])
    }

    // Rule 8: a failed append stops all work.
    @Test func afterAFailedAppendEveryCommandAndOutcomeIsRefused() throws {
        var engine = Engine()
        var log = LogText.standard()
        log.kvTrigger(IDs.t1)
        log.kv(key: "a")
        log.kv(key: "b")
        try engine.commands(log)
        let running = engine.due(now: 0)
        #expect(running.count == 2)
        engine.machine.failed("the disk is full")
        #expect(throws: EngineError.self) { try engine.command(#"{"ts":0,"type":"app.created","app_id":"\#(IDs.app2)","name":"x"}"#) }
        let attempts = engine.machine.outcomes(of: running, results: [(.ok, 1), (.ok, 1)])
        #expect(throws: EngineError.self) { try engine.machine.acceptOutcomes(attempts, now: 0) }
        #expect(engine.machine.inFlight.isEmpty)
        #expect(engine.due(now: 0).isEmpty)
        #expect(engine.machine.next(afterRoundThatRecorded: 0, now: 0, untilIdle: false, clockMovesByItself: true) == .finish)
        #expect(engine.machine.failure == "the disk is full")
    }

    // Rule 9: after stop nothing new starts, attempts in flight still record their outcome,
    // and the run loop finishes.
    @Test func stopDrainsWhatIsInFlight() throws {
        var engine = Engine(concurrency: 1)
        var log = LogText.standard()
        log.kvTrigger(IDs.t1)
        log.kv(key: "a")
        log.kv(key: "b")
        try engine.commands(log)
        let running = engine.due(now: 0)
        #expect(names(running) == ["6:t1#1"])
        engine.machine.stop()
        let outcome = try engine.finish(running, now: 1)
        #expect(outcome.reports.map(\.delivery.status) == [.succeeded])
        #expect(engine.due(now: 1).isEmpty)
        #expect(engine.machine.next(afterRoundThatRecorded: 1, now: 1, untilIdle: false, clockMovesByItself: true) == .finish)
        #expect(engine.machine.status(now: 1).pending == 1)
    }

    // Rule 10: what the run loop does between rounds.
    @Test func betweenRoundsTheLoopWaitsAdvancesOrFinishes() throws {
        var engine = Engine()
        func next(_ recorded: Int = 0, now: Int64, untilIdle: Bool = false, real: Bool = true) -> EngineStateMachine.Next {
            engine.machine.next(afterRoundThatRecorded: recorded, now: now, untilIdle: untilIdle, clockMovesByItself: real)
        }
        #expect(next(now: 0, untilIdle: true) == .finish)      // nothing pending
        #expect(next(now: 0) == .wait(ms: 1_000))
        #expect(next(now: 0, real: false) == .wait(ms: 50))
        #expect(next(now: 0, untilIdle: true, real: false) == .finish)
        var log = LogText.standard()
        log.kvTrigger(IDs.t1)
        log.kv(ts: 5_000)
        try engine.commands(log)
        #expect(next(3, now: 0) == .round)                     // it recorded outcomes: go on
        #expect(next(now: 4_700) == .wait(ms: 300))
        #expect(next(now: 0) == .wait(ms: 1_000))              // at most a second
        #expect(next(now: 0, untilIdle: true, real: false) == .advanceClock(to: 5_000))
        _ = engine.due(now: 5_000)
        #expect(next(now: 5_000) == .wait(ms: 1_000))          // in flight: not due for the loop
        #expect(engine.machine.nextDueAt() == nil)
    }

    // A redrive split into records (distinct ids) is checked against the state before the
    // batch and applied whole, or not at all.
    @Test func aBatchOfRedrivesIsAllOrNothing() throws {
        var engine = Engine()
        var log = LogText.standard()
        log.kvTrigger(IDs.t1, retry: #"{"max_attempts":1}"#)
        log.kv(key: "a")                                   // 6
        log.kv(key: "b")                                   // 7
        log.kv(key: "c")                                   // 8
        try engine.commands(log)
        try engine.finish(engine.due(now: 0), now: 0, error: "down")   // 9, 10, 11: dead
        func redrive(_ positions: [Int]) throws -> RecordBody {
            try RecordJSONDecoder().decode(line: #"{"type":"delivery.redriven","deliveries":[\#(positions.map { "\"\($0):\(IDs.t1)\"" }.joined(separator: ","))],"by":"\#(IDs.admin)"}"#).body
        }
        #expect(engine.machine.dispatcher.redrivable.count == 3)
        // The second record lists a delivery that is not dead: nothing changes.
        #expect(throws: RecordError.self) { try engine.machine.acceptCommands([try redrive([6]), try redrive([5])], ts: 20, now: 20) }
        #expect(engine.machine.dispatcher.redrivable.count == 3 && engine.machine.dispatcher.pending.isEmpty)
        let batch = try engine.machine.acceptCommands([try redrive([6, 7]), try redrive([8])], ts: 20, now: 20)
        _ = engine.append(batch)
        #expect(engine.machine.dispatcher.redrivable.isEmpty)
        #expect(engine.machine.dispatcher.pending.count == 3)
        #expect(engine.machine.takeDue(now: 20, durable: engine.position).missingSources == [6, 7, 8],
                "all three are due again; their sources are read back")
    }

    // A batch of commands is all or nothing.
    @Test func aBatchWithABadRecordChangesNothing() throws {
        var engine = Engine()
        try engine.commands(LogText.standard())
        let decoder = RecordJSONDecoder()
        let good = try decoder.decode(line: #"{"type":"app.created","app_id":"\#(IDs.app2)","name":"two"}"#).body
        let bad = try decoder.decode(line: #"{"type":"script.deleted","script_id":"\#(IDs.s3)"}"#).body
        let before = engine.machine.dispatcher.registry.apps.count
        do {
            _ = try engine.machine.acceptCommands([good, bad], ts: 5, now: 0)
            Issue.record("a batch with an unknown script's deletion was accepted")
        } catch let error as RecordError {
            #expect("\(error)".contains("record 2 of 2"), "\(error)")
        }
        #expect(engine.machine.dispatcher.registry.apps.count == before)
        #expect(engine.machine.dispatcher.position == 4)
        #expect(throws: EngineError.self) { try engine.machine.acceptCommands([], ts: nil, now: 0) }
    }
}
