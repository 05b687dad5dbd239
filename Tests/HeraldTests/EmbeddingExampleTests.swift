import Foundation
import Herald
import HeraldCore
import Logging
import ServiceLifecycle
import Synchronization
import Testing

// The code between the `BEGIN EMBEDDING EXAMPLE` and `END EMBEDDING EXAMPLE` markers is the
// example of docs/EMBEDDING.md, character for character: `exampleMatchesTheGuide` below fails
// when the two drift apart. Edit both together.

// BEGIN EMBEDDING EXAMPLE
/// Embeds Herald: registers a tenant, runs two scripts (an in-process closure and a `process`
/// script), restarts, and returns what it printed.
func embeddingExample(dataPath: String, clock: any HeraldClock) async throws -> [String] {
    let out = Mutex<[String]>([])
    @Sendable func say(_ line: String) { out.withLock { $0.append(line) } }

    // Ids are UUIDs; HeraldID(high:low:) avoids parsing text (HeraldID("…") returns an optional).
    let admin = HeraldID(high: 0xa000_0000_0000_4000, low: 0x8000_0000_0000_0001)
    let app = HeraldID(high: 0xb000_0000_0000_4000, low: 0x8000_0000_0000_0001)
    let welcome = HeraldID(high: 0xc000_0000_0000_4000, low: 0x8000_0000_0000_0001)
    let audit = HeraldID(high: 0xc000_0000_0000_4000, low: 0x8000_0000_0000_0002)
    let onSignup = HeraldID(high: 0xd000_0000_0000_4000, low: 0x8000_0000_0000_0001)
    let onAnyChange = HeraldID(high: 0xd000_0000_0000_4000, low: 0x8000_0000_0000_0002)

    // In-process scripts, chosen by script id (then by runtime, then the fallback).
    let closures = ClosureExecutor(byScript: [
        welcome: { invocation in
            say("welcome attempt \(invocation.attempt) runs as \(invocation.principal?.email ?? "nobody")")
            if invocation.attempt == 1 {
                // A retryable failure; durationMs is what gets recorded (virtual time).
                return .error("smtp: connection refused", durationMs: 40)
            }
            return ExecutionResult(.ok, durationMs: 12)
        },
    ])
    // `process` scripts run `/bin/sh -c source` with the invocation JSON on stdin;
    // everything else goes to the closures.
    let executor = RuntimeRouter(["process": ProcessExecutor()], fallback: closures)
    let options = HeraldOptions(durability: .always, clock: clock, executor: executor,
                                concurrency: 16, attemptTimeoutMs: 30_000)
    let directory = DataDirectory(path: dataPath)

    var herald = try Herald.open(directory: directory, options: options)
    // One batch: validated as a whole, appended as one block with one fsync, all or nothing.
    try herald.append([
        .adminUserCreated(adminUserID: admin, email: "ops@example.com"),
        .appCreated(appID: app, name: "shop"),
        .scriptRegistered(ScriptRegistration(scriptID: welcome, appID: app, name: "send-welcome",
                                             runtime: "swift", source: "")),
        .scriptRegistered(ScriptRegistration(
            scriptID: audit, appID: app, name: "audit", runtime: "process",
            source: #"input=$(cat); case "$input" in *'"email":"ops@example.com"'*) exit 0;; *) echo "no principal" >&2; exit 75;; esac"#)),
        .triggerRegistered(TriggerRegistration(
            triggerID: onSignup, appID: app, scriptID: welcome, kind: .kv,
            retry: RetryConfig(maxAttempts: 3, backoff: .exponential, baseMs: 1000),
            registeredBy: admin, kv: KVDetails(collectionGlob: "users:*", ops: [.insert]))),
        .triggerRegistered(TriggerRegistration(
            triggerID: onAnyChange, appID: app, scriptID: audit, kind: .kv,
            retry: options.environment.retryDefaults,  // HERALD_RETRY_* defaults: 5, exponential, 1000
            registeredBy: admin, kv: KVDetails(collectionGlob: "users:*", ops: []))),
    ])
    let signup = try herald.append(.kv(KVMutation(op: .insert, appID: app, collection: "users:eu",
                                                  key: "alice", value: #"{"name":"Alice"}"#)))
    say("kv.insert at position \(signup)")

    // Runs rounds until nothing is pending; a VirtualClock jumps to each next due time.
    try await herald.run(untilIdle: true) { report in
        let a = report.attempt
        say("position \(report.position): \(report.delivery.id) attempt \(a.attempt) \(a.outcome) \(a.durationMs) ms"
            + (a.error.map { " (\($0))" } ?? "") + " → \(report.delivery.status)")
    }
    for delivery in try herald.deliveries() {
        var line = JSONOutput()
        CanonicalOutput.append(delivery, to: &line)  // one `herald deliveries --format jsonl` line
        say(line.text)
    }
    let timeline = try herald.explain(delivery: DeliveryID(sourcePosition: signup, triggerID: onSignup))
    say("welcome: \(timeline.current?.status.description ?? "?") after \(timeline.attempts.count) attempt(s), "
        + "principal \(timeline.principal?.email ?? "?")")
    try herald.close()

    // A restart: append, close without running, reopen. The pending delivery is resumed
    // from the projection and the log's tail.
    herald = try Herald.open(directory: directory, options: options)
    let update = try herald.append(.kv(KVMutation(op: .update, appID: app, collection: "users:eu",
                                                  key: "alice", value: #"{"name":"Alice B."}"#)))
    try herald.close()
    herald = try Herald.open(directory: directory, options: options)
    say("after restart: position \(herald.status().position), \(herald.status().pending) pending")
    try await herald.run(untilIdle: true)
    let resumed = try herald.deliveries().filter { $0.id.sourcePosition == update }
    say("kv.update at position \(update): " + resumed.map { "\($0.id) \($0.status)" }.joined(separator: ", "))
    try herald.close()
    return out.withLock { $0 }
}
// END EMBEDDING EXAMPLE

@Suite struct EmbeddingExampleTests {
    @Test func exampleRunsInVirtualTime() async throws {
        let start: Int64 = 1_700_000_000_000
        let lines = try await withTemporaryDirectory { path in
            try await embeddingExample(dataPath: path, clock: VirtualClock(startMs: start))
        }
        let expected = [
            "kv.insert at position 7",
            "welcome attempt 1 runs as ops@example.com",
            "position 8: 7:d0000000-0000-4000-8000-000000000001 attempt 1 error 40 ms (smtp: connection refused) → pending",
            "position 9: 7:d0000000-0000-4000-8000-000000000002 attempt 1 ok 0 ms → succeeded",
            "welcome attempt 2 runs as ops@example.com",
            "position 10: 7:d0000000-0000-4000-8000-000000000001 attempt 2 ok 12 ms → succeeded",
            #"{"source_position":7,"trigger_id":"d0000000-0000-4000-8000-000000000001","app_id":"b0000000-0000-4000-8000-000000000001","script_id":"c0000000-0000-4000-8000-000000000001","source_kind":"kv","depth":0,"status":"succeeded","attempts":2,"due_at":null,"last_error":"smtp: connection refused","finished_at":10}"#,
            #"{"source_position":7,"trigger_id":"d0000000-0000-4000-8000-000000000002","app_id":"b0000000-0000-4000-8000-000000000001","script_id":"c0000000-0000-4000-8000-000000000002","source_kind":"kv","depth":0,"status":"succeeded","attempts":1,"due_at":null,"last_error":null,"finished_at":9}"#,
            "welcome: succeeded after 2 attempt(s), principal ops@example.com",
            "after restart: position 11, 1 pending",
            "kv.update at position 11: 11:d0000000-0000-4000-8000-000000000002 succeeded",
        ]
        #expect(lines == expected)
    }

    @Test func exampleRunsOnTheSystemClock() async throws {
        // Real time: the retry waits the real 1000 ms backoff.
        let lines = try await atHighPriority {
            try await withTemporaryDirectory { path in
                try await embeddingExample(dataPath: path, clock: SystemClock())
            }
        }
        #expect(lines.contains("welcome: succeeded after 2 attempt(s), principal ops@example.com"))
        #expect(lines.last == "kv.update at position 11: 11:d0000000-0000-4000-8000-000000000002 succeeded")
    }

    /// The guide's code block is this file's example, character for character.
    @Test func exampleMatchesTheGuide() throws {
        func between(_ text: String, _ begin: String, _ end: String) -> String? {
            guard let a = text.range(of: begin), let b = text.range(of: end, range: a.upperBound..<text.endIndex) else {
                return nil
            }
            return String(text[a.upperBound..<b.lowerBound])
        }
        let test = try String(contentsOfFile: #filePath, encoding: .utf8)
        let guide = try String(contentsOfFile: packageRoot + "/docs/EMBEDDING.md", encoding: .utf8)
        for name in ["EMBEDDING", "SERVICE"] {
            let mine = between(test, "// BEGIN \(name) EXAMPLE\n", "// END \(name) EXAMPLE")
            let theirs = between(guide, "// BEGIN \(name) EXAMPLE\n", "// END \(name) EXAMPLE")
            #expect(mine != nil && mine == theirs, "docs/EMBEDDING.md's \(name) example differs from EmbeddingExampleTests.swift")
        }
    }

    /// The stdin JSON of the `process` runtime, field for field, as the guide documents it.
    @Test func invocationJSONShape() async throws {
        let seen = Mutex<[String]>([])
        let executor = ClosureExecutor(fallback: { invocation in
            seen.withLock { $0.append(invocation.json) }
            return .ok
        })
        let admin = HeraldID(high: 0xa000_0000_0000_4000, low: 0x8000_0000_0000_0001)
        let app = HeraldID(high: 0xb000_0000_0000_4000, low: 0x8000_0000_0000_0001)
        let script = HeraldID(high: 0xc000_0000_0000_4000, low: 0x8000_0000_0000_0001)
        let trigger = HeraldID(high: 0xd000_0000_0000_4000, low: 0x8000_0000_0000_0001)
        try await withTemporaryDirectory { path in
            let herald = try Herald.open(directory: DataDirectory(path: path), options: HeraldOptions(
                durability: .none, clock: VirtualClock(startMs: 1_700_000_000_000), executor: executor))
            try herald.append([
                .adminUserCreated(adminUserID: admin, email: "ops@example.com"),
                .appCreated(appID: app, name: "shop"),
                .scriptRegistered(ScriptRegistration(scriptID: script, appID: app, name: "send-welcome",
                                                     runtime: "process", source: "cat")),
                .triggerRegistered(TriggerRegistration(triggerID: trigger, appID: app, scriptID: script, kind: .kv,
                                                       retry: .builtIn, registeredBy: admin,
                                                       kv: KVDetails(collectionGlob: "users:*", ops: []))),
            ])
            try herald.append(.kv(KVMutation(op: .insert, appID: app, collection: "users:eu", key: "alice",
                                             value: #"{"name":"Alice"}"#)))
            try await herald.run(untilIdle: true)
            try herald.close()
        }
        #expect(seen.withLock { $0 } == [
            #"{"delivery":"5:d0000000-0000-4000-8000-000000000001","source_position":5,"trigger_id":"d0000000-0000-4000-8000-000000000001","attempt":1,"due_at":1700000000000,"depth":0,"app":{"app_id":"b0000000-0000-4000-8000-000000000001","name":"shop"},"script":{"script_id":"c0000000-0000-4000-8000-000000000001","name":"send-welcome","runtime":"process"},"principal":{"admin_user_id":"a0000000-0000-4000-8000-000000000001","email":"ops@example.com"},"event":{"kind":"kv","position":5,"ts":1700000000000,"op":"insert","collection":"users:eu","key":"alice","value":{"name":"Alice"}}}"#,
        ])
    }

    /// Exit codes of the `process` runtime and the timeout outcome, as the guide documents them.
    @Test func processExitCodesAndTimeout() async throws {
        let admin = HeraldID(high: 0xa000_0000_0000_4000, low: 0x8000_0000_0000_0001)
        let app = HeraldID(high: 0xb000_0000_0000_4000, low: 0x8000_0000_0000_0001)
        let cases: [(source: String, runtime: String)] = [
            ("cat >/dev/null; exit 0", "process"),
            ("echo 'bad input' >&2; exit 75", "process"),
            ("echo 'warming up' >&2; echo 'try later' >&2; exit 3", "process"),
            ("", "slow"),
        ]
        // "slow" reports a duration past the timeout: recorded as a timeout, no real waiting.
        let executor = RuntimeRouter(["process": ProcessExecutor()], fallback: ClosureExecutor(fallback: { _ in
            ExecutionResult(.ok, durationMs: 5_000)
        }))
        // Real processes against a real 1 s timeout: at high priority (see `atHighPriority`).
        let deliveries = try await atHighPriority { try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            let herald = try Herald.open(directory: directory, options: HeraldOptions(
                durability: .none, clock: VirtualClock(startMs: 1_700_000_000_000), executor: executor,
                attemptTimeoutMs: 1_000))
            var bodies: [RecordBody] = [.adminUserCreated(adminUserID: admin, email: "ops@example.com"),
                                        .appCreated(appID: app, name: "shop")]
            for (index, c) in cases.enumerated() {
                let script = HeraldID(high: 0xc000_0000_0000_4000, low: 0x8000_0000_0000_0001 + UInt64(index))
                let trigger = HeraldID(high: 0xd000_0000_0000_4000, low: 0x8000_0000_0000_0001 + UInt64(index))
                bodies.append(.scriptRegistered(ScriptRegistration(scriptID: script, appID: app, name: "s\(index)",
                                                                   runtime: c.runtime, source: c.source)))
                bodies.append(.triggerRegistered(TriggerRegistration(
                    triggerID: trigger, appID: app, scriptID: script, kind: .kv,
                    retry: RetryConfig(maxAttempts: 2, backoff: .constant, baseMs: 100), registeredBy: admin,
                    kv: KVDetails(collectionGlob: "c", ops: []))))
            }
            try herald.append(bodies)
            try herald.append(.kv(KVMutation(op: .insert, appID: app, collection: "c", key: "k", value: "1")))
            try await herald.run(untilIdle: true)
            try herald.close()
            return try directory.deliveries()
        } }
        let summary = deliveries.map { "\($0.status) \($0.attempts) \($0.lastError ?? "-")" }
        #expect(summary == [
            "succeeded 1 -",
            "dead 1 exit 75: bad input",                    // 75: not retryable, dead at once
            "dead 2 exit 3: warming up\ntry later",         // other: retryable, stderr tail kept
            "dead 2 timed out after 1000 ms",               // timeout: retryable error
        ])
    }
}

// BEGIN SERVICE EXAMPLE
/// Runs Herald beside the rest of a service (`others`: an HTTP server, a consumer, …) until
/// SIGTERM or SIGINT, or until a service whose termination behavior says so ends the group:
/// the attempts in flight finish and are recorded, the projection is caught up, the engine
/// snapshot saved and the writer lock released.
func runHeraldService(dataPath: String, options: HeraldOptions = HeraldOptions(),
                      beside others: [ServiceGroupConfiguration.ServiceConfiguration] = []) async throws {
    let herald = try Herald.open(directory: DataDirectory(path: dataPath), options: options)
    let group = ServiceGroup(configuration: ServiceGroupConfiguration(
        services: [.init(service: herald)] + others,
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: Logger(label: "my-service")))
    try await group.run()
}
// END SERVICE EXAMPLE

/// The guide's ServiceLifecycle setup, run: a graceful shutdown of the group while an attempt
/// runs lets it finish and be recorded, and leaves the data directory closed and caught up.
@Suite struct ServiceExampleTests {
    /// Ends the group gracefully once an attempt has started.
    struct ShutDownOnceStarted: Service {
        let started: @Sendable () -> Bool
        func run() async throws {
            while !started() { try await Task.sleep(for: .milliseconds(5)) }
        }
    }

    @Test func aGracefulShutdownDrainsTheAttemptInFlightAndCloses() async throws {
        let admin = HeraldID(high: 0xa000_0000_0000_4000, low: 0x8000_0000_0000_0001)
        let app = HeraldID(high: 0xb000_0000_0000_4000, low: 0x8000_0000_0000_0001)
        let script = HeraldID(high: 0xc000_0000_0000_4000, low: 0x8000_0000_0000_0001)
        let trigger = HeraldID(high: 0xd000_0000_0000_4000, low: 0x8000_0000_0000_0001)
        let started = Mutex(0)
        let executor = ClosureExecutor(fallback: { _ in
            started.withLock { $0 += 1 }
            try? await Task.sleep(for: .milliseconds(300))  // still running when the shutdown comes
            return .ok
        })
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            let setup = try Herald.open(directory: directory, options: HeraldOptions(durability: .none))
            try setup.append([
                .adminUserCreated(adminUserID: admin, email: "ops@example.com"),
                .appCreated(appID: app, name: "shop"),
                .scriptRegistered(ScriptRegistration(scriptID: script, appID: app, name: "s", runtime: "swift", source: "")),
                .triggerRegistered(TriggerRegistration(triggerID: trigger, appID: app, scriptID: script, kind: .kv,
                                                       retry: .builtIn, registeredBy: admin,
                                                       kv: KVDetails(collectionGlob: "*", ops: []))),
                .kv(KVMutation(op: .insert, appID: app, collection: "c", key: "k", value: "1")),
            ])
            try setup.close()
            let stopper = ShutDownOnceStarted(started: { started.withLock { $0 } > 0 })
            try await runHeraldService(dataPath: path, options: HeraldOptions(executor: executor),
                                       beside: [.init(service: stopper, successTerminationBehavior: .gracefullyShutdownGroup)])
            #expect(started.withLock { $0 } == 1)
            // Recorded, projected, snapshot saved, lock released (a writer can open it again).
            let deliveries = try directory.deliveries()
            #expect(deliveries.map(\.status) == [.succeeded], "\(deliveries)")
            let projection = try directory.openProjection()
            let last = try directory.openReader().lastPosition
            #expect(try projection.checkpointPosition() == last && (try projection.snapshotPosition()) == last)
            let again = try Herald.open(directory: directory, options: HeraldOptions(durability: .none))
            #expect(again.pendingCount == 0)
            try again.close()
        }
    }
}
