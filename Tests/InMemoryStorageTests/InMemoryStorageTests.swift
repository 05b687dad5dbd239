import Foundation
import Herald
import HeraldCore
import Testing

// The engine and the reads (`herald deliveries`, `explain`) on a second implementation of the
// storage seams: `InMemoryRecordLog` and `InMemoryProjection` (this target depends on no part
// of the segment log or of SQLite). The same scenario on the data directory's segment log and
// SQLite projection must give the same bytes.

private func id(_ n: UInt64) -> HeraldID { HeraldID(high: 0x0000_0000_0000_4000, low: 0x8000_0000_0000_0000 | n) }

/// A fixed scenario: one app, three scripts (one succeeds, one fails twice then succeeds, one
/// fails for good), three KV triggers, a dead-letter trigger, and KV mutations over time.
private enum Scenario {
    static let admin = id(1), app = id(2)
    static let ok = id(10), flaky = id(11), broken = id(12), handler = id(13)
    static let startMs: Int64 = 1_000_000

    static var setup: [RecordBody] {
        var bodies: [RecordBody] = [.adminUserCreated(adminUserID: admin, email: "ops@example.com"),
                                    .appCreated(appID: app, name: "shop")]
        for script in [ok, flaky, broken, handler] {
            bodies.append(.scriptRegistered(ScriptRegistration(scriptID: script, appID: app, name: "s\(script.low & 0xff)",
                                                               runtime: "sim", source: "")))
        }
        let retry = RetryConfig(maxAttempts: 3, backoff: .exponential, baseMs: 100)
        for (trigger, script, glob) in [(id(20), ok, "users:*"), (id(21), flaky, "orders"), (id(22), broken, "*")] {
            bodies.append(.triggerRegistered(TriggerRegistration(
                triggerID: trigger, appID: app, scriptID: script, kind: .kv, retry: retry, registeredBy: admin,
                kv: KVDetails(collectionGlob: glob, ops: OpSet(rawValue: 7)))))
        }
        bodies.append(.triggerRegistered(TriggerRegistration(
            triggerID: id(23), appID: app, scriptID: handler, kind: .deadLetter,
            retry: RetryConfig(maxAttempts: 2, backoff: .constant, baseMs: 50), registeredBy: admin,
            deadLetter: DeadLetterDetails(sourceFilter: .kv))))
        return bodies
    }

    static var events: [(ts: Int64, body: RecordBody)] {
        let collections = ["users:1", "orders", "carts", "users:2", "orders"]
        return collections.enumerated().map { index, collection in
            (startMs + Int64(index) * 70, .kv(KVMutation(op: index % 3 == 2 ? .update : .insert, appID: app,
                                                        collection: collection, key: "k\(index)", value: "{\"n\":\(index)}")))
        }
    }

    static let executor = ClosureExecutor(fallback: { invocation in
        switch invocation.script.id {
        case flaky: invocation.attempt <= 2 ? .error("flaky \(invocation.attempt)", durationMs: 5) : ExecutionResult(.ok, durationMs: 4)
        case broken: .error("broken", retryable: false, durationMs: 2)
        default: ExecutionResult(.ok, durationMs: 3)
        }
    })

    static func options(_ clock: VirtualClock) -> HeraldOptions {
        HeraldOptions(durability: .none, clock: clock, executor: executor, concurrency: 2, attemptTimeoutMs: 1_000,
                      projectionIntervalMs: 0)
    }

    /// Appends the setup and the events at their times, then runs until nothing is pending.
    static func run(_ herald: Herald, clock: VirtualClock, events: ArraySlice<(ts: Int64, body: RecordBody)>) async throws {
        if herald.position == 0 { try herald.append(setup, ts: startMs) }
        for event in events {
            clock.advance(to: event.ts)
            try herald.append(event.body, ts: event.ts)
        }
        try await herald.run(untilIdle: true)
    }
}

/// What a user reads back: the canonical deliveries, and `explain` of each position.
private func reads(_ source: any RecordSource, projection: (any ProjectionStore)?) throws -> (deliveries: String, explained: [String]) {
    var out = JSONOutput()
    try source.forEachDelivery(projection: projection) { delivery in
        CanonicalOutput.append(delivery, to: &out)
        out.newline()
    }
    var explained: [String] = []
    for position in 1...(try source.lastPosition) {
        explained.append(ExplanationText.render(try source.explain(position: position)))
    }
    return (out.text, explained)
}

private func canonical(_ deliveries: [Delivery]) -> String {
    var out = JSONOutput()
    for delivery in deliveries {
        CanonicalOutput.append(delivery, to: &out)
        out.newline()
    }
    return out.text
}

@Suite struct InMemoryStorageTests {
    @Test func theEngineRunsOnInMemoryStorageAndReadsMatchTheSegmentLog() async throws {
        // In memory.
        let log = InMemoryRecordLog()
        let projection = InMemoryProjection()
        let clock = VirtualClock(startMs: Scenario.startMs)
        let herald = try Herald.open(storage: EngineStorage(log: log, projection: projection), options: Scenario.options(clock))
        try await Scenario.run(herald, clock: clock, events: Scenario.events[...])
        #expect(herald.pendingCount == 0)
        #expect(herald.directory == nil && herald.recovery == nil)
        let fromEngine = canonical(try herald.deliveries())
        try herald.close()
        #expect(try projection.checkpointPosition() == log.lastPosition, "close catches the projection up")
        let memory = try reads(log, projection: projection)
        let replayed = try reads(log, projection: nil)
        #expect(memory.deliveries == replayed.deliveries, "the in-memory projection streams what replay derives")
        #expect(memory.deliveries == fromEngine)
        // What happened: 5 KV events; "flaky" succeeds on its third attempt, "broken" dead-letters
        // at once and the handler runs for each dead letter.
        let lines = memory.deliveries.split(separator: "\n")
        #expect(lines.filter { $0.contains(#""status":"dead""#) }.count == 5)
        #expect(lines.filter { $0.contains(#""source_kind":"dead_letter""#) && $0.contains(#""status":"succeeded""#) }.count == 5)
        #expect(lines.filter { $0.contains(#""attempts":3"#) && $0.contains(#""status":"succeeded""#) }.count == 2)

        // The same on a data directory (segment log, SQLite projection): the same bytes.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("herald-seam-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let directory = DataDirectory(path: path)
        let diskClock = VirtualClock(startMs: Scenario.startMs)
        let onDisk = try Herald.open(directory: directory, options: Scenario.options(diskClock))
        try await Scenario.run(onDisk, clock: diskClock, events: Scenario.events[...])
        try onDisk.close()
        let reader = try directory.openReader()
        let segment = try reads(reader, projection: try directory.openProjectionForReading())
        #expect(segment.deliveries == memory.deliveries)
        #expect(segment.explained == memory.explained)
        #expect(try reader.lastPosition == log.lastPosition)
    }

    @Test func aRestartOnInMemoryStorageResumesPendingWorkFromTheSnapshot() async throws {
        let log = InMemoryRecordLog()
        let projection = InMemoryProjection()
        let clock = VirtualClock(startMs: Scenario.startMs)
        let first = try Herald.open(storage: EngineStorage(log: log, projection: projection), options: Scenario.options(clock))
        try first.append(Scenario.setup, ts: Scenario.startMs)
        for event in Scenario.events {
            clock.advance(to: event.ts)
            try first.append(event.body, ts: event.ts)
        }
        // One round only: dead letters and retries are left pending.
        try await first.runDue()
        let pendingBefore = first.pendingCount
        try first.close()
        #expect(pendingBefore > 0)
        #expect(try projection.checkpointPosition() == log.lastPosition)

        log.reopen()
        let second = try Herald.open(storage: EngineStorage(log: log, projection: projection), options: Scenario.options(clock))
        #expect(second.pendingCount == pendingBefore, "the snapshot restores every pending delivery")
        try await second.run(untilIdle: true)
        try second.close()

        // An uninterrupted run of the same scenario records the same deliveries.
        let straightLog = InMemoryRecordLog()
        let straightClock = VirtualClock(startMs: Scenario.startMs)
        let straight = try Herald.open(storage: EngineStorage(log: straightLog, projection: InMemoryProjection()),
                                       options: Scenario.options(straightClock))
        try await Scenario.run(straight, clock: straightClock, events: Scenario.events[...])
        try straight.close()
        let resumed = try log.deliveries()
        #expect(resumed.allSatisfy { $0.status != .pending })
        // Virtual time and the same rounds: the same records at the same positions.
        #expect(canonical(resumed) == canonical(try straightLog.deliveries()))
    }

    @Test func aFailedAppendOnInMemoryStorageStopsTheEngine() async throws {
        let log = InMemoryRecordLog()
        let clock = VirtualClock(startMs: Scenario.startMs)
        let herald = try Herald.open(storage: EngineStorage(log: log, projection: InMemoryProjection()), options: Scenario.options(clock))
        try herald.append(Scenario.setup, ts: Scenario.startMs)
        log.failAfterAppends.withLock { $0 = 1 }
        #expect(throws: InMemoryRecordLog.Failure.self) { try herald.append(Scenario.events[0].body, ts: Scenario.startMs) }
        #expect(throws: EngineError.self) { try herald.append(Scenario.events[1].body, ts: Scenario.startMs) }
        #expect(try log.lastPosition == UInt64(Scenario.setup.count), "nothing after the failure reached the log")
        try herald.close()
    }
}
