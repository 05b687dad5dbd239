import HeraldCore
import Testing

@Suite struct CodecRoundTripTests {
    static let seeds: [UInt64] = [1, 2, 3, 0xC0DEC, 20_261_125]
    static let recordsPerSeed = 400

    /// Hand-written records of every type, including the edge values.
    static let handWritten: [Record] = {
        let a = CodecFixtures.app, s = CodecFixtures.script, t = CodecFixtures.trigger, ad = CodecFixtures.admin
        return [
            Record(ts: 0, body: .adminUserCreated(adminUserID: ad, email: "")),
            Record(ts: 1, body: .adminUserDeleted(adminUserID: ad)),
            Record(ts: Record.tsMax, body: .appCreated(appID: a, name: "a/\"b\"\\\u{0}\u{1F}é😀")),
            Record(ts: 3, body: .appDeleted(appID: a)),
            Record(ts: 4, body: .scriptRegistered(ScriptRegistration(scriptID: s, appID: a, name: "n", runtime: "process", source: "#!/bin/sh\nexit 0\n"))),
            Record(ts: 5, body: .scriptDeleted(scriptID: s)),
            Record(ts: 6, body: .triggerRegistered(TriggerRegistration(triggerID: t, appID: a, scriptID: s, kind: .kv, enabled: false,
                                                                       retry: RetryConfig(maxAttempts: 100, backoff: .constant, baseMs: 86_400_000),
                                                                       registeredBy: ad, kv: KVDetails(collectionGlob: "users:*", ops: .all)))),
            Record(ts: 7, body: .triggerRegistered(TriggerRegistration(triggerID: t, appID: a, scriptID: s, kind: .deadLetter,
                                                                       retry: .builtIn, registeredBy: ad,
                                                                       deadLetter: DeadLetterDetails(sourceFilter: .deadLetter, scriptIDFilter: s)))),
            Record(ts: 8, body: .triggerUpdated(TriggerUpdate(triggerID: t))),
            Record(ts: 9, body: .triggerUpdated(TriggerUpdate(triggerID: t, enabled: false, retry: RetryPatch(), kv: KVPatch()))),
            Record(ts: 10, body: .triggerUpdated(TriggerUpdate(triggerID: t, deadLetter: DeadLetterPatch(
                sourceFilter: .set(nil), triggerIDFilter: .set(t), scriptIDFilter: .keep)))),
            Record(ts: 11, body: .triggerDeleted(triggerID: t)),
            Record(ts: 12, body: .kv(KVMutation(op: .insert, appID: a, collection: "c", key: "k", value: JSONText(#" { "a" : [ 1 , -0.5E-3 ] } "#.trimmingSpaces)))),
            Record(ts: 13, body: .kv(KVMutation(op: .update, appID: a, collection: "c", key: "k", value: "null"))),
            Record(ts: 14, body: .kv(KVMutation(op: .delete, appID: a, collection: "c", key: "*", value: nil))),
            Record(ts: 15, body: .deliveryAttempted(DeliveryAttempt(sourcePosition: UInt64.max, triggerID: t, attempt: Int64.max,
                                                                    outcome: .error, error: "", retryable: false, durationMs: Int64.max))),
            Record(ts: 16, body: .deliveryAttempted(DeliveryAttempt(sourcePosition: 0, triggerID: t, attempt: 1, outcome: .ok, durationMs: 0))),
        ]
    }()

    @Test(arguments: handWritten)
    func jsonRoundTrip(_ record: Record) throws {
        try RecordRules.check(record)
        let line = RecordJSONEncoder().encode(record)
        let decoded = try RecordJSONDecoder().decode(line: line)
        #expect(decoded.ts == record.ts)
        #expect(decoded.body == record.body)
        // Encoding is canonical: the second dump is byte-identical.
        #expect(RecordJSONEncoder().encode(Record(ts: record.ts, body: decoded.body)) == line)
    }

    @Test(arguments: handWritten)
    func binaryRoundTrip(_ record: Record) throws {
        let payload = RecordBinaryCodec.encode(record.body)
        #expect(payload.first == RecordBinaryCodec.formatVersion)
        #expect(payload.count > 1 && payload[1] == record.body.type.rawValue)
        #expect(try RecordBinaryCodec.decode(payload) == record.body)
    }

    @Test(arguments: seeds)
    func randomRecordsRoundTrip(seed: UInt64) throws {
        var generator = RecordGenerator(seed: seed)
        let decoder = RecordJSONDecoder()
        var seenTypes = Set<UInt8>()
        for index in 0..<Self.recordsPerSeed {
            let record = generator.record()
            seenTypes.insert(record.body.type.rawValue)
            let context = Comment(rawValue: "seed \(seed), record \(index): \(record)")
            do {
                try RecordRules.check(record)
                let line = RecordJSONEncoder().encode(record)
                let decoded = try decoder.decode(line: line)
                #expect(decoded.ts == record.ts, context)
                #expect(decoded.body == record.body, context)
                // The dump of the import is the same line, byte for byte.
                #expect(RecordJSONEncoder().encode(Record(ts: decoded.ts ?? -1, body: decoded.body)) == line, context)
                #expect(try RecordBinaryCodec.decode(RecordBinaryCodec.encode(record.body)) == record.body, context)
            } catch {
                Issue.record(Comment(rawValue: "\(error); \(context.rawValue)"))
                return
            }
        }
        #expect(seenTypes.count == RecordType.allCases.count, "seed \(seed)")
    }

    /// dump(import(x)) holds every field of x with the same value: for a line written with
    /// other spacing and key order, re-importing the dump gives the same record.
    @Test func dumpOfImportKeepsEveryField() throws {
        let a = CodecFixtures.app.description.uppercased()
        let line = #"{ "value" : {"z": 1, "a": [true]} , "key":"k\u00e9", "collection":"c/d", "app_id":"\#(a)", "type":"kv.update", "ts": 42 }"#
        let decoded = try RecordJSONDecoder().decode(line: line)
        let dumped = RecordJSONEncoder().encode(Record(ts: decoded.ts ?? 0, body: decoded.body))
        #expect(String(decoding: dumped, as: UTF8.self)
            == #"{"type":"kv.update","ts":42,"app_id":"a0000000-0000-4000-8000-000000000001","collection":"c/d","key":"ké","value":{"z": 1, "a": [true]}}"#)
    }

    @Test func registrationDumpFillsTheDefaults() throws {
        let line = #"{"type":"trigger.registered","trigger_id":"\#(CodecFixtures.trigger)","app_id":"\#(CodecFixtures.app)","script_id":"\#(CodecFixtures.script)","kind":"dead_letter","registered_by":"\#(CodecFixtures.admin)","dead_letter":{"source_filter":"kv"}}"#
        let decoded = try RecordJSONDecoder().decode(line: line)
        let dumped = String(decoding: RecordJSONEncoder().encode(Record(ts: 7, body: decoded.body)), as: UTF8.self)
        #expect(dumped == #"{"type":"trigger.registered","ts":7,"trigger_id":"\#(CodecFixtures.trigger)","app_id":"\#(CodecFixtures.app)","script_id":"\#(CodecFixtures.script)","kind":"dead_letter","enabled":true,"dispatch_mode":"async","retry":{"max_attempts":5,"backoff":"exponential","base_ms":1000},"registered_by":"\#(CodecFixtures.admin)","dead_letter":{"source_filter":"kv","trigger_id_filter":null,"script_id_filter":null}}"#)
    }

    @Test func attemptDumpWritesErrorOnlyWhenSet() {
        let ok = Record(ts: 1, body: .deliveryAttempted(DeliveryAttempt(sourcePosition: 2, triggerID: CodecFixtures.trigger, attempt: 1, outcome: .ok, durationMs: 3)))
        #expect(String(decoding: RecordJSONEncoder().encode(ok), as: UTF8.self)
            == #"{"type":"delivery.attempted","ts":1,"source_position":2,"trigger_id":"\#(CodecFixtures.trigger)","attempt":1,"outcome":"ok","retryable":true,"duration_ms":3}"#)
    }

    @Test func idsPrintInCanonicalLowercaseForm() {
        #expect(HeraldID(high: 0x3F25_04E0_4F89_11D3, low: 0x9A0C_0305_E82C_3301).description
            == "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
        #expect(HeraldID(high: 0, low: 0).description == "00000000-0000-0000-0000-000000000000")
        #expect(HeraldID(high: .max, low: .max).description == "ffffffff-ffff-ffff-ffff-ffffffffffff")
        #expect(HeraldID(high: 0x0123_4567_89AB_CDEF, low: 0xFEDC_BA98_7654_3210).description
            == "01234567-89ab-cdef-fedc-ba9876543210")
        var rng = SeededGenerator(seed: 7)
        for _ in 0..<500 {
            let id = HeraldID(high: rng.next(), low: rng.next())
            // Each digit from the integers, the slow way, against the word-at-a-time formatter.
            let digits = String(id.high, radix: 16).leftPadded(to: 16) + String(id.low, radix: 16).leftPadded(to: 16)
            let expected = [0..<8, 8..<12, 12..<16, 16..<20, 20..<32]
                .map { String(Array(digits)[$0]) }.joined(separator: "-")
            #expect(id.description == expected)
            var appended: [UInt8] = []
            id.appendCanonical(to: &appended)
            #expect(appended == Array(expected.utf8))
            #expect(id.withCanonicalUTF8 { Array($0) } == Array(expected.utf8))
            #expect(HeraldID(id.description) == id)
        }
    }

    @Test func parsedIDsMatchTheModelParser() {
        var rng = SeededGenerator(seed: 99)
        for _ in 0..<200 {
            let id = HeraldID(high: rng.next(), low: rng.next())
            for text in [id.description, id.description.uppercased()] {
                let line = #"{"type":"app.deleted","app_id":"\#(text)"}"#
                #expect((try? RecordJSONDecoder().decode(line: line).body) == .appDeleted(appID: id))
                #expect(HeraldID(text) == id)
                // Any one-byte change is accepted by the decoder exactly when the model's parser accepts it.
                var mutated = Array(text.utf8)
                let position = Int(rng.next() % 36)
                let replacements: [UInt8] = Array("0aAfFgG-{ z".utf8)
                mutated[position] = replacements[Int(rng.next() % UInt64(replacements.count))]
                let mutatedText = String(decoding: mutated, as: UTF8.self)
                let decoded = try? RecordJSONDecoder().decode(line: #"{"type":"app.deleted","app_id":"\#(mutatedText)"}"#).body
                #expect(decoded == HeraldID(mutatedText).map { .appDeleted(appID: $0) }, "\(mutatedText)")
            }
        }
    }
}

extension String {
    /// The string without leading and trailing spaces (no Foundation in these tests).
    var trimmingSpaces: String {
        var scalars = Substring(self)
        while scalars.first == " " { scalars.removeFirst() }
        while scalars.last == " " { scalars.removeLast() }
        return String(scalars)
    }
}

private extension String {
    func leftPadded(to width: Int) -> String {
        String(repeating: "0", count: max(0, width - count)) + self
    }
}
