/// How `LogFileSystem.open` opens a file.
public enum LogFileOpenMode: Sendable {
    /// Read only; the file must exist.
    case readOnly
    /// Read and write; the file must exist.
    case readWrite
    /// Read and write, creating an empty file if it does not exist.
    case create
}

/// The narrow interface through which the log does all its file I/O.
///
/// `PosixFileSystem` is the real one; `SimulatedFileSystem` injects faults and power loss.
/// Every method throws `LogError` (usually `.io`).
public protocol LogFileSystem: Sendable {
    /// Opens a file.
    func open(_ path: String, mode: LogFileOpenMode) throws -> any LogFile
    /// The names (not paths) of the entries of a directory, in no particular order.
    func contentsOfDirectory(_ path: String) throws -> [String]
    /// Creates a directory (and its parents); succeeds if it exists.
    func createDirectory(_ path: String) throws
    /// Makes the directory's entries (created and removed files) durable (`fsync` on the directory).
    func syncDirectory(_ path: String) throws
    /// Removes a file; succeeds if it does not exist.
    func remove(_ path: String) throws
    /// Renames `from` to `to` atomically, replacing `to` if it exists (`rename(2)`): after a
    /// crash the name `to` holds either the old file or the new one, never neither. Durable
    /// once the directory is synced.
    func rename(_ from: String, to: String) throws
    /// Takes an exclusive, non-blocking lock on `path` (created if missing). Throws
    /// `LogError.writerLocked` if anyone else holds it. The lock lasts until `unlock()`.
    func lockExclusive(_ path: String) throws -> any LogFileLock
    /// True when someone holds the lock on `path` (a writer is at work); false when nobody
    /// does or the file does not exist. Never creates or changes the file, so it works on a
    /// read-only directory.
    func isLocked(_ path: String) throws -> Bool
}

/// An open file. Implementations are safe to use from several threads (positional I/O).
public protocol LogFile: AnyObject, Sendable {
    /// The path the file was opened with.
    var path: String { get }
    /// Reads up to `buffer.count` bytes at `offset`; returns fewer only at end of file.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int
    /// Writes all of `bytes` at `offset`.
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws
    /// Makes the file's data durable (`fdatasync`).
    func sync() throws
    /// Sets the file's size.
    func truncate(to size: UInt64) throws
    /// The file's current size.
    func size() throws -> UInt64
    /// Closes the file; later calls fail.
    func close()
}

/// A held lock; see `LogFileSystem.lockExclusive`.
public protocol LogFileLock: AnyObject, Sendable {
    /// Releases the lock (idempotent).
    func unlock()
}

extension LogFile {
    /// Reads exactly `buffer.count` bytes or returns false (end of file).
    func readExactly(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Bool {
        try read(into: buffer, at: offset) == buffer.count
    }
}
