import HeraldCore
import Testing

/// The record size check that import and append run before the log sees a record.
@Suite struct RecordSizeLimitTests {
    /// For random records of every type, the check passes at exactly the encoded size and
    /// fails one byte below it: its cheap estimate never lets a too-large record through.
    @Test func checkAgreesWithTheEncodingAtTheBoundary() throws {
        let seed: UInt64 = 0x5123_1ABE
        var generator = RecordGenerator(seed: seed)
        for index in 0..<2_000 {
            let body = generator.body()
            let bytes = RecordBinaryCodec.encode(body).count
            #expect(throws: Never.self, "seed \(seed), record \(index)") {
                try RecordBinaryCodec.checkEncodedSize(body, limitBytes: bytes)
            }
            #expect(throws: RecordError.self, "seed \(seed), record \(index)") {
                try RecordBinaryCodec.checkEncodedSize(body, limitBytes: bytes - 1)
            }
        }
    }

    @Test func errorNamesTheSizeAndTheLimit() throws {
        let source = String(repeating: "x", count: 1_000)
        let body = RecordBody.scriptRegistered(ScriptRegistration(
            scriptID: HeraldID(high: 1, low: 2), appID: HeraldID(high: 3, low: 4), name: "s", runtime: "process", source: source))
        let bytes = RecordBinaryCodec.encode(body).count
        #expect(bytes == 1_046)
        do {
            try RecordBinaryCodec.checkEncodedSize(body, limitBytes: 1_000)
            Issue.record("a 1,046-byte record passed a 1,000-byte limit")
        } catch {
            #expect(error.at("line 12").description
                == "line 12: script.registered: record encodes to 1,046 bytes, over the 1,000-byte record limit")
        }
    }
}
