import Glibc
import HeraldLog
import Synchronization

/// A crash-test hook, off unless `HERALD_TEST_KILL_AT` is set: `write:N` (or `sync:N`) makes
/// the process kill itself with SIGKILL right before the Nth write (or sync) of the log's files
/// — a real crash at an exact I/O point, which the crash tests and `Tools/crash-loop` use to
/// cut an import's commit anywhere. Nothing else changes; a bad value is a usage error.
struct KillingFileSystem: LogFileSystem {
    enum Kind: String { case write, sync }

    let base: any LogFileSystem
    let kind: Kind
    let target: Int
    private let counter = Counter()

    /// The file system the CLI uses: the real one, wrapped when the hook is set.
    static func fromEnvironment(_ variables: [String: String]) throws -> any LogFileSystem {
        guard let value = variables["HERALD_TEST_KILL_AT"], !value.isEmpty else { return PosixFileSystem() }
        let parts = value.split(separator: ":", maxSplits: 1).map(String.init)
        guard parts.count == 2, let kind = Kind(rawValue: parts[0]), let n = Int(parts[1]), n >= 1 else {
            throw HookError(message: "HERALD_TEST_KILL_AT must be write:N or sync:N with N >= 1, not '\(value)'")
        }
        return KillingFileSystem(base: PosixFileSystem(), kind: kind, target: n)
    }

    struct HookError: Error, CustomStringConvertible { var message: String; var description: String { message } }

    final class Counter: Sendable {
        let count = Atomic<Int>(0)
    }

    func step(_ kind: Kind) {
        guard kind == self.kind else { return }
        if counter.count.add(1, ordering: .relaxed).newValue == target { kill(getpid(), SIGKILL) }
    }

    func open(_ path: String, mode: LogFileOpenMode) throws -> any LogFile {
        KillingFile(inner: try base.open(path, mode: mode), owner: self)
    }
    func contentsOfDirectory(_ path: String) throws -> [String] { try base.contentsOfDirectory(path) }
    func createDirectory(_ path: String) throws { try base.createDirectory(path) }
    func syncDirectory(_ path: String) throws {
        step(.sync)
        try base.syncDirectory(path)
    }
    func remove(_ path: String) throws { try base.remove(path) }
    func rename(_ from: String, to: String) throws {
        step(.write)
        try base.rename(from, to: to)
    }
    func lockExclusive(_ path: String) throws -> any LogFileLock { try base.lockExclusive(path) }
    func isLocked(_ path: String) throws -> Bool { try base.isLocked(path) }
}

final class KillingFile: LogFile {
    let inner: any LogFile
    let owner: KillingFileSystem
    init(inner: any LogFile, owner: KillingFileSystem) {
        self.inner = inner
        self.owner = owner
    }
    var path: String { inner.path }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int { try inner.read(into: buffer, at: offset) }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        owner.step(.write)
        try inner.write(bytes, at: offset)
    }
    func sync() throws {
        owner.step(.sync)
        try inner.sync()
    }
    func truncate(to size: UInt64) throws {
        owner.step(.write)
        try inner.truncate(to: size)
    }
    func size() throws -> UInt64 { try inner.size() }
    func close() { inner.close() }
}
