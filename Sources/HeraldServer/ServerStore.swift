import Crypto
import Foundation
import HeraldCore
import HeraldStore
import Synchronization

/// What a bearer token may do: act as one admin user of the log, optionally only within one
/// app, optionally only read.
public struct Grant: Sendable, Equatable {
    /// The token's public id (the part of the token before its secret).
    public var tokenID: String
    public var admin: HeraldID
    public var app: HeraldID?
    public var readOnly: Bool

    public init(tokenID: String, admin: HeraldID, app: HeraldID?, readOnly: Bool) {
        self.tokenID = tokenID
        self.admin = admin
        self.app = app
        self.readOnly = readOnly
    }
}

/// The server's own state, beside the log and outside it (`DIR/server.sqlite`): bearer tokens
/// (only a SHA-256 of each secret) and idempotency keys. The log is data people share as
/// fixtures; none of this goes into it.
///
/// An idempotency key is written in two steps. Its *intent* (the positions its records get) is
/// committed, synced, before those records are handed to the log (under the engine's lock,
/// so no other record can take those positions); its *response* is written once they are
/// durable. A restart settles every intent left without a response before the server takes
/// requests: the records are in the log exactly when the log reaches the intent's last
/// position (a batch is one commit: all of it or none survives), so the key then answers
/// with those positions, else it is forgotten and a retry appends. Keys are kept for
/// ``keyRetentionMs`` after their request (24 hours by default), then dropped.
public final class ServerStore: @unchecked Sendable {
    /// `@unchecked Sendable`: the connection is used only inside `database.withLock`.
    private let database: Mutex<SQLiteDatabase>
    public let path: String
    public let keyRetentionMs: Int64

    static let schema = """
        CREATE TABLE IF NOT EXISTS tokens (
            id TEXT PRIMARY KEY NOT NULL,
            secret_sha256 BLOB NOT NULL,
            admin_id TEXT NOT NULL,
            app_id TEXT,
            read_only INTEGER NOT NULL CHECK (read_only IN (0, 1)),
            created_ms INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS idempotency_keys (
            admin_id TEXT NOT NULL,
            key TEXT NOT NULL,
            request_sha256 BLOB NOT NULL,
            first_position INTEGER NOT NULL,
            last_position INTEGER NOT NULL,
            created_ms INTEGER NOT NULL,
            -- NULL until the records are durable (an intent).
            response TEXT,
            PRIMARY KEY (admin_id, key)
        );
        """

    /// Opens (or creates) the store at `path`.
    public init(path: String, keyRetentionMs: Int64 = 24 * 3_600_000) throws {
        let db = try SQLiteDatabase(path: path)
        try db.execute("PRAGMA journal_mode = WAL")
        // An intent must be on disk before its records are: every commit is synced.
        try db.execute("PRAGMA synchronous = FULL")
        try db.execute(Self.schema)
        self.database = Mutex(db)
        self.path = path
        self.keyRetentionMs = keyRetentionMs
        // Set here, after every call that throws: a default value on the declaration made the
        // release build's compiler crash (Swift 6.3.1, an ownership check of this throwing init).
        self.lastExpiryMs = Mutex(.min / 2)
    }

    // MARK: - Tokens

    /// Creates a token and returns it: `hrd_<id>_<secret>`, shown once (only the secret's
    /// SHA-256 is kept).
    public func createToken(admin: HeraldID, app: HeraldID?, readOnly: Bool, nowMs: Int64) throws -> (token: String, id: String) {
        var generator = SystemRandomNumberGenerator()
        let id = Self.hex((0..<6).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let secret = Self.hex((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
        try database.withLock { db in
            let insert = try db.prepare("INSERT INTO tokens (id, secret_sha256, admin_id, app_id, read_only, created_ms) VALUES (?, ?, ?, ?, ?, ?)")
            try insert.run([.text(id), .blob(Array(SHA256.hash(data: Array(secret.utf8)))), .id(admin),
                            app.map { .id($0) } ?? .null, .integer(readOnly ? 1 : 0), .integer(nowMs)])
        }
        return ("hrd_\(id)_\(secret)", id)
    }

    /// The grant of a presented token; nil when it is malformed, unknown or revoked.
    public func grant(forToken token: String) throws -> Grant? {
        let parts = token.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "hrd", parts[1].count == 12, parts[2].count == 64 else { return nil }
        let id = String(parts[1])
        let presented = Array(SHA256.hash(data: Array(parts[2].utf8)))
        return try database.withLock { db -> Grant? in
            let rows = try db.rows("SELECT secret_sha256, admin_id, app_id, read_only FROM tokens WHERE id = ?", [.text(id)])
            guard let row = rows.first, row.count == 4, case .blob(let stored) = row[0],
                  let admin = row[1].text.flatMap(HeraldID.init) else { return nil }
            // Compared in constant time: how long a comparison takes says nothing of the secret.
            guard stored.count == presented.count,
                  zip(stored, presented).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else { return nil }
            let app = row[2].text.flatMap(HeraldID.init)
            return Grant(tokenID: id, admin: admin, app: app, readOnly: row[3].integer == 1)
        }
    }

    /// Every token's grant and creation time (no secret), by id.
    public func tokens() throws -> [(grant: Grant, createdMs: Int64)] {
        try database.withLock { db in
            try db.rows("SELECT id, admin_id, app_id, read_only, created_ms FROM tokens ORDER BY id").compactMap { row in
                guard let id = row[0].text, let admin = row[1].text.flatMap(HeraldID.init) else { return nil }
                return (Grant(tokenID: id, admin: admin, app: row[2].text.flatMap(HeraldID.init), readOnly: row[3].integer == 1),
                        row[4].integer ?? 0)
            }
        }
    }

    /// Revokes a token; false when there is no such token.
    public func revokeToken(id: String) throws -> Bool {
        try database.withLock { db in
            let before = try db.rows("SELECT count(*) FROM tokens WHERE id = ?", [.text(id)]).first?.first?.integer ?? 0
            try db.prepare("DELETE FROM tokens WHERE id = ?").run([.text(id)])
            return before > 0
        }
    }

    // MARK: - Idempotency keys

    /// What a key already says about a request.
    public enum KeyState: Equatable, Sendable {
        /// Unknown (or expired): the request runs.
        case new
        /// Answered: the stored response body (the request was the same).
        case answered(String)
        /// Used for a different request body.
        case mismatch
        /// Being appended right now (a concurrent retry).
        case inProgress
    }

    /// The state of `key` for `admin`, given the request body's SHA-256.
    public func keyState(admin: HeraldID, key: String, request: [UInt8]) throws -> KeyState {
        try database.withLock { db in
            let rows = try db.rows("SELECT request_sha256, response FROM idempotency_keys WHERE admin_id = ? AND key = ?",
                                   [.id(admin), .text(key)])
            guard let row = rows.first else { return .new }
            guard case .blob(let stored) = row[0], stored == request else { return .mismatch }
            return row[1].text.map(KeyState.answered) ?? .inProgress
        }
    }

    /// Commits the intent of `key`: its records get `positions`. Synced before it returns.
    public func recordIntent(admin: HeraldID, key: String, request: [UInt8], positions: ClosedRange<UInt64>, nowMs: Int64) throws {
        try database.withLock { db in
            try db.prepare("""
                INSERT INTO idempotency_keys (admin_id, key, request_sha256, first_position, last_position, created_ms, response)
                VALUES (?, ?, ?, ?, ?, ?, NULL)
                """).run([.id(admin), .text(key), .blob(request), .integer(Int64(positions.lowerBound)),
                          .integer(Int64(positions.upperBound)), .integer(nowMs)])
        }
    }

    /// Forgets an intent whose records were not appended.
    public func dropIntent(admin: HeraldID, key: String) throws {
        try database.withLock { db in
            try db.prepare("DELETE FROM idempotency_keys WHERE admin_id = ? AND key = ? AND response IS NULL").run([.id(admin), .text(key)])
        }
    }

    /// Stores the response of a key whose records are durable. At most once a minute it also
    /// drops the answered keys older than the retention, so a server that runs for weeks keeps
    /// about a retention's worth of keys, not every key since it started.
    public func recordResponse(admin: HeraldID, key: String, response: String, nowMs: Int64) throws {
        try database.withLock { db in
            try db.prepare("UPDATE idempotency_keys SET response = ? WHERE admin_id = ? AND key = ?")
                .run([.text(response), .id(admin), .text(key)])
        }
        let due = lastExpiryMs.withLock { last in
            guard nowMs - last >= 60_000 else { return false }
            last = nowMs
            return true
        }
        if due { try expireKeys(nowMs: nowMs) }
    }

    /// When answered keys were last expired.
    private let lastExpiryMs: Mutex<Int64>

    /// Settles the intents a stop left without a response, against the log's last position
    /// (before any append), and drops keys older than the retention. Returns how many intents
    /// were kept (their records are in the log) and dropped.
    public func settle(lastPosition: UInt64, nowMs: Int64, response: (ClosedRange<UInt64>) -> String) throws -> (kept: Int, dropped: Int) {
        try database.withLock { db in
            try db.transaction {
                var kept = 0, dropped = 0
                for row in try db.rows("SELECT admin_id, key, first_position, last_position FROM idempotency_keys WHERE response IS NULL") {
                    guard let admin = row[0].text, let key = row[1].text, let first = row[2].integer, let last = row[3].integer,
                          first >= 1, last >= first else { continue }
                    if UInt64(last) <= lastPosition {
                        try db.prepare("UPDATE idempotency_keys SET response = ? WHERE admin_id = ? AND key = ?")
                            .run([.text(response(UInt64(first)...UInt64(last))), .text(admin), .text(key)])
                        kept += 1
                    } else {
                        try db.prepare("DELETE FROM idempotency_keys WHERE admin_id = ? AND key = ?").run([.text(admin), .text(key)])
                        dropped += 1
                    }
                }
                try db.prepare("DELETE FROM idempotency_keys WHERE created_ms < ? AND response IS NOT NULL")
                    .run([.integer(nowMs - keyRetentionMs)])
                return (kept, dropped)
            }
        }
    }

    /// Drops answered keys older than the retention.
    public func expireKeys(nowMs: Int64) throws {
        try database.withLock { db in
            try db.prepare("DELETE FROM idempotency_keys WHERE created_ms < ? AND response IS NOT NULL")
                .run([.integer(nowMs - keyRetentionMs)])
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// SHA-256 of a request body, as the idempotency keys store it.
    public static func digest(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
}
