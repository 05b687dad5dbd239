#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// An in-memory file system that models what a disk keeps across a power loss, for crash
/// tests (after SQLite's crash tests and TigerBeetle's fault disk).
///
/// Every file has a *durable* image (what survives power loss) and a *current* image (what
/// processes see), plus the list of operations since its last `sync()`. Directory entries are
/// likewise current vs durable: a created or removed file changes the durable namespace only
/// after `syncDirectory`. Faults are injected by I/O-point number: every `write`, `truncate`,
/// `sync` and `syncDirectory` is one I/O point, counted from 1.
///
/// ```swift
/// let fs = SimulatedFileSystem()
/// fs.inject(.crash(atIOPoint: 7))   // the 7th I/O point and everything after it fails
/// // ... run a workload until it throws ...
/// fs.powerLoss(.tornPrefix(seed: 42)) // drop or tear what was not synced, then "reboot"
/// ```
public final class SimulatedFileSystem: LogFileSystem {
    /// A fault to inject.
    public enum Fault: Sendable, Equatable {
        /// The `n`th write (counting writes and truncates from 1) fails with `errno` and changes nothing.
        case failWrite(n: Int, errno: Int32)
        /// The `n`th sync (file or directory, from 1) fails with `errno`; data stays unsynced.
        case failSync(n: Int, errno: Int32)
        /// The process "dies" at I/O point `k`: that operation and every later one fail with EIO
        /// and change nothing, until `powerLoss` or `restart`.
        case crash(atIOPoint: Int)
    }

    /// What happens to unsynced data on power loss.
    public enum PowerLossMode: Sendable, Equatable {
        /// Every unsynced write and namespace change is lost.
        case dropUnsynced
        /// For each file, a seeded random prefix of its unsynced operations survives, the last
        /// surviving write possibly torn (only a prefix of its bytes reached the disk).
        case tornPrefix(seed: UInt64)
    }

    fileprivate enum Op: Sendable {
        case write(offset: Int, bytes: [UInt8])
        case truncate(size: Int)
    }

    fileprivate struct Inode: Sendable {
        var durable: [UInt8] = []
        var current: [UInt8] = []
        var unsynced: [Op] = []
        /// Operations ever applied to `current`, and how many of the first of them are durable
        /// (`unsynced` holds the rest, in order).
        var operations = 0
        var syncedOperations = 0
    }

    fileprivate struct State: Sendable {
        var inodes: [Int: Inode] = [:]
        var nextInode = 1
        var currentNames: [String: Int] = [:]
        var durableNames: [String: Int] = [:]
        var directories: Set<String> = []
        var locks: Set<String> = []
        var generation = 0
        var ioPoints = 0
        var writes = 0
        var syncs = 0
        var faults: [Fault] = []
        var crashed = false
        var bytesRead: [String: UInt64] = [:]
        /// How long a file sync takes (see `setSyncDelay`).
        var syncDelayMicroseconds: UInt32 = 0
        /// How long a write takes (see `setWriteDelay`).
        var writeDelayMicroseconds: UInt32 = 0
    }

    private let state = Mutex(State())

    /// Creates an empty file system.
    public init() {}

    /// Adds a fault; several may be active.
    public func inject(_ fault: Fault) {
        state.withLock { $0.faults.append(fault) }
    }

    /// Makes every file sync take `microseconds` before its data becomes durable, as a slow
    /// disk would: a caller that does not wait for a sync sees its data lost by a power loss
    /// in that window. A power loss during the wait wins (the sync then fails).
    public func setSyncDelay(microseconds: UInt32) {
        state.withLock { $0.syncDelayMicroseconds = microseconds }
    }

    /// Makes every write (and truncate) take `microseconds` before it happens, as a slow disk
    /// would: for tests of what others do while a write is under way.
    public func setWriteDelay(microseconds: UInt32) {
        state.withLock { $0.writeDelayMicroseconds = microseconds }
    }

    /// Number of I/O points (writes, truncates, syncs) performed or attempted so far.
    public var ioPointCount: Int { state.withLock { $0.ioPoints } }

    /// Bytes read so far from the file at `path` (for tests that check what a reader touches).
    public func bytesRead(path: String) -> UInt64 { state.withLock { $0.bytesRead[path] ?? 0 } }

    /// The current contents of a file, or nil if it does not exist.
    public func contents(of path: String) -> [UInt8]? {
        state.withLock { s in s.currentNames[path].flatMap { s.inodes[$0]?.current } }
    }

    /// What a power loss now would leave of a file (its durable image, if its name is durable),
    /// or nil.
    public func durableContents(of path: String) -> [UInt8]? {
        state.withLock { s in s.durableNames[path].flatMap { s.inodes[$0]?.durable } }
    }

    /// Replaces the contents of a file as if written and synced (for corruption tests).
    public func setDurableContents(of path: String, _ bytes: [UInt8]) {
        state.withLock { s in
            let id = s.currentNames[path] ?? { let id = s.nextInode; s.nextInode += 1; return id }()
            s.inodes[id] = Inode(durable: bytes, current: bytes, unsynced: [])
            s.currentNames[path] = id
            s.durableNames[path] = id
        }
    }

    /// Simulates a power loss and reboot: unsynced data is dropped or torn per `mode`, the
    /// namespace reverts to its durable state, all open files and locks become invalid, and
    /// injected faults are cleared.
    public func powerLoss(_ mode: PowerLossMode) {
        state.withLock { s in
            var rng = SplitMix64(seed: { if case let .tornPrefix(seed) = mode { return seed } else { return 0 } }())
            for id in s.inodes.keys.sorted() {
                guard var inode = s.inodes[id] else { continue }
                var image = inode.durable
                if case .tornPrefix = mode, !inode.unsynced.isEmpty {
                    let keep = Int(rng.next() % UInt64(inode.unsynced.count + 1))
                    for (index, op) in inode.unsynced.enumerated() where index <= keep {
                        switch op {
                        case let .write(offset, bytes):
                            let length = index < keep ? bytes.count : Int(rng.next() % UInt64(bytes.count + 1))
                            Self.apply(.write(offset: offset, bytes: Array(bytes.prefix(length))), to: &image)
                        case let .truncate(size):
                            if index < keep { Self.apply(.truncate(size: size), to: &image) }
                        }
                    }
                }
                inode.durable = image
                inode.current = image
                inode.unsynced = []
                inode.syncedOperations = inode.operations
                s.inodes[id] = inode
            }
            s.currentNames = s.durableNames
            let live = Set(s.currentNames.values)
            s.inodes = s.inodes.filter { live.contains($0.key) }
            s.reboot()
        }
    }

    /// Simulates a process crash without power loss: all data written stays, open files and
    /// locks become invalid, faults are cleared.
    public func restart() {
        state.withLock { $0.reboot() }
    }

    private static func apply(_ op: Op, to image: inout [UInt8]) {
        switch op {
        case let .write(offset, bytes):
            if image.count < offset + bytes.count { image.append(contentsOf: repeatElement(0, count: offset + bytes.count - image.count)) }
            image.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
        case let .truncate(size):
            if size < image.count { image.removeSubrange(size...) } else { image.append(contentsOf: repeatElement(0, count: size - image.count)) }
        }
    }

    // MARK: - LogFileSystem

    /// Opens a file in the simulated namespace.
    public func open(_ path: String, mode: LogFileOpenMode) throws -> any LogFile {
        try state.withLock { s in
            if s.crashed { throw LogError.io(operation: "open", path: path, offset: nil, errno: EIO) }
            if let id = s.currentNames[path] {
                return SimulatedFile(fs: self, inode: id, path: path, generation: s.generation)
            }
            guard mode == .create else { throw LogError.io(operation: "open", path: path, offset: nil, errno: ENOENT) }
            guard s.directories.contains(Self.parent(of: path)) else { throw LogError.io(operation: "open", path: path, offset: nil, errno: ENOENT) }
            let id = s.nextInode
            s.nextInode += 1
            s.inodes[id] = Inode()
            s.currentNames[path] = id
            return SimulatedFile(fs: self, inode: id, path: path, generation: s.generation)
        }
    }

    /// Lists the current namespace.
    public func contentsOfDirectory(_ path: String) throws -> [String] {
        try state.withLock { s in
            guard s.directories.contains(path) else { throw LogError.io(operation: "opendir", path: path, offset: nil, errno: ENOENT) }
            let prefix = path + "/"
            return s.currentNames.keys.compactMap { name -> String? in
                guard name.hasPrefix(prefix) else { return nil }
                let rest = name.dropFirst(prefix.count)
                return rest.contains("/") ? nil : String(rest)
            }.sorted()
        }
    }

    /// Directories are durable immediately (the model covers files, not directory creation).
    public func createDirectory(_ path: String) throws {
        state.withLock { _ = $0.directories.insert(path) }
    }

    /// Makes the directory's current entries durable.
    public func syncDirectory(_ path: String) throws {
        try state.withLock { s in
            try s.ioPoint(kind: .sync, operation: "fsync directory", path: path)
            for (name, id) in s.currentNames where Self.parent(of: name) == path { s.durableNames[name] = id }
            for name in s.durableNames.keys where Self.parent(of: name) == path && s.currentNames[name] == nil {
                s.durableNames[name] = nil
            }
        }
    }

    /// Removes a name from the current namespace.
    public func remove(_ path: String) throws {
        try state.withLock { s in
            if s.crashed { throw LogError.io(operation: "unlink", path: path, offset: nil, errno: EIO) }
            s.currentNames[path] = nil
        }
    }

    /// Moves a name in the current namespace (an I/O point, counted as a write); the durable
    /// namespace changes with the next `syncDirectory`.
    public func rename(_ from: String, to: String) throws {
        try state.withLock { s in
            try s.ioPoint(kind: .write, operation: "rename to \(to)", path: from)
            guard let id = s.currentNames[from] else { throw LogError.io(operation: "rename to \(to)", path: from, offset: nil, errno: ENOENT) }
            s.currentNames[from] = nil
            s.currentNames[to] = id
        }
    }

    /// An in-memory exclusive lock; released by `unlock`, `restart` or `powerLoss`.
    public func lockExclusive(_ path: String) throws -> any LogFileLock {
        try state.withLock { s in
            if s.crashed { throw LogError.io(operation: "flock", path: path, offset: nil, errno: EIO) }
            guard !s.locks.contains(path) else { throw LogError.writerLocked(lockFile: path) }
            s.locks.insert(path)
            return SimulatedLock(fs: self, path: path, generation: s.generation)
        }
    }

    /// True while a simulated lock on `path` is held.
    public func isLocked(_ path: String) throws -> Bool {
        state.withLock { $0.locks.contains(path) }
    }

    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return String(path[..<slash])
    }

    // MARK: - File operations

    fileprivate func read(inode: Int, generation: Int, path: String, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try state.withLock { s in
            try s.check(generation: generation, operation: "pread", path: path)
            guard let image = s.inodes[inode]?.current else { return 0 }
            guard offset < UInt64(image.count) else { return 0 }
            let start = Int(offset)
            let n = min(buffer.count, image.count - start)
            image.withUnsafeBytes { src in
                if let dst = buffer.baseAddress, let from = src.baseAddress { dst.copyMemory(from: from + start, byteCount: n) }
            }
            s.bytesRead[path, default: 0] += UInt64(n)
            return n
        }
    }

    fileprivate func write(inode: Int, generation: Int, path: String, op: Op) throws {
        let delay = state.withLock { $0.writeDelayMicroseconds }
        if delay > 0 { usleep(delay) }
        try state.withLock { s in
            try s.check(generation: generation, operation: "pwrite", path: path)
            let offsetForError: UInt64
            switch op {
            case let .write(offset, _): offsetForError = UInt64(offset)
            case let .truncate(size): offsetForError = UInt64(size)
            }
            try s.ioPoint(kind: .write, operation: "pwrite", path: path, offset: offsetForError)
            guard var node = s.inodes[inode] else { return }
            Self.apply(op, to: &node.current)
            node.unsynced.append(op)
            node.operations += 1
            s.inodes[inode] = node
        }
    }

    fileprivate func sync(inode: Int, generation: Int, path: String) throws {
        // What the sync makes durable is the file as it is when the sync starts: writes made
        // while a slow sync runs (`setSyncDelay`) stay unsynced, as with `fdatasync`.
        let (delay, image, operations) = try state.withLock { s in
            try s.check(generation: generation, operation: "fdatasync", path: path)
            try s.ioPoint(kind: .sync, operation: "fdatasync", path: path)
            let node = s.inodes[inode]
            return (s.syncDelayMicroseconds, node?.current, node?.operations ?? 0)
        }
        if delay > 0 { usleep(delay) }
        try state.withLock { s in
            try s.check(generation: generation, operation: "fdatasync", path: path)
            guard var node = s.inodes[inode], let image else { return }
            // A sync that started later and finished first covered this one already.
            guard operations > node.syncedOperations else { return }
            node.durable = image
            node.unsynced.removeFirst(min(node.unsynced.count, operations - node.syncedOperations))
            node.syncedOperations = operations
            s.inodes[inode] = node
        }
    }

    fileprivate func size(inode: Int, generation: Int, path: String) throws -> UInt64 {
        try state.withLock { s in
            try s.check(generation: generation, operation: "fstat", path: path)
            return UInt64(s.inodes[inode]?.current.count ?? 0)
        }
    }

    fileprivate func unlock(path: String, generation: Int) {
        state.withLock { s in
            if s.generation == generation { s.locks.remove(path) }
        }
    }
}

extension SimulatedFileSystem.State {
    enum Kind { case write, sync }

    mutating func reboot() {
        generation += 1
        locks = []
        faults = []
        crashed = false
    }

    func check(generation handle: Int, operation: String, path: String) throws {
        if crashed { throw LogError.io(operation: operation, path: path, offset: nil, errno: EIO) }
        if handle != generation { throw LogError.io(operation: operation, path: path, offset: nil, errno: EBADF) }
    }

    /// Counts an I/O point and throws if a fault fires there.
    mutating func ioPoint(kind: Kind, operation: String, path: String, offset: UInt64? = nil) throws {
        if crashed { throw LogError.io(operation: operation, path: path, offset: offset, errno: EIO) }
        ioPoints += 1
        switch kind {
        case .write: writes += 1
        case .sync: syncs += 1
        }
        for fault in faults {
            switch fault {
            case let .crash(k) where k == ioPoints:
                crashed = true
                throw LogError.io(operation: operation, path: path, offset: offset, errno: EIO)
            case let .failWrite(n, code) where kind == .write && n == writes:
                throw LogError.io(operation: operation, path: path, offset: offset, errno: code)
            case let .failSync(n, code) where kind == .sync && n == syncs:
                throw LogError.io(operation: operation, path: path, offset: offset, errno: code)
            default:
                continue
            }
        }
    }
}

/// A handle on a simulated file; invalid after `restart`/`powerLoss`.
final class SimulatedFile: LogFile {
    /// Simulated files are in memory: refuse anything beyond 1 GiB instead of trapping.
    static let sizeMax: UInt64 = 1 << 30
    let fs: SimulatedFileSystem
    let inode: Int
    let path: String
    let generation: Int

    init(fs: SimulatedFileSystem, inode: Int, path: String, generation: Int) {
        self.fs = fs
        self.inode = inode
        self.path = path
        self.generation = generation
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try fs.read(inode: inode, generation: generation, path: path, into: buffer, at: offset)
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        guard offset <= SimulatedFile.sizeMax, UInt64(bytes.count) <= SimulatedFile.sizeMax - offset else {
            throw LogError.io(operation: "pwrite", path: path, offset: offset, errno: EFBIG)
        }
        try fs.write(inode: inode, generation: generation, path: path, op: .write(offset: Int(offset), bytes: Array(bytes)))
    }

    func sync() throws { try fs.sync(inode: inode, generation: generation, path: path) }

    func truncate(to size: UInt64) throws {
        guard size <= SimulatedFile.sizeMax else { throw LogError.io(operation: "ftruncate", path: path, offset: size, errno: EFBIG) }
        try fs.write(inode: inode, generation: generation, path: path, op: .truncate(size: Int(size)))
    }

    func size() throws -> UInt64 { try fs.size(inode: inode, generation: generation, path: path) }

    func close() {}
}

final class SimulatedLock: LogFileLock {
    let fs: SimulatedFileSystem
    let path: String
    let generation: Int
    init(fs: SimulatedFileSystem, path: String, generation: Int) {
        self.fs = fs
        self.path = path
        self.generation = generation
    }
    func unlock() { fs.unlock(path: path, generation: generation) }
}
