import HeraldCore
import Testing

struct EscapeCase: CustomTestStringConvertible, Sendable {
    var input: String
    var json: String
    var testDescription: String { json }
}

@Suite struct JSONOutputTests {
    static let escapes: [EscapeCase] = [
        EscapeCase(input: "plain", json: #""plain""#),
        EscapeCase(input: "", json: #""""#),
        EscapeCase(input: "\"", json: #""\"""#),
        EscapeCase(input: "\\", json: #""\\""#),
        EscapeCase(input: "/a/b", json: #""/a/b""#),
        EscapeCase(input: "\u{8}\u{C}\n\r\t", json: #""\b\f\n\r\t""#),
        EscapeCase(input: "\u{0}", json: #""\u0000""#),
        EscapeCase(input: "\u{1}\u{1A}\u{1F}", json: #""\u0001\u001a\u001f""#),
        EscapeCase(input: "\u{7F}", json: "\"\u{7F}\""),
        EscapeCase(input: " ", json: #"" ""#),
        EscapeCase(input: "é€😀\u{2028}", json: "\"é€😀\u{2028}\""),
        EscapeCase(input: "a\"b\\c\nd", json: #""a\"b\\c\nd""#),
    ]

    @Test(arguments: escapes)
    func escapesOnlyWhatDesignSays(_ row: EscapeCase) {
        var out = JSONOutput()
        out.string(row.input)
        #expect(out.text == row.json)
        var keyed = JSONOutput()
        keyed.beginObject()
        keyed.key(row.input)
        keyed.null()
        keyed.endObject()
        #expect(keyed.text == "{" + row.json + ":null}")
    }

    /// The escaping rule written the slow, obvious way.
    static func referenceEscape(_ text: String) -> [UInt8] {
        var out: [UInt8] = [0x22]
        let hex = Array("0123456789abcdef".utf8)
        for byte in text.utf8 {
            switch byte {
            case 0x22: out += [0x5C, 0x22]
            case 0x5C: out += [0x5C, 0x5C]
            case 0x08: out += Array(#"\b"#.utf8)
            case 0x0C: out += Array(#"\f"#.utf8)
            case 0x0A: out += Array(#"\n"#.utf8)
            case 0x0D: out += Array(#"\r"#.utf8)
            case 0x09: out += Array(#"\t"#.utf8)
            case 0..<0x20: out += Array(#"\u00"#.utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        return out + [0x22]
    }

    @Test(arguments: [UInt64(5), 6, 7])
    func longStringsEscapeLikeTheReference(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let alphabet: [Unicode.Scalar] = ["a", "Z", " ", "/", "\"", "\\", "\u{0}", "\u{8}", "\u{1F}", "\u{7F}", "é", "€", "😀", "\n"]
        for _ in 0..<500 {
            var text = ""
            for _ in 0..<Int(rng.next() % 48) {
                // Mostly plain runs, so the 8-byte fast path is taken and then interrupted.
                let scalar = rng.next() % 3 == 0 ? alphabet[Int(rng.next() % UInt64(alphabet.count))] : "x"
                text.unicodeScalars.append(scalar)
            }
            var out = JSONOutput()
            out.string(text)
            #expect(out.bytes == Self.referenceEscape(text), "seed \(seed): \(text.debugDescription)")
            // And the decoder reads it back.
            let line = #"{"type":"app.created","app_id":"a0000000-0000-4000-8000-000000000001","name":"# + out.text + "}"
            #expect(try RecordJSONDecoder().decode(line: line).body == .appCreated(appID: CodecFixtures.app, name: text))
        }
    }

    @Test func writesCompactStructureWithCommas() {
        var out = JSONOutput()
        out.beginObject()
        out.key("a"); out.int(Int64.min)
        out.key("b"); out.uint(UInt64.max)
        out.key("c"); out.beginArray(); out.bool(true); out.bool(false); out.null(); out.beginObject(); out.endObject(); out.beginArray(); out.endArray(); out.endArray()
        out.key("d"); out.id(CodecFixtures.app)
        out.key("e"); out.raw(#"{"x": 1}"#)
        out.key("f"); out.int(0)
        out.key("g"); out.id(nil as HeraldID?)
        out.endObject()
        out.newline()
        out.int(-7)
        #expect(out.text == #"{"a":-9223372036854775808,"b":18446744073709551615,"c":[true,false,null,{},[]],"d":"a0000000-0000-4000-8000-000000000001","e":{"x": 1},"f":0,"g":null}"# + "\n-7")
        out.removeAll()
        out.int(5)
        #expect(out.text == "5")
    }
}
