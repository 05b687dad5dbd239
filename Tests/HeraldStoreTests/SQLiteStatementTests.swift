import Foundation
import HeraldCore
import HeraldStore
import Testing

/// `SQLiteStatement.run` binds texts and IDs from a buffer of its own without SQLite copying
/// them: every kind of value must arrive intact, including across reuses of the statement.
@Suite struct SQLiteStatementTests {
    @Test func runBindsEveryKindOfValue() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-sqlite-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let database = try SQLiteDatabase(path: directory + "/t.sqlite")
        try database.execute("CREATE TABLE t (n INTEGER, a TEXT, b TEXT, c TEXT, d TEXT, e BLOB)")
        let insert = try database.prepare("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)")
        let id = HeraldID(high: 0x0123_4567_89ab_4def, low: 0x8123_4567_89ab_cdef)
        let rows: [[SQLiteValue]] = [
            [.integer(1), .text("héllo"), .id(id), .text(""), .null, .blob([1, 2, 3])],
            [.integer(2), .id(id), .text(String(repeating: "x", count: 300)), .null, .text("z"), .null],
            [.integer(3), .text(""), .text(""), .id(id), .id(id), .blob([])],
        ]
        for row in rows { try insert.run(row) }
        let back = try database.rows("SELECT n, a, b, c, d, e FROM t ORDER BY n")
        let text = SQLiteValue.text(id.description)
        #expect(back == [
            [.integer(1), .text("héllo"), text, .text(""), .null, .blob([1, 2, 3])],
            [.integer(2), text, .text(String(repeating: "x", count: 300)), .null, .text("z"), .null],
            [.integer(3), .text(""), .text(""), text, text, .blob([])],
        ])
    }
}
