@testable import HeraldCore
import Testing

/// Random mutations and truncations of valid encodings: the decoders return or throw, never trap.
@Suite struct CodecHostileInputTests {
    static let seeds: [UInt64] = [11, 12, 13, 14]

    @Test(arguments: seeds)
    func mutatedJSONNeverTraps(seed: UInt64) {
        var generator = RecordGenerator(seed: seed)
        var rng = SeededGenerator(seed: seed ^ 0xFFFF)
        let decoder = RecordJSONDecoder()
        let interesting: [UInt8] = Array(#"{}[]",:\"0123456789-.eE+tfnu \#r"#.utf8) + [0x00, 0x1F, 0x80, 0xBF, 0xC3, 0xED, 0xF4, 0xFF]
        var accepted = 0
        for _ in 0..<300 {
            let record = generator.record()
            var line = RecordJSONEncoder().encode(record)
            let edits = Int.random(in: 1...4, using: &rng)
            for _ in 0..<edits where !line.isEmpty {
                let position = Int.random(in: 0..<line.count, using: &rng)
                switch Int.random(in: 0...3, using: &rng) {
                case 0: line[position] = interesting[Int.random(in: 0..<interesting.count, using: &rng)]
                case 1: line.remove(at: position)
                case 2: line.insert(interesting[Int.random(in: 0..<interesting.count, using: &rng)], at: position)
                default: line.removeLast(Int.random(in: 0...line.count - position, using: &rng))
                }
            }
            if let decoded = try? decoder.decode(line: line) {
                accepted += 1
                // Whatever is accepted also obeys the rules and survives a dump.
                #expect((try? RecordRules.check(decoded.body, ts: decoded.ts)) != nil, "seed \(seed)")
            }
        }
        #expect(accepted < 300, "seed \(seed): mutations should break most lines")
    }

    @Test(arguments: seeds)
    func mutatedBinaryNeverTraps(seed: UInt64) {
        var generator = RecordGenerator(seed: seed)
        var rng = SeededGenerator(seed: seed ^ 0xABCD)
        for _ in 0..<300 {
            let payload = RecordBinaryCodec.encode(generator.body())
            // Every truncation is an error.
            for length in 0..<payload.count {
                #expect(throws: RecordError.self, "seed \(seed)") { try RecordBinaryCodec.decode(Array(payload[0..<length])) }
            }
            var mutated = payload
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let position = Int.random(in: 0..<mutated.count, using: &rng)
                mutated[position] = UInt8.random(in: 0...255, using: &rng)
            }
            _ = try? RecordBinaryCodec.decode(mutated)
            #expect(throws: RecordError.self, "seed \(seed)") { try RecordBinaryCodec.decode(payload + [0]) }
        }
    }

    /// `isValid` (what a scan's read-ahead thread runs) accepts exactly what `decode` accepts,
    /// and a decode told the bytes were checked gives the same record as a full one.
    @Test(arguments: seeds)
    func isValidAgreesWithDecode(seed: UInt64) throws {
        var generator = RecordGenerator(seed: seed)
        var rng = SeededGenerator(seed: seed ^ 0x5EED)
        // Bytes that break UTF-8 (lone continuation, surrogate lead, invalid lead) and varints.
        let interesting: [UInt8] = [0x80, 0xBF, 0xC0, 0xC3, 0xED, 0xF4, 0xF5, 0xFF, 0x00, 0x7F]
        var accepted = 0, rejected = 0
        for _ in 0..<400 {
            let record = Record(ts: 5, body: generator.body())
            var payload = RecordBinaryCodec.encode(record.body)
            for _ in 0..<Int.random(in: 0...2, using: &rng) {
                let position = Int.random(in: 0..<payload.count, using: &rng)
                payload[position] = interesting[Int.random(in: 0..<interesting.count, using: &rng)]
            }
            let full = payload.withUnsafeBytes { bytes in Result { () throws(RecordError) -> Record in try RecordBinaryCodec.decodeRecord(ts: 5, bytes) } }
            let valid = payload.withUnsafeBytes { RecordBinaryCodec.isValid($0) }
            switch full {
            case .success(let decoded):
                accepted += 1
                #expect(valid, "seed \(seed): isValid rejects \(payload)")
                let checked = try payload.withUnsafeBytes { try RecordBinaryCodec.decodeRecord(ts: 5, $0, checked: true) }
                #expect(checked == decoded, "seed \(seed)")
            case .failure:
                rejected += 1
                #expect(!valid, "seed \(seed): isValid accepts \(payload), which decode rejects")
            }
        }
        #expect(accepted > 50 && rejected > 50, "seed \(seed): \(accepted) accepted, \(rejected) rejected")
    }

    /// KV payloads, the common case `isValid` checks on a plain path of its own: short and long
    /// strings (one-, two- and three-byte lengths), non-ASCII text, mutated bytes, truncations
    /// and extra bytes. `isValid` agrees with `decode` on every one.
    @Test(arguments: seeds)
    func isValidAgreesWithDecodeOnKVPayloads(seed: UInt64) throws {
        var generator = RecordGenerator(seed: seed)
        var rng = SeededGenerator(seed: seed ^ 0x4B56)
        let interesting: [UInt8] = [0x00, 0x01, 0x02, 0x7F, 0x80, 0x81, 0xBF, 0xC3, 0xED, 0xF4, 0xFF]
        let lengths = [0, 1, 9, 15, 16, 127, 128, 129, 300, 16_383, 16_384, 20_000]
        var accepted = 0, rejected = 0
        for round in 0..<300 {
            let value: JSONText? = round % 7 == 0 ? nil
                : JSONText("\"" + String(repeating: round % 3 == 0 ? "é" : "v", count: lengths[round % lengths.count] / 2) + "\"")
            let body = RecordBody.kv(KVMutation(op: value == nil ? .delete : (round % 2 == 0 ? .insert : .update), appID: generator.id(),
                                                collection: String(repeating: "c", count: lengths[(round / 3) % lengths.count]),
                                                key: generator.string(nonEmpty: true), value: value))
            var payload = RecordBinaryCodec.encode(body)
            if case .kv(let mutation) = body, round % 4 == 0 {
                // An untouched payload whose lengths all fit two bytes takes the plain path.
                let plain = [mutation.collection.utf8.count, mutation.key.utf8.count, mutation.value?.count ?? 0].allSatisfy { $0 < 16_384 }
                #expect(payload.withUnsafeBytes { RecordBinaryCodec.isPlainValidKV($0) } == plain, "seed \(seed), round \(round)")
            }
            switch round % 4 {
            case 1:
                for _ in 0..<Int.random(in: 1...2, using: &rng) {
                    payload[Int.random(in: 0..<payload.count, using: &rng)] = interesting[Int.random(in: 0..<interesting.count, using: &rng)]
                }
            case 2: payload.removeLast(Int.random(in: 1...min(payload.count, 40), using: &rng))
            case 3: payload.append(interesting[Int.random(in: 0..<interesting.count, using: &rng)])
            default: break
            }
            let decodes = payload.withUnsafeBytes { bytes in (try? RecordBinaryCodec.decodeRecord(ts: 5, bytes)) != nil }
            let valid = payload.withUnsafeBytes { RecordBinaryCodec.isValid($0) }
            #expect(valid == decodes, "seed \(seed), round \(round): isValid \(valid), decode \(decodes)")
            if decodes { accepted += 1 } else { rejected += 1 }
        }
        #expect(accepted > 50 && rejected > 50, "seed \(seed): \(accepted) accepted, \(rejected) rejected")
    }

    @Test func randomBytesNeverTrap() {
        var rng = SeededGenerator(seed: 77)
        for _ in 0..<2000 {
            let bytes = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? RecordBinaryCodec.decode([RecordBinaryCodec.formatVersion] + bytes)
            _ = try? RecordJSONDecoder().decode(line: bytes)
        }
    }
}
