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
    /// Told what an operator must know and that is not an error: a torn tail a reader stops
    /// before, what recovery cut when a writer opened the log. The CLI prints it on standard
    /// error; an embedder logs it. Nil: nobody is told (the same facts stay readable on
    /// `RecordReader.tailDamage` and `RecordWriter.recovery`).
    public var diagnostics: (@Sendable (String) -> Void)?
    /// A log kept outside the directory (`herald --log nats://…`), used in place of `log/`
    /// by every reader, the engine and imports; the directory then holds only the projection.
    /// What works on segment files (``openWriter(durability:)``, `herald repair`,
    /// ``logStats()``, ``verifyLog()``) refuses it (``HeraldError/externalLog(location:)``).
    public var externalLog: ExternalLog?

    /// Where an import's blocks go: the external log when set, else the segment log's writer.
    func openImportLog() throws -> any PreparedBlocksLog {
        if let externalLog { return try externalLog.openImportLog() }
        return try openWriter()
    }

    /// Throws ``HeraldError/externalLog(location:)`` when the log is not the directory's segments.
    func requireSegments() throws {
        if let externalLog { throw HeraldError.externalLog(location: externalLog.location) }
    }

    /// - Parameter fileSystem: the log's file layer; tests pass a `SimulatedFileSystem` to
    ///   inject faults and power losses.
    public init(path: String, fileSystem: any LogFileSystem = PosixFileSystem(), diagnostics: (@Sendable (String) -> Void)? = nil) {
        self.path = path
        self.fileSystem = fileSystem
        self.diagnostics = diagnostics
    }

    /// The segment log's directory.
    public var logPath: String { path + "/log" }
    /// The projection database.
    public var projectionPath: String { path + "/projection.sqlite" }

    /// Opens the log for appending (the one writer; a second is refused). Creates the
    /// directory when missing. Recovery happens here: a torn tail or an append that never
    /// completed is cut into `log/quarantine/` and told to ``diagnostics``; a log that ends
    /// before its durable watermark is refused (``openWriter(durability:acceptLoss:)``).
    public func openWriter(durability: LogDurability = .always) throws -> RecordWriter {
        try openWriter(durability: durability, acceptLoss: false)
    }

    /// `herald repair --accept-loss`: opens the log for appending even when acknowledged
    /// records at its end are damaged, cutting them into quarantine (reported, and recorded in
    /// `log/recovery.jsonl`).
    public func openWriter(durability: LogDurability = .always, acceptLoss: Bool) throws -> RecordWriter {
        try openWriter(configuration: LogConfiguration(durability: durability), acceptLoss: acceptLoss)
    }

    /// Opens the log for appending with a whole log configuration (segment size, …).
    public func openWriter(configuration: LogConfiguration, acceptLoss: Bool = false) throws -> RecordWriter {
        try requireSegments()
        try makeDirectories()
        let writer = try RecordWriter(writer: LogWriter(directory: logPath, configuration: configuration,
                                                        fileSystem: fileSystem, acceptLoss: acceptLoss))
        if let cut = writer.recovery.truncation { diagnostics?("warning: " + cut.description) }
        return writer
    }

    /// Opens the log for reading. Creates nothing (a read-only directory reads as well); a
    /// data directory without a log reads as empty.
    ///
    /// - Throws: ``HeraldError/missingDataDirectory(path:)`` when the data directory does not
    ///   exist; the log's errors (`LogError.corruptBlock`, `.acknowledgedDamaged`, …).
    public func openReader() throws -> RecordReader {
        if let externalLog { return RecordReader(external: try externalLog.openReader()) }
        try requireExisting()
        let reader = try RecordReader(reader: LogReader(directory: logPath, fileSystem: fileSystem))
        if let damage = reader.tailDamage {
            diagnostics?("warning: \(damage); reading stops before it (the next writer cuts it into \(logPath)/quarantine)")
        }
        return reader
    }

    /// Opens the existing projection for reading only (see `Projection(path:readOnly:)`); in
    /// a data directory this process cannot write, as an immutable file (SQLite could not
    /// create its `-shm` otherwise).
    ///
    /// Returns nil when there is no usable projection: no file, one a writer has just created
    /// and not given its schema yet, or one of an older schema version (readers then replay
    /// the log).
    ///
    /// - Throws: ``HeraldError/unreadable(source:reason:)`` when the directory is read-only
    ///   and the projection's `-wal` file holds changes that were never checkpointed.
    public func openProjectionForReading() throws -> Projection? {
        guard hasProjection else { return nil }
        do {
            let projection: Projection
            if isWritable {
                projection = try Projection(path: projectionPath, readOnly: true)
            } else {
                if FileSystemPaths.size(projectionPath + "-wal") ?? 0 > 0 {
                    throw HeraldError.unreadable(source: projectionPath, reason: "the data directory is read-only and the projection's -wal file holds changes SQLite cannot read without writing; read the log instead (herald deliveries and explain replay it)")
                }
                projection = try Projection(path: projectionPath, readOnly: true, immutable: true)
            }
            projection.diagnostics = diagnostics
            return projection
        } catch StoreError.notCreatedYet {
            return nil
        } catch StoreError.schemaVersion(_, let found, let expected) where found < expected {
            return nil  // an older Herald's: the next writer rebuilds it; reads replay the log meanwhile
        }
    }

    /// True when this process may create and change files in the data directory (false on a
    /// read-only mount or without write permission): reads then never try to.
    public var isWritable: Bool { FileSystemPaths.isWritable(path) }

    /// True when a writer (`herald run`, an embedded engine, an import) holds the log's lock:
    /// the projection is then that process's to write.
    public var writerActive: Bool {
        guard externalLog == nil else { return false }
        return (try? fileSystem.isLocked(logPath + "/LOCK")) ?? false
    }

    /// True when the projection database exists.
    public var hasProjection: Bool { FileSystemPaths.exists(projectionPath) }

    /// Opens (creating when missing) the projection.
    ///
    /// A projection an older Herald made (an older schema version) is rebuilt from the log
    /// first: it is derived data, and the rebuild replaces it only once complete.
    public func openProjection() throws -> Projection {
        try makeDirectories()
        let projection: Projection
        do {
            projection = try Projection(path: projectionPath)
        } catch StoreError.schemaVersion(_, let found, let expected) where found >= 1 && found < expected {
            diagnostics?("note: the projection has schema version \(found), this Herald uses \(expected): rebuilding it from the log")
            try rebuildProjection()
            projection = try Projection(path: projectionPath)
        }
        projection.diagnostics = diagnostics
        return projection
    }

    func makeDirectories() throws {
        for directory in [path, logPath] {
            try FileSystemPaths.makeDirectory(directory)
        }
    }
}

extension DataDirectory {
    /// Throws ``HeraldError/missingDataDirectory(path:)`` when the data directory does not
    /// exist: reads, and actions that can only act on what is there (redrive, cancel, invoke),
    /// refuse a mistyped path instead of creating an empty directory.
    public func requireExisting() throws {
        guard FileSystemPaths.isDirectory(path) else { throw HeraldError.missingDataDirectory(path: path) }
    }
}

extension DataDirectory {
    /// Segments, blocks, records, raw and stored bytes, ts range (block headers only).
    public func logStats() throws -> LogStats {
        try requireSegments()
        try requireExisting()
        return try LogReader(directory: logPath, fileSystem: fileSystem).stats()
    }
}

extension DataDirectory {
    /// `herald verify`'s log half: every block of every segment checked with the writer's own
    /// recovery rules, read-only (see `LogReader.verify(directory:fileSystem:)`).
    ///
    /// - Throws: ``HeraldError/missingDataDirectory(path:)``; the log's errors.
    public func verifyLog() throws -> LogVerification {
        try requireSegments()
        try requireExisting()
        return try LogReader.verify(directory: logPath, fileSystem: fileSystem)
    }
}

/// A log kept outside the data directory (a NATS JetStream stream, `Sources/HeraldNATS`): how
/// to open it for each use. The `herald` tool builds one from `--log nats://…`.
public struct ExternalLog: Sendable {
    /// Where it is, for messages (a URL without secrets).
    public var location: String
    /// A reader (``DataDirectory/openReader()`` wraps it).
    public var openReader: @Sendable () throws -> any RecordSource
    /// The log the engine appends to (``Herald/open(directory:options:)``).
    public var openEngineLog: @Sendable () throws -> any RecordLog
    /// Where `importLines` puts its prepared blocks, as one transaction.
    public var openImportLog: @Sendable () throws -> any PreparedBlocksLog

    public init(location: String, openReader: @escaping @Sendable () throws -> any RecordSource,
                openEngineLog: @escaping @Sendable () throws -> any RecordLog,
                openImportLog: @escaping @Sendable () throws -> any PreparedBlocksLog) {
        self.location = location
        self.openReader = openReader
        self.openEngineLog = openEngineLog
        self.openImportLog = openImportLog
    }
}
