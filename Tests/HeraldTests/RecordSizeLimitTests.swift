import Foundation
import Herald
import HeraldCore
import Testing

/// A record over the log's 16 MiB payload limit is a bad input line (or a refused append),
/// reported where it is; it never reaches the log as "Entry 0 of the append…".
@Suite struct RecordSizeLimitTests {
    static let admin = "a0000000-0000-4000-8000-000000000001", app = "b0000000-0000-4000-8000-000000000001"

    /// A script whose source alone is one byte over the limit.
    static func hugeScript(_ n: Int) -> String {
        let source = String(repeating: "x", count: RecordBinaryCodec.recordBytesMaxDefault + 1)
        return #"{"type":"script.registered","script_id":"c0000000-0000-4000-8000-00000000000\#(n)","app_id":"\#(app)","name":"big","runtime":"process","source":"\#(source)"}"#
    }

    @Test func importReportsTheLineAndAppendsNothing() throws {
        let lines = [
            #"{"type":"admin_user.created","admin_user_id":"\#(Self.admin)","email":"ops@example.com"}"#,
            #"{"type":"app.created","app_id":"\#(Self.app)","name":"shop"}"#,
            Self.hugeScript(1),
            #"{"type":"app.created","app_id":"b0000000-0000-4000-8000-000000000002","name":"other"}"#,
        ]
        try withTemporaryDirectorySync { path in
            let file = path + "/in.jsonl"
            try (lines.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
            let directory = DataDirectory(path: path + "/data")
            do {
                _ = try directory.importLines(from: file)
                Issue.record("an import with a record over the limit was accepted")
            } catch let error as HeraldError {
                guard case .invalidInput(_, let errors, _) = error else {
                    Issue.record("expected invalid input, got: \(error)")
                    return
                }
                #expect(errors.map(\.description) == [
                    "line 3: script.registered: record encodes to 16,777,267 bytes, over the 16,777,216-byte record limit",
                ])
            }
            let writer = try directory.openWriter()
            #expect(writer.lastPosition == 0, "nothing was appended")
            try writer.close()
        }
    }

    @Test func appendRefusesTheRecordAndTheEngineGoesOn() async throws {
        try await withTemporaryDirectory { path in
            let herald = try Herald.open(directory: DataDirectory(path: path), options: HeraldOptions(durability: .none))
            let (admin, app) = (testID(1), testID(2))
            try herald.append([.adminUserCreated(adminUserID: admin, email: "ops@example.com"), .appCreated(appID: app, name: "shop")])
            let huge = RecordBody.scriptRegistered(ScriptRegistration(
                scriptID: testID(3), appID: app, name: "big", runtime: "process",
                source: String(repeating: "x", count: RecordBinaryCodec.recordBytesMaxDefault)))
            #expect(throws: RecordError(recordType: "script.registered",
                                        reason: "record encodes to 16,777,266 bytes, over the 16,777,216-byte record limit")) {
                try herald.append(huge)
            }
            #expect(throws: RecordError(location: "record 2 of 2", recordType: "script.registered",
                                        reason: "record encodes to 16,777,266 bytes, over the 16,777,216-byte record limit")) {
                try herald.append([.appCreated(appID: testID(4), name: "other"), huge])
            }
            // Nothing of the refused batch was appended, and the engine still takes work
            // (the log's own refusal used to stop it: "appending to the log failed").
            #expect(try herald.append(.appCreated(appID: testID(5), name: "third")) == 3)
            try herald.close()
        }
    }

    /// The import validator's default limit is the limit of the writer a data directory opens.
    @Test func validatorDefaultIsTheWritersLimit() async throws {
        try await withTemporaryDirectory { path in
            let writer = try DataDirectory(path: path).openWriter()
            #expect(writer.recordBytesMax == RecordBinaryCodec.recordBytesMaxDefault)
            #expect(writer.recordBytesMax == 16_777_216)
            try writer.close()
        }
    }
}

/// A temporary directory for synchronous tests, removed afterwards.
private func withTemporaryDirectorySync(_ body: (String) throws -> Void) throws {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("herald-test-\(UUID().uuidString.lowercased())").path
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    try body(path)
}
