#if canImport(Testing)
import Testing

/// Runs every fixture under `directory` and records one Swift Testing issue per failing
/// fixture, carrying its report (the unified diff of each mismatching file).
///
/// ```swift
/// @Test func fixtures() async {
///     await expectFixturesPass(in: "/path/to/fixtures")
/// }
/// ```
/// - Returns: the results, for further checks.
@discardableResult
public func expectFixturesPass(in directory: String, filter: String? = nil,
                               sourceLocation: SourceLocation = #_sourceLocation) async -> [FixtureResult] {
    let results = await FixtureRunner.run(directory: directory, filter: filter)
    if results.isEmpty {
        Issue.record("no fixtures found under \(directory)", sourceLocation: sourceLocation)
    }
    for result in results where !result.passed {
        Issue.record(Comment(rawValue: result.report), sourceLocation: sourceLocation)
    }
    return results
}
#endif
