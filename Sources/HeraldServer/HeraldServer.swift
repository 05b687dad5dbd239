import Foundation
import Herald
import HeraldCore
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import ServiceLifecycle
import Synchronization
import UnixSignals
import NIOCore
import NIOPosix
import Prometheus

/// How `herald serve` listens and what it accepts.
public struct ServeOptions: Sendable {
    /// The address to bind (loopback unless told otherwise).
    public var host: String
    /// The port (0: any free port; the one bound is passed to `onListening`).
    public var port: Int
    /// The largest request body taken (413 beyond).
    public var maxBodyBytes: Int
    /// A connection idle this long (a slow or stalled client) is closed.
    public var idleTimeoutSeconds: Int64
    /// Threads for the blocking work behind requests (appends wait for their sync there, not
    /// on the cooperative pool).
    public var blockingThreads: Int
    /// The retry defaults of registrations that omit them (HERALD_RETRY_*), as `import` uses.
    public var retryDefaults: RetryConfig

    public init(host: String = "127.0.0.1", port: Int = 8080, maxBodyBytes: Int = 8 << 20,
                idleTimeoutSeconds: Int64 = 30, blockingThreads: Int = 16, retryDefaults: RetryConfig = .builtIn) {
        self.retryDefaults = retryDefaults
        self.host = host
        self.port = port
        self.maxBodyBytes = maxBodyBytes
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.blockingThreads = blockingThreads
    }
}

/// The request context of `herald serve`: Hummingbird's, plus the grant of the request's token
/// once the authentication middleware has checked it.
public struct ServerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var grant: Grant?

    public init(source: Source) {
        coreContext = .init(source: source)
    }

    /// Bodies are collected against ``ServeOptions/maxBodyBytes`` by the handlers that take one.
    public var maxUploadSize: Int { .max }
}

/// An error answered as `{"error":{"status":…,"message":…}}` (plus `lines`, each bad input
/// line, for a 422 of `POST /v1/records`). Messages name what is wrong, never a secret.
public struct APIError: Error, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    public var lines: [RecordError]

    public init(_ status: HTTPResponse.Status, _ message: String, lines: [RecordError] = []) {
        self.status = status
        self.message = message
        self.lines = lines
    }
}

/// Herald over HTTP/JSON: one process holding the writer, the dispatcher and the background
/// projection, answering producers, operators and dashboards (docs/SERVER.md). Every `/v1`
/// route and `/metrics` need a bearer token; `/healthz`, `/readyz` and `/openapi.yaml` carry
/// no data and need none.
public final class HeraldServer: Sendable {
    public let herald: Herald
    public let directory: DataDirectory
    public let store: ServerStore
    public let options: ServeOptions
    let registry: PrometheusCollectorRegistry
    let pool: NIOThreadPool

    /// Settles the idempotency keys a stop left unanswered (before anything is appended).
    public init(herald: Herald, directory: DataDirectory, store: ServerStore, options: ServeOptions,
                registry: PrometheusCollectorRegistry) throws {
        self.herald = herald
        self.directory = directory
        self.store = store
        self.options = options
        self.registry = registry
        _ = try store.settle(lastPosition: herald.position, nowMs: Int64(Date().timeIntervalSince1970 * 1000)) { range in
            Self.appendedBody(range)
        }
        pool = NIOThreadPool(numberOfThreads: max(1, options.blockingThreads))
        pool.start()
    }

    /// Everything `herald serve` runs, as one service group, stopped in this order by a
    /// graceful shutdown (one of `signals`, or the group's own): the follow streams end; the
    /// server stops taking connections and finishes the requests in flight; the engine lets
    /// its attempts in flight finish and be recorded, then closes. `onListening` is given the
    /// port once bound.
    public func serviceGroup(logger: Logger, signals: [UnixSignal] = [.sigterm, .sigint],
                             onListening: @escaping @Sendable (Int) async -> Void) -> ServiceGroup {
        ServiceGroup(configuration: .init(
            services: [.init(service: HeraldService(server: self)),
                       .init(service: application(logger: logger, onListening: onListening)),
                       .init(service: StreamsService(server: self))],
            gracefulShutdownSignals: signals, logger: logger))
    }

    /// Set when a graceful shutdown begins: follow streams end at their next look.
    let stopping = Atomic<Bool>(false)

    /// The HTTP application: routes and middleware. `onListening` is given the port once bound.
    func application(logger: Logger, onListening: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router(context: ServerRequestContext.self)
        router.add(middleware: ErrorMiddleware())
        router.add(middleware: AuthMiddleware(server: self))
        addRoutes(to: router)
        return Application(
            router: router,
            server: .http1(configuration: .init(idleTimeout: .seconds(options.idleTimeoutSeconds))),
            configuration: .init(address: .hostname(options.host, port: options.port), serverName: "herald"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// Runs `work` on a thread of the server's pool (blocking reads and appends).
    func blocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await pool.runIfActive(work)
    }

    static func appendedBody(_ range: ClosedRange<UInt64>) -> String {
        #"{"first_position":\#(range.lowerBound),"last_position":\#(range.upperBound),"count":\#(range.count)}"#
    }
}

/// The engine and the server's thread pool as a service of the application: runs the
/// dispatcher until the graceful shutdown, then drains and closes it.
struct HeraldService: Service {
    let server: HeraldServer

    func run() async throws {
        try await server.herald.run()
        try await server.pool.shutdownGracefully()
    }
}

/// Ends the follow streams when a graceful shutdown begins (it is the group's last service,
/// so the first one told), so the server's drain does not wait for followers to hang up.
struct StreamsService: Service {
    let server: HeraldServer

    func run() async throws {
        try? await gracefulShutdown()
        server.stopping.store(true, ordering: .releasing)
    }
}

/// Answers ``APIError``s (and the engine's own errors) as JSON.
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = ServerRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as APIError {
            return Self.response(error)
        } catch let error as HeraldError {
            switch error {
            case .positionOutOfRange, .compacted: return Self.response(APIError(.notFound, "\(error)"))
            case .invalidInput(_, let errors, _): return Self.response(APIError(.unprocessableContent, "invalid records", lines: errors))
            case .notOnCompactedLog: return Self.response(APIError(.unprocessableContent, "\(error)"))
            default: return Self.response(APIError(.internalServerError, "\(error)"))
            }
        } catch let error as RecordError {
            return Self.response(APIError(.unprocessableContent, "\(error)"))
        } catch let error as OperatorActionError {
            return Self.response(APIError(.unprocessableContent, "\(error)"))
        } catch let error as EngineError {
            return Self.response(APIError(.serviceUnavailable, "\(error)"))
        } catch let error as HTTPError {
            if error.status == .notFound, let allowed = Self.allowedMethods(path: request.uri.path) {
                var response = Self.response(APIError(.methodNotAllowed, "\(request.method) is not a method of \(request.uri.path) (\(allowed))"))
                response.headers[.allow] = allowed
                return response
            }
            return Self.response(APIError(error.status, error.body ?? error.status.reasonPhrase))
        }
    }

    /// The methods of a route path (`Allow` of a 405), nil for no route.
    static func allowedMethods(path: String) -> String? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false).dropFirst().map(String.init)
        switch segments.count {
        case 1 where ["healthz", "readyz", "openapi.yaml", "metrics"].contains(segments[0]): return "GET"
        case 2 where segments[0] == "v1":
            switch segments[1] {
            case "status", "triggers", "deliveries": return "GET"
            case "records": return "GET, POST"
            case "whatif": return "POST"
            default: return nil
            }
        case 3 where segments[0] == "v1" && segments[1] == "deliveries":
            return ["redrive", "cancel"].contains(segments[2]) ? "POST" : "GET"
        case 4 where segments[0] == "v1" && segments[1] == "records" && segments[3] == "explain": return "GET"
        case 4 where segments[0] == "v1" && segments[1] == "triggers" && segments[3] == "invoke": return "POST"
        default: return nil
        }
    }

    static func response(_ error: APIError) -> Response {
        var out = JSONOutput()
        out.beginObject()
        out.key("error")
        out.beginObject()
        out.key("status"); out.int(Int64(error.status.code))
        out.key("message"); out.string(error.message)
        if !error.lines.isEmpty {
            out.key("lines")
            out.beginArray()
            for line in error.lines {
                out.beginObject()
                out.key("location"); out.string(line.location)
                out.key("type"); out.string(line.recordType)
                out.key("field"); out.string(line.field)
                out.key("reason"); out.string(line.reason)
                out.endObject()
            }
            out.endArray()
        }
        out.endObject()
        out.endObject()
        out.newline()
        var headers: HTTPFields = [.contentType: "application/json"]
        if error.status == .unauthorized { headers[.wwwAuthenticate] = #"Bearer realm="herald""# }
        return Response(status: error.status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: out.bytes)))
    }
}

/// Checks the bearer token of every `/v1` and `/metrics` request and puts its grant in the
/// context: 401 without a token, with an unknown or revoked one, or when its admin user was
/// deleted from the log.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = ServerRequestContext
    let server: HeraldServer

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard path.hasPrefix("/v1/") || path == "/metrics" else { return try await next(request, context) }
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw APIError(.unauthorized, "a bearer token is required (Authorization: Bearer TOKEN)")
        }
        let token = String(header.dropFirst("Bearer ".count)).trimmingCharacters(in: .whitespaces)
        let store = server.store
        guard let grant = try await server.blocking({ try store.grant(forToken: token) }) else {
            throw APIError(.unauthorized, "the token is unknown or revoked")
        }
        guard server.herald.registryState.registry.adminUser(grant.admin) != nil else {
            throw APIError(.unauthorized, "the token's admin user \(grant.admin) no longer exists")
        }
        var context = context
        context.grant = grant
        return try await next(request, context)
    }
}

extension ServerRequestContext {
    /// The grant the authentication middleware put here (every `/v1` route has one).
    func requireGrant() throws -> Grant {
        guard let grant else { throw APIError(.unauthorized, "a bearer token is required") }
        return grant
    }
}

/// A JSON (or JSON Lines) response.
func jsonResponse(_ bytes: [UInt8], status: HTTPResponse.Status = .ok, contentType: String = "application/json",
                  headers extra: HTTPFields = [:]) -> Response {
    var headers: HTTPFields = [.contentType: contentType]
    headers.append(contentsOf: extra)
    return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
}
