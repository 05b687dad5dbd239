import Foundation
import HeraldCore
import HeraldServer
import Testing

/// The server's own store: tokens kept as hashes, idempotency keys settled after a stop.
@Suite struct ServerStoreTests {
    private func withStore(_ body: (ServerStore, String) throws -> Void) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("herald-store-\(UUID().uuidString.lowercased()).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        try body(try ServerStore(path: path), path)
    }

    /// A stop between an intent and its answer: the key answers with its positions when the
    /// log reached them (the batch is one commit), else it is forgotten and a retry appends.
    @Test func intentsSettleAgainstTheEndOfTheLog() throws {
        try withStore { store, _ in
            let admin = HeraldID("a0000000-0000-4000-8000-000000000001")!
            let digest = ServerStore.digest(Array("body".utf8))
            try store.recordIntent(admin: admin, key: "made-it", request: digest, positions: 5...6, nowMs: 0)
            try store.recordIntent(admin: admin, key: "lost", request: digest, positions: 8...9, nowMs: 0)
            #expect(try store.keyState(admin: admin, key: "made-it", request: digest) == .inProgress)
            let settled = try store.settle(lastPosition: 7, nowMs: 1) { "\($0.lowerBound)-\($0.upperBound)" }
            #expect(settled.kept == 1 && settled.dropped == 1)
            #expect(try store.keyState(admin: admin, key: "made-it", request: digest) == .answered("5-6"))
            #expect(try store.keyState(admin: admin, key: "lost", request: digest) == .new)
            #expect(try store.keyState(admin: admin, key: "made-it", request: ServerStore.digest([1])) == .mismatch)
            // Another admin's key of the same name is another key.
            #expect(try store.keyState(admin: HeraldID("a0000000-0000-4000-8000-000000000002")!, key: "made-it", request: digest) == .new)
        }
    }

    /// Answered keys are dropped once older than the retention.
    @Test func answeredKeysExpire() throws {
        try withStore { store, _ in
            let admin = HeraldID("a0000000-0000-4000-8000-000000000001")!
            let digest = ServerStore.digest([7])
            try store.recordIntent(admin: admin, key: "k", request: digest, positions: 1...1, nowMs: 0)
            try store.recordResponse(admin: admin, key: "k", response: "r", nowMs: 0)
            try store.expireKeys(nowMs: store.keyRetentionMs - 1)
            #expect(try store.keyState(admin: admin, key: "k", request: digest) == .answered("r"))
            try store.expireKeys(nowMs: store.keyRetentionMs + 1)
            #expect(try store.keyState(admin: admin, key: "k", request: digest) == .new)
            // A running server expires them as it answers later keys, at most once a minute.
            let later = store.keyRetentionMs + 1
            try store.recordIntent(admin: admin, key: "old", request: digest, positions: 2...2, nowMs: 0)
            try store.recordResponse(admin: admin, key: "old", response: "r", nowMs: 0)
            try store.recordIntent(admin: admin, key: "new", request: digest, positions: 3...3, nowMs: later)
            try store.recordResponse(admin: admin, key: "new", response: "r", nowMs: later)
            #expect(try store.keyState(admin: admin, key: "old", request: digest) == .new, "an answered key outlived its retention")
            #expect(try store.keyState(admin: admin, key: "new", request: digest) == .answered("r"))
            try store.recordIntent(admin: admin, key: "old2", request: digest, positions: 4...4, nowMs: 0)
            try store.recordResponse(admin: admin, key: "old2", response: "r", nowMs: later + 59_000)
            #expect(try store.keyState(admin: admin, key: "old2", request: digest) == .answered("r"), "expired twice within a minute")
            try store.recordIntent(admin: admin, key: "newer", request: digest, positions: 5...5, nowMs: later)
            try store.recordResponse(admin: admin, key: "newer", response: "r", nowMs: later + 60_001)
            #expect(try store.keyState(admin: admin, key: "old2", request: digest) == .new)
            #expect(try store.keyState(admin: admin, key: "newer", request: digest) == .answered("r"))
        }
    }

    /// Only a hash of a token's secret is stored; a changed secret or id is refused.
    @Test func tokensKeepOnlyAHashOfTheirSecret() throws {
        try withStore { store, path in
            let admin = HeraldID("a0000000-0000-4000-8000-000000000001")!
            let app = HeraldID("b0000000-0000-4000-8000-000000000001")!
            let (token, id) = try store.createToken(admin: admin, app: app, readOnly: true, nowMs: 0)
            #expect(try store.grant(forToken: token) == Grant(tokenID: id, admin: admin, app: app, readOnly: true))
            let secret = String(token.split(separator: "_")[2])
            for file in [path, path + "-wal"] {
                let bytes = (try? Data(contentsOf: URL(fileURLWithPath: file))) ?? Data()
                #expect(bytes.range(of: Data(secret.utf8)) == nil, "the secret is stored in \(file)")
            }
            var tampered = Array(token)
            tampered[tampered.count - 1] = tampered.last == "0" ? "1" : "0"
            #expect(try store.grant(forToken: String(tampered)) == nil)
            #expect(try store.grant(forToken: token.replacingOccurrences(of: id, with: "000000000000")) == nil)
            #expect(try store.grant(forToken: "hrd_" + id) == nil)
            #expect(try store.tokens().map(\.grant.tokenID) == [id])
            #expect(try store.revokeToken(id: id))
            #expect(try !store.revokeToken(id: id))
            #expect(try store.grant(forToken: token) == nil)
        }
    }
}
