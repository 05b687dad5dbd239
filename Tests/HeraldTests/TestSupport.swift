import Foundation
import Herald
import HeraldCore

/// A temporary directory removed when `body` returns or throws.
func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("herald-test-\(UUID().uuidString.lowercased())").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// A deterministic pseudo-random generator (SplitMix64): the seed replays a failure exactly.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// An id made from a number: readable in failure messages.
func testID(_ n: UInt64) -> HeraldID { HeraldID(high: 0x0000_0000_0000_4000, low: 0x8000_0000_0000_0000 | n) }

/// The package root, found from this file.
let packageRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// An admin user, an app, a script and a KV trigger on every collection: the smallest setup
/// under which every KV record of `app` creates one delivery.
func oneTriggerSetup(admin: HeraldID, app: HeraldID, script: HeraldID, trigger: HeraldID,
                     retry: RetryConfig = .builtIn) -> [RecordBody] {
    [
        .adminUserCreated(adminUserID: admin, email: "a@example.com"),
        .appCreated(appID: app, name: "a"),
        .scriptRegistered(ScriptRegistration(scriptID: script, appID: app, name: "s", runtime: "swift", source: "")),
        .triggerRegistered(TriggerRegistration(triggerID: trigger, appID: app, scriptID: script, kind: .kv,
                                               retry: retry, registeredBy: admin, kv: KVDetails(collectionGlob: "*", ops: []))),
    ]
}
