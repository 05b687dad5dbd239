import ArgumentParser
import Foundation
import Herald
import HeraldServer
import Logging
import Metrics
import Prometheus

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the engine (as `herald run` does) and serve its HTTP API.",
        discussion: """
            Routes, tokens and rules: docs/SERVER.md; the OpenAPI document is served at \
            /openapi.yaml. Every /v1 route and /metrics need a bearer token (`herald token \
            create`). Listens on loopback unless told otherwise; TLS belongs to a reverse proxy. \
            SIGTERM/SIGINT: stop taking requests, finish those in flight, let the attempts in \
            flight finish and be recorded, save the engine snapshot, exit 0.
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var executor: ExecutorOptions

    @OptionGroup var postgres: PostgresOptions

    @OptionGroup var storage: StorageOptions

    @Option(help: ArgumentHelp("HOST:PORT to listen on (port 0: any free port; the one bound is printed on stderr).",
                               valueName: "host:port"))
    var listen: String = "127.0.0.1:8080"

    @Option(help: "The largest request body taken, in bytes (413 beyond).")
    var maxBodyBytes: Int = 8 << 20

    @Option(help: "Hours an idempotency key's answer is remembered.")
    var idempotencyHours: Int = 24

    @Option(help: "Seconds an idle connection (a slow client) stays open.")
    var idleTimeout: Int = 30

    /// `listen` taken apart.
    var address: (host: String, port: Int) {
        get throws {
            guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]),
                  (0...65_535).contains(port), colon > listen.startIndex else {
                throw ValidationError("--listen '\(listen)' is not HOST:PORT (e.g. 127.0.0.1:8080)")
            }
            return (String(listen[..<colon]), port)
        }
    }

    func validate() throws {
        _ = try address
        guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024") }
        guard (1...24 * 365).contains(idempotencyHours) else { throw ValidationError("--idempotency-hours must be 1…8760") }
        guard (1...3_600).contains(idleTimeout) else { throw ValidationError("--idle-timeout must be 1…3600 seconds") }
    }

    func run() async throws {
        let (host, port) = try address
        // Metrics first: the engine's counters are made by the factory bootstrapped here.
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        let directory = try global.directory
        var options = try executor.heraldOptions()
        storage.apply(to: &options)
        let herald = try Herald.open(directory: directory, options: options)
        let server: HeraldServer
        let follower: PostgresFollower?
        do {
            follower = try postgres.follower(of: directory, engine: herald, name: "herald serve")
            let store = try ServerStore(path: directory.path + "/server.sqlite", keyRetentionMs: Int64(idempotencyHours) * 3_600_000)
            server = try HeraldServer(herald: herald, directory: directory, store: store,
                                      options: ServeOptions(host: host, port: port, maxBodyBytes: maxBodyBytes,
                                                            idleTimeoutSeconds: Int64(idleTimeout),
                                                            retryDefaults: options.environment.retryDefaults),
                                      registry: registry)
        } catch {
            try? herald.close(projecting: false)  // nothing ran: release the writer lock
            throw error
        }
        var logger = Logger(label: "herald.serve")
        logger.logLevel = .warning
        let status = herald.status()
        printError("herald serve: position \(status.position), \(status.pending) pending delivery(ies)")
        let group = server.serviceGroup(logger: logger) { bound in
            printError("herald serve: listening on http://\(host):\(bound)")
        }
        try await group.run()
        follower?.stop()
        printError("herald serve: stopped at position \(herald.position), \(herald.pendingCount) pending")
    }
}
