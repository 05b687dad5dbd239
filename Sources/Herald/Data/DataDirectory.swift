import HeraldCore
import HeraldLog
import HeraldStore

/// A Herald data directory: the segment log (`log/`) and the SQLite projection
/// (`projection.sqlite`). Everything in the projection can be rebuilt from the log.
///
/// ```swift
/// let data = DataDirectory(path: "herald-data")
/// let writer = try data.openWriter()
/// let state = try data.replay(through: nil)  // the dispatcher as of the last record
/// ```
public struct DataDirectory: Sendable {
    /// The directory.
    public let path: String
    /// The file layer the log's files go through (the projection is SQLite's own files).
    public let fileSystem: any LogFileSystem

    /// - Parameter fileSystem: the log's file layer; tests pass a `SimulatedFileSystem` to
    ///   inject faults and power losses.
    public init(path: String, fileSystem: any LogFileSystem = PosixFileSystem()) {
        self.path = path
        self.fileSystem = fileSystem
    }

    /// The segment log's directory.
    public var logPath: String { path + "/log" }
    /// The projection database.
    public var projectionPath: String { path + "/projection.sqlite" }

    /// Opens the log for appending (the one writer; a second is refused). Creates the
    /// directory when missing. Recovery of a torn tail happens here.
    public func openWriter(durability: LogDurability = .always) throws -> RecordWriter {
        try makeDirectories()
        return try RecordWriter(writer: LogWriter(directory: logPath, configuration: LogConfiguration(durability: durability),
                                                  fileSystem: fileSystem))
    }

    /// Opens the log for reading; a missing log reads as empty.
    public func openReader() throws -> RecordReader {
        try makeDirectories()
        return try RecordReader(reader: LogReader(directory: logPath, fileSystem: fileSystem))
    }

    /// Opens (creating when missing) the projection.
    public func openProjection() throws -> Projection {
        try makeDirectories()
        return try Projection(path: projectionPath)
    }

    func makeDirectories() throws {
        for directory in [path, logPath] {
            try FileSystemPaths.makeDirectory(directory)
        }
    }
}

extension DataDirectory {
    /// Segments, blocks, records, raw and stored bytes, ts range (block headers only).
    public func logStats() throws -> LogStats {
        try makeDirectories()
        return try LogReader(directory: logPath, fileSystem: fileSystem).stats()
    }
}
