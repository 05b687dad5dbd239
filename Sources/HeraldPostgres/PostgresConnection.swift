import CLibPQ

/// An error from PostgreSQL or from talking to it: where (the server, without its password),
/// what was being done, and the server's own message and SQLSTATE when it sent one.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// The server, as `postgresql://user@host:port/db` (never the password).
    public var location: String
    /// What Herald was doing ("connecting", "COPY deliveries", a statement's first words).
    public var doing: String
    /// libpq's or the server's message.
    public var message: String
    /// The SQLSTATE code, when the server sent one (`23505`: a unique violation, …).
    public var sqlState: String?

    public var description: String {
        let code = sqlState.map { " [SQLSTATE \($0)]" } ?? ""
        return "PostgreSQL \(location): \(doing): \(message)\(code)"
    }
}

/// A value bound to a statement's `$n`: text (checked for U+0000, which PostgreSQL text cannot
/// hold and C strings would cut silently), bytes (sent in binary, for `BYTEA`), or NULL.
public enum PostgresValue: Sendable, Equatable {
    case text(String)
    case bytes([UInt8])
    case null

    public static func int(_ value: Int64) -> PostgresValue { .text(String(value)) }
}

/// One libpq connection (`PGconn`), closed on deinit. Synchronous, like the SQLite shell: the
/// projector calls it from its own thread. Not thread-safe: one owner at a time.
public final class PostgresConnection: @unchecked Sendable {
    let handle: OpaquePointer
    /// The URL without its password, for messages.
    public let location: String

    /// Connects to `url` (`postgresql://user[:password]@host:port/database?options`, or
    /// libpq's `key=value` form). Notices ("already exists, skipping") are not printed.
    public init(url: String) throws(PostgresError) {
        location = Self.redacted(url)
        guard let connection = PQconnectdb(url) else {
            throw PostgresError(location: location, doing: "connecting", message: "libpq could not allocate a connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.trimmed(PQerrorMessage(connection))
            PQfinish(connection)
            throw PostgresError(location: location, doing: "connecting", message: message)
        }
        handle = connection
        PQsetNoticeProcessor(handle, { _, _ in }, nil)
    }

    deinit {
        PQfinish(handle)
    }

    /// `url` with the password of its user part (`user:password@`) and any `password=` option removed.
    static func redacted(_ url: String) -> String {
        var text = url
        if let scheme = text.firstRange(of: "://"), let at = text[scheme.upperBound...].firstIndex(of: "@") {
            let user = text[scheme.upperBound..<at]
            if let colon = user.firstIndex(of: ":") {
                text.replaceSubrange(colon..<at, with: "")
            }
        }
        // `password=…` in a query string or a key=value string.
        var parts: [Substring] = []
        for part in text.split(separator: "&", omittingEmptySubsequences: false) {
            var kept: [Substring] = []
            for word in part.split(separator: " ", omittingEmptySubsequences: false) {
                let bare = word.drop { $0 == "?" }
                if bare.hasPrefix("password=") { continue }
                kept.append(word)
            }
            parts.append(Substring(kept.joined(separator: " ")))
        }
        return parts.joined(separator: "&")
    }

    static func trimmed(_ message: UnsafePointer<CChar>?) -> String {
        guard let message else { return "no message" }
        var text = String(cString: message)
        while text.last == "\n" || text.last == " " { text.removeLast() }
        return text.isEmpty ? "no message" : text
    }

    /// The statement's first line, for messages.
    static func headline(_ sql: String) -> String {
        let line = sql.split(separator: "\n").first { !$0.allSatisfy(\.isWhitespace) && !$0.hasPrefix("--") } ?? ""
        let trimmed = line.drop { $0 == " " }
        return trimmed.count > 80 ? String(trimmed.prefix(77)) + "…" : String(trimmed)
    }

    func failure(_ result: OpaquePointer?, doing: String) -> PostgresError {
        guard let result else {
            return PostgresError(location: location, doing: doing, message: Self.trimmed(PQerrorMessage(handle)))
        }
        let state = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) }
        return PostgresError(location: location, doing: doing, message: Self.trimmed(PQresultErrorMessage(result)), sqlState: state)
    }

    /// Runs `sql` (one or several statements, no parameters: the simple query protocol, which
    /// also runs a migration file as it is).
    public func execute(_ sql: String) throws(PostgresError) {
        let result = PQexec(handle, sql)
        defer { PQclear(result) }
        let status = result.map(PQresultStatus) ?? PGRES_FATAL_ERROR
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK else {
            throw failure(result, doing: Self.headline(sql))
        }
    }

    /// Runs one statement with `values` bound to `$1…`; returns its rows, as text (`nil`: NULL),
    /// and the rows it affected (`UPDATE`, `INSERT`, `DELETE`).
    @discardableResult
    public func run(_ sql: String, _ values: [PostgresValue] = []) throws(PostgresError) -> (rows: [[String?]], affected: Int) {
        var rows: [[String?]] = []
        let affected = try run(sql, values) { row in rows.append(row) }
        return (rows, affected)
    }

    /// Runs one statement, calling `body` with each row as it arrives (libpq's single-row
    /// mode: a million-row answer is never held whole). Returns the rows it affected.
    @discardableResult
    public func run(_ sql: String, _ values: [PostgresValue], streaming: Bool = false,
                    _ body: ([String?]) throws -> Void) throws(PostgresError) -> Int {
        let doing = Self.headline(sql)
        // The values as C strings (text) or bytes (binary), alive for the call.
        var buffers: [[CChar]?] = []
        var lengths: [Int32] = []
        var formats: [Int32] = []
        for (index, value) in values.enumerated() {
            switch value {
            case .text(let text):
                let bytes = Array(text.utf8CString)
                if bytes.dropLast().contains(0) {
                    throw PostgresError(location: location, doing: doing,
                                        message: "the value of $\(index + 1) holds U+0000, which PostgreSQL text cannot store")
                }
                buffers.append(bytes)
                lengths.append(Int32(bytes.count - 1))
                formats.append(0)
            case .bytes(let data):
                buffers.append(data.map { CChar(bitPattern: $0) })
                lengths.append(Int32(clamping: data.count))
                formats.append(1)
            case .null:
                buffers.append(nil)
                lengths.append(0)
                formats.append(0)
            }
        }
        let sent: Int32 = withPointers(buffers) { pointers in
            PQsendQueryParams(handle, sql, Int32(values.count), nil, pointers, lengths, formats, 0)
        }
        guard sent == 1 else { throw failure(nil, doing: doing) }
        if streaming { PQsetSingleRowMode(handle) }
        var error: PostgresError?
        var affected = 0
        // Every result is read (and cleared), also after an error, so the connection is ready again.
        while let result = PQgetResult(handle) {
            defer { PQclear(result) }
            guard error == nil else { continue }
            let status = PQresultStatus(result)
            switch status {
            case PGRES_SINGLE_TUPLE, PGRES_TUPLES_OK:
                let columns = PQnfields(result)
                for row in 0..<PQntuples(result) {
                    var values: [String?] = []
                    values.reserveCapacity(Int(columns))
                    for column in 0..<columns {
                        values.append(PQgetisnull(result, row, column) == 1 ? nil : String(cString: PQgetvalue(result, row, column)))
                    }
                    do {
                        try body(values)
                    } catch let thrown as PostgresError {
                        error = thrown
                    } catch let thrown {
                        error = PostgresError(location: location, doing: doing, message: "\(thrown)")
                    }
                    if error != nil { break }
                }
            case PGRES_COMMAND_OK:
                affected = Int(String(cString: PQcmdTuples(result))) ?? 0
            default:
                error = failure(result, doing: doing)
            }
        }
        if let error { throw error }
        return affected
    }

    /// `COPY table (columns) FROM STDIN` with `rows` in COPY's text format (``CopyRows``).
    public func copy(into table: String, columns: String, _ rows: CopyRows) throws(PostgresError) {
        guard rows.count > 0 else { return }
        let doing = "COPY \(table)"
        let start = PQexec(handle, "COPY \(table) (\(columns)) FROM STDIN")
        let status = start.map(PQresultStatus) ?? PGRES_FATAL_ERROR
        guard status == PGRES_COPY_IN else {
            defer { PQclear(start) }
            throw failure(start, doing: doing)
        }
        PQclear(start)
        let sent = rows.bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { PQputCopyData(handle, $0.baseAddress, Int32(clamping: $0.count)) }
        }
        let ended = PQputCopyEnd(handle, sent == 1 ? nil : "the client could not send the rows")
        var error: PostgresError? = sent == 1 && ended == 1 ? nil : failure(nil, doing: doing)
        while let result = PQgetResult(handle) {
            defer { PQclear(result) }
            if error == nil && PQresultStatus(result) != PGRES_COMMAND_OK {
                error = failure(result, doing: doing)
            }
        }
        if let error { throw error }
    }

    /// Runs `body` in one transaction (`BEGIN` … `COMMIT`, `ROLLBACK` when it throws).
    public func transaction<T>(_ begin: String = "BEGIN", _ body: () throws -> T) throws -> T {
        try execute(begin)
        do {
            let value = try body()
            try execute("COMMIT")
            return value
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}

/// Calls `body` with C pointers to `buffers` (NULL for `nil`), alive for the call.
private func withPointers<R>(_ buffers: [[CChar]?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    func next(_ index: Int, _ collected: [UnsafePointer<CChar>?]) -> R {
        guard index < buffers.count else { return body(collected) }
        guard let buffer = buffers[index] else { return next(index + 1, collected + [nil]) }
        return buffer.withUnsafeBufferPointer { next(index + 1, collected + [$0.baseAddress]) }
    }
    return next(0, [])
}

/// Rows in the text format of `COPY … FROM STDIN`: columns separated by tabs, rows ended by a
/// newline, `\N` for NULL, and backslash, tab, newline and carriage return escaped.
public struct CopyRows: Sendable {
    public private(set) var bytes: [UInt8] = []
    /// Rows ended so far.
    public private(set) var count = 0
    private var atRowStart = true

    public init() {}

    /// Thrown by ``text(_:)`` for a value PostgreSQL text cannot hold.
    public struct NulCharacter: Error {}

    private mutating func separate() {
        if !atRowStart { bytes.append(0x09) }
        atRowStart = false
    }

    public mutating func int(_ value: Int64) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    public mutating func null() {
        separate()
        bytes.append(contentsOf: [0x5C, 0x4E])  // \N
    }

    public mutating func bool(_ value: Bool) {
        separate()
        bytes.append(value ? 0x74 : 0x66)  // t / f
    }

    /// Text, escaped. Throws for U+0000.
    public mutating func text(_ value: String) throws(NulCharacter) {
        separate()
        for byte in value.utf8 {
            switch byte {
            case 0: throw NulCharacter()
            case 0x5C: bytes.append(contentsOf: [0x5C, 0x5C])
            case 0x09: bytes.append(contentsOf: [0x5C, 0x74])
            case 0x0A: bytes.append(contentsOf: [0x5C, 0x6E])
            case 0x0D: bytes.append(contentsOf: [0x5C, 0x72])
            default: bytes.append(byte)
            }
        }
    }

    /// An optional text: NULL for `nil`.
    public mutating func text(_ value: String?) throws(NulCharacter) {
        if let value { try text(value) } else { null() }
    }

    public mutating func endRow() {
        bytes.append(0x0A)
        atRowStart = true
        count += 1
    }

    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        count = 0
        atRowStart = true
    }
}
