import Glibc
import HeraldLog

let usage = """
    usage: herald-bench --workload DIR [--only LIST] [--json FILE] [--work DIR] [--no-peers]
                        [--live-events N] [--live-rate N] [--live-seconds S] [--live-concurrency N] [--live-batch N] [--restart-events N]

      --workload DIR       directory holding setup.jsonl and events.jsonl (Tools/gen-workload DIR)
      --only LIST          comma-separated subset of: ingest,import,scan,storage,derive,project,live,restart,restart-pending,serve,host (default: all, in that order)
                           scan needs a log from ingest or import; storage and project need import
      --json FILE          also append one JSON object per result line to FILE
      --work DIR           scratch directory (default /tmp/herald-bench/<workload name>); its logs are replaced
      --no-peers           skip the SQLite peers
      --live-events N      events appended in the sustained live phase (default 20000)
      --live-rate N        paced phase rate in events/s (default 10000)
      --live-seconds S     paced phase length (default 5)
      --live-concurrency N HeraldOptions.concurrency (default 16, the library default)
      --live-batch N       events per Herald.append in the sustained phase (default 4096)
      --live-durability D  always (default), none or interval:MS for the live engine's log
      --live-projection-ms N  HeraldOptions.projectionIntervalMs of the live engine (default 1000; 0 = no background projection)
      --restart-events N   events (each delivery with an ok attempt) in the restart log (default 690000 ≈ 1 M deliveries)
    """

func writeStderr(_ text: String) {
    var bytes = Array(text.utf8)
    _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
}

func fail(_ message: String, status: Int32) -> Never {
    writeStderr("herald-bench: \(message)\n")
    if status == 2 { writeStderr(usage + "\n") }
    exit(status)
}

func parseOptions(_ arguments: [String]) throws -> (BenchOptions, String?) {
    var workload: String?
    var only: [String] = allWorkloads
    var json: String?
    var work: String?
    var peers = true
    var liveEvents: Int?
    var liveRate = 10_000
    var liveSeconds = 5.0
    var liveConcurrency = 16
    var liveBatch = 4096
    var liveDurability = LogDurability.always
    var liveProjectionMs: Int64 = 1000
    var restartEvents = 690_000
    var index = 0
    func value(_ flag: String) throws -> String {
        index += 1
        guard index < arguments.count, !arguments[index].hasPrefix("--") else { throw BenchError("\(flag) needs a value", usage: true) }
        return arguments[index]
    }
    func positive(_ flag: String) throws -> Int {
        let text = try value(flag)
        guard let n = Int(text), n > 0 else { throw BenchError("\(flag) must be a positive integer, not '\(text)'", usage: true) }
        return n
    }
    while index < arguments.count {
        let flag = arguments[index]
        switch flag {
        case "--workload": workload = try value(flag)
        case "--only":
            only = try value(flag).split(separator: ",").map { String($0).trimmingCharacters() }
            for name in only where !allWorkloads.contains(name) {
                throw BenchError("unknown workload '\(name)' in --only (known: \(allWorkloads.joined(separator: ",")))", usage: true)
            }
            guard !only.isEmpty else { throw BenchError("--only needs at least one workload", usage: true) }
        case "--json": json = try value(flag)
        case "--work": work = try value(flag)
        case "--no-peers": peers = false
        case "--live-events": liveEvents = try positive(flag)
        case "--live-rate": liveRate = try positive(flag)
        case "--live-seconds":
            let text = try value(flag)
            guard let s = Double(text), s > 0, s <= 3600 else { throw BenchError("--live-seconds must be in (0, 3600], not '\(text)'", usage: true) }
            liveSeconds = s
        case "--live-concurrency": liveConcurrency = try positive(flag)
        case "--live-batch": liveBatch = try positive(flag)
        case "--live-durability":
            let text = try value(flag)
            if text == "always" {
                liveDurability = .always
            } else if text == "none" {
                liveDurability = .none
            } else if text.hasPrefix("interval:"), let ms = Int(text.dropFirst("interval:".count)), ms > 0 {
                liveDurability = .interval(milliseconds: ms)
            } else {
                throw BenchError("--live-durability must be always, none or interval:MS, not '\(text)'", usage: true)
            }
        case "--live-projection-ms":
            let text = try value(flag)
            guard let ms = Int64(text), ms >= 0, ms <= 3_600_000 else { throw BenchError("--live-projection-ms must be in 0...3600000, not '\(text)'", usage: true) }
            liveProjectionMs = ms
        case "--restart-events": restartEvents = try positive(flag)
        case "-h", "--help":
            print(usage)
            exit(0)
        default: throw BenchError("unknown argument '\(flag)'", usage: true)
        }
        index += 1
    }
    guard let workload else { throw BenchError("--workload DIR is required", usage: true) }
    let loaded = try Workload(directory: workload)
    let name = workload.split(separator: "/").last.map(String.init) ?? "workload"
    let workDirectory = work ?? "/tmp/herald-bench/\(name)"
    try makeDirectories(workDirectory)
    var options = BenchOptions(workload: loaded, workDirectory: workDirectory, only: Set(only))
    options.peers = peers
    options.liveEvents = liveEvents
    options.liveRate = liveRate
    options.liveSeconds = liveSeconds
    options.liveConcurrency = liveConcurrency
    options.liveBatch = liveBatch
    options.liveDurability = liveDurability
    options.liveProjectionMs = liveProjectionMs
    options.restartEvents = restartEvents
    return (options, json)
}

extension String {
    func trimmingCharacters() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}

// The server process of the `serve` workload.
if CommandLine.arguments.count == 4, CommandLine.arguments[1] == "--serve-child", let projectionMs = Int64(CommandLine.arguments[3]) {
    do {
        try await runServeChild(directory: CommandLine.arguments[2], projectionMs: projectionMs)
        exit(0)
    } catch {
        fail("serve child: \(error)", status: 1)
    }
}

do {
    let (options, json) = try parseOptions(Array(CommandLine.arguments.dropFirst()))
    let reporter = try Reporter(jsonPath: json)
    let bench = Benchmarks(options: options, reporter: reporter)
    for name in allWorkloads where options.only.contains(name) {
        switch name {
        case "ingest": try bench.ingest()
        case "import": try bench.importBench()
        case "scan": try bench.scan()
        case "storage": try bench.storage()
        case "derive": try bench.derive()
        case "project": try bench.project()
        case "live": try await bench.live()
        case "restart": try bench.restart()
        case "restart-pending": try bench.restartPending()
        case "serve": try bench.serve()
        case "host": try bench.host()
        default: break
        }
    }
} catch let error as BenchError {
    fail(error.description, status: error.usage ? 2 : 1)
} catch {
    fail("\(error)", status: 1)
}
