import Herald
import HeraldCore
import HeraldLog

/// Runs a scenario fixture with the live engine in virtual time.
enum ScenarioFixture {
    static let logFile = "expected/log.jsonl"
    static let deliveriesFile = "expected/deliveries.jsonl"
    /// Bound on dispatch rounds, so a fixture that never settles fails instead of hanging.
    static let roundsMax = 1_000_000

    static func outputs(of fixture: Fixture, in temporary: String) async throws -> FixtureRunner.Outputs {
        let path = fixture.path + "/" + Fixture.scenarioFile
        let scenario = try Scenario.parse(try FileIO.read(path), path: path)
        let data = DataDirectory(path: temporary + "/data")
        try await run(scenario, in: data, source: path)
        var outputs = FixtureRunner.Outputs()
        outputs.files.append((logFile, try CanonicalText.dump(of: data)))
        outputs.files.append((deliveriesFile, try CanonicalText.deliveries(of: data)))
        return outputs
    }

    /// The scripted executor: attempt k of a script does its k-th behaviour. A timeout is
    /// reported as a duration past the engine's timeout, which the engine records as
    /// "timed out after … ms" — no real waiting, so runs are fast and deterministic.
    static func executor(for scenario: Scenario) -> ClosureExecutor {
        let timeout = scenario.attemptTimeoutMs
        @Sendable func result(_ behaviour: Scenario.Behaviour) -> ExecutionResult {
            switch behaviour.outcome {
            case .ok: ExecutionResult(.ok, durationMs: behaviour.durationMs)
            case .error: .error(behaviour.error, retryable: behaviour.retryable, durationMs: behaviour.durationMs)
            case .timeout: ExecutionResult(.ok, durationMs: timeout + 1)
            }
        }
        var handlers: [HeraldID: ClosureExecutor.Handler] = [:]
        for (id, script) in scenario.scripts {
            handlers[id] = { invocation in result(script.behaviour(attempt: invocation.attempt)) }
        }
        return ClosureExecutor(byScript: handlers, fallback: { _ in result(.ok()) })
    }

    /// Appends each record when virtual time reaches it, then runs dispatch rounds until none
    /// is due; advances the clock to min(next record, next due time) until `runUntilMs`.
    static func run(_ scenario: Scenario, in data: DataDirectory, source: String) async throws {
        let clock = VirtualClock(startMs: scenario.startMs)
        let options = HeraldOptions(durability: .none, clock: clock, executor: executor(for: scenario),
                                    concurrency: scenario.concurrency, attemptTimeoutMs: scenario.attemptTimeoutMs)
        let engine = try Herald.open(directory: data, options: options)
        defer { try? engine.close() }
        var next = 0
        var rounds = 0
        while true {
            let now = clock.nowMs()
            while next < scenario.steps.count, scenario.steps[next].atMs <= now {
                let step = scenario.steps[next]
                do {
                    try engine.append(step.body, ts: step.ts)
                } catch {
                    throw FixtureError(path: source, line: step.line,
                                       reason: "the engine rejected this record: \(FixtureRunner.describe(error))")
                }
                next += 1
            }
            while try await !engine.runDue().isEmpty {
                rounds += 1
                guard rounds < roundsMax else {
                    throw FixtureError(path: source, reason: "more than \(roundsMax) dispatch rounds; the scenario does not settle")
                }
            }
            let nextStep = next < scenario.steps.count ? scenario.steps[next].atMs : nil
            let nextDue = engine.nextDueAt()
            guard let wake = [nextStep, nextDue].compactMap({ $0 }).min(), wake <= scenario.runUntilMs else { break }
            guard wake > now else {
                throw FixtureError(path: source, reason: "a delivery due at \(wake) did not run at virtual time \(now)")
            }
            clock.advance(to: wake)
        }
        try engine.close()
    }
}
