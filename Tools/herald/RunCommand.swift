import ArgumentParser
import Dispatch
import Glibc
import Herald
import HeraldCore
import Metrics
import Prometheus
import Synchronization

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the dispatcher: execute due deliveries and record every outcome.",
        discussion: """
            Scripts of runtime "process" run their source with /bin/sh -c, the invocation JSON on \
            stdin; exit 0 = ok, exit 75 = error that is not retried, any other exit = retryable \
            error carrying the end of stderr. A script runs in a process group of its own, killed \
            whole on timeout and once the shell exits; it gets PATH, HOME, LANG, the HERALD_* \
            invocation variables and the variables named by --pass-env, nothing else of Herald's \
            environment. SIGINT/SIGTERM stop gracefully: no new attempts start, the round in \
            flight finishes (or times out) and is recorded. After a crash, `herald run` resumes \
            every pending delivery (an attempt whose outcome was not recorded runs again: \
            at-least-once).
            """)

    @OptionGroup var global: GlobalOptions

    @OptionGroup var executor: ExecutorOptions

    @OptionGroup var postgres: PostgresOptions

    @OptionGroup var storage: StorageOptions

    @Flag(help: "Exit once no delivery is pending.")
    var untilIdle = false

    @Flag(help: "Print nothing per attempt.")
    var quiet = false

    @Option(help: "One line per attempt on stdout, written as each is durable: text for people, jsonl for tools (then a last line {\"summary\":{…}}).")
    var format: RunFormat = .text

    @Option(help: ArgumentHelp("Serve GET /metrics (Prometheus text format) and GET /healthz on this port (0: any free port; the one chosen is printed on stderr).",
                               valueName: "port"))
    var metricsPort: UInt16?

    @Option(help: "The address --metrics-port listens on.")
    var metricsHost: String = "127.0.0.1"

    func validate() throws {
        var address = in_addr()
        guard inet_pton(AF_INET, metricsHost, &address) == 1 else {
            throw ValidationError("--metrics-host '\(metricsHost)' is not an IPv4 address")
        }
    }

    func run() async throws {
        // Metrics first: the engine's counters are made by the factory bootstrapped here.
        let registry = PrometheusCollectorRegistry()
        if metricsPort != nil {
            MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        }
        var options = try executor.heraldOptions()
        storage.apply(to: &options)
        let directory = try global.directory
        let herald = try Herald.open(directory: directory, options: options)
        let follower: PostgresFollower?
        do {
            follower = try postgres.follower(of: directory, engine: herald, name: "herald run")
        } catch {
            try? herald.close(projecting: false)  // nothing ran: release the writer lock
            throw error
        }
        if let metricsPort {
            let server: MetricsServer
            do {
                server = try MetricsServer(host: metricsHost, port: metricsPort, registry: registry) {
                    herald.failure.map { "the engine stopped taking work: \($0)" }
                }
            } catch {
                try? herald.close(projecting: false)  // nothing ran: release the writer lock
                throw error
            }
            server.start()
            printError("herald run: metrics on http://\(metricsHost):\(server.port)/metrics, health on /healthz")
        }
        let status = herald.status()
        printError("herald run: position \(status.position), \(status.pending) pending delivery(ies)")
        let signals = [SIGINT, SIGTERM].map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { herald.stop() }
            source.resume()
            return source
        }
        let quiet = quiet, format = format
        let tally = Mutex(RunTally())
        try await herald.run(untilIdle: untilIdle) { report in
            tally.withLock { $0.count(report) }
            guard !quiet else { return }
            // Written and flushed one line at a time: a pipe (a log collector, `tee`) sees each
            // attempt as it is recorded, not when a buffer fills or the process exits.
            Output.writeNow(format == .jsonl ? Self.jsonLine(report) : Self.textLine(report))
        }
        try herald.close()
        follower?.stop()
        signals.forEach { $0.cancel() }
        let end = herald.status()
        let counted = tally.withLock { $0 }
        printError("herald run: stopped at position \(end.position), \(end.pending) pending; \(counted.attempts) attempt(s) this run: \(counted.ok) ok, \(counted.errors) error, \(counted.dead) dead-lettered")
        if format == .jsonl {
            var out = JSONOutput()
            out.beginObject()
            out.key("summary")
            out.beginObject()
            out.key("position"); out.uint(end.position)
            out.key("pending"); out.int(Int64(end.pending))
            out.key("attempts"); out.int(counted.attempts)
            out.key("ok"); out.int(counted.ok)
            out.key("error"); out.int(counted.errors)
            out.key("dead"); out.int(counted.dead)
            out.endObject()
            out.endObject()
            out.newline()
            Output.writeNow(out.bytes)
        }
    }

    /// The attempts a run recorded, for its summary.
    struct RunTally {
        var attempts: Int64 = 0
        var ok: Int64 = 0
        var errors: Int64 = 0
        /// Attempts that left their delivery dead.
        var dead: Int64 = 0

        mutating func count(_ report: AttemptReport) {
            attempts += 1
            if report.attempt.outcome == .ok { ok += 1 } else { errors += 1 }
            if report.delivery.status == .dead { dead += 1 }
        }
    }

    /// `1205 ts 1796614377612 1200:d000… attempt 1 error 12ms error=smtp down → pending next due 1796614378612`
    static func textLine(_ report: AttemptReport) -> [UInt8] {
        let a = report.attempt
        var line = "\(report.position) ts \(report.ts) \(report.delivery.id) attempt \(a.attempt) \(a.outcome) \(a.durationMs)ms"
        if let error = a.error { line += " error=\(error)" }
        line += " → \(report.delivery.status)"
        if let due = report.delivery.dueAt { line += " next due \(withUTC(due))" }
        return Array((line + "\n").utf8)
    }

    /// `{"position":1205,"ts":…,"delivery":"1200:d000…","attempt":1,"outcome":"error","duration_ms":12,
    /// "error":"smtp down","retryable":true,"status":"pending","next_due_at":…}`
    static func jsonLine(_ report: AttemptReport) -> [UInt8] {
        let a = report.attempt
        var out = JSONOutput()
        out.beginObject()
        out.key("position"); out.uint(report.position)
        out.key("ts"); out.int(report.ts)
        out.key("delivery"); out.string(report.delivery.id.description)
        out.key("attempt"); out.int(a.attempt)
        out.key("outcome"); out.string(a.outcome.description)
        out.key("duration_ms"); out.int(a.durationMs)
        out.key("error"); out.string(a.error)
        out.key("retryable"); out.bool(a.retryable)
        out.key("status"); out.string(report.delivery.status.description)
        out.key("next_due_at")
        if let due = report.delivery.dueAt { out.int(due) } else { out.null() }
        out.endObject()
        out.newline()
        return out.bytes
    }
}

/// `herald run --format`.
enum RunFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case jsonl
}

/// How a running engine executes scripts: `herald run` and `herald serve`.
struct ExecutorOptions: ParsableArguments {
    @Option(help: "Attempts running at once.")
    var concurrency: Int = 16

    @Option(help: "Per-attempt timeout in milliseconds.")
    var timeoutMs: Int64 = 30_000

    @Option(help: "Exit code of a process script that means: do not retry.")
    var notRetryableExitCode: Int32 = 75

    @Option(name: .customLong("pass-env"),
            help: ArgumentHelp("Also pass this variable of Herald's environment to process scripts (repeatable).",
                               valueName: "name"))
    var passEnvironment: [String] = []

    func validate() throws {
        guard (1...4096).contains(concurrency) else { throw ValidationError("--concurrency must be 1…4096") }
        guard timeoutMs >= 1 else { throw ValidationError("--timeout-ms must be at least 1") }
        for name in passEnvironment where !ProcessExecutor.isVariableName(name) {
            throw ValidationError("--pass-env '\(name)' is not an environment variable name (letters, digits and '_', not starting with a digit)")
        }
    }

    /// The engine's options: the `process` runtime, these bounds, the HERALD_* environment.
    func heraldOptions() throws -> HeraldOptions {
        let environment = try HeraldEnvironment(variables: ProcessEnvironment.variables)
        return HeraldOptions(
            executor: RuntimeRouter(["process": ProcessExecutor(notRetryableExitCode: notRetryableExitCode,
                                                                passEnvironment: passEnvironment)]),
            concurrency: concurrency, attemptTimeoutMs: timeoutMs, environment: environment)
    }
}
