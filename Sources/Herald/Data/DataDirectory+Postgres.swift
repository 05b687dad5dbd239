import Glibc
import HeraldCore
import HeraldPostgres
import HeraldStore

extension DataDirectory {
    /// `herald project --postgres URL`: applies the log's records after the PostgreSQL
    /// projection's checkpoint (creating it in `schema` first when it is not there). Each batch
    /// commits with its checkpoint, so a killed run resumes where it stopped.
    @discardableResult
    public func projectPostgres(url: String, schema: String = "herald", progress: ((UInt64) -> Void)? = nil) throws -> ProjectResult {
        let store = try PostgresProjection(url: url, schema: schema)
        store.diagnostics = diagnostics
        return try Projector(store: store, source: { try self.openReader() }).catchUp(progress: progress)
    }

    /// `herald project --postgres URL --rebuild`: builds the projection from position 0 in the
    /// schema `<schema>_rebuild`, then, in one transaction, drops `schema` and renames the new
    /// one to it: readers see the old tables or the new ones, never a half-built state. The
    /// writer's lock on `schema` is held throughout, so no projector writes it meanwhile.
    @discardableResult
    public func rebuildPostgres(url: String, schema: String = "herald", progress: ((UInt64) -> Void)? = nil) throws -> ProjectResult {
        let temporary = schema + "_rebuild"
        try PostgresProjection.checkName(schema)
        try PostgresProjection.checkName(temporary)
        let guardian = try PostgresConnection(url: url)
        try PostgresProjection.lockForWriting(guardian, schema: schema)
        try guardian.execute("DROP SCHEMA IF EXISTS \(temporary) CASCADE")
        let result: ProjectResult
        do {
            let store = try PostgresProjection(url: url, schema: temporary)
            store.diagnostics = diagnostics
            result = try Projector(store: store, source: { try self.openReader() }).catchUp(progress: progress)
        }
        try guardian.transaction {
            try guardian.execute("DROP SCHEMA IF EXISTS \(schema) CASCADE")
            try guardian.execute("ALTER SCHEMA \(temporary) RENAME TO \(schema)")
        }
        return result
    }

    /// `herald verify --postgres URL`: brings the PostgreSQL projection up to `through` (unless
    /// another projector holds it: it is then compared as it is), then compares it, table by
    /// table, with a SQLite rebuild from the log to its checkpoint, all in one read snapshot of
    /// PostgreSQL. Returns the differences (empty: identical).
    public func verifyPostgres(url: String, schema: String = "herald", through: UInt64? = nil,
                               progress: ((UInt64) -> Void)? = nil) throws -> [String] {
        let live: PostgresProjection
        do {
            let writer = try PostgresProjection(url: url, schema: schema)
            writer.diagnostics = diagnostics
            try Projector(store: writer, source: { try self.openReader() }).catchUp(through: through)
            live = writer
        } catch PostgresStoreError.busy {
            live = try PostgresProjection(url: url, schema: schema, readOnly: true)
        }
        let temporary = isWritable ? projectionPath + ".verify-postgres"
            : FileSystemPaths.temporaryDirectory + "/herald-verify-postgres-\(getpid()).sqlite"
        let remove = { for suffix in ["", "-wal", "-shm", "-journal"] { FileSystemPaths.remove(temporary + suffix) } }
        remove()
        defer { remove() }
        return try live.readSnapshot {
            let checkpoint = try live.checkpointPosition()
            let rebuilt = try Projection(path: temporary)
            try Projector(directory: self, projection: rebuilt).catchUp(through: checkpoint, progress: progress)
            return try live.differences(from: rebuilt, history: try compactionHistory())
        }
    }
}
