import Foundation
import Herald
import HeraldCore
import HeraldServer
import Logging
import Synchronization
import Testing

/// Ids of the test log: two admin users, two apps, a script and a KV trigger per app.
enum TestIDs {
    static let admin1 = "a0000000-0000-4000-8000-000000000001"
    static let admin2 = "a0000000-0000-4000-8000-000000000002"
    static let appA = "b0000000-0000-4000-8000-00000000000a"
    static let appB = "b0000000-0000-4000-8000-00000000000b"
    static let scriptA = "c0000000-0000-4000-8000-00000000000a"
    static let scriptB = "c0000000-0000-4000-8000-00000000000b"
    static let triggerA = "d0000000-0000-4000-8000-00000000000a"
    static let triggerB = "d0000000-0000-4000-8000-00000000000b"
}

/// The test log: app A's script fails for good (its deliveries die at once, redrivable), app
/// B's succeeds; `events` KV inserts per app, A's first (positions 11… are A's, then B's).
func testLog(events: Int = 3) -> String {
    var lines = [
        #"{"type":"admin_user.created","ts":1000,"admin_user_id":"\#(TestIDs.admin1)","email":"one@example.com"}"#,
        #"{"type":"admin_user.created","ts":1001,"admin_user_id":"\#(TestIDs.admin2)","email":"two@example.com"}"#,
        #"{"type":"app.created","ts":1002,"app_id":"\#(TestIDs.appA)","name":"a"}"#,
        #"{"type":"app.created","ts":1003,"app_id":"\#(TestIDs.appB)","name":"b"}"#,
        #"{"type":"script.registered","ts":1004,"script_id":"\#(TestIDs.scriptA)","app_id":"\#(TestIDs.appA)","name":"fails","runtime":"fail","source":"-"}"#,
        #"{"type":"script.registered","ts":1005,"script_id":"\#(TestIDs.scriptB)","app_id":"\#(TestIDs.appB)","name":"works","runtime":"ok","source":"-"}"#,
        #"{"type":"trigger.registered","ts":1006,"trigger_id":"\#(TestIDs.triggerA)","app_id":"\#(TestIDs.appA)","script_id":"\#(TestIDs.scriptA)","kind":"kv","retry":{"max_attempts":1,"backoff":"constant","base_ms":10},"registered_by":"\#(TestIDs.admin1)","kv":{"collection_glob":"*","ops":["insert","update","delete"]}}"#,
        #"{"type":"trigger.registered","ts":1007,"trigger_id":"\#(TestIDs.triggerB)","app_id":"\#(TestIDs.appB)","script_id":"\#(TestIDs.scriptB)","kind":"kv","retry":{"max_attempts":1,"backoff":"constant","base_ms":10},"registered_by":"\#(TestIDs.admin1)","kv":{"collection_glob":"*","ops":["insert","update","delete"]}}"#,
    ]
    for app in [TestIDs.appA, TestIDs.appB] {
        for n in 0..<events {
            lines.append(#"{"type":"kv.insert","ts":\#(2000 + lines.count),"app_id":"\#(app)","collection":"c","key":"k\#(n)","value":{"n":\#(n)}}"#)
        }
    }
    return lines.joined(separator: "\n") + "\n"
}

/// What curl got back.
struct HTTPResult: Sendable {
    var status: Int
    var headers: [String: String]
    var body: String

    /// The body as JSON (an object), or an empty one.
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any] ?? [:]
    }
}

/// A real `herald serve` server in this process, on a loopback port, over a data directory
/// holding ``testLog(events:)``; requests go through curl, a real HTTP client in its own process.
final class TestServer: Sendable {
    let path: String
    let directory: DataDirectory
    let herald: Herald
    let server: HeraldServer
    let port: Int
    private let task: Task<Void, any Error>

    static func start(in path: String, log: String = testLog(), maxBodyBytes: Int = 1 << 20) async throws -> TestServer {
        let directory = DataDirectory(path: path + "/data")
        try log.write(toFile: path + "/log.jsonl", atomically: true, encoding: .utf8)
        _ = try directory.importLines(from: path + "/log.jsonl")
        let executor = ClosureExecutor(byRuntime: [
            "ok": { _ in .ok },
            "fail": { _ in .error("boom", retryable: false) },
        ])
        let herald = try Herald.open(directory: directory, options: HeraldOptions(executor: executor))
        let store = try ServerStore(path: directory.path + "/server.sqlite")
        let server = try HeraldServer(herald: herald, directory: directory, store: store,
                                      options: ServeOptions(port: 0, maxBodyBytes: maxBodyBytes), registry: .init())
        let bound = Mutex<Int?>(nil)
        var logger = Logger(label: "herald.serve.test")
        logger.logLevel = .critical
        let group = server.serviceGroup(logger: logger, signals: []) { port in bound.withLock { $0 = port } }
        let task = Task { try await group.run() }
        // Far from both outcomes: a server listens within milliseconds, but on a two-core
        // machine other suites' long synchronous tests can hold the concurrency pool's threads
        // that `group.run()` needs for tens of seconds (a fresh-clone CI beside a fuzz run did).
        let deadline = ContinuousClock.now + .seconds(120)
        while bound.withLock({ $0 }) == nil, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        guard let port = bound.withLock({ $0 }) else {
            task.cancel()
            throw TestServerError("the server did not start listening within 120 s")
        }
        return TestServer(path: path, directory: directory, herald: herald, server: server, port: port, task: task)
    }

    private init(path: String, directory: DataDirectory, herald: Herald, server: HeraldServer, port: Int, task: Task<Void, any Error>) {
        self.path = path
        self.directory = directory
        self.herald = herald
        self.server = server
        self.port = port
        self.task = task
    }

    /// Stops the server and the engine (which closes).
    func stop() async {
        task.cancel()
        _ = await task.result
        try? herald.close()
    }

    /// A token of the server's store.
    func token(admin: String = TestIDs.admin1, app: String? = nil, readOnly: Bool = false) throws -> String {
        try server.store.createToken(admin: HeraldID(admin)!, app: app.flatMap(HeraldID.init), readOnly: readOnly, nowMs: 0).token
    }

    /// Waits until no delivery is pending (the engine ran them all).
    func waitIdle() async throws {
        // Far from both outcomes: a server listens within milliseconds, but on a two-core
        // machine other suites' long synchronous tests can hold the concurrency pool's threads
        // that `group.run()` needs for tens of seconds (a fresh-clone CI beside a fuzz run did).
        let deadline = ContinuousClock.now + .seconds(120)
        while herald.pendingCount > 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(herald.pendingCount == 0, "deliveries still pending after 30 s")
    }

    /// `curl -X METHOD http://127.0.0.1:PORT/ROUTE` with the token (if any), the body (if any)
    /// and the headers.
    func request(_ method: String, _ route: String, token: String? = nil, body: String? = nil,
                 headers: [String: String] = [:]) async throws -> HTTPResult {
        let id = UUID().uuidString
        let headerFile = path + "/h-\(id)", bodyFile = path + "/b-\(id)", inputFile = path + "/i-\(id)"
        defer { for file in [headerFile, bodyFile, inputFile] { try? FileManager.default.removeItem(atPath: file) } }
        var arguments = ["-s", "-S", "-X", method, "-D", headerFile, "-o", bodyFile, "-w", "%{http_code}",
                         "--max-time", "60", "http://127.0.0.1:\(port)\(route)"]
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { arguments += ["-H", "\(name): \(value)"] }
        if let body {
            try body.write(toFile: inputFile, atomically: true, encoding: .utf8)
            arguments += ["--data-binary", "@" + inputFile, "-H", "Content-Type: application/jsonl"]
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        // Waited for without blocking a thread: the server answers on the same cooperative pool.
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            process.terminationHandler = { _ in done.resume() }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                done.resume(throwing: error)
            }
        }
        let code = output.fileHandleForReading.readDataToEndOfFile()  // a few bytes, all written
        guard process.terminationStatus == 0, let status = Int(String(decoding: code, as: UTF8.self)) else {
            throw TestServerError("curl \(method) \(route) failed (exit \(process.terminationStatus))")
        }
        var fields: [String: String] = [:]
        for line in ((try? String(contentsOfFile: headerFile, encoding: .utf8)) ?? "").split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            fields[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return HTTPResult(status: status, headers: fields, body: (try? String(contentsOfFile: bodyFile, encoding: .utf8)) ?? "")
    }
}

struct TestServerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs `body` with a started server, and stops it after.
func withServer<T>(log: String = testLog(), maxBodyBytes: Int = 1 << 20, _ body: (TestServer) async throws -> T) async throws -> T {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("herald-server-\(UUID().uuidString.lowercased())").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    let server = try await TestServer.start(in: path, log: log, maxBodyBytes: maxBodyBytes)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}
