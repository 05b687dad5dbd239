/// The outcome of running one fixture.
public struct FixtureResult: Sendable {
    /// One golden file that did not match (or was rewritten by an update).
    public struct Mismatch: Sendable {
        /// The file, relative to the fixture (`expected/deliveries.jsonl`).
        public var file: String
        /// A unified diff from the expected bytes to the actual ones (empty when the
        /// expected file is absent and nothing was produced).
        public var diff: String
        /// A note when the file is missing or stale ("expected file is missing").
        public var note: String?
    }

    /// The fixture that ran.
    public var fixture: Fixture
    /// The fixture's name (its path under the directory it was found in).
    public var name: String { fixture.name }
    /// True when every golden file matched (after an update: when the fixture could run).
    public var passed: Bool
    /// Golden files that differ from what the fixture produced (before any update).
    public var mismatches: [Mismatch]
    /// Set when the fixture could not run at all (malformed input, I/O error).
    public var error: String?
    /// Files written or removed by an update (relative to the fixture).
    public var updatedFiles: [String]

    /// A human-readable report: `PASS name`, or `FAIL name` followed by each file's diff.
    public var report: String {
        var text = "\(passed ? "PASS" : "FAIL") \(name)\n"
        if let error { text += "  error: \(error)\n" }
        for mismatch in mismatches where !passed {
            if let note = mismatch.note { text += "  \(mismatch.file): \(note)\n" }
            text += mismatch.diff
        }
        for file in updatedFiles { text += "  updated \(file)\n" }
        return text
    }
}

extension FixtureResult {
    /// The summary line of a run, exactly `N passed, M failed`.
    public static func summary(_ results: [FixtureResult]) -> String {
        let passed = results.filter(\.passed).count
        return "\(passed) passed, \(results.count - passed) failed"
    }
}
