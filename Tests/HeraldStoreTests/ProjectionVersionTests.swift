import Foundation
import HeraldStore
import Testing

/// Which projection files `Projection(path:)` opens: its own schema version, nothing else (an
/// older one is rebuilt by the data directory, see `ProjectionUpgradeTests`).
@Suite struct ProjectionVersionTests {
    private func withTemporaryFile(_ body: (String) throws -> Void) throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-store-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try body(directory + "/projection.sqlite")
    }

    private func setVersion(_ version: Int64, at path: String) throws {
        let database = try SQLiteDatabase(path: path)
        try database.execute("PRAGMA user_version = \(version)")
    }

    @Test func aNewFileGetsTheCurrentSchemaAndAnOlderOneIsRefused() throws {
        try withTemporaryFile { path in
            let created = try Projection(path: path)
            #expect(try created.database.rows("PRAGMA user_version").first?.first?.integer == ProjectionSchema.version)
            // Version 2: older than the last one with an in-place migration (3).
            try setVersion(2, at: path)
            #expect(throws: StoreError.self) { _ = try Projection(path: path) }
            #expect(throws: StoreError.self) { _ = try Projection(path: path, readOnly: true) }
        }
    }

    @Test func aVersion3ProjectionGainsTheEngineSnapshotTableInPlace() throws {
        try withTemporaryFile { path in
            let fresh = try Projection(path: path)
            let columns = "SELECT name, type, \"notnull\", pk FROM pragma_table_info('engine_snapshot') ORDER BY cid"
            let expected = try fresh.database.rows(columns)
            try fresh.database.execute("DROP TABLE engine_snapshot; PRAGMA user_version = 3")
            let migrated = try Projection(path: path)
            #expect(try migrated.database.rows("PRAGMA user_version").first?.first?.integer == ProjectionSchema.version)
            #expect(try migrated.database.rows(columns) == expected && expected.count == 4)
            // The CHECKs came too.
            #expect(throws: (any Error).self) {
                try migrated.database.execute("INSERT INTO engine_snapshot (id, position, created_count, pending) VALUES (2, 0, 0, x'')")
            }
        }
    }

    @Test func anotherVersionIsRefusedWithTheRebuildCommand() throws {
        try withTemporaryFile { path in
            _ = try Projection(path: path)
            try setVersion(ProjectionSchema.version + 1, at: path)
            do {
                _ = try Projection(path: path)
                Issue.record("a projection of version \(ProjectionSchema.version + 1) was opened")
            } catch let error as StoreError {
                guard case .schemaVersion(_, let found, _) = error else { Issue.record("unexpected \(error)"); return }
                #expect(found == ProjectionSchema.version + 1)
                #expect(error.description.contains("herald project --rebuild"))
            }
        }
    }

    @Test func aDatabaseWithoutAHeraldSchemaIsLeftUntouched() throws {
        try withTemporaryFile { path in
            let database = try SQLiteDatabase(path: path)
            try database.execute("CREATE TABLE mine (x INTEGER)")
            #expect(throws: StoreError.self) { try Projection(path: path) }
            #expect(try database.rows("SELECT count(*) FROM sqlite_master").first?.first?.integer == 1)
        }
    }
}
