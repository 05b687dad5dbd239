import Glibc
import Herald
import HeraldTesting
import Testing

/// The repository's `fixtures/` directory, found from this file.
private let fixturesDirectory: String = {
    var path = Substring(#filePath)
    for _ in 0..<3 {
        if let slash = path.lastIndex(of: "/") { path = path[..<slash] }
    }
    return String(path) + "/fixtures"
}()

/// Runs a shell command (cp -R for temp copies; the tests stay Foundation-free).
private func sh(_ command: String) -> Int32 {
    system(command)
}

@Suite struct FixturesTests {
    @Test func everyFixtureInTheRepositoryPasses() async {
        let results = await expectFixturesPass(in: fixturesDirectory)
        #expect(results.count >= 25)
        #expect(FixtureResult.summary(results) == "\(results.count) passed, 0 failed")
    }

    @Test func aChangedExpectedByteFailsWithADiff() async throws {
        let temporary = try makeTemporaryDirectory()
        defer { _ = sh("rm -rf '\(temporary)'") }
        #expect(sh("cp -R '\(fixturesDirectory)/rules/last-error-kept-after-success' '\(temporary)/fixture'") == 0)
        let file = temporary + "/fixture/expected/deliveries.jsonl"
        // "second" → "secend": one byte changed.
        #expect(sh("sed -i 's/\"last_error\":\"second\"/\"last_error\":\"secend\"/' '\(file)'") == 0)
        let results = await FixtureRunner.run(directory: temporary + "/fixture")
        #expect(results.count == 1)
        let result = try #require(results.first)
        #expect(!result.passed)
        let mismatch = try #require(result.mismatches.first)
        #expect(mismatch.file == "expected/deliveries.jsonl")
        #expect(mismatch.diff.contains("-{\"source_position\":6"))
        #expect(mismatch.diff.contains("\"last_error\":\"secend\""))
        #expect(mismatch.diff.contains("+{\"source_position\":6"))
        #expect(mismatch.diff.contains("\"last_error\":\"second\""))
        #expect(mismatch.diff.contains("@@ -1 +1 @@"))
        #expect(FixtureResult.summary(results) == "0 passed, 1 failed")

        // --update repairs it and says which file changed.
        let updated = await FixtureRunner.run(directory: temporary + "/fixture", update: true)
        #expect(updated.first?.updatedFiles == ["expected/deliveries.jsonl"])
        let again = await FixtureRunner.run(directory: temporary + "/fixture")
        #expect(again.first?.passed == true)
    }

    @Test func aMalformedScenarioNamesFileAndLine() async throws {
        let temporary = try makeTemporaryDirectory()
        defer { _ = sh("rm -rf '\(temporary)'") }
        #expect(sh("mkdir -p '\(temporary)/bad' && printf '{\"settings\":{\"start_ms\":0,\"run_until_ms\":10}}\\n{\"script\":\"nope\"}\\n' > '\(temporary)/bad/scenario.jsonl'") == 0)
        let result = try #require(await FixtureRunner.run(directory: temporary + "/bad").first)
        #expect(!result.passed)
        #expect(result.error?.contains("scenario.jsonl:2: script: 'nope' is not a UUID") == true)
    }

    @Test func aRecordedDeliveryIsASelfContainedFixture() async throws {
        let temporary = try makeTemporaryDirectory()
        defer { _ = sh("rm -rf '\(temporary)'") }
        // A real data directory: the dead-letter-chain log.
        let data = DataDirectory(path: temporary + "/data")
        _ = try data.importLines(from: fixturesDirectory + "/logs/dead-letter-chain/log.jsonl")
        // 14:…2 is a dead-letter delivery: its chain (8:…1 and its attempts) must come along.
        let slice = try #require(FixtureSlice.delivery("14:d0000000-0000-4000-8000-000000000002"))
        let recorded = try await FixtureRecorder.record(from: data, slice: slice, to: temporary + "/fixture")
        #expect(recorded.result.error == nil)
        // Registry 1…7, the source 8, attempts 9, 11, 14, then the delivery's attempts 15, 16.
        #expect(recorded.positions == [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 14, 15, 16])
        let newPosition = try #require(recorded.newPosition(of: 14))
        #expect(newPosition == 11)

        let own = await FixtureRunner.run(directory: temporary + "/fixture")
        #expect(own.count == 1 && own.allSatisfy(\.passed))

        // Same delivery, same story: status, attempts, errors; only positions renumbered.
        let original = String(decoding: try CanonicalText.deliveries(of: data), as: UTF8.self)
        let originalLine = try #require(original.split(separator: "\n").first { $0.contains("\"source_position\":14,") })
        let fresh = DataDirectory(path: temporary + "/fresh")
        _ = try fresh.importLines(from: temporary + "/fixture/log.jsonl")
        let replayed = String(decoding: try CanonicalText.deliveries(of: fresh), as: UTF8.self)
        let replayedLine = try #require(replayed.split(separator: "\n").first { $0.contains("\"source_position\":11,") })
        let renumbered = originalLine.replacingOccurrences("\"source_position\":14,", "\"source_position\":11,")
            .replacingOccurrences("\"finished_at\":16}", "\"finished_at\":13}")
        #expect(replayedLine == renumbered)
        let explain = temporary + "/fixture/expected/explain/11:d0000000-0000-4000-8000-000000000002.txt"
        #expect(sh("grep -q 'succeeded after 2 attempt' '\(explain)'") == 0)
    }

    /// A what-if asked of a log that does not import is an error naming the file, not a
    /// fixture that passes without running it.
    @Test func aWhatIfOfARejectedLogIsAnError() async throws {
        let temporary = try makeTemporaryDirectory()
        defer { _ = sh("rm -rf '\(temporary)'") }
        let fixture = temporary + "/fixture"
        #expect(sh("cp -R '\(fixturesDirectory)/validation/operator-unknown-admin' '\(fixture)'") == 0)
        #expect(sh("printf -- '--disable d0000000-0000-4000-8000-000000000001\\n' > '\(fixture)/whatif.txt'") == 0)
        let results = await FixtureRunner.run(directory: fixture)
        #expect(results.count == 1 && results.allSatisfy { !$0.passed })
        #expect(results.first?.error?.contains("whatif.txt") == true, "\(results.first?.error ?? "no error")")
    }

    /// A redriven delivery's recorded fixture carries its redrive (renumbered) and the records
    /// before it, and replays to the same story; a delivery of a cancelled trigger's other
    /// deliveries is not dragged along.
    @Test func aRecordedRedrivenDeliveryKeepsItsRedrive() async throws {
        let temporary = try makeTemporaryDirectory()
        defer { _ = sh("rm -rf '\(temporary)'") }
        let data = DataDirectory(path: temporary + "/data")
        _ = try data.importLines(from: fixturesDirectory + "/rules/operator-redrive-fresh-budget-and-second-death/log.jsonl")
        let slice = try #require(FixtureSlice.delivery("7:d0000000-0000-4000-8000-000000000001"))
        let recorded = try await FixtureRecorder.record(from: data, slice: slice, to: temporary + "/fixture")
        #expect(recorded.result.error == nil)
        let log = try String(contentsOfFile: temporary + "/fixture/log.jsonl", encoding: .utf8)
        #expect(log.contains(#""type":"delivery.redriven","#))
        let own = await FixtureRunner.run(directory: temporary + "/fixture")
        #expect(own.count == 1 && own.allSatisfy(\.passed))
        let explain = temporary + "/fixture/expected/explain/" + "\(try #require(recorded.newPosition(of: 7))):d0000000-0000-4000-8000-000000000001.txt"
        #expect(sh("grep -q 'redriven   at position' '\(explain)' && grep -q 'dead after 4 attempt' '\(explain)'") == 0)
    }
}

/// Writes refuse symbolic links: `fixtures --update` and `record --out` write nothing through
/// one, whether it is the file, a directory on the way or the fixture directory itself.
@Suite struct FixtureWritesRefuseSymlinksTests {
    /// Copies a fixture, breaks both of its golden files and returns the fixture's path.
    private func brokenFixture(in temporary: String) -> String {
        let fixture = temporary + "/fixture"
        #expect(sh("cp -R '\(fixturesDirectory)/rules/last-error-kept-after-success' '\(fixture)'") == 0)
        #expect(sh("sed -i 's/\"last_error\":\"second\"/\"last_error\":\"secend\"/' '\(fixture)/expected/deliveries.jsonl'") == 0)
        #expect(sh("printf 'victim\\n' > '\(temporary)/victim.txt'") == 0)
        return fixture
    }

    @Test func updateRefusesASymlinkedGoldenFile() async throws {
        let temporary = try makeTemporaryDirectory()
        defer { _ = sh("rm -rf '\(temporary)'") }
        let fixture = brokenFixture(in: temporary)
        #expect(sh("rm '\(fixture)/expected/triggers.jsonl' && ln -s ../../victim.txt '\(fixture)/expected/triggers.jsonl'") == 0)
        let result = try #require(await FixtureRunner.run(directory: fixture, update: true).first)
        #expect(!result.passed)
        #expect(result.error == "\(fixture)/expected/triggers.jsonl: is a symbolic link; refusing to write through it (replace it with a real file or directory)")
        #expect(result.updatedFiles.isEmpty)
        // Nothing was written: not the link's target, not the other (plain) golden file.
        #expect(sh("grep -qx victim '\(temporary)/victim.txt'") == 0)
        #expect(sh("grep -q secend '\(fixture)/expected/deliveries.jsonl'") == 0)
    }

    @Test func updateRefusesASymlinkedDirectory() async throws {
        let temporary = try makeTemporaryDirectory()
        defer { _ = sh("rm -rf '\(temporary)'") }
        let fixture = brokenFixture(in: temporary)
        #expect(sh("mv '\(fixture)/expected' '\(temporary)/elsewhere' && ln -s ../elsewhere '\(fixture)/expected'") == 0)
        let result = try #require(await FixtureRunner.run(directory: fixture, update: true).first)
        #expect(!result.passed)
        #expect(result.error?.hasPrefix("\(fixture)/expected: is a symbolic link; refusing to write through it") == true)
        #expect(sh("grep -q secend '\(temporary)/elsewhere/deliveries.jsonl'") == 0, "the directory behind the link is untouched")
    }

    @Test func recordRefusesASymlinkedOutDirectory() async throws {
        let temporary = try makeTemporaryDirectory()
        defer { _ = sh("rm -rf '\(temporary)'") }
        let data = DataDirectory(path: temporary + "/data")
        _ = try data.importLines(from: fixturesDirectory + "/logs/dead-letter-chain/log.jsonl")
        #expect(sh("mkdir '\(temporary)/target' && ln -s target '\(temporary)/out'") == 0)
        await #expect(throws: FixtureError(path: temporary + "/out",
                                           reason: "is a symbolic link; refusing to write through it (replace it with a real file or directory)")) {
            _ = try await FixtureRecorder.record(from: data, slice: .range(from: 1, to: 8), to: temporary + "/out")
        }
        #expect(sh("[ -z \"$(ls -A '\(temporary)/target')\" ]") == 0, "nothing was written behind the link")
    }

    @Test func recordRefusesASymlinkInsideTheOutDirectory() async throws {
        let temporary = try makeTemporaryDirectory()
        defer { _ = sh("rm -rf '\(temporary)'") }
        let data = DataDirectory(path: temporary + "/data")
        _ = try data.importLines(from: fixturesDirectory + "/logs/dead-letter-chain/log.jsonl")
        #expect(sh("mkdir -p '\(temporary)/out' '\(temporary)/elsewhere' && ln -s ../elsewhere '\(temporary)/out/expected'") == 0)
        await #expect(throws: FixtureError(path: temporary + "/out/expected",
                                           reason: "is a symbolic link; refusing to write through it (replace it with a real file or directory)")) {
            _ = try await FixtureRecorder.record(from: data, slice: .range(from: 1, to: 8), to: temporary + "/out")
        }
        #expect(sh("[ ! -e '\(temporary)/out/log.jsonl' ]") == 0, "the log was not written either")
        #expect(sh("[ -z \"$(ls -A '\(temporary)/elsewhere')\" ]") == 0)
    }
}

private func makeTemporaryDirectory() throws -> String {
    var template = Array("/tmp/herald-fixtures-test-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { buffer in buffer.baseAddress.map { mkdtemp($0) != nil } ?? false }
    try #require(made)
    return String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

extension Substring {
    /// Replaces every occurrence (no Foundation in these tests).
    fileprivate func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        let parts = String(self).split(separator: target, omittingEmptySubsequences: false)
        return parts.joined(separator: replacement)
    }
}

extension String {
    fileprivate func replacingOccurrences(_ target: String, _ replacement: String) -> String {
        self[...].replacingOccurrences(target, replacement)
    }
}
