// Fuzz target: JSON Lines as `herald import` reads them.
//
// The input is split at `\n` into lines (at most 64). Each line is decoded both ways an import
// can (`RecordJSONDecoder.decode(line:)` and the chunk path `ImportValidator.decode(in:range:)`,
// whose KV value shares the chunk), which must agree; then validated in order by an
// `ImportValidator` that starts from an empty log (the stateful rules: registry, ids,
// attempts, timestamps). Every decoded line must round-trip through `RecordJSONEncoder` (the
// documented `dump` → `import` identity) and through `RecordBinaryCodec`.
// Rejected lines are fine; a trap, a leak, a hang or a broken round trip is not.
import FuzzSupport
import HeraldCore

let decoder = RecordJSONDecoder(retryDefaults: .builtIn)
let linesMax = 64

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzJSONLine(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = Array(fuzzInput(data, size))
    var validator = ImportValidator(state: Dispatcher(), retryDefaults: .builtIn, nowMs: 1_000)
    var accepted: [Record] = []
    var start = 0
    var number = 0
    // As `herald import` splits lines: a final line without `\n` counts, a trailing `\n` adds none.
    while start < input.count, number < linesMax {
        let end = input[start...].firstIndex(of: 0x0A) ?? input.count
        number += 1
        let decoded = ImportValidator.decode(in: input, range: start..<end, with: decoder)
        let direct = input.withUnsafeBufferPointer { all in
            ImportValidator.decode(UnsafeBufferPointer(rebasing: all[start..<end]), with: decoder)
        }
        switch (decoded, direct) {
        case (.success(let shared), .success(let copied)):
            expect(shared.ts == copied.ts && shared.body == copied.body, "line \(number): the two decode paths disagree")
            roundTrip(Record(ts: shared.ts ?? 0, body: shared.body), line: number)
        case (.failure(let shared), .failure(let copied)):
            expect(shared == copied, "line \(number): the two decode paths give different errors: \(shared) / \(copied)")
        default:
            expect(false, "line \(number): one decode path accepts the line, the other rejects it")
        }
        if let record = validator.add(decoded: decoded, number: number, acceptedSoFar: { visit in try accepted.forEach(visit) }) {
            accepted.append(record)
        }
        if end == input.count { break }
        start = end + 1
    }
    expect(validator.acceptedCount == accepted.count, "acceptedCount \(validator.acceptedCount) != \(accepted.count) records")
    return 0
}

/// `record` (decoded from a line) must come back unchanged from its JSON and binary forms.
func roundTrip(_ record: Record, line: Int) {
    let json = RecordJSONEncoder().encode(record)
    do throws(RecordError) {
        let again = try decoder.decode(line: json)
        expect(again.ts == record.ts && again.body == record.body,
               "line \(line): encode→decode of the JSON changes the record: \(String(decoding: json, as: UTF8.self))")
    } catch {
        expect(false, "line \(line): the encoder's own JSON is rejected: \(error): \(String(decoding: json, as: UTF8.self))")
    }
    let binary = RecordBinaryCodec.encode(record.body)
    do throws(RecordError) {
        expect(try RecordBinaryCodec.decode(binary) == record.body, "line \(line): binary encode→decode changes the record")
    } catch {
        expect(false, "line \(line): the binary encoding of a decoded line is rejected: \(error)")
    }
}

runFuzzer(fuzzJSONLine)
