import Glibc
import HeraldCore
import Synchronization

/// The `process` runtime: runs the script's `source` with `/bin/sh -c`, the invocation JSON
/// on stdin. Exit 0 = ok; ``notRetryableExitCode`` = error, not retryable; any other exit =
/// retryable error carrying the tail of stderr. Cancellation (timeout, shutdown) kills it.
///
/// Each attempt's child runs in a process group of its own, and has a thread of its own that
/// spawns it, writes its stdin and reads its stderr with `poll` on non-blocking pipes, and
/// reaps it: nothing blocks Swift's cooperative pool or Dispatch's threads, so a round of
/// `concurrency` scripts never starves itself. A timeout or cancellation kills the whole group
/// (SIGKILL); so does the shell's exit, so a process the script left behind cannot hold the
/// stderr pipe and stall the round.
///
/// Scripts get a small environment, not Herald's (``environment(for:)``): `PATH` (Herald's, or
/// ``defaultPath``), `HOME` and `LANG` when Herald has them, the variables named in
/// ``passEnvironment``, and the invocation variables (``invocationVariables``).
///
/// ```swift
/// // Scripts also see SMTP_HOST (read from Herald's environment when the executor is created).
/// let executor = RuntimeRouter(["process": ProcessExecutor(passEnvironment: ["SMTP_HOST"])])
/// ```
public struct ProcessExecutor: ScriptExecutor {
    /// The exit code that means "do not retry".
    public var notRetryableExitCode: Int32
    /// How much of stderr's end goes into the error message.
    public var stderrTailBytes: Int
    /// Names of further variables of Herald's environment that scripts get (an allow-list;
    /// `herald run --pass-env NAME`). Nothing else of Herald's environment reaches a script.
    public let passEnvironment: [String]
    /// `NAME=value` of each variable taken from Herald's environment, read once, by `init`.
    private let inherited: [String]

    /// `PATH` for scripts when Herald's environment has none.
    public static let defaultPath = "/usr/local/bin:/usr/bin:/bin"

    /// The variables that describe the attempt, in the order a script's environment lists
    /// them: `HERALD_DELIVERY` (`P:TRIGGER_ID`), `HERALD_ATTEMPT` (1-based),
    /// `HERALD_TRIGGER_ID`, `HERALD_SCRIPT_ID`, `HERALD_APP_ID`. They always carry the
    /// attempt's values, even when ``passEnvironment`` names one of them.
    public static let invocationVariables = ["HERALD_DELIVERY", "HERALD_ATTEMPT", "HERALD_TRIGGER_ID",
                                             "HERALD_SCRIPT_ID", "HERALD_APP_ID"]

    /// Variables taken from Herald's environment for every script, before ``passEnvironment``.
    static let baseVariables = ["PATH", "HOME", "LANG"]

    /// - Parameters:
    ///   - notRetryableExitCode: the exit code that means "do not retry".
    ///   - stderrTailBytes: how much of stderr's end goes into the error message.
    ///   - passEnvironment: names of further variables of Herald's environment to pass on;
    ///     each must be a variable name (``isVariableName(_:)``; a programmer error otherwise).
    ///     Their values, like `PATH`, `HOME` and `LANG`, are read now, not per attempt.
    public init(notRetryableExitCode: Int32 = 75, stderrTailBytes: Int = 512, passEnvironment: [String] = []) {
        for name in passEnvironment {
            precondition(Self.isVariableName(name),
                         "ProcessExecutor(passEnvironment:): '\(name)' is not an environment variable name")
        }
        self.notRetryableExitCode = notRetryableExitCode
        self.stderrTailBytes = stderrTailBytes
        self.passEnvironment = passEnvironment
        var names: [String] = []
        for name in Self.baseVariables + passEnvironment
        where !names.contains(name) && !Self.invocationVariables.contains(name) {
            names.append(name)
        }
        var inherited: [String] = []
        for name in names {
            if let value = getenv(name) {
                inherited.append(name + "=" + String(cString: value))
            } else if name == "PATH" {
                inherited.append("PATH=" + Self.defaultPath)
            }
        }
        self.inherited = inherited
        signal(SIGPIPE, SIG_IGN)  // a script that ignores stdin must not kill the engine
    }

    /// True when `name` can name an environment variable: ASCII letters, digits and `_`, not
    /// starting with a digit.
    public static func isVariableName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_")
        }
    }

    /// The whole environment a script of `invocation` gets, as `NAME=value`: `PATH`, `HOME`,
    /// `LANG` (those Herald has; `PATH` defaults to ``defaultPath``), the ``passEnvironment``
    /// variables Herald has, then the ``invocationVariables``.
    public func environment(for invocation: Invocation) -> [String] {
        inherited + [
            "HERALD_DELIVERY=\(invocation.delivery.description)",
            "HERALD_ATTEMPT=\(invocation.attempt)",
            "HERALD_TRIGGER_ID=\(invocation.delivery.triggerID)",
            "HERALD_SCRIPT_ID=\(invocation.script.id)",
            "HERALD_APP_ID=\(invocation.script.appID)",
        ]
    }

    public func execute(_ invocation: Invocation) async -> ExecutionResult {
        let child = ChildProcess()
        let job = ProcessJob(command: invocation.script.source, environment: environment(for: invocation),
                             input: Array(invocation.json.utf8) + [0x0A], tailBytes: max(0, stderrTailBytes),
                             notRetryableExitCode: notRetryableExitCode, child: child)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<ExecutionResult, Never>) in
                if let refusal = startDetachedThread({ continuation.resume(returning: job.run()) }) {
                    continuation.resume(returning: .error("cannot start a thread to run the script: \(refusal)"))
                }
            }
        } onCancel: {
            child.kill()
        }
    }
}

/// One attempt's child: spawned, fed, drained and reaped on the thread that runs ``run()``.
struct ProcessJob: Sendable {
    let command: String
    let environment: [String]
    let input: [UInt8]
    let tailBytes: Int
    let notRetryableExitCode: Int32
    let child: ChildProcess

    /// While the shell runs, how often the loop checks whether it has exited even though the
    /// stderr pipe is still open (an escaped process may hold it).
    static let exitCheckMs: Int32 = 50
    /// After the shell has exited and its group is killed, how long the loop waits for the
    /// stderr pipe's end (a process that left the group may hold it forever).
    static let exitGraceMs: UInt64 = 100
    /// Reads of stderr per wake-up, so a script that writes without pause cannot keep the loop
    /// from checking on the shell.
    static let readsPerWakeMax = 16

    /// Runs the child to its end and says how it went. Blocks its thread (never a pool's).
    func run() -> ExecutionResult {
        if child.isKilled { return .error("cancelled before the script started") }
        var stdinPipe: [Int32] = [-1, -1]
        var stderrPipe: [Int32] = [-1, -1]
        var pid: pid_t = 0
        let failure = spawnLock.withLock { _ -> String? in
            // Under one lock with every other spawn: a pipe is close-on-exec only after `fcntl`,
            // and a child spawned in between would inherit it (and hold another script's stdin
            // or stderr open).
            guard Self.makePipe(&stdinPipe) else { return "cannot create a pipe: \(errnoText())" }
            guard Self.makePipe(&stderrPipe) else {
                let text = "cannot create a pipe: \(errnoText())"
                close(stdinPipe[0]); close(stdinPipe[1])
                return text
            }
            let rc = spawn(&pid, stdin: stdinPipe[0], stderr: stderrPipe[1])
            close(stdinPipe[0])
            close(stderrPipe[1])
            if rc != 0 {
                close(stdinPipe[1]); close(stderrPipe[0])
                return "cannot start /bin/sh: \(String(cString: strerror(rc)))"
            }
            return nil
        }
        if let failure { return .error(failure) }
        child.started(pid)
        var writeFD = stdinPipe[1]
        var readFD = stderrPipe[0]
        _ = fcntl(writeFD, F_SETFL, fcntl(writeFD, F_GETFL) | O_NONBLOCK)
        _ = fcntl(readFD, F_SETFL, fcntl(readFD, F_GETFL) | O_NONBLOCK)
        var written = 0
        var tail: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var ended: Reaped = .running
        var graceEndNs: UInt64 = 0
        // Bound: ends once both pipes are closed, or `exitGraceMs` after the shell has exited;
        // while it runs, each pass waits at most `exitCheckMs`.
        while writeFD >= 0 || readFD >= 0 {
            var fds: [pollfd] = []
            if writeFD >= 0 { fds.append(pollfd(fd: writeFD, events: Int16(POLLOUT), revents: 0)) }
            if readFD >= 0 { fds.append(pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)) }
            var waitMs = Self.exitCheckMs
            if case .running = ended {} else {
                let now = Alarm.nowNs()
                if now >= graceEndNs { break }
                waitMs = Int32(clamping: (graceEndNs - now) / 1_000_000 + 1)
            }
            let ready = poll(&fds, nfds_t(fds.count), waitMs)
            if ready < 0 && errno != EINTR { break }  // cannot happen with open descriptors; stop waiting
            for entry in fds where entry.revents != 0 {
                if entry.fd == writeFD, feed(writeFD, from: &written) {
                    close(writeFD)
                    writeFD = -1
                } else if entry.fd == readFD, drain(readFD, into: &tail, buffer: &buffer) {
                    close(readFD)
                    readFD = -1
                }
            }
            if case .running = ended {
                ended = Self.reap(pid, blocking: false)
                if case .running = ended { continue }
                // The shell is gone: kill what it left in its group, which may hold the pipe.
                child.finished()
                if writeFD >= 0 { close(writeFD); writeFD = -1 }
                graceEndNs = Alarm.nowNs() &+ Self.exitGraceMs * 1_000_000
            }
        }
        if writeFD >= 0 { close(writeFD) }
        if readFD >= 0 { close(readFD) }
        if case .running = ended {
            // Both pipes ended first (the usual way): the shell is exiting, or closed them itself.
            ended = Self.reap(pid, blocking: true)
            child.finished()
        }
        if tail.count > tailBytes { tail.removeFirst(tail.count - tailBytes) }
        let message = String(decoding: tail, as: UTF8.self).trimmingTrailingNewlines()
        let status: Int32
        switch ended {
        case .running:
            return .error("cannot tell how /bin/sh ended")
        case .lost(let code):
            return .error("cannot wait for /bin/sh: \(String(cString: strerror(code)))")
        case .exited(let value):
            status = value
        }
        let signalled = status & 0x7f
        if signalled != 0 {
            return .error("killed by signal \(signalled)" + (message.isEmpty ? "" : ": " + message))
        }
        let code = (status >> 8) & 0xff
        if code == 0 { return .ok }
        let text = "exit \(code)" + (message.isEmpty ? "" : ": " + message)
        return .error(text, retryable: code != notRetryableExitCode)
    }

    /// `/bin/sh -c command` in a process group of its own, stdin and stderr on the pipes,
    /// stdout on /dev/null, signal mask empty and the signals Herald ignores back at their
    /// defaults. Returns posix_spawn's error (0 = started).
    private func spawn(_ pid: inout pid_t, stdin: Int32, stderr: Int32) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)  // a new group, numbered like the shell's pid
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for number in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT] { sigaddset(&defaults, number) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/sh"), strdup("-c"), strdup(command), nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            for arg in argv { free(arg) }
            for variable in envp { free(variable) }
        }
        guard !argv.dropLast().contains(nil), !envp.dropLast().contains(nil) else { return ENOMEM }
        return posix_spawn(&pid, "/bin/sh", &actions, &attributes, argv, envp)
    }

    /// Writes as much of the input as the pipe takes; true when done with it (all written, or
    /// the script closed its stdin).
    private func feed(_ fd: Int32, from written: inout Int) -> Bool {
        // Bound: each pass writes at least one byte or returns.
        while written < input.count {
            let offset = written
            let n = input.withUnsafeBytes { bytes in
                write(fd, bytes.baseAddress.map { $0 + offset }, bytes.count - offset)
            }
            if n > 0 { written += n; continue }
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return false }
            return true  // EPIPE: the script does not read its stdin
        }
        return true
    }

    /// Reads what stderr has (up to ``readsPerWakeMax`` reads), keeping its end; true at its end.
    private func drain(_ fd: Int32, into tail: inout [UInt8], buffer: inout [UInt8]) -> Bool {
        for _ in 0..<Self.readsPerWakeMax {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 {
                tail.append(contentsOf: buffer[0..<n])
                if tail.count > tailBytes * 2 { tail.removeFirst(tail.count - tailBytes) }
                continue
            }
            if n == 0 { return true }
            if errno == EINTR { continue }
            return errno != EAGAIN && errno != EWOULDBLOCK
        }
        return false
    }

    enum Reaped {
        case running
        case exited(Int32)
        /// waitpid failed (ECHILD when the embedder has SIGCHLD ignored, so children reap themselves).
        case lost(Int32)
    }

    static func reap(_ pid: pid_t, blocking: Bool) -> Reaped {
        var status: Int32 = 0
        // Bound: repeats only on EINTR.
        while true {
            let rc = waitpid(pid, &status, blocking ? 0 : WNOHANG)
            if rc == pid { return .exited(status) }
            if rc == 0 { return .running }
            if errno == EINTR { continue }
            return .lost(errno)
        }
    }

    /// A pipe whose ends close on exec, so children inherit only what posix_spawn dup2s.
    private static func makePipe(_ fds: inout [Int32]) -> Bool {
        guard pipe(&fds) == 0 else { return false }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return true
    }
}

/// Serializes creating the pipes and spawning (see ``ProcessJob/run()``).
private let spawnLock = Mutex<Void>(())

private func errnoText() -> String { String(cString: strerror(errno)) }

/// Starts `body` on a detached thread of its own; returns why when the system refuses one.
private func startDetachedThread(_ body: @escaping @Sendable () -> Void) -> String? {
    final class Box {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attributes, { raw in
        guard let raw else { return nil }
        Unmanaged<Box>.fromOpaque(raw).takeRetainedValue().run()
        return nil
    }, box)
    guard rc == 0 else {
        Unmanaged<Box>.fromOpaque(box).release()
        return String(cString: strerror(rc))
    }
    return nil
}

/// The running child's process group (numbered like its pid), so cancellation can kill it.
final class ChildProcess: Sendable {
    private struct State {
        var pid: pid_t = 0
        var killed = false
    }

    private let state = Mutex(State())

    /// True once cancellation asked to kill it.
    var isKilled: Bool { state.withLock { $0.killed } }

    /// The shell started; killed at once if cancellation came first.
    func started(_ child: pid_t) {
        state.withLock { s in
            s.pid = child
            if s.killed { _ = Glibc.kill(-child, SIGKILL) }
        }
    }

    /// The shell was reaped: kill what is left of its group (processes it put in the
    /// background), and forget the group.
    func finished() {
        state.withLock { s in
            if s.pid > 0 { _ = Glibc.kill(-s.pid, SIGKILL) }
            s.pid = 0
        }
    }

    /// Kills the whole group (timeout, shutdown).
    func kill() {
        state.withLock { s in
            s.killed = true
            if s.pid > 0 { _ = Glibc.kill(-s.pid, SIGKILL) }
        }
    }
}

extension String {
    func trimmingTrailingNewlines() -> String {
        var text = Substring(self)
        while let last = text.last, last == "\n" || last == "\r" { text = text.dropLast() }
        return String(text)
    }
}
