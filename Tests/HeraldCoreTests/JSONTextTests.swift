@testable import HeraldCore
import Testing

/// A value shares the buffer it was decoded from; sharing never shows in what it means.
@Suite struct JSONTextTests {
    static let line = Array(#"{"type":"kv.insert","value":{"a":[1,2,"é"]},"tail":0}"#.utf8)

    @Test func aSharedValueEqualsAndHashesLikeAnOwnedOne() throws {
        let start = try #require(Self.line.firstIndex(of: UInt8(ascii: "{"), after: 1))
        let owned = JSONText(#"{"a":[1,2,"é"]}"#)
        let shared = JSONText(sharing: Self.line, range: start..<start + 16)
        #expect(shared.description == #"{"a":[1,2,"é"]}"#)
        #expect(shared.count == 16 && owned.count == 16)
        #expect(!shared.isCompact)
        #expect(owned.isCompact)
        #expect(shared == owned)
        #expect(shared.hashValue == owned.hashValue)
        #expect(Set([shared, owned]).count == 1)
        #expect(shared != JSONText(#"{"a":[1,2,"e"]}"#))
        let compact = shared.compacted()
        #expect(compact.isCompact && compact == shared && Array(compact.utf8) == Array(shared.utf8))
    }

    /// The JSON decoder's sharing path gives the same record as its copying path.
    @Test func decodingInABufferSharesTheValue() throws {
        var buffer = Array("junk before\n".utf8)
        let line = Array(#"{"type":"kv.insert","app_id":"3f2504e0-4f89-11d3-9a0c-0305e82c3301","collection":"c","key":"k","value":{"x":"é"}}"#.utf8)
        let range = buffer.count..<buffer.count + line.count
        buffer += line + Array("\nafter".utf8)
        let decoder = RecordJSONDecoder()
        let shared = try decoder.decode(in: buffer, range: range)
        let copied = try decoder.decode(line: line)
        #expect(shared.body == copied.body)
        guard case .kv(let mutation) = shared.body, let value = mutation.value else {
            Issue.record("not a kv record")
            return
        }
        #expect(!value.isCompact)
        #expect(value.description == #"{"x":"é"}"#)
    }
}

private extension Array where Element == UInt8 {
    func firstIndex(of byte: UInt8, after index: Int) -> Int? {
        self[(index + 1)...].firstIndex(of: byte)
    }
}
