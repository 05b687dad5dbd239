import HeraldCore
import Testing

struct BinaryCase: CustomTestStringConvertible, Sendable {
    var name: String
    var bytes: [UInt8]
    var error: String
    var testDescription: String { name }
}

@Suite struct BinaryCodecTests {
    /// Every decoded record is moved at this size: boxing keeps the registrations out of it,
    /// so the body is no larger than its two hot cases, a KV mutation (whose value is one
    /// reference and two 32-bit offsets) and an attempt, plus the case tag.
    @Test func aRecordBodyIsAsSmallAsItsHotCases() {
        #expect(MemoryLayout<JSONText>.size <= 16)
        #expect(MemoryLayout<KVMutation>.size <= 72)
        #expect(MemoryLayout<DeliveryAttempt>.size <= 72)
        #expect(MemoryLayout<RecordBody>.size <= max(MemoryLayout<KVMutation>.size, MemoryLayout<DeliveryAttempt>.size) + 1)
    }

    static let appID: [UInt8] = [0xA0, 0, 0, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 1]

    @Test func appCreatedIsEncodedByteByByte() throws {
        let body = RecordBody.appCreated(appID: CodecFixtures.app, name: "é")
        let expected: [UInt8] = [1, 3] + Self.appID + [2, 0xC3, 0xA9]
        #expect(RecordBinaryCodec.encode(body) == expected)
        #expect(try RecordBinaryCodec.decode(expected) == body)
    }

    @Test func kvIsEncodedByteByByte() throws {
        // Long value (two-byte length varint), non-ASCII, empty key; appended after existing bytes.
        let value = "{\"v\":\"" + String(repeating: "ü", count: 70) + "\"}"
        let insert = RecordBody.kv(KVMutation(op: .insert, appID: CodecFixtures.app, collection: "carts:1", key: "", value: JSONText(value)))
        let valueBytes = Array(value.utf8)
        #expect(valueBytes.count == 148)
        let expected: [UInt8] = [1, 10] + Self.appID + [7] + Array("carts:1".utf8) + [0] + [1, 0x94, 0x01] + valueBytes
        var out: [UInt8] = [9, 9]
        RecordBinaryCodec.encode(insert, into: &out)
        #expect(out == [9, 9] + expected)
        #expect(try RecordBinaryCodec.decode(expected) == insert)
        let delete = RecordBody.kv(KVMutation(op: .delete, appID: CodecFixtures.app, collection: "c", key: "k", value: nil))
        let deleteBytes: [UInt8] = [1, 12] + Self.appID + [1, 0x63, 1, 0x6B, 0]
        #expect(RecordBinaryCodec.encode(delete) == deleteBytes)
        #expect(try RecordBinaryCodec.decode(deleteBytes) == delete)
        let update = RecordBody.kv(KVMutation(op: .update, appID: CodecFixtures.app, collection: "c", key: "k", value: "1"))
        #expect(RecordBinaryCodec.encode(update) == [1, 11] + Self.appID + [1, 0x63, 1, 0x6B, 1, 1, 0x31])
        // Every string size around the ASCII check's word boundaries decodes back, and a
        // non-ASCII byte at any offset is still validated.
        for length in 0..<40 {
            let text = String(repeating: "a", count: length)
            let body = RecordBody.kv(KVMutation(op: .update, appID: CodecFixtures.app, collection: text, key: text, value: JSONText(text)))
            #expect(try RecordBinaryCodec.decode(RecordBinaryCodec.encode(body)) == body)
            for bad in 0..<length {
                var bytes = RecordBinaryCodec.encode(body)
                bytes[2 + 16 + 1 + bad] = 0xFF
                #expect(throws: RecordError.self) { try RecordBinaryCodec.decode(bytes) }
            }
        }
    }

    @Test func attemptUsesVarintsAndZigzag() throws {
        let body = RecordBody.deliveryAttempted(DeliveryAttempt(sourcePosition: 300, triggerID: HeraldID(high: 0, low: 1), attempt: 1,
                                                                outcome: .error, error: "x", retryable: true, durationMs: 64))
        let expected: [UInt8] = [1, 13, 0xAC, 0x02] + [UInt8](repeating: 0, count: 15) + [1] + [2, 1, 3, 1, 0x78, 0x80, 0x01]
        #expect(RecordBinaryCodec.encode(body) == expected)
        #expect(try RecordBinaryCodec.decode(expected) == body)
    }

    static let bad: [BinaryCase] = [
        BinaryCase(name: "empty", bytes: [], error: "field 'version': truncated record: the payload ends at byte 0 inside this field"),
        BinaryCase(name: "unknown version", bytes: [2, 4] + appID, error: "field 'version': unknown binary format version 2 (this build reads 1)"),
        BinaryCase(name: "unknown type", bytes: [1, 17], error: "field 'type': unknown record type byte 17"),
        BinaryCase(name: "truncated id", bytes: [1, 4, 0xA0], error: "app.deleted: field 'app_id': truncated record: the payload ends at byte 3 inside this field"),
        BinaryCase(name: "trailing bytes", bytes: [1, 4] + appID + [0, 0], error: "app.deleted: 2 trailing bytes after the record"),
        BinaryCase(name: "length past the end", bytes: [1, 3] + appID + [5, 0x61], error: "app.created: field 'name': string length 5 runs past the end of the payload (1 bytes left)"),
        BinaryCase(name: "huge length", bytes: [1, 3] + appID + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
                   error: "app.created: field 'name': string length 18446744073709551615 runs past the end of the payload (0 bytes left)"),
        BinaryCase(name: "varint overflow", bytes: [1, 3] + appID + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02],
                   error: "app.created: field 'name': varint overflows 64 bits"),
        BinaryCase(name: "non-minimal varint", bytes: [1, 3] + appID + [0x81, 0x00, 0x61], error: "app.created: field 'name': non-minimal varint"),
        BinaryCase(name: "invalid UTF-8", bytes: [1, 3] + appID + [2, 0xC3, 0x28], error: "app.created: field 'name': invalid UTF-8"),
        BinaryCase(name: "surrogate in UTF-8", bytes: [1, 3] + appID + [3, 0xED, 0xA0, 0x80], error: "app.created: field 'name': invalid UTF-8"),
        BinaryCase(name: "bad outcome", bytes: [1, 13, 1] + appID + [2, 7], error: "delivery.attempted: field 'outcome': invalid value 7"),
        BinaryCase(name: "bad presence", bytes: [1, 12] + appID + [1, 0x63, 1, 0x6B, 2], error: "kv.delete: field 'value': invalid boolean byte 2"),
        BinaryCase(name: "bad update mask", bytes: [1, 8] + appID + [0x10], error: "trigger.updated: field 'fields': invalid presence byte 0x10"),
        BinaryCase(name: "filter value without set", bytes: [1, 8] + appID + [8, 0b001000], error: "trigger.updated: field 'dead_letter': invalid presence byte 0x8"),
    ]

    @Test(arguments: bad)
    func rejectsHostileBytes(_ row: BinaryCase) {
        do {
            let body = try RecordBinaryCodec.decode(row.bytes)
            Issue.record("decoded \(body)")
        } catch {
            #expect(error.description == row.error)
        }
    }
}
