import Foundation
import Glibc
import Herald
import HeraldCore
import HeraldServer
import Logging
import Prometheus
import Synchronization

/// `serve`: the HTTP API under load. The server is a child process (`herald-bench
/// --serve-child DIR`: `herald serve` with a no-op in-process executor, durability `.always`);
/// the load comes from this process, over kept-alive loopback connections:
///   1. KV appends in batches of 100 from 8 connections for 30 s (the workload's events, their
///      `ts` left out so the server stamps them): records acknowledged per second.
///   2. Single-record POSTs paced at 1,000 requests/s for 30 s from 16 connections (open loop:
///      a request's latency counts from when it was due, so a stall is not hidden), while
///      another connection asks `GET /v1/status` every 10 ms: the latencies' percentiles.
extension Benchmarks {
    var serveDirectory: String { options.workDirectory + "/serve" }

    func serve() throws {
        let bodies = try eventBodies(batch: 100)
        let singles = try eventBodies(batch: 1, limit: 40_000)
        try serveBatches(bodies)
        try servePaced(singles)
    }

    /// A data directory holding the workload's setup, a server over it, and a token.
    private func startServer(_ name: String) throws -> (ServeChild, String) {
        let directory = serveDirectory + "/" + name
        removeTree(directory)
        let data = DataDirectory(path: directory)
        _ = try data.importLines(from: options.workload.setupPath)
        let admin = try data.currentState().registry.allAdminUsers.first?.id
        guard let admin else { throw BenchError("serve: the workload's setup has no admin user") }
        let token = try ServerStore(path: directory + "/server.sqlite")
            .createToken(admin: admin, app: nil, readOnly: false, nowMs: 0).token
        return (try ServeChild(directory: directory, projectionMs: options.liveProjectionMs), token)
    }

    private func serveBatches(_ bodies: [[UInt8]]) throws {
        let (child, token) = try startServer("batches")
        defer { child.stop() }

        // 1. Batches of 100.
        let batchSeconds = 30.0
        let acknowledged = Atomic<Int>(0)
        let next = Atomic<Int>(0)
        let batchLatencies = Mutex<[Double]>([])
        let start = nowNs()
        let deadline = start + UInt64(batchSeconds * 1e9)
        try runThreads(8) { _ in
            let connection = try HTTPConnection(port: child.port)
            var latencies: [Double] = []
            while nowNs() < deadline {
                let index = next.add(1, ordering: .relaxed).oldValue % bodies.count
                let sent = nowNs()
                let (status, body) = try connection.send(HTTPConnection.post("/v1/records", token: token, body: bodies[index]))
                guard status == 200 else { throw BenchError("serve: a batch got \(status): \(String(decoding: body, as: UTF8.self))") }
                latencies.append(Double(nowNs() - sent) / 1e6)
                acknowledged.add(100, ordering: .relaxed)
            }
            batchLatencies.withLock { $0 += latencies }
        }
        let elapsed = seconds(start, nowNs())
        let records = acknowledged.load(ordering: .relaxed)
        let batchSorted = batchLatencies.withLock { $0 }.sorted()
        reporter.emit(Row(workload: "serve", measure: "KV records/s, POST batches of 100 (8 conns)", value: Double(records) / elapsed,
                          unit: "records/s", target: "≥ 50,000",
                          note: "\(records) records in \(format3(elapsed)) s, durability always, the dispatcher running a no-op executor, projection every \(options.liveProjectionMs) ms (0: off); request p50 \(format3(percentile(0.5, batchSorted))) ms, p99 \(format3(percentile(0.99, batchSorted))) ms",
                          extra: [("records", Double(records)), ("seconds", elapsed),
                                  ("p50_ms", percentile(0.5, batchSorted)), ("p99_ms", percentile(0.99, batchSorted))]))

    }

    private func servePaced(_ singles: [[UInt8]]) throws {
        // 2. Paced single records, and status reads beside them, on a server of their own (not
        // behind the backlog of millions of deliveries the batches left).
        let (child, token) = try startServer("paced")
        defer { child.stop() }
        let rate = 1_000.0, pacedSeconds = 30.0
        let total = Int(rate * pacedSeconds)
        let pacedStart = nowNs() + 100_000_000
        let single = Mutex<[Double]>([])
        let status = Mutex<[Double]>([])
        let connections = 16
        try runThreads(connections + 1) { thread in
            let connection = try HTTPConnection(port: child.port)
            var latencies: [Double] = []
            if thread == connections {
                // The status reader: every 10 ms until the paced load ends.
                let end = pacedStart + UInt64(pacedSeconds * 1e9)
                var due = pacedStart
                while due < end {
                    sleepUntil(due)
                    let (code, _) = try connection.send(HTTPConnection.get("/v1/status", token: token))
                    guard code == 200 else { throw BenchError("serve: GET /v1/status got \(code)") }
                    latencies.append(Double(nowNs() &- due) / 1e6)
                    due += 10_000_000
                }
                status.withLock { $0 += latencies }
                return
            }
            var index = thread
            while index < total {
                let due = pacedStart + UInt64(Double(index) / rate * 1e9)
                sleepUntil(due)
                let (code, body) = try connection.send(HTTPConnection.post("/v1/records", token: token, body: singles[index % singles.count]))
                guard code == 200 else { throw BenchError("serve: a single POST got \(code): \(String(decoding: body, as: UTF8.self))") }
                latencies.append(Double(nowNs() &- due) / 1e6)
                index += connections
            }
            single.withLock { $0 += latencies }
        }
        let singleSorted = single.withLock { $0 }.sorted()
        let statusSorted = status.withLock { $0 }.sorted()
        reporter.emit(Row(workload: "serve", measure: "single-record POST at 1,000/s, p99", value: percentile(0.99, singleSorted),
                          unit: "ms", target: "≤ 10",
                          note: "\(singleSorted.count) requests over \(Int(pacedSeconds)) s from \(connections) connections on a server of their own, latency from when each was due; p50 \(format3(percentile(0.5, singleSorted))) ms, max \(format3(singleSorted.last ?? .nan)) ms",
                          extra: [("p50_ms", percentile(0.5, singleSorted)), ("p99_ms", percentile(0.99, singleSorted)), ("max_ms", singleSorted.last ?? .nan)]))
        reporter.emit(Row(workload: "serve", measure: "GET /v1/status under that load, p99", value: percentile(0.99, statusSorted),
                          unit: "ms", target: "≤ 5",
                          note: "\(statusSorted.count) reads, every 10 ms; p50 \(format3(percentile(0.5, statusSorted))) ms, max \(format3(statusSorted.last ?? .nan)) ms",
                          extra: [("p50_ms", percentile(0.5, statusSorted)), ("p99_ms", percentile(0.99, statusSorted))]))
    }

    /// Request bodies of `batch` events each: the workload's lines without their `ts`.
    private func eventBodies(batch: Int, limit: Int = .max) throws -> [[UInt8]] {
        let text = try String(contentsOfFile: options.workload.eventsPath, encoding: .utf8)
        var bodies: [[UInt8]] = []
        var current: [UInt8] = []
        var count = 0
        for line in text.split(separator: "\n") where bodies.count < limit {
            var bytes = Array(line.utf8)
            if let range = line.range(of: #","ts":"#) {
                let from = line.utf8.distance(from: line.startIndex, to: range.lowerBound)
                var to = line.utf8.distance(from: line.startIndex, to: range.upperBound)
                while to < bytes.count, bytes[to] != UInt8(ascii: ",") { to += 1 }
                bytes.removeSubrange(from..<to)
            }
            current += bytes
            current.append(0x0A)
            count += 1
            if count == batch {
                bodies.append(current)
                current = []
                count = 0
            }
        }
        guard !bodies.isEmpty else { throw BenchError("serve: the workload has too few events") }
        return bodies
    }
}

/// The `p` quantile of sorted values.
func percentile(_ p: Double, _ sorted: [Double]) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// Sleeps until the monotonic clock reads `ns`.
func sleepUntil(_ ns: UInt64) {
    let now = nowNs()
    if ns > now { usleep(useconds_t(min((ns - now) / 1000, 1_000_000))) }
    while nowNs() < ns {}
}

/// Runs `body(0..<count)` on threads of their own and waits for all; the first error is thrown.
func runThreads(_ count: Int, _ body: @escaping @Sendable (Int) throws -> Void) throws {
    let failure = Mutex<(any Error)?>(nil)
    let done = DispatchGroup()
    for index in 0..<count {
        done.enter()
        Thread {
            do { try body(index) } catch { failure.withLock { $0 = $0 ?? error } }
            done.leave()
        }.start()
    }
    done.wait()
    if let error = failure.withLock({ $0 }) { throw error }
}

/// `herald-bench --serve-child DIR` in a process of its own; its port once it listens.
final class ServeChild: Sendable {
    let process: Process
    let port: UInt16

    init(directory: String, projectionMs: Int64) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        process.arguments = ["--serve-child", directory, String(projectionMs)]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        var line: [UInt8] = []
        while true {
            let byte = output.fileHandleForReading.readData(ofLength: 1)
            guard let first = byte.first else { throw BenchError("serve: the server process ended before it listened") }
            if first == 0x0A { break }
            line.append(first)
        }
        guard let port = UInt16(String(decoding: line, as: UTF8.self).replacingOccurrences(of: "PORT ", with: "")) else {
            throw BenchError("serve: the server process said '\(String(decoding: line, as: UTF8.self))'")
        }
        self.process = process
        self.port = port
    }

    func stop() {
        process.interrupt()
        process.waitUntilExit()
    }
}

/// The server side of `serve`: `herald serve` with a no-op executor, until SIGINT/SIGTERM.
func runServeChild(directory: String, projectionMs: Int64) async throws {
    let data = DataDirectory(path: directory)
    let herald = try Herald.open(directory: data, options: HeraldOptions(durability: .always, executor: ClosureExecutor(fallback: { _ in .ok }),
                                                                         projectionIntervalMs: projectionMs))
    let store = try ServerStore(path: directory + "/server.sqlite")
    let server = try HeraldServer(herald: herald, directory: data, store: store, options: ServeOptions(port: 0),
                                  registry: PrometheusCollectorRegistry())
    var logger = Logger(label: "herald-bench.serve")
    logger.logLevel = .error
    let group = server.serviceGroup(logger: logger) { port in
        print("PORT \(port)")
        fflush(nil)
    }
    try await group.run()
}

/// A blocking HTTP/1.1 client connection with keep-alive: one request at a time.
final class HTTPConnection {
    private let socket: Int32
    private var pending: [UInt8] = []
    private var buffer = [UInt8](repeating: 0, count: 1 << 16)

    init(port: UInt16) throws {
        socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(socket, Int32(IPPROTO_TCP), TCP_NODELAY, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw BenchError("connect to port \(port): \(String(cString: strerror(errno)))") }
    }

    deinit { close(socket) }

    static func post(_ path: String, token: String, body: [UInt8]) -> [UInt8] {
        Array("POST \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\nContent-Type: application/jsonl\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
    }

    static func get(_ path: String, token: String) -> [UInt8] {
        Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \(token)\r\n\r\n".utf8)
    }

    /// Sends one request and reads its response: the status and the body.
    func send(_ request: [UInt8]) throws -> (Int, [UInt8]) {
        var written = 0
        while written < request.count {
            let n = request[written...].withUnsafeBytes { write(socket, $0.baseAddress, $0.count) }
            guard n > 0 else { throw BenchError("write: \(String(cString: strerror(errno)))") }
            written += n
        }
        let separator: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A]
        var headerEnd: Int?
        while headerEnd == nil {
            headerEnd = pending.firstRange(of: separator)?.upperBound
            if headerEnd == nil { try fill() }
        }
        guard let end = headerEnd else { throw BenchError("no response") }
        let head = String(decoding: pending[..<end], as: UTF8.self)
        let lines = head.split(separator: "\r\n")
        guard let first = lines.first, first.count >= 12, let status = Int(first.dropFirst(9).prefix(3)) else {
            throw BenchError("a malformed response: \(head)")
        }
        var length = 0
        for line in lines.dropFirst() where line.lowercased().hasPrefix("content-length:") {
            length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        while pending.count < end + length { try fill() }
        let body = Array(pending[end..<(end + length)])
        pending.removeFirst(end + length)
        return (status, body)
    }

    private func fill() throws {
        let n = buffer.withUnsafeMutableBytes { read(socket, $0.baseAddress, $0.count) }
        guard n > 0 else { throw BenchError("read: the server closed the connection") }
        pending += buffer[0..<n]
    }
}
