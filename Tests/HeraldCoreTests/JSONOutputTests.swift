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
