import CSQLite

/// An error from SQLite, with the database file, the result code, SQLite's message and the SQL.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    /// The database file.
    public var path: String
    /// SQLite's extended result code.
    public var code: Int32
    /// SQLite's message.
    public var message: String
    /// The statement that failed, if any.
    public var sql: String?

    public var description: String {
        var text = "SQLite error \(code) on \(path): \(message)"
        if let sql { text += " (while running: \(sql.prefix(200)))" }
        return text
    }
}
