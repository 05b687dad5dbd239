import Herald
import HeraldCore
import Testing

/// ``AppendIntent``: the hook `herald serve` keeps its idempotency keys' intents with.
@Suite struct AppendIntentTests {
    struct DiskFailed: Error {}

    let admin = HeraldID(high: 0x0000_0000_0000_4000, low: 0x8000_0000_0000_0001)
    let app = HeraldID(high: 0x0000_0000_0000_4000, low: 0x8000_0000_0000_0002)

    /// A refused batch whose intent cannot be withdrawn leaves the intent naming positions the
    /// next record would take: the engine must append nothing more until it is reopened.
    @Test func aFailedWithdrawalStopsEveryLaterAppend() async throws {
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            let herald = try Herald.open(directory: directory, options: HeraldOptions(durability: .none))
            try herald.append([.adminUserCreated(adminUserID: admin, email: "ops@example.com")])
            var intended: ClosedRange<UInt64>?
            // The same admin user twice: refused under the lock, after the intent ran.
            let refused = [DecodedLine(ts: nil, body: .adminUserCreated(adminUserID: admin, email: "again@example.com"))]
            #expect(throws: (any Error).self) {
                try herald.append(lines: refused, intent: AppendIntent(record: { intended = $0 }, withdraw: { throw DiskFailed() }))
            }
            #expect(intended == 2...2)
            #expect(herald.failure?.contains("positions 2…2") == true, "\(herald.failure ?? "no failure")")
            // Neither a valid request nor anything else takes position 2 now.
            #expect(throws: (any Error).self) {
                try herald.append([.appCreated(appID: app, name: "shop")])
            }
            #expect(try directory.openReader().lastPosition == 1)
            try? herald.close()
            // Reopened, it appends again (the server settles its keys before that).
            let again = try Herald.open(directory: directory, options: HeraldOptions(durability: .none))
            try again.append([.appCreated(appID: app, name: "shop")])
            #expect(try directory.openReader().lastPosition == 2)
            try again.close()
        }
    }

    /// A withdrawal that works leaves the engine healthy.
    @Test func aWithdrawnIntentLeavesTheEngineAppending() async throws {
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            let herald = try Herald.open(directory: directory, options: HeraldOptions(durability: .none))
            try herald.append([.adminUserCreated(adminUserID: admin, email: "ops@example.com")])
            var withdrawn = false
            let refused = [DecodedLine(ts: nil, body: .adminUserCreated(adminUserID: admin, email: "again@example.com"))]
            #expect(throws: (any Error).self) {
                try herald.append(lines: refused, intent: AppendIntent(record: { _ in }, withdraw: { withdrawn = true }))
            }
            #expect(withdrawn && herald.failure == nil)
            try herald.append([.appCreated(appID: app, name: "shop")])
            #expect(try directory.openReader().lastPosition == 2)
            try herald.close()
        }
    }
}
