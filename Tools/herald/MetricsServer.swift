import Foundation
import Glibc
import Prometheus

/// `herald run --metrics-port`: a small HTTP/1.1 endpoint on its own thread that answers
/// `GET /metrics` with the process's Prometheus registry (text format 0.0.4) and `GET /healthz`
/// with `ok` while the engine takes work (503 with the reason once it stopped). One request
/// per connection, handled in turn: a scraper and a probe, not a web server. Binds loopback
/// unless told otherwise.
final class MetricsServer: @unchecked Sendable {
    let port: UInt16
    private let socket: Int32
    private let registry: PrometheusCollectorRegistry
    private let health: @Sendable () -> String?

    /// Binds `host:port` (`port` 0: any free port; ``port`` tells which). `health` returns `nil`
    /// when healthy, else why not.
    init(host: String, port: UInt16, registry: PrometheusCollectorRegistry, health: @escaping @Sendable () -> String?) throws {
        self.registry = registry
        self.health = health
        let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MetricsServerError("socket: \(String(cString: strerror(errno)))") }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else {
            close(fd)
            throw MetricsServerError("--metrics-host '\(host)' is not an IPv4 address")
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw MetricsServerError("cannot listen on \(host):\(port): \(reason)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.socket = fd
        self.port = UInt16(bigEndian: actual.sin_port)
    }

    /// Serves until the process exits.
    func start() {
        let thread = Thread { [self] in
            while true {
                let client = accept(socket, nil, nil)
                if client < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                serve(client)
                close(client)
            }
        }
        thread.name = "herald-metrics"
        thread.start()
    }

    private func serve(_ client: Int32) {
        // A slow or silent client cannot hold the endpoint: 2 s to send its request.
        var timeout = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while request.count < 16_384, !request.ends(with: [13, 10, 13, 10]) {
            let n = chunk.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            request.append(contentsOf: chunk[0..<n])
        }
        let line = request.split(separator: 10, maxSplits: 1).first.map { String(decoding: $0, as: UTF8.self) } ?? ""
        let parts = line.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: " ")
        let response: (status: String, type: String, body: [UInt8])
        if parts.count != 3 || !parts[2].hasPrefix("HTTP/1.") {
            response = ("400 Bad Request", "text/plain", Array("bad request\n".utf8))
        } else if parts[0] != "GET" && parts[0] != "HEAD" {
            response = ("405 Method Not Allowed", "text/plain", Array("only GET\n".utf8))
        } else {
            switch parts[1].split(separator: "?").first ?? "" {
            case "/metrics":
                response = ("200 OK", "text/plain; version=0.0.4; charset=utf-8", registry.emitToBuffer())
            case "/healthz":
                if let problem = health() {
                    response = ("503 Service Unavailable", "text/plain", Array("\(problem)\n".utf8))
                } else {
                    response = ("200 OK", "text/plain", Array("ok\n".utf8))
                }
            default:
                response = ("404 Not Found", "text/plain", Array("not found (try /metrics or /healthz)\n".utf8))
            }
        }
        var bytes = Array("HTTP/1.1 \(response.status)\r\nContent-Type: \(response.type)\r\nContent-Length: \(response.body.count)\r\nConnection: close\r\n\r\n".utf8)
        if parts.first != "HEAD" { bytes += response.body }
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            sent += n
        }
    }
}

struct MetricsServerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Array where Element == UInt8 {
    fileprivate func ends(with suffix: [UInt8]) -> Bool {
        count >= suffix.count && self[(count - suffix.count)...].elementsEqual(suffix)
    }
}
