import Foundation
import Herald
import HeraldCore
import HeraldLog
@testable import HeraldNATS
import HeraldTesting
import Testing

/// The NATS server the tests use: `HERALD_TEST_NATS_URL`, which `Tools/test` sets after
/// `Tools/services start nats` (a single node with JetStream).
let testNATSURL = ProcessInfo.processInfo.environment["HERALD_TEST_NATS_URL"]

/// A fresh stream URL per use (the tests share one server; streams are never deleted, they
/// deny it: each test run uses new names).
func freshStream(_ stem: String) -> String {
    "\(testNATSURL ?? "nats://127.0.0.1:4222")/\(freshSchema(stem).replacingOccurrences(of: "t_", with: "T-"))"
}

@Suite(.enabled(if: testNATSURL != nil,
                "HERALD_TEST_NATS_URL is not set: run Tools/test, or `eval $(Tools/services start nats)` first"),
       .serialized)
struct JetStreamLogTests {
    /// Small blocks, so one append spans several blocks (messages).
    static let smallBlocks = LogConfiguration(blockRawBytesMax: 4_096)

    func records(_ count: Int, seed: UInt64) -> [Record] {
        var generator = RandomLog(seed: seed)
        return generator.generate(records: count)
    }

    func readAll(_ log: some RecordSource, from: UInt64 = 1) throws -> [Record] {
        var out: [Record] = []
        try log.forEach(from: from, through: nil) { _, record in
            out.append(record.compacted())
            return true
        }
        return out
    }

    /// Appends of one and of many blocks read back record for record, from any position, by
    /// this log and by a reader opened afterwards.
    @Test func appendsReadBackFromAnyPosition() throws {
        let url = freshStream("roundtrip")
        let log = try JetStreamLog(url: url, configuration: Self.smallBlocks)
        let all = records(1_200, seed: 5)
        try #require(all.count > 900)
        var at = 0
        for size in [1, 7, 300, 892] where at < all.count {
            let part = Array(all[at..<min(all.count, at + size)])
            let range = try log.append(part)
            #expect(range == UInt64(at + 1)...UInt64(at + part.count))
            at += part.count
        }
        let reader = try JetStreamLog(url: url)
        #expect(try reader.lastPosition == UInt64(all.count))
        #expect(try readAll(reader) == all)
        #expect(try readAll(reader, from: 555) == Array(all[554...]))
        var window: [UInt64] = []
        try reader.forEach(from: 300, through: 305) { position, _ in window.append(position); return true }
        #expect(window == Array(300...305))
    }

    /// One writer: a writer whose view is stale (another appended since it read the stream's
    /// end) fails on its next append, and nothing of that append is visible.
    @Test func aSecondWriterFencesTheFirst() throws {
        let url = freshStream("fence")
        let first = try JetStreamLog(url: url)
        let second = try JetStreamLog(url: url)
        let all = records(80, seed: 9)
        try #require(all.count >= 30)
        try first.append(Array(all[0..<10]))
        try second.append(Array(all[10..<20]))
        #expect {
            try first.append(Array(all[20..<30]))
        } throws: { error in
            "\(error)".contains("another writer appended after stream sequence")
        }
        #expect(try readAll(JetStreamLog(url: url)) == Array(all[0..<20]))
    }

    /// A publish sent again with the same `Nats-Msg-Id` (what a writer does when an ack is
    /// lost) is deduplicated: the same sequence, nothing stored twice.
    @Test func aRepublishedBlockIsStoredOnce() throws {
        let url = freshStream("dedup")
        let log = try JetStreamLog(url: url)
        let firstPart = Array(records(30, seed: 1).prefix(3))
        try #require(firstPart.count == 3)
        try log.append(firstPart)
        let parsed = try JetStreamLog.parse(url)
        let client = try NATSClient(servers: parsed.servers, timeoutMs: 5_000)
        var prepared = PreparedBlocks()
        var batch = LogBatch()
        for record in records(20, seed: 2).prefix(2) {
            batch.append(ts: record.ts + 1_000_000) { RecordBinaryCodec.encode(record.body, into: &$0) }
        }
        try prepared.append(batch)
        // Chained after the log's last block, as the writer would.
        let tail = try #require(try client.message(parsed.stream, sequence: 1))
        let previous = try StandaloneBlock.header(of: tail).get()
        let block = try #require(StandaloneBlock.seal(prepared, base: previous.endPosition, previousCRC: previous.blockCRC).first)
        let once = try client.publish(block.bytes, subject: "herald." + parsed.stream, id: "test-2", expectedLastSequence: 1)
        let again = try client.publish(block.bytes, subject: "herald." + parsed.stream, id: "test-2", expectedLastSequence: 1)
        #expect(once.sequence == 2 && !once.duplicate)
        #expect(again.sequence == 2 && again.duplicate)
        #expect(try client.streamState(parsed.stream)?.lastSequence == 2)
        #expect(try JetStreamLog(url: url).lastPosition == UInt64(firstPart.count + 2))
    }

    /// A writer that died between the blocks of one append: readers do not show the torn
    /// append; the next writer supersedes it (its records take those positions), with a warning.
    @Test func aTornAppendIsSupersededByTheNextWriter() throws {
        let url = freshStream("torn")
        let all = records(600, seed: 3)
        try #require(all.count >= 400)
        try JetStreamLog(url: url).append(Array(all[0..<100]))
        // The first block of a 3-block append, published alone: the writer died after it.
        let parsed = try JetStreamLog.parse(url)
        let client = try NATSClient(servers: parsed.servers, timeoutMs: 5_000)
        var prepared = PreparedBlocks(configuration: Self.smallBlocks)
        var batch = LogBatch()
        for record in all[100..<300] {
            batch.append(ts: record.ts) { RecordBinaryCodec.encode(record.body, into: &$0) }
        }
        try prepared.append(batch)
        let tail = try StandaloneBlock.header(of: try #require(try client.message(parsed.stream, sequence: 1))).get()
        let torn = StandaloneBlock.seal(prepared, base: tail.endPosition, previousCRC: tail.blockCRC)
        #expect(torn.count >= 2 && torn[0].continues)
        _ = try client.publish(torn[0].bytes, subject: "herald." + parsed.stream, id: "dead-writer-2", expectedLastSequence: 1)
        #expect(try JetStreamLog(url: url).lastPosition == 100, "the torn append is not shown")
        // The next writer starts where the torn append started.
        let next = try JetStreamLog(url: url)
        #expect(try next.append(Array(all[300..<400])) == 101...200)
        let warnings = WarningLog()
        let reader = try JetStreamLog(url: url)
        reader.diagnostics = { warnings.add($0) }
        #expect(try readAll(reader) == Array(all[0..<100]) + Array(all[300..<400]))
        #expect(warnings.all.count == 1 && warnings.all[0].contains("never acknowledged"), "\(warnings.all)")
    }

    /// `herald copy` from a data directory to a stream and back: every record equal, and the
    /// derived deliveries of the copy byte for byte those of the original.
    @Test func copyMovesALogThereAndBack() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            let generated = try await runProgram(heraldBinary, ["random-log", "--seed", "21", "--records", "3000"])
            try generated.stdout.write(toFile: path + "/log.jsonl", atomically: true, encoding: .utf8)
            #expect(try await runProgram(heraldBinary, ["import", "--data", path + "/a", path + "/log.jsonl"]).status == 0)
            let url = freshStream("copy")
            let there = try await runProgram(heraldBinary, ["copy", "--from", path + "/a", "--to", url, "--batch-records", "500"])
            #expect(there.status == 0 && there.stdout.contains("compared one by one"), "\(there.stdout)\(there.stderr)")
            let back = try await runProgram(heraldBinary, ["copy", "--from", url, "--to", path + "/b"])
            #expect(back.status == 0, "\(back.stderr)")
            // Again: nothing left to copy, still equal.
            let again = try await runProgram(heraldBinary, ["copy", "--from", url, "--to", path + "/b"])
            #expect(again.status == 0 && again.stdout.contains("(0 records)"), "\(again.stdout)\(again.stderr)")
            let original = try await runProgram(heraldBinary, ["deliveries", "--data", path + "/a", "--format", "jsonl"])
            let copied = try await runProgram(heraldBinary, ["deliveries", "--data", path + "/b", "--format", "jsonl"])
            #expect(original.status == 0 && !original.stdout.isEmpty && original.stdout == copied.stdout)
            // Into a log that holds other records: refused, nothing appended.
            let different = try await runProgram(heraldBinary, ["random-log", "--seed", "22", "--records", "50"])
            try different.stdout.write(toFile: path + "/other.jsonl", atomically: true, encoding: .utf8)
            #expect(try await runProgram(heraldBinary, ["import", "--data", path + "/c", path + "/other.jsonl"]).status == 0)
            let before = try DataDirectory(path: path + "/c").openReader().lastPosition
            let clash = try await runProgram(heraldBinary, ["copy", "--from", url, "--to", path + "/c"])
            #expect(clash.status != 0 && clash.stderr.contains("it is another log"), "\(clash.stderr)")
            #expect(try DataDirectory(path: path + "/c").openReader().lastPosition == before)
            let refused = try await runProgram(heraldBinary, ["copy", "--from", url, "--to", path + "/a", "--batch-records", "0"])
            #expect(refused.status != 0 && refused.stderr.contains("--batch-records"))
        }
    }

    /// Every log fixture and random logs, read through `--log nats://…` after `herald copy`:
    /// the same deliveries and triggers, byte for byte, as their goldens and the local log.
    @Test func fixturesAndRandomLogsDeriveTheSameOnAStream() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            var logs: [(name: String, file: String, golden: String?)] = []
            for group in ["rules", "logs"] {
                let directory = packageRoot + "/fixtures/" + group
                for name in try FileManager.default.contentsOfDirectory(atPath: directory).sorted() {
                    let golden = directory + "/" + name + "/expected/deliveries.jsonl"
                    // A fixture with compact.txt pins a compacted segment log: its golden is not
                    // the whole log's (a stream is copied whole).
                    let compacted = FileManager.default.fileExists(atPath: directory + "/" + name + "/compact.txt")
                    logs.append((group + "/" + name, directory + "/" + name + "/log.jsonl",
                                 FileManager.default.fileExists(atPath: golden) && !compacted ? golden : nil))
                }
            }
            for seed in [3, 17, 40] {
                let generated = try await runProgram(heraldBinary, ["random-log", "--seed", String(seed), "--records", "1500"])
                let file = path + "/random-\(seed).jsonl"
                try generated.stdout.write(toFile: file, atomically: true, encoding: .utf8)
                logs.append(("random-log seed \(seed)", file, nil))
            }
            #expect(logs.count >= 30)
            for (index, log) in logs.enumerated() {
                let local = path + "/local-\(index)", url = freshStream("fixture")
                let imported = try await runProgram(heraldBinary, ["import", "--data", local, log.file])
                #expect(imported.status == 0, "\(log.name): \(imported.stderr)")
                let copied = try await runProgram(heraldBinary, ["copy", "--from", local, "--to", url])
                #expect(copied.status == 0, "\(log.name): \(copied.stderr)")
                for listing in ["deliveries", "triggers"] {
                    let mine = try await runProgram(heraldBinary, [listing, "--data", local, "--format", "jsonl"])
                    let stream = try await runProgram(heraldBinary, [listing, "--data", path + "/remote-\(index)", "--log", url,
                                                                     "--format", "jsonl"])
                    #expect(stream.status == 0 && stream.stdout == mine.stdout, "\(log.name) \(listing): \(stream.stderr)")
                    if listing == "deliveries", let golden = log.golden {
                        #expect(stream.stdout == (try String(contentsOfFile: golden, encoding: .utf8)), "\(log.name) against its golden")
                    }
                }
            }
        }
    }

    /// `herald import` and `herald run --log nats://…`: the import is one transaction of the
    /// stream, the engine appends its outcomes to it (the projection in the data directory),
    /// `verify` checks the stream, and an import with a bad line appends nothing.
    @Test func runAppendsItsOutcomesToAStream() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            let a = "a0000000-0000-4000-8000-000000000001", app = "b0000000-0000-4000-8000-000000000001"
            var lines = [
                #"{"type":"admin_user.created","admin_user_id":"\#(a)","email":"ops@example.com","ts":1000}"#,
                #"{"type":"app.created","app_id":"\#(app)","name":"shop","ts":1000}"#,
                #"{"type":"script.registered","script_id":"c0000000-0000-4000-8000-000000000001","app_id":"\#(app)","name":"ok","runtime":"process","source":"cat >/dev/null","ts":1000}"#,
                #"{"type":"script.registered","script_id":"c0000000-0000-4000-8000-000000000002","app_id":"\#(app)","name":"bad","runtime":"process","source":"echo nope >&2; exit 1","ts":1000}"#,
                #"{"type":"trigger.registered","trigger_id":"d0000000-0000-4000-8000-000000000001","app_id":"\#(app)","script_id":"c0000000-0000-4000-8000-000000000001","kind":"kv","registered_by":"\#(a)","kv":{"collection_glob":"*","ops":[]},"ts":1000}"#,
                #"{"type":"trigger.registered","trigger_id":"d0000000-0000-4000-8000-000000000002","app_id":"\#(app)","script_id":"c0000000-0000-4000-8000-000000000002","kind":"kv","retry":{"max_attempts":2,"backoff":"constant","base_ms":5},"registered_by":"\#(a)","kv":{"collection_glob":"orders","ops":[]},"ts":1000}"#,
            ]
            for index in 0..<40 {
                lines.append(#"{"type":"kv.insert","app_id":"\#(app)","collection":"\#(index % 2 == 0 ? "orders" : "users")","key":"k\#(index)","value":{"i":\#(index)},"ts":1001}"#)
            }
            try lines.joined(separator: "\n").write(toFile: path + "/setup.jsonl", atomically: true, encoding: .utf8)
            let url = freshStream("run")
            let imported = try await runProgram(heraldBinary, ["import", "--data", path + "/d", "--log", url, path + "/setup.jsonl"])
            #expect(imported.status == 0 && imported.stdout.contains("imported 46 records at positions 1…46"), "\(imported.stdout)\(imported.stderr)")
            let run = try await runProgram(heraldBinary, ["run", "--data", path + "/d", "--log", url, "--until-idle", "--quiet"])
            #expect(run.status == 0 && run.stderr.contains("0 pending; 80 attempt(s) this run: 40 ok, 40 error, 20 dead-lettered"), "\(run.stderr)")
            let verified = try await runProgram(heraldBinary, ["verify", "--data", path + "/d", "--log", url])
            #expect(verified.status == 0 && verified.stdout.contains("126 records in \(url)"), "\(verified.stdout)\(verified.stderr)")
            // Segment-file commands refuse a stream by name instead of reporting an empty log.
            let stats = try await runProgram(heraldBinary, ["stats", "--data", path + "/d", "--log", url])
            #expect(stats.status != 0 && stats.stderr.contains("segment files"), "\(stats.stdout)\(stats.stderr)")
            // An import with a bad line appends nothing to the stream (the ids exist already).
            let again = try await runProgram(heraldBinary, ["import", "--data", path + "/d", "--log", url, path + "/setup.jsonl"])
            #expect(again.status == 1 && again.stderr.contains("line 1"), "\(again.stderr)")
            #expect(try JetStreamLog(url: url).lastPosition == 126)
        }
    }

    /// Acknowledgements lost: Tools/lib/flaky-proxy.py between the writer and the server lets
    /// every 5th publish reach the server, drops its answer and cuts the connection. The writer
    /// sends it again with the same `Nats-Msg-Id` and the server answers it as a duplicate, so
    /// the stream ends with every record exactly once — `copy`'s record by record comparison
    /// passes, and the stream read directly derives the same deliveries.
    @Test func acknowledgementsLostToCutConnectionsLoseAndDuplicateNothing() async throws {
        guard heraldIsBuilt(), let upstream = testNATSURL?.split(separator: ":").last.map(String.init) else { return }
        try await withTemporaryDirectory { path in
            let generated = try await runProgram(heraldBinary, ["random-log", "--seed", "31", "--records", "1200"])
            try generated.stdout.write(toFile: path + "/log.jsonl", atomically: true, encoding: .utf8)
            #expect(try await runProgram(heraldBinary, ["import", "--data", path + "/a", path + "/log.jsonl"]).status == 0)
            let proxyPort = "54299"
            let proxy = try ChildProgram("/usr/bin/env", ["python3", packageRoot + "/Tools/lib/flaky-proxy.py", proxyPort, upstream, "5"])
            #expect(await acceptsConnections(port: 54299, withinSeconds: 30), "the proxy did not start listening")
            let stream = freshStream("cut").split(separator: "/").last.map(String.init) ?? "CUT"
            let copied = try await runProgram(heraldBinary, ["copy", "--from", path + "/a", "--to", "nats://127.0.0.1:\(proxyPort)/\(stream)",
                                                             "--batch-records", "40"])
            proxy.kill()
            let proxyRun = await proxy.wait()
            let cuts = proxyRun.stdout.split(separator: "\n").filter { $0.hasPrefix("cut ") }.count
            #expect(copied.status == 0 && copied.stdout.contains("compared one by one"), "\(copied.stdout)\(copied.stderr)")
            // Each cut lost an acknowledgement; the resend was answered as a duplicate.
            let lost = copied.stderr.split(separator: "\n").filter { $0.contains("its first acknowledgement was lost") }.count
            // (A cut can also lose the publish itself when the server had not read it yet: then
            // the resend is stored as new. Either way nothing is lost or stored twice.)
            #expect(cuts >= 3 && lost >= 1 && lost <= cuts, "\(cuts) acknowledgements dropped, \(lost) resends answered as duplicates; proxy: \(proxyRun.stdout)\(proxyRun.stderr)")
            let direct = "\(testNATSURL ?? "")/\(stream)"
            let original = try await runProgram(heraldBinary, ["deliveries", "--data", path + "/a", "--format", "jsonl"])
            let fromStream = try await runProgram(heraldBinary, ["deliveries", "--data", path + "/b", "--log", direct, "--format", "jsonl"])
            #expect(fromStream.status == 0 && fromStream.stdout == original.stdout, "\(fromStream.stderr)")
            let verified = try await runProgram(heraldBinary, ["verify", "--data", path + "/b", "--log", direct])
            #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        }
    }

    @Test func badURLsAreRefusedByName() {
        for (url, reason) in [("nats://127.0.0.1:4222", "no /STREAM"), ("nats://h:1/bad.name", "stream name"),
                              ("nats://h:1/S?replicas=9", "replicas=1…5"), ("http://h/S", "nats://")] {
            #expect { _ = try JetStreamLog.parse(url) } throws: { "\($0)".contains(reason) }
        }
    }
}

/// Warnings collected from a diagnostics callback.
final class WarningLog: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func add(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }
}

/// True once something on 127.0.0.1 accepts a TCP connection on `port` (polled every 50 ms).
func acceptsConnections(port: UInt16, withinSeconds seconds: Double) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
        close(descriptor)
        if connected { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return false
}
