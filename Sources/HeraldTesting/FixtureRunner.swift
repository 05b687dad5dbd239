import Herald
import HeraldCore

/// Runs regression fixtures (fixtures/README.md): each in its own temporary data directory,
/// always removed afterwards; outputs are compared byte for byte with the golden files.
///
/// ```swift
/// let results = await FixtureRunner.run(directory: "fixtures")
/// for result in results where !result.passed { print(result.report) }
/// print(FixtureResult.summary(results))   // "27 passed, 0 failed"
/// ```
public enum FixtureRunner {
    /// Runs every fixture under each of `directories` whose name contains `filter`.
    ///
    /// - Parameters:
    ///   - directories: directories to search (each may itself be one fixture).
    ///   - update: rewrite the golden files with what the fixtures produce instead of comparing.
    ///   - filter: only fixtures whose name contains this text (bytewise).
    /// - Returns: one result per fixture, in discovery order. A directory that cannot be
    ///   searched yields one failed result carrying the error.
    public static func run(directories: [String], update: Bool = false, filter: String? = nil) async -> [FixtureResult] {
        var results: [FixtureResult] = []
        for directory in directories {
            results += await run(directory: directory, update: update, filter: filter)
        }
        return results
    }

    /// Runs every fixture under `directory` (see ``run(directories:update:filter:)``).
    public static func run(directory: String, update: Bool = false, filter: String? = nil) async -> [FixtureResult] {
        let fixtures: [Fixture]
        do {
            fixtures = try Fixture.discover(in: directory)
        } catch {
            return [FixtureResult(fixture: Fixture(name: directory, path: directory, kind: .log), passed: false,
                                  mismatches: [], error: error.description, updatedFiles: [])]
        }
        var results: [FixtureResult] = []
        for fixture in fixtures {
            if let filter, !filter.isEmpty, !contains(fixture.name, filter) { continue }
            results.append(await run(fixture, update: update))
        }
        return results
    }

    /// Runs one fixture.
    public static func run(_ fixture: Fixture, update: Bool = false) async -> FixtureResult {
        do {
            let outputs = try await FileIO.withTemporaryDirectory { temporary in
                switch fixture.kind {
                case .log: try await LogFixture.outputs(of: fixture, in: temporary)
                case .scenario: try await ScenarioFixture.outputs(of: fixture, in: temporary)
                }
            }
            return try compare(fixture, outputs, update: update)
        } catch {
            return FixtureResult(fixture: fixture, passed: false, mismatches: [], error: describe(error),
                                 updatedFiles: [])
        }
    }

    /// What a fixture produced: each file relative to the fixture, with its bytes (`nil` =
    /// the file must not exist), in a fixed order.
    struct Outputs {
        var files: [(path: String, bytes: [UInt8]?)] = []
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? FixtureError { return error.description }
        if let error = error as? HeraldError { return error.description }
        if let error = error as? RecordError { return error.description }
        return String(describing: error)
    }

    private static func compare(_ fixture: Fixture, _ outputs: Outputs, update: Bool) throws -> FixtureResult {
        var mismatches: [FixtureResult.Mismatch] = []
        var changes: [(file: String, bytes: [UInt8]?)] = []
        var updated: [String] = []
        for (file, actual) in outputs.files {
            let path = fixture.path + "/" + file
            let exists = FileIO.exists(path)
            let expected: [UInt8]? = exists ? try FileIO.read(path) : nil
            if expected == actual { continue }
            let note: String?
            switch (expected, actual) {
            case (nil, _): note = "expected file is missing"
            case (_, nil): note = "this file is not produced by the fixture (stale expectation)"
            default: note = nil
            }
            let diff = UnifiedDiff.render(expected: expected ?? [], actual: actual ?? [],
                                          expectedName: "\(fixture.name)/\(file)",
                                          actualName: "\(fixture.name)/\(file) (actual)")
            mismatches.append(FixtureResult.Mismatch(file: file, diff: diff, note: note))
            if update { changes.append((file, actual)) }
        }
        // Every file is checked before the first is written: a symbolic link anywhere on the
        // way, or a path outside the fixture, fails the update with nothing written.
        for (file, _) in changes { try FileIO.checkWritable(file, inside: fixture.path) }
        for (file, actual) in changes {
            if let actual { try FileIO.write(actual, to: file, inside: fixture.path) } else { try FileIO.remove(file, inside: fixture.path) }
            updated.append(file)
        }
        return FixtureResult(fixture: fixture, passed: update || mismatches.isEmpty, mismatches: mismatches,
                             error: nil, updatedFiles: updated)
    }

    private static func contains(_ text: String, _ part: String) -> Bool {
        let haystack = Array(text.utf8), needle = Array(part.utf8)
        guard needle.count <= haystack.count else { return false }
        for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return true
        }
        return false
    }
}

/// Canonical derived outputs of a data directory, as the CLI prints them.
public enum CanonicalText {
    /// `herald deliveries --format jsonl` (docs/SEMANTICS.md §3.4), byte for byte.
    public static func deliveries(of directory: DataDirectory, at position: UInt64? = nil) throws -> [UInt8] {
        var out = JSONOutput()
        for delivery in try directory.deliveries(at: position) {
            CanonicalOutput.append(delivery, to: &out)
            out.newline()
        }
        return out.bytes
    }

    /// `herald triggers --format jsonl`, byte for byte.
    public static func triggers(of directory: DataDirectory, at position: UInt64? = nil) throws -> [UInt8] {
        var out = JSONOutput()
        for trigger in try directory.replay(through: position).registry.liveTriggers(app: nil) {
            CanonicalOutput.append(trigger, to: &out)
            out.newline()
        }
        return out.bytes
    }

    /// `herald dump`: every record as one JSON line.
    public static func dump(of directory: DataDirectory) throws -> [UInt8] {
        var out = JSONOutput(capacity: 4096)
        let encoder = RecordJSONEncoder()
        try directory.openReader().forEach { _, record in
            encoder.append(record, to: &out)
            out.newline()
            return true
        }
        return out.bytes
    }
}
