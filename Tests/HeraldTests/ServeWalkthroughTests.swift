import Foundation
import Glibc
import Testing

/// README's `herald serve` walkthrough runs as it is: the shell block between its markers,
/// with `herald` on PATH and `PORT` a free loopback port. Every request must succeed; the
/// delivery dies, is redriven and succeeds; SIGTERM ends the server with exit 0; `verify`
/// passes on what it left.
@Suite struct ServeWalkthroughTests {
    @Test func theReadmeServeWalkthroughRuns() async throws {
        guard heraldIsBuilt() else { return }
        let readme = try String(contentsOfFile: packageRoot + "/README.md", encoding: .utf8)
        guard let begin = readme.range(of: "<!-- serve walkthrough: begin -->\n```sh\n"),
              let end = readme.range(of: "```\n<!-- serve walkthrough: end -->", range: begin.upperBound..<readme.endIndex) else {
            Issue.record("README.md has no serve walkthrough between its markers")
            return
        }
        let script = "set -eu\n" + readme[begin.upperBound..<end.lowerBound]
        let bin = URL(fileURLWithPath: heraldBinary).deletingLastPathComponent().path
        try await withTemporaryDirectory { tmp in
            let run = try await runProgram("/bin/bash", ["-c", script],
                                           environment: ["PATH": bin + ":/usr/bin:/bin", "TMPDIR": tmp, "PORT": "\(try freePort())"])
            #expect(run.status == 0, "the walkthrough failed: \(run.stderr)")
            let out = run.stdout
            // The registrations and the insert were appended (positions 2…4, then 5).
            #expect(out.contains(#"{"first_position":2,"last_position":4,"count":3}"#), "\(out)")
            #expect(out.contains(#"{"first_position":5,"last_position":5,"count":1}"#), "\(out)")
            // The timeline says the attempt failed and the delivery died; the redrive took it.
            #expect(out.contains(#""status":"dead""#) && out.contains(#""error":"exit 1""#), "\(out)")
            #expect(out.contains(#""dry_run":false,"count":1,"deliveries":["5:d0000000-0000-4000-8000-000000000001"]"#), "\(out)")
            #expect(out.contains(#""pending":0"#), "\(out)")
            #expect(run.stderr.contains("herald serve: listening on http://127.0.0.1:"), "\(run.stderr)")
            #expect(run.stderr.contains("herald serve: stopped at position"), "\(run.stderr)")
            // What the server left passes verify.
            let made = try FileManager.default.contentsOfDirectory(atPath: tmp).map { tmp + "/" + $0 + "/data" }
                .filter { FileManager.default.fileExists(atPath: $0) }
            #expect(made.count == 1)
            for data in made {
                let verify = try await runProgram(heraldBinary, ["verify", "--data", data])
                #expect(verify.status == 0, "verify: \(verify.stdout)\(verify.stderr)")
            }
        }
    }
}

/// A loopback port nothing listens on right now.
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw POSIXError(.EADDRINUSE) }
    return Int(UInt16(bigEndian: address.sin_port))
}
