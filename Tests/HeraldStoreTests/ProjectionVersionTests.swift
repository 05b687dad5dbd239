import Foundation
import HeraldStore
import Testing

/// Which projection files `Projection(path:)` opens: its own schema version, nothing else (an
/// older one is rebuilt by the data directory, see `ProjectionTests.anOlderProjectionIsRebuiltByTheNextWriterAndReplayedMeanwhile`).
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
            // An older version is the data directory's to rebuild (`ProjectionTests.anOlderProjectionIsRebuiltByTheNextWriterAndReplayedMeanwhile`).
            try setVersion(ProjectionSchema.version - 1, at: path)
            #expect(throws: StoreError.self) { _ = try Projection(path: path) }
            #expect(throws: StoreError.self) { _ = try Projection(path: path, readOnly: true) }
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
