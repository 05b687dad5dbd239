import Foundation
import Testing

/// README's operator example ("Acting on it: redrive, and what if") runs as it is: the shell
/// block between its markers, with `herald` on PATH. Each command must succeed, and the
/// outputs must tell the story the README tells.
@Suite struct OperatorExampleTests {
    @Test func theReadmeRedriveExampleRuns() async throws {
        guard heraldIsBuilt() else { return }
        let readme = try String(contentsOfFile: packageRoot + "/README.md", encoding: .utf8)
        guard let begin = readme.range(of: "<!-- operator example: begin -->\n```sh\n"),
              let end = readme.range(of: "```\n<!-- operator example: end -->", range: begin.upperBound..<readme.endIndex) else {
            Issue.record("README.md has no operator example between its markers")
            return
        }
        let script = "set -eu\n" + readme[begin.upperBound..<end.lowerBound]
        let bin = URL(fileURLWithPath: heraldBinary).deletingLastPathComponent().path
        // Its `mktemp -d` lands in a directory this test removes.
        let run = try await withTemporaryDirectory { tmp in
            try await runProgram("/bin/sh", ["-c", script], environment: ["PATH": bin + ":/usr/bin:/bin", "TMPDIR": tmp])
        }
        #expect(run.status == 0, "the example failed: \(run.stderr)")
        let out = run.stdout
        // The first explain: two failed attempts, dead.
        #expect(out.contains("dead       at position 7"), "\(out)")
        // The what-if: with five attempts the delivery would still be pending (its attempts fit).
        #expect(out.contains(#""status":"pending","attempts":2"#), "\(out)")
        #expect(out.contains("0 unchanged, 0 only recorded, 0 only what-if, 1 changed; 0 recorded records skipped"), "\(out)")
        // The dry run lists the delivery; the redrive says what it appended.
        #expect(run.stderr.contains("dry run: 1 deliveries would be redriven (1 record(s)); nothing was appended"), "\(run.stderr)")
        #expect(run.stderr.contains("redriven 1 deliveries in 1 record(s) at positions 8…8"), "\(run.stderr)")
        // The second explain: the redrive, the third attempt, success.
        #expect(out.contains(#"redriven   at position 8"#) && out.contains(#"reason "smtp is back": due at"#), "\(out)")
        #expect(out.contains("  attempt 3  position 9  ts "), "\(out)")
        #expect(out.hasSuffix("  status     succeeded after 3 attempt(s)\n"), "\(out)")
    }
}
