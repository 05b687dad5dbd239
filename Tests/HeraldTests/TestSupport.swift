import Foundation
import Herald
import HeraldCore
import HeraldLog
import Synchronization
import Testing

/// A temporary directory removed when `body` returns or throws.
func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("herald-test-\(UUID().uuidString.lowercased())").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// A deterministic pseudo-random generator: the seed replays a failure exactly.
typealias SeededRandom = SplitMix64

/// An id made from a number: readable in failure messages.
func testID(_ n: UInt64) -> HeraldID { HeraldID(high: 0x0000_0000_0000_4000, low: 0x8000_0000_0000_0000 | n) }

/// The package root, found from this file.
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// An admin user, an app, a script and a KV trigger on every collection: the smallest setup
/// under which every KV record of `app` creates one delivery.
func oneTriggerSetup(admin: HeraldID, app: HeraldID, script: HeraldID, trigger: HeraldID,
                     retry: RetryConfig = .builtIn) -> [RecordBody] {
    [
        .adminUserCreated(adminUserID: admin, email: "a@example.com"),
        .appCreated(appID: app, name: "a"),
        .scriptRegistered(ScriptRegistration(scriptID: script, appID: app, name: "s", runtime: "swift", source: "")),
        .triggerRegistered(TriggerRegistration(triggerID: trigger, appID: app, scriptID: script, kind: .kv,
                                               retry: retry, registeredBy: admin, kv: KVDetails(collectionGlob: "*", ops: []))),
    ]
}

/// What a program run by a test printed and how it ended.
struct ProgramRun: Sendable {
    var status: Int32
    /// Ended by a signal (SIGKILL from the test, for one).
    var killed: Bool
    var stdout: String
    var stderr: String
}

/// A program started by a test and awaited without blocking a Swift concurrency thread: the
/// test process's pool has one thread per core, so a blocking `waitUntilExit` there starves
/// every other test (their engines' attempts then time out). Output goes to files, so a
/// chatty program never blocks on a full pipe.
final class ChildProgram: @unchecked Sendable {
    // @unchecked: `process` is only started in `init`, then read (`isRunning`, pid) or sent a
    // signal; `state` is under its mutex.
    private let process = Process()
    private let outPath: String, errPath: String
    private final class State: Sendable {
        let mutex = Mutex<(ended: (Int32, Bool)?, waiter: CheckedContinuation<(Int32, Bool), Never>?)>((nil, nil))
    }
    private let state = State()

    init(_ binary: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        let stem = NSTemporaryDirectory() + "herald-child-\(UUID().uuidString)"
        outPath = stem + ".out"
        errPath = stem + ".err"
        guard FileManager.default.createFile(atPath: outPath, contents: nil), FileManager.default.createFile(atPath: errPath, contents: nil),
              let out = FileHandle(forWritingAtPath: outPath), let err = FileHandle(forWritingAtPath: errPath) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: stem])
        }
        defer { try? out.close(); try? err.close() }
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = out
        process.standardError = err
        process.terminationHandler = { [state] ended in
            let result = (ended.terminationStatus, ended.terminationReason == .uncaughtSignal)
            let waiter = state.mutex.withLock { s -> CheckedContinuation<(Int32, Bool), Never>? in
                s.ended = result
                defer { s.waiter = nil }
                return s.waiter
            }
            waiter?.resume(returning: result)
        }
        try process.run()
    }

    deinit {
        try? FileManager.default.removeItem(atPath: outPath)
        try? FileManager.default.removeItem(atPath: errPath)
    }

    var isRunning: Bool { process.isRunning }

    /// Sends SIGKILL (if it still runs).
    func kill() {
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }

    /// Waits for the end and returns what it printed.
    func wait() async -> ProgramRun {
        let (status, killed) = await withCheckedContinuation { continuation in
            let ended = state.mutex.withLock { s -> (Int32, Bool)? in
                if s.ended == nil { s.waiter = continuation }
                return s.ended
            }
            if let ended { continuation.resume(returning: ended) }
        }
        let stdout = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let stderr = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return ProgramRun(status: status, killed: killed, stdout: stdout, stderr: stderr)
    }
}

/// Runs `binary` to its end (see ``ChildProgram``).
func runProgram(_ binary: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> ProgramRun {
    try await ChildProgram(binary, arguments, environment: environment).wait()
}

/// Runs `body` in a task of high priority. Tests that depend on real time (attempt timeouts,
/// real backoff waits, a deadline) use it: the test process's concurrency pool has one thread
/// per core, shared with every other test, all queued at the default priority when the run
/// starts, so a continuation queued behind them can wait until most have run (tens of
/// seconds, longer than a 30 s attempt timeout). At high priority it waits at most for one
/// running test to end.
func atHighPriority<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await Task(priority: .high) { try await body() }.value
}

/// The `herald` binary of this build (`Tools/test` builds it before the tests run).
let heraldBinary = packageRoot + "/.build/debug/herald"

/// True when the herald binary is built; records an issue saying how to build it if not.
func heraldIsBuilt() -> Bool {
    guard FileManager.default.isExecutableFile(atPath: heraldBinary) else {
        Issue.record("\(heraldBinary) is missing: build the herald product first (Tools/test does)")
        return false
    }
    return true
}
