import Dispatch
import Glibc
import HeraldCore
import Synchronization

/// Runs in-process closures, chosen by script id first, then by the script's runtime.
/// For embedders and tests.
///
/// ```swift
/// let executor = ClosureExecutor(byRuntime: ["swift": { invocation in
///     print("hello from", invocation.delivery)
///     return .ok
/// }])
/// ```
public struct ClosureExecutor: ScriptExecutor {
    public typealias Handler = @Sendable (Invocation) async -> ExecutionResult

    private let byScript: [HeraldID: Handler]
    private let byRuntime: [String: Handler]
    private let fallback: Handler?

    public init(byScript: [HeraldID: Handler] = [:], byRuntime: [String: Handler] = [:], fallback: Handler? = nil) {
        self.byScript = byScript
        self.byRuntime = byRuntime
        self.fallback = fallback
    }

    public func execute(_ invocation: Invocation) async -> ExecutionResult {
        if let handler = byScript[invocation.script.id] ?? byRuntime[invocation.script.runtime] ?? fallback {
            return await handler(invocation)
        }
        return .error("no executor for script \(invocation.script.id) (runtime '\(invocation.script.runtime)')",
                      retryable: false)
    }
}

/// The `process` runtime: runs the script's `source` with `/bin/sh -c`, the invocation JSON
/// on stdin. Exit 0 = ok; ``notRetryableExitCode`` = error, not retryable; any other exit =
/// retryable error carrying the tail of stderr. Cancellation (timeout, shutdown) kills it.
public struct ProcessExecutor: ScriptExecutor {
    /// The exit code that means "do not retry".
    public var notRetryableExitCode: Int32
    /// How much of stderr's end goes into the error message.
    public var stderrTailBytes: Int

    public init(notRetryableExitCode: Int32 = 75, stderrTailBytes: Int = 512) {
        self.notRetryableExitCode = notRetryableExitCode
        self.stderrTailBytes = stderrTailBytes
        signal(SIGPIPE, SIG_IGN)  // a script that ignores stdin must not kill the engine
    }

    public func execute(_ invocation: Invocation) async -> ExecutionResult {
        let pid = ChildProcess()
        let input = Array(invocation.json.utf8) + [0x0A]
        let command = invocation.script.source
        let tailBytes = stderrTailBytes
        let code = notRetryableExitCode
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<ExecutionResult, Never>) in
                DispatchQueue.global().async {
                    continuation.resume(returning: ProcessExecutor.run(command: command, input: input, pid: pid,
                                                                       tailBytes: tailBytes, notRetryable: code))
                }
            }
        } onCancel: {
            pid.kill()
        }
    }

    private static func run(command: String, input: [UInt8], pid: ChildProcess, tailBytes: Int,
                            notRetryable: Int32) -> ExecutionResult {
        var stdinPipe: [Int32] = [0, 0]
        var stderrPipe: [Int32] = [0, 0]
        guard makePipe(&stdinPipe) else { return .error("cannot create a pipe: \(errnoText())") }
        guard makePipe(&stderrPipe) else {
            close(stdinPipe[0]); close(stdinPipe[1])
            return .error("cannot create a pipe: \(errnoText())")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
        var child: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup(command), nil]
        defer { for arg in argv { free(arg) } }
        let rc = posix_spawn(&child, "/bin/sh", &actions, nil, argv, environ)
        close(stdinPipe[0])
        close(stderrPipe[1])
        guard rc == 0 else {
            close(stdinPipe[1]); close(stderrPipe[0])
            return .error("cannot start /bin/sh: \(String(cString: strerror(rc)))")
        }
        pid.started(child)
        // Feed stdin on another thread so a script that writes much to stderr cannot deadlock us.
        let writer = stdinPipe[1]
        DispatchQueue.global().async {
            input.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count, let base = bytes.baseAddress {
                    let n = write(writer, base + offset, bytes.count - offset)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { break }
                    offset += n
                }
            }
            close(writer)
        }
        var tail: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(stderrPipe[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            tail.append(contentsOf: chunk[0..<n])
            if tail.count > tailBytes * 2 { tail.removeFirst(tail.count - tailBytes) }
        }
        close(stderrPipe[0])
        var status: Int32 = 0
        while waitpid(child, &status, 0) < 0 && errno == EINTR {}
        pid.finished()
        if tail.count > tailBytes { tail.removeFirst(tail.count - tailBytes) }
        let message = String(decoding: tail, as: UTF8.self).trimmingTrailingNewlines()
        let signalled = status & 0x7f
        if signalled != 0 {
            return .error("killed by signal \(signalled)" + (message.isEmpty ? "" : ": " + message))
        }
        let exit = (status >> 8) & 0xff
        if exit == 0 { return .ok }
        let text = "exit \(exit)" + (message.isEmpty ? "" : ": " + message)
        return .error(text, retryable: exit != notRetryable)
    }

    private static func errnoText() -> String { String(cString: strerror(errno)) }

    /// A pipe whose ends close on exec, so children inherit only what posix_spawn dup2s.
    private static func makePipe(_ fds: inout [Int32]) -> Bool {
        guard pipe(&fds) == 0 else { return false }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return true
    }
}

/// The running child's pid, so cancellation can kill it.
final class ChildProcess: Sendable {
    private let pid = Mutex<pid_t>(0)
    private let killed = Mutex(false)

    func started(_ child: pid_t) {
        let kill = killed.withLock { $0 }
        pid.withLock { $0 = child }
        if kill { Glibc.kill(child, SIGKILL) }
    }

    func finished() { pid.withLock { $0 = 0 } }

    func kill() {
        killed.withLock { $0 = true }
        pid.withLock { if $0 > 0 { _ = Glibc.kill($0, SIGKILL) } }
    }
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var text = Substring(self)
        while let last = text.last, last == "\n" || last == "\r" { text = text.dropLast() }
        return String(text)
    }
}

/// Routes by the script's runtime: `process` to a ``ProcessExecutor``, others to the closures.
public struct RuntimeRouter: ScriptExecutor {
    private let routes: [String: any ScriptExecutor]
    private let fallback: (any ScriptExecutor)?

    public init(_ routes: [String: any ScriptExecutor], fallback: (any ScriptExecutor)? = nil) {
        self.routes = routes
        self.fallback = fallback
    }

    public func execute(_ invocation: Invocation) async -> ExecutionResult {
        if let executor = routes[invocation.script.runtime] ?? fallback {
            return await executor.execute(invocation)
        }
        return .error("no executor for runtime '\(invocation.script.runtime)'", retryable: false)
    }
}
