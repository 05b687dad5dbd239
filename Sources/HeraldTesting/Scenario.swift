import Herald
import HeraldCore

/// A parsed `scenario.jsonl` (fixtures/README.md): settings, records to append at their
/// virtual times, and scripted outcomes per script.
public struct Scenario: Sendable {
    /// A record and the line it came from.
    public struct Step: Sendable {
        /// 1-based line in `scenario.jsonl`.
        public var line: Int
        /// The record's explicit ts; `nil` = appended at the virtual time it is reached.
        public var ts: Int64?
        public var body: RecordBody
        /// When the record is appended: its ts, else the previous step's time (else `startMs`).
        public var atMs: Int64
    }

    /// What one attempt of a script does.
    public struct Behaviour: Sendable, Equatable {
        /// `ok`, `error`, or `timeout` (reported with a duration beyond the attempt timeout,
        /// so the engine records "timed out after … ms").
        public enum Outcome: String, Sendable, Equatable {
            case ok, error, timeout
        }
        public var outcome: Outcome
        public var error: String
        public var retryable: Bool
        public var durationMs: Int64

        /// A successful attempt taking `durationMs`.
        public static func ok(durationMs: Int64 = 0) -> Behaviour {
            Behaviour(outcome: .ok, error: "", retryable: true, durationMs: durationMs)
        }
    }

    /// Scripted outcomes of one script: attempt k of any of its deliveries does `attempts[k-1]`,
    /// later attempts do `then`. Keyed by attempt number, not by call order, so concurrent
    /// rounds stay deterministic.
    public struct Script: Sendable {
        public var attempts: [Behaviour]
        public var then: Behaviour

        /// The behaviour of attempt `attempt` (1-based).
        public func behaviour(attempt: Int64) -> Behaviour {
            attempt >= 1 && attempt <= Int64(attempts.count) ? attempts[Int(attempt - 1)] : then
        }
    }

    /// The virtual clock's start.
    public var startMs: Int64
    /// The run stops before any virtual time later than this.
    public var runUntilMs: Int64
    /// The engine's per-attempt timeout.
    public var attemptTimeoutMs: Int64 = 30_000
    /// Attempts per round.
    public var concurrency: Int = 16
    public var steps: [Step] = []
    public var scripts: [HeraldID: Script] = [:]

    /// Parses `scenario.jsonl`; errors name `path` and the line.
    public static func parse(_ bytes: [UInt8], path: String) throws(FixtureError) -> Scenario {
        var settings: (start: Int64, until: Int64, timeout: Int64?, concurrency: Int64?)?
        var steps: [(line: Int, ts: Int64?, body: RecordBody)] = []
        var scripts: [HeraldID: Script] = [:]
        let decoder = RecordJSONDecoder()
        for (index, line) in FileIO.lines(bytes).enumerated() {
            let number = index + 1
            func fail(_ reason: String) -> FixtureError { FixtureError(path: path, line: number, reason: reason) }
            let value: FixtureJSON
            do {
                value = try FixtureJSON.parse(line)
            } catch {
                throw fail(error.reason)
            }
            guard case .object = value else { throw fail("expected a JSON object") }
            if value["type"] != nil {
                do throws(RecordError) {
                    let (ts, body) = try decoder.decode(line: Array(line))
                    steps.append((number, ts, body))
                } catch {
                    throw fail(error.description)
                }
            } else if let object = value["settings"] {
                guard settings == nil else { throw fail("a second settings line") }
                try only(object, ["start_ms", "run_until_ms", "attempt_timeout_ms", "concurrency"], fail)
                guard case .int(let start)? = object["start_ms"] else { throw fail("settings.start_ms: an integer is required") }
                guard case .int(let until)? = object["run_until_ms"] else { throw fail("settings.run_until_ms: an integer is required") }
                guard until >= start else { throw fail("settings.run_until_ms is before start_ms") }
                let timeout = try int(object["attempt_timeout_ms"], "settings.attempt_timeout_ms", 1...86_400_000, fail)
                let concurrency = try int(object["concurrency"], "settings.concurrency", 1...1024, fail)
                settings = (start, until, timeout, concurrency)
            } else if case .string(let idText)? = value["script"] {
                try only(value, ["script", "attempts", "then"], fail)
                guard let id = HeraldID(idText) else { throw fail("script: '\(idText)' is not a UUID") }
                guard scripts[id] == nil else { throw fail("script \(id) is scripted twice") }
                var attempts: [Behaviour] = []
                if let list = value["attempts"] {
                    guard case .array(let items) = list else { throw fail("attempts: expected an array") }
                    for (k, item) in items.enumerated() {
                        attempts.append(try behaviour(item, "attempts[\(k)]", fail))
                    }
                }
                let then = try value["then"].map { v throws(FixtureError) in try behaviour(v, "then", fail) } ?? .ok()
                scripts[id] = Script(attempts: attempts, then: then)
            } else {
                throw fail("expected a record (with \"type\"), {\"settings\":{…}} or {\"script\":ID,…}")
            }
        }
        guard let settings else {
            throw FixtureError(path: path, reason: "no {\"settings\":{\"start_ms\":…,\"run_until_ms\":…}} line")
        }
        var scenario = Scenario(startMs: settings.start, runUntilMs: settings.until)
        if let timeout = settings.timeout { scenario.attemptTimeoutMs = timeout }
        if let concurrency = settings.concurrency { scenario.concurrency = Int(concurrency) }
        scenario.scripts = scripts
        var at = settings.start
        for step in steps {
            if let ts = step.ts {
                guard ts >= at else {
                    throw FixtureError(path: path, line: step.line,
                                       reason: "ts \(ts) is before the previous record's time \(at): records are appended in file order as virtual time reaches them")
                }
                at = ts
            }
            scenario.steps.append(Step(line: step.line, ts: step.ts, body: step.body, atMs: at))
        }
        return scenario
    }

    private static func only(_ object: FixtureJSON, _ allowed: [String],
                             _ fail: (String) -> FixtureError) throws(FixtureError) {
        guard case .object = object else { throw fail("expected an object") }
        for key in object.keys where !allowed.contains(where: { $0.utf8.elementsEqual(key.utf8) }) {
            throw fail("unknown field '\(key)' (known: \(allowed.joined(separator: ", ")))")
        }
    }

    private static func int(_ value: FixtureJSON?, _ field: String, _ range: ClosedRange<Int64>,
                            _ fail: (String) -> FixtureError) throws(FixtureError) -> Int64? {
        guard let value else { return nil }
        guard case .int(let number) = value, range.contains(number) else {
            throw fail("\(field): expected an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return number
    }

    private static func behaviour(_ value: FixtureJSON, _ field: String,
                                  _ fail: (String) -> FixtureError) throws(FixtureError) -> Behaviour {
        try only(value, ["outcome", "error", "retryable", "duration_ms"], { fail("\(field): \($0)") })
        guard case .string(let name)? = value["outcome"], let outcome = Behaviour.Outcome(rawValue: name) else {
            throw fail("\(field).outcome: expected \"ok\", \"error\" or \"timeout\"")
        }
        var result = Behaviour(outcome: outcome, error: "", retryable: true, durationMs: 0)
        if let error = value["error"] {
            guard outcome == .error, case .string(let text) = error else {
                throw fail("\(field).error: a string, only with outcome \"error\"")
            }
            result.error = text
        } else if outcome == .error {
            throw fail("\(field).error: required with outcome \"error\"")
        }
        if let retryable = value["retryable"] {
            guard outcome == .error, case .bool(let flag) = retryable else {
                throw fail("\(field).retryable: true or false, only with outcome \"error\"")
            }
            result.retryable = flag
        }
        if let duration = try int(value["duration_ms"], "\(field).duration_ms", 0...86_400_000, fail) {
            result.durationMs = duration
        }
        return result
    }
}
