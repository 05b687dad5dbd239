/// A regression fixture: a directory holding an input and its golden expectations
/// (fixtures/README.md describes both kinds).
public struct Fixture: Sendable, Equatable {
    /// What the fixture runs.
    public enum Kind: String, Sendable, Equatable {
        /// `log.jsonl` is imported into a fresh data directory and the derived outputs are
        /// compared: `expected/deliveries.jsonl`, `expected/triggers.jsonl`, `expected/explain/*`,
        /// or, when the import must be rejected, `expected/error.txt`.
        case log
        /// `scenario.jsonl` drives the live engine in virtual time with scripted script
        /// outcomes; `expected/log.jsonl` and `expected/deliveries.jsonl` are compared.
        case scenario
    }

    /// The input file of a log fixture.
    public static let logFile = "log.jsonl"
    /// The input file of a scenario fixture.
    public static let scenarioFile = "scenario.jsonl"
    /// The directory of golden files inside a fixture.
    public static let expectedDirectory = "expected"

    /// The fixture's path relative to the directory it was found under (e.g. `rules/kv-glob-prefix`).
    public var name: String
    /// The fixture directory.
    public var path: String
    public var kind: Kind

    /// Creates a fixture description (``discover(in:)`` finds them for you).
    public init(name: String, path: String, kind: Kind) {
        self.name = name
        self.path = path
        self.kind = kind
    }

    /// The fixture at `path`, if that directory is one (holds `log.jsonl` or `scenario.jsonl`).
    public static func at(_ path: String, name: String? = nil) -> Fixture? {
        let fixtureName = name ?? FileIO.baseName(path)
        if FileIO.exists(path + "/" + scenarioFile) { return Fixture(name: fixtureName, path: path, kind: .scenario) }
        if FileIO.exists(path + "/" + logFile) { return Fixture(name: fixtureName, path: path, kind: .log) }
        return nil
    }

    /// Every fixture under `directory` (recursively; a fixture directory is not searched
    /// further), sorted by name bytewise, so runs are deterministic. `directory` may itself be a fixture.
    ///
    /// - Throws: ``FixtureError`` when `directory` does not exist or cannot be listed.
    public static func discover(in directory: String) throws(FixtureError) -> [Fixture] {
        guard FileIO.isDirectory(directory) else {
            throw FixtureError(path: directory, reason: "not a directory")
        }
        if let fixture = at(directory) { return [fixture] }
        var found: [Fixture] = []
        try walk(directory, relative: "", into: &found, depth: 0)
        return found
    }

    private static func walk(_ path: String, relative: String, into found: inout [Fixture], depth: Int) throws(FixtureError) {
        guard depth < 32 else { throw FixtureError(path: path, reason: "directories nested more than 32 deep") }
        for entry in try FileIO.list(path) {
            let child = path + "/" + entry
            guard entry != expectedDirectory, !entry.hasPrefix("."), FileIO.isDirectory(child) else { continue }
            let name = relative.isEmpty ? entry : relative + "/" + entry
            if let fixture = at(child, name: name) {
                found.append(fixture)
            } else {
                try walk(child, relative: name, into: &found, depth: depth + 1)
            }
        }
    }
}
