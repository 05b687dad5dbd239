import Herald
import HeraldCore
import Synchronization
import Testing
import Glibc

/// Scripted behaviour, decided from the script, the delivery and the attempt alone, so a
/// scenario replays exactly.
struct ScriptedBehaviour: Sendable {
    enum Kind: CaseIterable { case ok, failTwice, alwaysFail, timeOut, notRetryable }
    var kinds: [HeraldID: Kind]
    let timeoutMs: Int64

    func result(for invocation: Invocation) -> ExecutionResult {
        switch kinds[invocation.script.id] ?? .ok {
        case .ok: return ExecutionResult(.ok, durationMs: 3)
        case .failTwice:
            return invocation.attempt <= 2 ? .error("flaky \(invocation.attempt)", durationMs: 7) : ExecutionResult(.ok, durationMs: 2)
        case .alwaysFail: return .error("always fails", durationMs: 1)
        case .timeOut: return ExecutionResult(.ok, durationMs: timeoutMs + 1)
        case .notRetryable: return .error("bad input", retryable: false, durationMs: 4)
        }
    }
}

/// Records when each attempt started (virtual time) and what it was due at.
final class StartLog: Sendable {
    struct Start: Sendable { var delivery: DeliveryID; var attempt: Int64; var dueAt: Int64; var startedAt: Int64 }
    let starts = Mutex<[Start]>([])
}

@Suite struct EngineSimulationTests {
    static let scenarioCount = Int(ProcessEnvironment.value("HERALD_SIM_SCENARIOS") ?? "") ?? 1000

    @Test func randomScenariosDeriveWhatTheEngineHolds() async throws {
        for seed in 1...UInt64(EngineSimulationTests.scenarioCount) {
            try await runScenario(seed: seed)
        }
    }

    func runScenario(seed: UInt64) async throws {
        var random = SeededRandom(seed: seed)
        let clock = VirtualClock(startMs: 1_000_000)
        let timeoutMs: Int64 = 500
        let starts = StartLog()
        // Registry: 2 apps, 2 admins, 3 scripts per app with random behaviour.
        var setup: [RecordBody] = []
        let admins = [testID(1), testID(2)]
        let apps = [testID(10), testID(11)]
        for admin in admins { setup.append(.adminUserCreated(adminUserID: admin, email: "\(admin.short)@example.com")) }
        var kinds: [HeraldID: ScriptedBehaviour.Kind] = [:]
        var scriptsByApp: [HeraldID: [HeraldID]] = [:]
        var nextID: UInt64 = 100
        for app in apps {
            setup.append(.appCreated(appID: app, name: "app-\(app.short)"))
            for _ in 0..<3 {
                let script = testID(nextID); nextID += 1
                kinds[script] = ScriptedBehaviour.Kind.allCases.randomElement(using: &random)
                scriptsByApp[app, default: []].append(script)
                setup.append(.scriptRegistered(ScriptRegistration(scriptID: script, appID: app, name: "s", runtime: "sim", source: "")))
            }
        }
        let collections = ["users:1", "users:2", "orders", "carts:x"]
        let globs = ["*", "users:*", "orders", "carts:*", "users:1", "nothing"]
        var triggers: [(id: HeraldID, app: HeraldID)] = []
        for app in apps {
            for _ in 0..<Int.random(in: 1...4, using: &random) {
                let id = testID(nextID); nextID += 1
                triggers.append((id, app))
                let ops = OpSet(rawValue: UInt8.random(in: 0...7, using: &random))
                setup.append(.triggerRegistered(TriggerRegistration(
                    triggerID: id, appID: app, scriptID: scriptsByApp[app]!.randomElement(using: &random)!, kind: .kv,
                    retry: RetryConfig(maxAttempts: Int64.random(in: 1...4, using: &random),
                                       backoff: Backoff.allCases.randomElement(using: &random)!,
                                       baseMs: [0, 10, 250, 1000].randomElement(using: &random)!),
                    registeredBy: admins.randomElement(using: &random)!,
                    kv: KVDetails(collectionGlob: globs.randomElement(using: &random)!, ops: ops))))
            }
            for _ in 0..<Int.random(in: 0...2, using: &random) {
                let id = testID(nextID); nextID += 1
                let source: SourceKind? = [nil, .kv, .deadLetter].randomElement(using: &random)!
                setup.append(.triggerRegistered(TriggerRegistration(
                    triggerID: id, appID: app, scriptID: scriptsByApp[app]!.randomElement(using: &random)!,
                    kind: .deadLetter, retry: RetryConfig(maxAttempts: 2, backoff: .constant, baseMs: 50),
                    registeredBy: admins.randomElement(using: &random)!, deadLetter: DeadLetterDetails(sourceFilter: source))))
            }
        }
        // Events at increasing times, with some trigger updates and deletions mixed in.
        var events: [(ts: Int64, body: RecordBody)] = []
        var ts: Int64 = 1_000_000
        for _ in 0..<Int.random(in: 5...25, using: &random) {
            ts += Int64.random(in: 0...400, using: &random)
            let roll = Int.random(in: 0..<20, using: &random)
            if roll == 0, let victim = triggers.randomElement(using: &random) {
                events.append((ts, .triggerUpdated(TriggerUpdate(triggerID: victim.id, enabled: Bool.random(using: &random)))))
            } else if roll == 1, let victim = triggers.randomElement(using: &random) {
                events.append((ts, .triggerDeleted(triggerID: victim.id)))
                triggers.removeAll { $0.id == victim.id }
            } else {
                let op = KVOp.allCases.randomElement(using: &random)!
                events.append((ts, .kv(KVMutation(op: op, appID: apps.randomElement(using: &random)!,
                                                  collection: collections.randomElement(using: &random)!, key: "k",
                                                  value: op == .delete ? nil : "{\"n\":1}"))))
            }
        }
        let behaviour = ScriptedBehaviour(kinds: kinds, timeoutMs: timeoutMs)
        let executor = ClosureExecutor(fallback: { invocation in
            starts.starts.withLock {
                $0.append(.init(delivery: invocation.delivery, attempt: invocation.attempt, dueAt: invocation.dueAt,
                                startedAt: clock.nowMs()))
            }
            return behaviour.result(for: invocation)
        })
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            let herald = try Herald.open(directory: directory, options: HeraldOptions(
                durability: .none, clock: clock, executor: executor, concurrency: 3, attemptTimeoutMs: timeoutMs))
            try herald.append(setup)
            func drain(until limit: Int64) async throws {
                var rounds = 0
                while let next = herald.nextDueAt(), next <= limit, rounds < 10_000 {
                    clock.advance(to: next)
                    try await herald.runDue()
                    rounds += 1
                }
            }
            for event in events {
                // Deletions of already-deleted triggers are skipped by validation: tolerate.
                try await drain(until: event.ts)
                clock.advance(to: event.ts)
                do { try herald.append(event.body, ts: max(event.ts, herald.dispatcher.lastTs ?? 0)) } catch is RecordError {}
            }
            try await drain(until: .max)
            let engineState = herald.dispatcher
            try herald.close()

            #expect(engineState.pending.isEmpty, "seed \(seed): every delivery ends succeeded, dead or cancelled")
            let replayed = try directory.replay()
            #expect(replayed.position == engineState.position, "seed \(seed)")
            #expect(replayed.pending == engineState.pending, "seed \(seed): the log derives the engine's state")
            #expect(replayed.createdCount == engineState.createdCount, "seed \(seed)")
            let deliveries = try directory.deliveries()
            #expect(deliveries.allSatisfy { $0.status != .pending }, "seed \(seed)")
            for start in starts.starts.withLock({ $0 }) {
                #expect(start.startedAt >= start.dueAt,
                        "seed \(seed): \(start.delivery) attempt \(start.attempt) started at \(start.startedAt) before due \(start.dueAt)")
            }
            if seed % 50 == 0 {
                #expect(try directory.verifyProjection().isEmpty, "seed \(seed): projection equals a rebuild")
            }
        }
    }
}

enum ProcessEnvironment {
    static func value(_ name: String) -> String? {
        guard let raw = getenv(name) else { return nil }
        return String(cString: raw)
    }
}
