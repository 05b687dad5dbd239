/// A small, fast writer of compact JSON, byte for byte as docs/SEMANTICS.md §3.6 ("Canonical derived
/// output") requires: no spaces, UTF-8 passed through unchanged, escaping only `"`, `\` and
/// U+0000–U+001F (`\b \f \n \r \t`, any other as `\u00xx` with lowercase hex). `/` is not
/// escaped.
///
/// Commas are inserted automatically between members and elements; the writer does not check
/// that keys and values alternate — that is the caller's job.
///
/// ```swift
/// var out = JSONOutput()
/// out.beginObject()
/// out.key("source_position"); out.uint(12)
/// out.key("status"); out.string("pending")
/// out.key("due_at"); out.null()
/// out.endObject()
/// out.newline()
/// // out.bytes == Array(#"{"source_position":12,"status":"pending","due_at":null}"#.utf8) + [0x0A]
/// ```
public struct JSONOutput: Sendable {
    /// The JSON text written so far.
    public var bytes: [UInt8]
    /// True when the next key or value must be preceded by a comma.
    private var needsComma = false

    /// Creates an empty writer whose buffer can hold `capacity` bytes before growing.
    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Removes everything written, keeping the buffer's capacity, so one writer can serve
    /// many lines without reallocating.
    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        needsComma = false
    }

    /// The JSON text as a `String`.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    @inline(__always)
    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    // MARK: Structure

    /// Writes `{`.
    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    /// Writes `}`.
    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    /// Writes `[`.
    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    /// Writes `]`.
    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// Writes an object key (escaped) and its `:`; the next call writes the value.
    public mutating func key(_ name: String) {
        separate()
        appendQuoted(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// Writes an object key given as a static string (escaped) and its `:`.
    public mutating func key(_ name: StaticString) {
        separate()
        name.withUTF8Buffer { appendQuoted(utf8: $0) }
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// Writes `text` verbatim, as structure: a fixed run of punctuation and keys such as
    /// `,"status":`. The next value gets no comma of its own.
    public mutating func fragment(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
        needsComma = false
    }

    /// Writes a string value whose bytes need no escaping (the caller checked: printable
    /// ASCII without `"` or `\`), copied between quotes.
    public mutating func string(verbatim value: UnsafeBufferPointer<UInt8>) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: value)
        bytes.append(UInt8(ascii: "\""))
        needsComma = true
    }

    /// Writes a line break (`\n`) and starts a new top-level value: the next value gets no comma.
    public mutating func newline() {
        bytes.append(0x0A)
        needsComma = false
    }

    // MARK: Values

    /// Writes a string value, escaped per docs/SEMANTICS.md §3.6.
    public mutating func string(_ value: String) {
        separate()
        appendQuoted(value)
        needsComma = true
    }

    /// Writes a string value given as UTF-8 bytes, escaped per docs/SEMANTICS.md §3.6. The bytes are
    /// copied as they are: the caller guarantees they are valid UTF-8.
    public mutating func string(utf8 value: UnsafeBufferPointer<UInt8>) {
        separate()
        appendQuoted(utf8: value)
        needsComma = true
    }

    /// Writes a signed integer.
    public mutating func int(_ value: Int64) {
        separate()
        if value < 0 {
            bytes.append(UInt8(ascii: "-"))
            appendDigits(value.magnitude)
        } else {
            appendDigits(UInt64(value))
        }
        needsComma = true
    }

    /// Writes a signed integer.
    public mutating func int(_ value: Int) { int(Int64(value)) }

    /// Writes an unsigned integer.
    public mutating func uint(_ value: UInt64) {
        separate()
        appendDigits(value)
        needsComma = true
    }

    /// Writes `true` or `false`.
    public mutating func bool(_ value: Bool) {
        separate()
        if value {
            bytes.append(contentsOf: [0x74, 0x72, 0x75, 0x65] as [UInt8]) // true
        } else {
            bytes.append(contentsOf: [0x66, 0x61, 0x6C, 0x73, 0x65] as [UInt8]) // false
        }
        needsComma = true
    }

    /// Writes `null`.
    public mutating func null() {
        separate()
        bytes.append(contentsOf: [0x6E, 0x75, 0x6C, 0x6C] as [UInt8])
        needsComma = true
    }

    /// Writes `jsonText` unchanged as one value (e.g. a KV value). The caller guarantees it is
    /// one well-formed JSON value.
    public mutating func raw(_ jsonText: JSONText) {
        separate()
        jsonText.withUTF8 { bytes.append(contentsOf: $0) }
        needsComma = true
    }

    /// Writes an id as a string in canonical lowercase form.
    public mutating func id(_ value: HeraldID) {
        separate()
        // 38 bytes built on the stack and appended once: cheaper than 38 single appends.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 38) { buffer in
            guard let base = buffer.baseAddress else { return }
            base[0] = UInt8(ascii: "\"")
            JSONOutput.writeHex(value.high >> 32, digits: 8, to: base + 1)
            base[9] = UInt8(ascii: "-")
            JSONOutput.writeHex(value.high >> 16, digits: 4, to: base + 10)
            base[14] = UInt8(ascii: "-")
            JSONOutput.writeHex(value.high, digits: 4, to: base + 15)
            base[19] = UInt8(ascii: "-")
            JSONOutput.writeHex(value.low >> 48, digits: 4, to: base + 20)
            base[24] = UInt8(ascii: "-")
            JSONOutput.writeHex(value.low, digits: 12, to: base + 25)
            base[37] = UInt8(ascii: "\"")
            bytes.append(contentsOf: UnsafeBufferPointer(buffer))
        }
        needsComma = true
    }

    /// Writes an id, or `null` when `value` is nil.
    public mutating func id(_ value: HeraldID?) {
        if let value { id(value) } else { null() }
    }

    /// Writes a string, or `null` when `value` is nil.
    public mutating func string(_ value: String?) {
        if let value { string(value) } else { null() }
    }

    // MARK: Internals

    /// Writes the low `digits` nibbles of `value` as lowercase hex, most significant first.
    @inline(__always)
    private static func writeHex(_ value: UInt64, digits: Int, to target: UnsafeMutablePointer<UInt8>) {
        var remaining = value
        var position = digits
        while position > 0 {
            position -= 1
            let nibble = UInt8(truncatingIfNeeded: remaining & 0xF)
            target[position] = nibble < 10 ? nibble &+ 0x30 : nibble &+ 0x57
            remaining >>= 4
        }
    }

    private mutating func appendQuoted(_ value: String) {
        var value = value
        value.withUTF8 { appendQuoted(utf8: $0) }
    }

    private mutating func appendQuoted(utf8 source: UnsafeBufferPointer<UInt8>) {
        bytes.append(UInt8(ascii: "\""))
        var runStart = 0
        var index = 0
        let count = source.count
        while index < count {
            // 8 bytes at a time while none needs escaping (SWAR: flags `"`, `\` and bytes
            // below 0x20; the lowest flag is exact, so the byte loop resumes right there).
            if let base = source.baseAddress {
                let raw = UnsafeRawPointer(base)
                while count - index >= 8 {
                    let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                    let ones: UInt64 = 0x0101_0101_0101_0101
                    let quote = word ^ (ones &* 0x22)
                    let backslash = word ^ (ones &* 0x5C)
                    let special = (((word &- ones &* 0x20) & ~word) | ((quote &- ones) & ~quote)
                        | ((backslash &- ones) & ~backslash)) & (ones &* 0x80)
                    if special != 0 {
                        index += special.trailingZeroBitCount >> 3
                        break
                    }
                    index += 8
                }
            }
            guard index < count else { break }
            let byte = source[index]
            if byte >= 0x20 && byte != 0x22 && byte != 0x5C {
                index += 1
                continue
            }
            if runStart < index {
                bytes.append(contentsOf: UnsafeBufferPointer(rebasing: source[runStart..<index]))
            }
            appendEscape(byte)
            index += 1
            runStart = index
        }
        if runStart < count {
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: source[runStart..<count]))
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func appendEscape(_ byte: UInt8) {
        bytes.append(UInt8(ascii: "\\"))
        switch byte {
        case 0x22: bytes.append(0x22)
        case 0x5C: bytes.append(0x5C)
        case 0x08: bytes.append(UInt8(ascii: "b"))
        case 0x0C: bytes.append(UInt8(ascii: "f"))
        case 0x0A: bytes.append(UInt8(ascii: "n"))
        case 0x0D: bytes.append(UInt8(ascii: "r"))
        case 0x09: bytes.append(UInt8(ascii: "t"))
        default:
            let hex: StaticString = "0123456789abcdef"
            hex.withUTF8Buffer { digits in
                bytes.append(UInt8(ascii: "u"))
                bytes.append(UInt8(ascii: "0"))
                bytes.append(UInt8(ascii: "0"))
                bytes.append(digits[Int(byte >> 4)])
                bytes.append(digits[Int(byte & 0x0F)])
            }
        }
    }

    private mutating func appendDigits(_ value: UInt64) {
        if value < 10 {
            bytes.append(UInt8(truncatingIfNeeded: value) &+ 0x30)
            return
        }
        // 20 digits hold UInt64.max.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var remaining = value
            var start = 20
            while remaining > 0 {
                start -= 1
                buffer[start] = UInt8(truncatingIfNeeded: remaining % 10) &+ 0x30
                remaining /= 10
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[start..<20]))
        }
    }
}
