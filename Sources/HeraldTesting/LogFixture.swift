import Herald
import HeraldCore

/// Runs a log fixture: imports `log.jsonl` into a fresh data directory and derives its outputs.
enum LogFixture {
    static let deliveriesFile = "expected/deliveries.jsonl"
    static let triggersFile = "expected/triggers.jsonl"
    static let errorFile = "expected/error.txt"
    static let explainDirectory = "expected/explain"
    /// One what-if per line (`--set TRIGGER_ID.FIELD=VALUE` / `--disable TRIGGER_ID` words);
    /// line N's `herald whatif` output is `expected/whatif/N.txt`.
    static let whatIfFile = "whatif.txt"
    static let whatIfDirectory = "expected/whatif"
    /// One position P: the log is compacted before P (`herald compact --before P`) after the
    /// import, and every expectation is of the compacted log (docs/SEMANTICS.md §9).
    static let compactFile = "compact.txt"

    static func outputs(of fixture: Fixture, in temporary: String) async throws -> FixtureRunner.Outputs {
        let data = DataDirectory(path: temporary + "/data")
        let input = fixture.path + "/" + Fixture.logFile
        let explainRequests = try explainFiles(of: fixture)
        var outputs = FixtureRunner.Outputs()
        do {
            // A fixed clock: lines without ts get the previous line's ts, on every machine.
            _ = try data.importLines(from: input, clock: VirtualClock(startMs: 0))
        } catch HeraldError.invalidInput(_, let errors, let more) {
            // The source is named by its file name, so the text does not depend on where the
            // fixture lives.
            var text = HeraldError.invalidInput(source: Fixture.logFile, errors: errors, more: more).description + "\n"
            let appended = try data.openReader().lastPosition
            if appended != 0 {
                text += "BUG: the rejected import appended \(appended) record(s)\n"
            }
            outputs.files.append((errorFile, Array(text.utf8)))
            outputs.files.append((deliveriesFile, nil))
            outputs.files.append((triggersFile, nil))
            if let first = explainRequests.first {
                throw FixtureError(path: fixture.path + "/" + explainDirectory + "/" + first,
                                   reason: "explanations need a log that imports; this one is rejected:\n\(text)")
            }
            if FileIO.exists(fixture.path + "/" + whatIfFile) {
                throw FixtureError(path: fixture.path + "/" + whatIfFile,
                                   reason: "what-if needs a log that imports; this one is rejected:\n\(text)")
            }
            return outputs
        }
        if let position = try compactionPoint(of: fixture) {
            let last = try data.openReader().lastPosition
            guard position >= 2, position <= last + 1 else {
                throw FixtureError(path: fixture.path + "/" + compactFile, reason: "position \(position) is outside 2…\(last + 1) (the log's last position + 1)")
            }
            if FileIO.exists(fixture.path + "/" + whatIfFile) {
                throw FixtureError(path: fixture.path + "/" + whatIfFile, reason: "what-if needs the log from position 1; this fixture compacts it (\(compactFile))")
            }
            _ = try data.compact(before: position, archiveDirectory: nil, recompressionLevel: 9)
        }
        outputs.files.append((errorFile, nil))
        outputs.files.append((deliveriesFile, try CanonicalText.deliveries(of: data)))
        outputs.files.append((triggersFile, try CanonicalText.triggers(of: data)))
        for name in explainRequests {
            outputs.files.append((explainDirectory + "/" + name,
                                  try explain(name, in: data, file: fixture.path + "/" + explainDirectory + "/" + name)))
        }
        let whatIfPath = fixture.path + "/" + whatIfFile
        if FileIO.exists(whatIfPath) {
            let lines = String(decoding: try FileIO.read(whatIfPath), as: UTF8.self).split(separator: "\n")
            let reader = try data.openReader()
            for (index, line) in lines.enumerated() where !line.trimmingCharacters(in: .whitespaces).isEmpty {
                let words = line.split(separator: " ").map(String.init)
                let text: String
                do {
                    text = try reader.whatIf(try TriggerOverride.parse(arguments: words)).diffText
                } catch let error as WhatIfError {
                    text = "usage error: \(error)\n"
                }
                outputs.files.append((whatIfDirectory + "/\(index + 1).txt", Array(text.utf8)))
            }
        }
        return outputs
    }

    /// The position `compact.txt` names, if the fixture has one.
    static func compactionPoint(of fixture: Fixture) throws(FixtureError) -> UInt64? {
        let path = fixture.path + "/" + compactFile
        guard FileIO.exists(path) else { return nil }
        let text = String(decoding: try FileIO.read(path), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let position = UInt64(text) else {
            throw FixtureError(path: path, reason: "line 1: '\(text)' is not a position (one unsigned integer)")
        }
        return position
    }

    /// The explanation files a fixture asks for (their names say what to explain).
    static func explainFiles(of fixture: Fixture) throws(FixtureError) -> [String] {
        let directory = fixture.path + "/" + explainDirectory
        guard FileIO.isDirectory(directory) else { return [] }
        return try FileIO.list(directory).filter { !$0.hasPrefix(".") }
    }

    /// `<P>.txt` → `herald explain P`; `<P>:<TRIGGER>.txt` / `.json` → the delivery's timeline.
    static func explain(_ name: String, in data: DataDirectory, file: String) throws -> [UInt8] {
        let stem: Substring
        let json: Bool
        if name.hasSuffix(".txt") {
            stem = name.dropLast(4); json = false
        } else if name.hasSuffix(".json") {
            stem = name.dropLast(5); json = true
        } else {
            throw FixtureError(path: file, reason: "an explanation file is named <P>.txt, <P>:<TRIGGER_ID>.txt or <P>:<TRIGGER_ID>.json")
        }
        if let position = UInt64(stem) {
            guard !json else {
                throw FixtureError(path: file, reason: "--format json exists for delivery timelines only; name it \(stem).txt")
            }
            let last = try data.openReader().lastPosition
            guard position >= 1, position <= last else {
                throw FixtureError(path: file, reason: "position \(position) is outside the log (1…\(last))")
            }
            return Array(ExplanationText.render(try data.explain(position: position)).utf8)
        }
        guard let id = DeliveryID(String(stem)) else {
            throw FixtureError(path: file, reason: "'\(stem)' is neither a position nor a delivery P:TRIGGER_ID")
        }
        let timeline = try data.timeline(of: id)
        return Array((json ? ExplanationText.json(timeline) : ExplanationText.render(timeline)).utf8)
    }
}
