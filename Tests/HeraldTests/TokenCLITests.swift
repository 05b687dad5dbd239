import Foundation
import Testing

/// `herald token create|list|revoke`: a token for an admin user of the log, shown once; the
/// list shows grants and never a secret; a revoked token is gone; bad ids are errors (exit 1)
/// that change nothing.
@Suite struct TokenCLITests {
    @Test func tokensAreCreatedListedAndRevoked() async throws {
        guard heraldIsBuilt() else { return }
        try await withTemporaryDirectory { path in
            let data = path + "/data"
            let admin = "a0000000-0000-4000-8000-000000000001", app = "b0000000-0000-4000-8000-000000000001"
            try """
            {"type":"admin_user.created","admin_user_id":"\(admin)","email":"ops@example.com"}
            {"type":"app.created","app_id":"\(app)","name":"shop"}

            """.write(toFile: path + "/in.jsonl", atomically: true, encoding: .utf8)
            #expect(try await runProgram(heraldBinary, ["import", "--data", data, path + "/in.jsonl"]).status == 0)
            // A read of a missing data directory creates nothing.
            let missing = try await runProgram(heraldBinary, ["token", "list", "--data", path + "/nope"])
            #expect(missing.status == 1 && !FileManager.default.fileExists(atPath: path + "/nope"), "\(missing.stderr)")
            let created = try await runProgram(heraldBinary, ["token", "create", "--data", data, "--admin", admin, "--app", app, "--read-only"])
            #expect(created.status == 0, "\(created.stderr)")
            let token = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let parts = token.split(separator: "_")
            #expect(parts.count == 3 && parts[0] == "hrd" && parts[1].count == 12 && parts[2].count == 64, "\(token)")
            let id = parts.count == 3 ? String(parts[1]) : ""
            let listed = try await runProgram(heraldBinary, ["token", "list", "--data", data])
            #expect(listed.status == 0 && listed.stdout.contains(id) && listed.stdout.contains(app) && listed.stdout.contains("read-only"))
            #expect(parts.count == 3 && !listed.stdout.contains(String(parts[2])), "the list shows the secret")
            #expect(listed.stdout.hasSuffix("1 token(s)\n"), "\(listed.stdout)")
            // Unknown ids: exit 1, nothing created.
            for arguments in [["--admin", "a0000000-0000-4000-8000-0000000000ff"], ["--admin", admin, "--app", "b0000000-0000-4000-8000-0000000000ff"]] {
                let refused = try await runProgram(heraldBinary, ["token", "create", "--data", data] + arguments)
                #expect(refused.status == 1 && refused.stdout.isEmpty && refused.stderr.contains("is not an"), "\(refused.stderr)")
            }
            let revoked = try await runProgram(heraldBinary, ["token", "revoke", "--data", data, id])
            #expect(revoked.status == 0 && revoked.stdout == "revoked token \(id)\n")
            #expect(try await runProgram(heraldBinary, ["token", "revoke", "--data", data, id]).status == 1)
            #expect(try await runProgram(heraldBinary, ["token", "list", "--data", data]).stdout.hasSuffix("0 token(s)\n"))
        }
    }
}
