import CSQLite
import Glibc

/// The SQLite peer: a thin raw-C-API wrapper so the peer pays no Herald abstraction cost.
final class PeerDB {
    let handle: OpaquePointer
    let path: String

    init(path: String) throws {
        self.path = path
        var db: OpaquePointer?
        let rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let db else {
            if let db { sqlite3_close_v2(db) }
            throw BenchError("sqlite: cannot open \(path) (code \(rc))")
        }
        handle = db
    }

    deinit { sqlite3_close_v2(handle) }

    func exec(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "code \(rc)"
            sqlite3_free(message)
            throw BenchError("sqlite: \(text) in: \(sql.prefix(120))")
        }
    }

    func prepare(_ sql: String) throws -> OpaquePointer {
        var statement: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &statement, nil)
        guard rc == SQLITE_OK, let statement else {
            throw BenchError("sqlite: cannot prepare \(sql.prefix(120)): \(String(cString: sqlite3_errmsg(handle)))")
        }
        return statement
    }

    func scalar(_ sql: String) throws -> Int64 {
        let statement = try prepare(sql)
        defer { sqlite3_finalize(statement) }
        guard sqlite3_step(statement) == SQLITE_ROW else { throw BenchError("sqlite: no row from \(sql)") }
        return sqlite3_column_int64(statement, 0)
    }

    func step(_ statement: OpaquePointer) throws {
        let rc = sqlite3_step(statement)
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else {
            throw BenchError("sqlite: step failed: \(String(cString: sqlite3_errmsg(handle)))")
        }
        sqlite3_reset(statement)
    }
}

/// The `"type":"…"` value of a line, by a plain byte search (the non-validating split a
/// minimal C importer would do). Returns the byte range of the value.
func peerTypeRange(_ line: UnsafeBufferPointer<UInt8>) -> Range<Int>? {
    // `"type":"` = 22 116 121 112 101 22 3A 22
    let needle: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0x22, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3A, 0x22)
    let n = line.count
    var i = 0
    while i + 8 <= n {
        if line[i] == needle.0, line[i + 1] == needle.1, line[i + 2] == needle.2, line[i + 3] == needle.3,
           line[i + 4] == needle.4, line[i + 5] == needle.5, line[i + 6] == needle.6, line[i + 7] == needle.7 {
            let start = i + 8
            var end = start
            while end < n, line[end] != 0x22 { end += 1 }
            return end < n ? start..<end : nil
        }
        i += 1
    }
    return nil
}

enum SQLitePeer {
    /// Imports setup + events into table `lines(type TEXT, line TEXT)` in 10,000-row
    /// transactions, WAL, synchronous=NORMAL (what a tuned C importer would use).
    static func importLines(files: [LineFile], into path: String) throws -> (lines: Int, seconds: Double) {
        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        let db = try PeerDB(path: path)
        try db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE lines(type TEXT NOT NULL, line TEXT NOT NULL);")
        let insert = try db.prepare("INSERT INTO lines(type, line) VALUES (?, ?)")
        defer { sqlite3_finalize(insert) }
        var count = 0
        let start = nowNs()
        try db.exec("BEGIN")
        for file in files {
            try file.bytes.withUnsafeBufferPointer { buffer in
                guard let base = buffer.baseAddress else { return }
                for range in file.lines {
                    let line = UnsafeBufferPointer(rebasing: buffer[range])
                    guard let typeRange = peerTypeRange(line) else {
                        throw BenchError("\(file.path): line \(count + 1) has no \"type\"")
                    }
                    sqlite3_bind_text(insert, 1, UnsafeRawPointer(base + range.lowerBound + typeRange.lowerBound).assumingMemoryBound(to: CChar.self),
                                      Int32(typeRange.count), nil)
                    sqlite3_bind_text(insert, 2, UnsafeRawPointer(base + range.lowerBound).assumingMemoryBound(to: CChar.self),
                                      Int32(range.count), nil)
                    try db.step(insert)
                    count += 1
                    if count % 10_000 == 0 {
                        try db.exec("COMMIT; BEGIN")
                    }
                }
            }
        }
        try db.exec("COMMIT")
        let end = nowNs()
        return (count, seconds(start, end))
    }

    /// Reads every row of `lines`, touching both columns.
    static func scan(path: String) throws -> (rows: Int, seconds: Double, checksum: Int) {
        guard fileExists(path) else { throw BenchError("peer table \(path) is missing: run --only import first") }
        let db = try PeerDB(path: path)
        let select = try db.prepare("SELECT type, line FROM lines")
        defer { sqlite3_finalize(select) }
        var rows = 0
        var checksum = 0
        let start = nowNs()
        while sqlite3_step(select) == SQLITE_ROW {
            _ = sqlite3_column_text(select, 0)
            _ = sqlite3_column_text(select, 1)
            checksum &+= Int(sqlite3_column_bytes(select, 0)) &+ Int(sqlite3_column_bytes(select, 1))
            rows += 1
        }
        return (rows, seconds(start, nowNs()), checksum)
    }
}
