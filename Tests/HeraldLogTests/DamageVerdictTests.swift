import Foundation
import Testing
@testable import HeraldLog

/// Every kind of damage, on real files, with and without the block indexes: the writer, a
/// standalone reader reading everything, and `LogReader.verify` reach the same verdict, and
/// none of them answers with a different log than the undamaged one unless it reports a torn
/// tail (the issue's "no silent damage" rule).
@Suite struct DamageVerdictTests {
    /// What one party made of a damaged log.
    enum Verdict: Equatable, CustomStringConvertible {
        /// Refused (an error naming the damage).
        case refused
        /// Accepted: the log's last position, and whether a damaged tail was reported.
        case log(last: UInt64, tailReported: Bool)

        var description: String {
            switch self {
            case .refused: "refused"
            case let .log(last, reported): "log through \(last)\(reported ? " (torn tail reported)" : "")"
            }
        }
    }

    static let config = LogConfiguration(segmentBytesMax: 1_200, blockRawBytesMax: 400)

    /// A log of several segments: single-block appends and multi-block ones (transactions),
    /// closed cleanly. Returns every record.
    static func build(_ dir: String) throws -> [ReadRecord] {
        let writer = try LogWriter(directory: dir, configuration: config)
        var n = 0
        for size in [3, 1, 14, 2, 5, 1, 9, 2, 3, 12, 1, 4] {
            try writer.append(entries(n..<(n + size), bytes: 60))
            n += size
        }
        try writer.close()
        return try readAll(directory: dir)
    }

    /// The three verdicts on `dir`: verify, a reader reading every record (checked against
    /// `original`), then the writer (which may cut, so it goes last).
    static func verdicts(_ dir: String, original: [ReadRecord], context: String) -> (verify: Verdict, reader: Verdict, writer: Verdict) {
        let verify: Verdict
        do {
            let result = try LogReader.verify(directory: dir)
            verify = result.acknowledgedLoss != nil ? .refused : .log(last: result.lastPosition, tailReported: result.damage != nil)
        } catch {
            verify = .refused
        }
        let reader: Verdict
        do {
            let logReader = try LogReader(directory: dir)
            let records = try readAll(logReader)
            // Whatever a reader accepts is exactly a prefix of the undamaged log.
            #expect(records == Array(original.prefix(records.count)), "\(context): the reader returned records the undamaged log does not hold")
            reader = .log(last: UInt64(records.count), tailReported: logReader.tailDamage != nil)
        } catch {
            reader = .refused
        }
        let writer: Verdict
        do {
            let logWriter = try LogWriter(directory: dir, configuration: config)
            writer = .log(last: logWriter.lastPosition, tailReported: logWriter.recoveryReport.truncation != nil)
            try? logWriter.close()
        } catch {
            writer = .refused
        }
        return (verify, reader, writer)
    }

    /// One damaged copy of the log.
    struct Damage {
        var name: String
        var apply: (_ dir: String, _ rng: inout SplitMix64) throws -> Void
    }

    static func damages(segments: [String]) -> [Damage] {
        var list: [Damage] = []
        for segment in segments {
            list.append(Damage(name: "bit flip in \(segment)") { dir, rng in
                var bytes = try readFile(dir + "/" + segment)
                guard !bytes.isEmpty else { return }
                let at = Int(rng.next() % UInt64(bytes.count))
                bytes[at] ^= UInt8(1 << (rng.next() % 8))
                try writeFile(dir + "/" + segment, bytes)
            })
            list.append(Damage(name: "zeroed 512-byte page in \(segment)") { dir, rng in
                var bytes = try readFile(dir + "/" + segment)
                guard !bytes.isEmpty else { return }
                let page = Int(rng.next() % UInt64((bytes.count + 511) / 512)) * 512
                for i in page..<min(bytes.count, page + 512) { bytes[i] = 0 }
                try writeFile(dir + "/" + segment, bytes)
            })
            list.append(Damage(name: "truncation of \(segment)") { dir, rng in
                let bytes = try readFile(dir + "/" + segment)
                guard !bytes.isEmpty else { return }
                try writeFile(dir + "/" + segment, Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count)))))
            })
            list.append(Damage(name: "swapped blocks in \(segment)") { dir, rng in
                let bytes = try readFile(dir + "/" + segment)
                let offsets = blockOffsets(bytes) + [bytes.count]
                guard offsets.count >= 3 else { return }
                let i = Int(rng.next() % UInt64(offsets.count - 2))
                let a = Array(bytes[offsets[i]..<offsets[i + 1]]), b = Array(bytes[offsets[i + 1]..<offsets[i + 2]])
                try writeFile(dir + "/" + segment, Array(bytes[0..<offsets[i]]) + b + a + Array(bytes[offsets[i + 2]...]))
            })
            list.append(Damage(name: "junk appended to \(segment)") { dir, rng in
                var bytes = try readFile(dir + "/" + segment)
                for _ in 0..<(1 + rng.next() % 200) { bytes.append(UInt8(truncatingIfNeeded: rng.next())) }
                try writeFile(dir + "/" + segment, bytes)
            })
        }
        list.append(Damage(name: "bit flip in an index") { dir, rng in
            let indexes = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".index") }.sorted()
            guard !indexes.isEmpty else { return }
            let name = indexes[Int(rng.next() % UInt64(indexes.count))]
            var bytes = try readFile(dir + "/" + name)
            guard !bytes.isEmpty else { return }
            let at = Int(rng.next() % UInt64(bytes.count))
            bytes[at] ^= UInt8(1 << (rng.next() % 8))
            try writeFile(dir + "/" + name, bytes)
        })
        return list
    }

    /// Runs every damage `rounds` times, with and without indexes, and checks the verdicts.
    /// `watermark`: rewind the durable watermark to this position first (a crash before the
    /// last appends were synced), nil to keep the clean close's.
    func check(rounds: Int, watermark: ((UInt64) -> UInt64)?, expectTornTails: Bool) throws {
        try withTemporaryDirectory { root in
            let clean = root + "/clean"
            try FileManager.default.createDirectory(atPath: clean, withIntermediateDirectories: true)
            let original = try Self.build(clean)
            let last = UInt64(original.count)
            let segments = try segmentFiles(clean)
            #expect(segments.count >= 3, "the log must span closed segments and an active one")
            var cases = 0, refused = 0, torn = 0, unchanged = 0
            for damage in Self.damages(segments: segments) {
                for withIndex in [true, false] {
                    for round in 0..<rounds {
                        var rng = SplitMix64(seed: UInt64(round * 7919 + (withIndex ? 1 : 0)) &+ UInt64(truncatingIfNeeded: damage.name.utf8.reduce(0) { $0 &* 31 &+ Int($1) }))
                        let dir = root + "/case"
                        try? FileManager.default.removeItem(atPath: dir)
                        try FileManager.default.copyItem(atPath: clean, toPath: dir)
                        if let watermark { try setWatermark(dir, watermark(last)) }
                        if !withIndex {
                            for name in try FileManager.default.contentsOfDirectory(atPath: dir) where name.hasSuffix(".index") {
                                try FileManager.default.removeItem(atPath: dir + "/" + name)
                            }
                        }
                        try damage.apply(dir, &rng)
                        let context = "\(damage.name), round \(round), \(withIndex ? "with" : "without") indexes"
                        let (verify, reader, writer) = Self.verdicts(dir, original: original, context: context)
                        #expect(verify == writer && reader == writer, "\(context): verify \(verify), reader \(reader), writer \(writer)")
                        cases += 1
                        switch writer {
                        case .refused:
                            refused += 1
                        case let .log(kept, reported):
                            if reported {
                                torn += 1
                            } else {
                                unchanged += 1
                                // Accepted without a word: exactly the undamaged log.
                                #expect(kept == last, "\(context): \(kept) of \(last) records kept and nothing reported")
                            }
                        }
                    }
                }
            }
            #expect(refused > 0 && unchanged > 0, "cases \(cases): \(refused) refused, \(torn) torn tails, \(unchanged) unchanged")
            if expectTornTails { #expect(torn > 0, "no torn tail among \(cases) cases") }
        }
    }

    /// A cleanly closed log: everything is acknowledged, so damage is refused everywhere; only
    /// junk after the last block is a torn tail (past the watermark), reported and cut.
    @Test func aClosedLogAgreesOnEveryDamage() throws {
        try check(rounds: 6, watermark: nil, expectTornTails: true)
    }

    /// A log whose last appends were never synced (the watermark is behind them): damage to
    /// them is a torn tail every party reports and the writer cuts; before them it is refused.
    @Test func aCrashedLogAgreesOnEveryDamage() throws {
        try check(rounds: 6, watermark: { $0 - 17 }, expectTornTails: true)
    }
}
