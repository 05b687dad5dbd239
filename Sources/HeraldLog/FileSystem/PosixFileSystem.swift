#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The real file system: POSIX `open`, `pread`, `pwrite`, `fdatasync`, `flock`.
public struct PosixFileSystem: LogFileSystem {
    /// Creates the file system.
    public init() {}

    /// Opens a file with `O_CLOEXEC`.
    public func open(_ path: String, mode: LogFileOpenMode) throws -> any LogFile {
        let flags: Int32
        switch mode {
        case .readOnly: flags = O_RDONLY | O_CLOEXEC
        case .readWrite: flags = O_RDWR | O_CLOEXEC
        case .create: flags = O_RDWR | O_CREAT | O_CLOEXEC
        }
        let fd = retryingEINTR { Glibc.open(path, flags, 0o644) }
        guard fd >= 0 else { throw LogError.io(operation: "open", path: path, offset: nil, errno: errno) }
        return PosixFile(fd: fd, path: path)
    }

    /// Lists a directory with `opendir`/`readdir`, without `.` and `..`.
    public func contentsOfDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw LogError.io(operation: "opendir", path: path, offset: nil, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// `mkdir -p`.
    public func createDirectory(_ path: String) throws {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/") {
            prefix += component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw LogError.io(operation: "mkdir", path: prefix, offset: nil, errno: errno)
            }
            prefix += "/"
        }
    }

    /// `fsync` on the directory.
    public func syncDirectory(_ path: String) throws {
        let fd = retryingEINTR { Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard fd >= 0 else { throw LogError.io(operation: "open directory", path: path, offset: nil, errno: errno) }
        defer { Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw LogError.io(operation: "fsync directory", path: path, offset: nil, errno: errno) }
    }

    /// `unlink`, ignoring a missing file.
    public func remove(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT {
            throw LogError.io(operation: "unlink", path: path, offset: nil, errno: errno)
        }
    }

    /// `rename(2)`.
    public func rename(_ from: String, to: String) throws {
        if Glibc.rename(from, to) != 0 {
            throw LogError.io(operation: "rename to \(to)", path: from, offset: nil, errno: errno)
        }
    }

    /// `flock(LOCK_EX | LOCK_NB)`: locks belong to the open file description, so a second
    /// writer is refused even inside the same process.
    public func lockExclusive(_ path: String) throws -> any LogFileLock {
        let fd = retryingEINTR { Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644) }
        guard fd >= 0 else { throw LogError.io(operation: "open lock file", path: path, offset: nil, errno: errno) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            Glibc.close(fd)
            if code == EWOULDBLOCK { throw LogError.writerLocked(lockFile: path) }
            throw LogError.io(operation: "flock", path: path, offset: nil, errno: code)
        }
        return PosixLock(fd: fd)
    }

    /// Tries `flock(LOCK_SH | LOCK_NB)` on a read-only descriptor and lets go at once.
    public func isLocked(_ path: String) throws -> Bool {
        let fd = retryingEINTR { Glibc.open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else {
            if errno == ENOENT { return false }
            throw LogError.io(operation: "open lock file", path: path, offset: nil, errno: errno)
        }
        defer { Glibc.close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) != 0 {
            let code = errno
            if code == EWOULDBLOCK { return true }
            throw LogError.io(operation: "flock", path: path, offset: nil, errno: code)
        }
        return false
    }
}

@inline(__always) func retryingEINTR(_ call: () -> Int32) -> Int32 {
    while true {
        let result = call()
        if result >= 0 || errno != EINTR { return result }
    }
}

/// A file descriptor. Sendable because positional I/O needs no shared cursor and the
/// descriptor is closed only once (guarded by an atomic flag).
final class PosixFile: LogFile {
    let fd: Int32
    let path: String
    private let closed = Atomic<Bool>(false)

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close() }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        var done = 0
        while done < buffer.count {
            guard let base = buffer.baseAddress else { return 0 }
            let n = pread(fd, base + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw LogError.io(operation: "pread", path: path, offset: offset + UInt64(done), errno: errno)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws {
        var done = 0
        while done < bytes.count {
            guard let base = bytes.baseAddress else { return }
            let n = pwrite(fd, base + done, bytes.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw LogError.io(operation: "pwrite", path: path, offset: offset + UInt64(done), errno: errno)
            }
            done += n
        }
    }

    func sync() throws {
        // Never retried on failure: after a failed fdatasync the kernel may have dropped the
        // dirty pages, so a retry could report success for lost data.
        guard fdatasync(fd) == 0 else { throw LogError.io(operation: "fdatasync", path: path, offset: nil, errno: errno) }
    }

    func truncate(to size: UInt64) throws {
        guard ftruncate(fd, off_t(size)) == 0 else { throw LogError.io(operation: "ftruncate", path: path, offset: size, errno: errno) }
    }

    func size() throws -> UInt64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw LogError.io(operation: "fstat", path: path, offset: nil, errno: errno) }
        return UInt64(st.st_size)
    }

    func close() {
        if !closed.exchange(true, ordering: .acquiringAndReleasing) { Glibc.close(fd) }
    }
}

/// A held `flock`; released by closing its descriptor.
final class PosixLock: LogFileLock {
    private let fd: Int32
    private let released = Atomic<Bool>(false)
    init(fd: Int32) { self.fd = fd }
    deinit { unlock() }
    func unlock() {
        if !released.exchange(true, ordering: .acquiringAndReleasing) { Glibc.close(fd) }
    }
}
