import HeraldCore
import CSQLite

/// Owns one `sqlite3*` connection and closes it.
///
/// Not thread-safe: one owner at a time (`@unchecked Sendable` only so an owner can hand it
/// to another task; Herald never uses one connection from two threads at once).
public final class SQLiteDatabase: @unchecked Sendable {
    /// The database file.
    public let path: String
    let handle: OpaquePointer

    /// Opens (or creates) the database at `path`.
    ///
    /// `immutable` (with `readOnly`): the file is read as one that cannot change (SQLite's
    /// `immutable=1`: no locks, no `-shm`), the only way to read a WAL database in a directory
    /// this process cannot write; the caller makes sure no `-wal` content is pending.
    public init(path: String, readOnly: Bool = false, immutable: Bool = false) throws(SQLiteError) {
        self.path = path
        var db: OpaquePointer?
        var flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        var name = path
        if readOnly && immutable {
            flags |= SQLITE_OPEN_URI
            name = "file:" + Self.uriEscaped(path) + "?immutable=1"
        }
        let rc = sqlite3_open_v2(name, &db, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let db { sqlite3_close_v2(db) }
            throw SQLiteError(path: path, code: rc, message: message, sql: nil)
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 5000)
    }

    deinit {
        sqlite3_close_v2(handle)
    }

    /// `path` with every byte outside the URI's unreserved set and `/` percent-encoded.
    static func uriEscaped(_ path: String) -> String {
        var out = ""
        for byte in path.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "/"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }

    func error(_ rc: Int32, sql: String?) -> SQLiteError {
        SQLiteError(path: path, code: rc, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }

    /// Runs one or more statements that return no rows.
    public func execute(_ sql: String) throws(SQLiteError) {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errmsg(handle))
            sqlite3_free(message)
            throw SQLiteError(path: path, code: rc, message: text, sql: sql)
        }
    }

    /// Prepares a statement.
    public func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw error(rc, sql: sql) }
        return SQLiteStatement(database: self, handle: statement, sql: sql)
    }

    /// All rows of a query, each column as text (NULL as nil). For small result sets.
    public func rows(_ sql: String, _ bindings: [SQLiteValue] = []) throws(SQLiteError) -> [[SQLiteValue]] {
        let statement = try prepare(sql)
        for (index, value) in bindings.enumerated() {
            try statement.bind(value, at: Int32(index + 1))
        }
        var result: [[SQLiteValue]] = []
        while try statement.step() {
            result.append((0..<statement.columnCount).map { statement.value(at: $0) })
        }
        return result
    }

    /// True inside a transaction (`BEGIN` without its `COMMIT` or `ROLLBACK` yet).
    public var inTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    /// Runs `body` in one transaction: committed if it returns, rolled back if it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}

/// A value read from or bound to SQLite.
public enum SQLiteValue: Equatable, Hashable, Sendable, CustomStringConvertible {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
    /// An ID, bound as its canonical text (36 characters) without building a `String`. Only
    /// ever bound: a text column always reads back as ``text(_:)``.
    case id(HeraldID)

    public var description: String {
        switch self {
        case .null: "NULL"
        case .integer(let value): String(value)
        case .real(let value): String(value)
        case .text(let value): "'" + value + "'"
        case .id(let value): "'\(value)'"
        case .blob(let bytes): "x'" + bytes.map { String($0, radix: 16) }.joined() + "'"
        }
    }

    /// The integer, when this is one.
    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The text, when this is text.
    public var text: String? {
        if case .text(let value) = self { return value }
        return nil
    }
}

/// A prepared statement, finalized when released.
public final class SQLiteStatement: @unchecked Sendable {
    let database: SQLiteDatabase
    let handle: OpaquePointer
    /// The statement's SQL.
    public let sql: String
    /// The texts `run` binds, back to back (reused; see `run`).
    private var scratch: [UInt8] = []

    init(database: SQLiteDatabase, handle: OpaquePointer, sql: String) {
        self.database = database
        self.handle = handle
        self.sql = sql
    }

    deinit {
        sqlite3_finalize(handle)
    }

    /// Binds a value to a 1-based parameter.
    public func bind(_ value: SQLiteValue, at index: Int32) throws(SQLiteError) {
        let rc: Int32
        switch value {
        case .null: rc = sqlite3_bind_null(handle, index)
        case .integer(let integer): rc = sqlite3_bind_int64(handle, index, integer)
        case .real(let real): rc = sqlite3_bind_double(handle, index, real)
        case .text(let text): rc = bindText(text, at: index)
        case .id(let id):
            rc = id.withCanonicalUTF8 { bytes in
                bytes.withMemoryRebound(to: CChar.self) { sqlite3_bind_text(handle, index, $0.baseAddress, Int32($0.count), SQLITE_TRANSIENT_PTR) }
            }
        case .blob(let bytes):
            rc = bytes.withUnsafeBytes { raw in
                sqlite3_bind_blob(handle, index, raw.baseAddress, Int32(raw.count), SQLITE_TRANSIENT_PTR)
            }
        }
        guard rc == SQLITE_OK else { throw database.error(rc, sql: sql) }
    }

    private func bindText(_ text: String, at index: Int32) -> Int32 {
        var text = text
        return text.withUTF8 { bytes in
            bytes.withMemoryRebound(to: CChar.self) { chars in
                // An empty string still needs a non-null pointer to bind '' rather than NULL.
                guard let base = chars.baseAddress else {
                    return sqlite3_bind_text(handle, index, "", 0, SQLITE_TRANSIENT_PTR)
                }
                return sqlite3_bind_text(handle, index, base, Int32(chars.count), SQLITE_TRANSIENT_PTR)
            }
        }
    }

    /// Binds values to parameters 1…n, in order.
    public func bind(_ values: [SQLiteValue]) throws(SQLiteError) {
        for (index, value) in values.enumerated() {
            try bind(value, at: Int32(index + 1))
        }
    }

    /// Binds, runs to completion, and resets.
    ///
    /// Texts and IDs are first written one after another into a buffer the statement keeps
    /// (`scratch`) and bound without SQLite copying them (`SQLITE_STATIC`): the buffer is not
    /// touched again until the statement is reset and its bindings cleared, below. A projection
    /// binds three IDs and a few enum texts per row, and SQLite's copy of each was an
    /// allocation, a copy and a free.
    public func run(_ values: [SQLiteValue]) throws(SQLiteError) {
        scratch.removeAll(keepingCapacity: true)
        for value in values {
            switch value {
            case .text(var text): text.withUTF8 { scratch.append(contentsOf: $0) }
            case .id(let id): id.appendCanonical(to: &scratch)
            default: break
            }
        }
        let result: Result<Void, SQLiteError> = scratch.withUnsafeBufferPointer { texts in
            defer { reset() }
            var offset = 0
            for (index, value) in values.enumerated() {
                let position = Int32(index + 1)
                let rc: Int32
                switch value {
                case .text(let text):
                    let count = text.utf8.count
                    rc = bindStatic(texts, offset, count, at: position)
                    offset += count
                case .id:
                    rc = bindStatic(texts, offset, HeraldID.canonicalBytes, at: position)
                    offset += HeraldID.canonicalBytes
                default:
                    do throws(SQLiteError) {
                        try bind(value, at: position)
                        continue
                    } catch {
                        return .failure(error)
                    }
                }
                guard rc == SQLITE_OK else { return .failure(database.error(rc, sql: sql)) }
            }
            do throws(SQLiteError) {
                while try step() {}
                return .success(())
            } catch {
                return .failure(error)
            }
        }
        try result.get()
    }

    /// Binds `count` bytes of `texts` from `offset` as text, not copied (`SQLITE_STATIC`); an
    /// empty text binds '' (a null pointer would bind NULL).
    private func bindStatic(_ texts: UnsafeBufferPointer<UInt8>, _ offset: Int, _ count: Int, at index: Int32) -> Int32 {
        guard count > 0, let base = texts.baseAddress else { return sqlite3_bind_text(handle, index, "", 0, SQLITE_TRANSIENT_PTR) }
        return UnsafeRawPointer(base + offset).withMemoryRebound(to: CChar.self, capacity: count) {
            sqlite3_bind_text(handle, index, $0, Int32(count), nil)
        }
    }

    /// Advances; `true` while a row is available.
    public func step() throws(SQLiteError) -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = database.error(rc, sql: sql)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// Resets for reuse and clears bindings.
    public func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }

    /// Number of result columns.
    public var columnCount: Int32 { sqlite3_column_count(handle) }

    /// The column's value in the current row.
    public func value(at column: Int32) -> SQLiteValue {
        switch sqlite3_column_type(handle, column) {
        case SQLITE_NULL: return .null
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(handle, column))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(handle, column))
        case SQLITE_BLOB:
            let count = Int(sqlite3_column_bytes(handle, column))
            guard count > 0, let pointer = sqlite3_column_blob(handle, column) else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: pointer, count: count)))
        default:
            let count = Int(sqlite3_column_bytes(handle, column))
            guard count > 0, let pointer = sqlite3_column_text(handle, column) else { return .text("") }
            return .text(String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self))
        }
    }

    /// The column as an integer (0 for NULL).
    public func int64(at column: Int32) -> Int64 { sqlite3_column_int64(handle, column) }

    /// The column as text, `nil` for NULL.
    public func text(at column: Int32) -> String? {
        guard sqlite3_column_type(handle, column) != SQLITE_NULL, let pointer = sqlite3_column_text(handle, column) else {
            return nil
        }
        let count = Int(sqlite3_column_bytes(handle, column))
        return String(decoding: UnsafeBufferPointer(start: pointer, count: count), as: UTF8.self)
    }

    /// True when the column is NULL.
    public func isNull(at column: Int32) -> Bool { sqlite3_column_type(handle, column) == SQLITE_NULL }

    /// The column's text as SQLite holds it (no `String` made), `nil` for NULL. The bytes are
    /// valid only inside `body`.
    public func withText<R>(at column: Int32, _ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R? {
        guard sqlite3_column_type(handle, column) != SQLITE_NULL, let pointer = sqlite3_column_text(handle, column) else {
            return nil
        }
        return try body(UnsafeBufferPointer(start: pointer, count: Int(sqlite3_column_bytes(handle, column))))
    }
}

/// SQLite's SQLITE_TRANSIENT: copy the bound bytes before returning.
let SQLITE_TRANSIENT_PTR = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
