/// A JSON syntax error at a byte offset of the scanned text (internal to the codecs).
struct JSONSyntaxError: Error {
    /// 0-based byte offset of the offending byte.
    var offset: Int
    var message: String

    /// The reason as a RecordError phrase: `invalid JSON at column 17: expected ':'`.
    var reason: String { "invalid JSON at column \(offset + 1): \(message)" }
}

/// The kind of a scanned JSON value.
enum JSONValueKind: UInt8 {
    case string, number, object, array, `true`, `false`, null

    /// "a string", "a number", … for error messages.
    var phrase: String {
        switch self {
        case .string: "a string"
        case .number: "a number"
        case .object: "an object"
        case .array: "an array"
        case .true: "true"
        case .false: "false"
        case .null: "null"
        }
    }
}

/// Where a scanned value sits. For strings `start..<end` is the content without the quotes
/// and `flag` says it contains escapes; for numbers `flag` says it has a fraction or an
/// exponent; for other kinds `start..<end` is the whole value text.
struct JSONSpan {
    var start: Int
    var end: Int
    var kind: JSONValueKind
    var flag: Bool
}

/// A strict RFC 8259 scanner over UTF-8 bytes: validates syntax, UTF-8 and escapes (no lone
/// surrogates) without building values. Every index is checked against `bytes.count`.
struct JSONScanner {
    let bytes: UnsafeBufferPointer<UInt8>
    var index: Int

    /// Containers may nest this deep inside one field's value; deeper is an error, which
    /// bounds the recursion.
    static let depthMax = 512

    init(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int = 0) {
        self.bytes = bytes
        self.index = index
    }

    @inline(__always)
    var atEnd: Bool { index >= bytes.count }

    /// The current byte, or -1 at the end.
    @inline(__always)
    var peek: Int { index < bytes.count ? Int(bytes[index]) : -1 }

    @inline(__always)
    mutating func skipWhitespace() {
        while index < bytes.count {
            let byte = bytes[index]
            guard byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 else { return }
            index += 1
        }
    }

    func error(_ message: String, at offset: Int? = nil) -> JSONSyntaxError {
        JSONSyntaxError(offset: offset ?? index, message: message)
    }

    /// "found 'x'", "found byte 0xC3" or "found the end of the line".
    func found() -> String {
        guard index < bytes.count else { return "found the end of the line" }
        let byte = bytes[index]
        if byte >= 0x20 && byte < 0x7F { return "found '\(Character(Unicode.Scalar(byte)))'" }
        return "found byte 0x\(String(byte, radix: 16, uppercase: true))"
    }

    /// Consumes `byte` or throws "expected <what>".
    @inline(__always)
    mutating func expect(_ byte: UInt8, _ what: String) throws(JSONSyntaxError) {
        guard index < bytes.count, bytes[index] == byte else { throw error("expected \(what), \(found())") }
        index += 1
    }

    // MARK: Values

    /// Scans one value starting at the current byte (no leading whitespace).
    mutating func scanValue(depth: Int = 0) throws(JSONSyntaxError) -> JSONSpan {
        guard index < bytes.count else { throw error("expected a value, found the end of the line") }
        let start = index
        switch bytes[index] {
        case 0x22:
            return try scanString()
        case 0x7B: // {
            guard depth < JSONScanner.depthMax else { throw error("nesting deeper than \(JSONScanner.depthMax) levels") }
            index += 1
            skipWhitespace()
            if peek == 0x7D {
                index += 1
                return JSONSpan(start: start, end: index, kind: .object, flag: false)
            }
            while true {
                guard peek == 0x22 else { throw error("expected a string key, \(found())") }
                try skipString()
                skipWhitespace()
                try expect(0x3A, "':' after an object key")
                skipWhitespace()
                try skipValue(depth: depth + 1)
                skipWhitespace()
                if peek == 0x2C {
                    index += 1
                    skipWhitespace()
                    continue
                }
                try expect(0x7D, "',' or '}' in an object")
                return JSONSpan(start: start, end: index, kind: .object, flag: false)
            }
        case 0x5B: // [
            guard depth < JSONScanner.depthMax else { throw error("nesting deeper than \(JSONScanner.depthMax) levels") }
            index += 1
            skipWhitespace()
            if peek == 0x5D {
                index += 1
                return JSONSpan(start: start, end: index, kind: .array, flag: false)
            }
            while true {
                try skipValue(depth: depth + 1)
                skipWhitespace()
                if peek == 0x2C {
                    index += 1
                    skipWhitespace()
                    continue
                }
                try expect(0x5D, "',' or ']' in an array")
                return JSONSpan(start: start, end: index, kind: .array, flag: false)
            }
        case 0x74: // true
            try scanLiteral("true")
            return JSONSpan(start: start, end: index, kind: .true, flag: false)
        case 0x66: // false
            try scanLiteral("false")
            return JSONSpan(start: start, end: index, kind: .false, flag: false)
        case 0x6E: // null
            try scanLiteral("null")
            return JSONSpan(start: start, end: index, kind: .null, flag: false)
        case 0x2D, 0x30...0x39:
            return try scanNumber()
        default:
            throw error("expected a value, \(found())")
        }
    }

    /// Scans a value inside a container: strings and scalars inline, containers recursively.
    @inline(__always)
    private mutating func skipValue(depth: Int) throws(JSONSyntaxError) {
        guard index < bytes.count else { throw error("expected a value, found the end of the line") }
        switch bytes[index] {
        case 0x22: try skipString()
        case 0x2D, 0x30...0x39: _ = try scanNumber()
        default: _ = try scanValue(depth: depth)
        }
    }

    /// `scanString` without its result, inlined for the strings inside containers.
    @inline(__always)
    private mutating func skipString() throws(JSONSyntaxError) {
        _ = try scanString()
    }

    private mutating func scanLiteral(_ literal: StaticString) throws(JSONSyntaxError) {
        let count = literal.utf8CodeUnitCount
        let start = index
        guard bytes.count - index >= count else { throw error("expected '\(literal)'", at: start) }
        let matches = literal.withUTF8Buffer { expected in
            for offset in 0..<count where bytes[start + offset] != expected[offset] { return false }
            return true
        }
        guard matches else { throw error("expected '\(literal)'", at: start) }
        index += count
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    mutating func scanNumber() throws(JSONSyntaxError) -> JSONSpan {
        let start = index
        var inexact = false
        if peek == 0x2D { index += 1 }
        if peek == 0x30 {
            index += 1
            if isDigit(peek) { throw error("a number must not have a leading zero", at: start) }
        } else if isDigit(peek) {
            while isDigit(peek) { index += 1 }
        } else {
            throw error("expected a digit, \(found())")
        }
        if peek == 0x2E {
            inexact = true
            index += 1
            guard isDigit(peek) else { throw error("expected a digit after '.', \(found())") }
            while isDigit(peek) { index += 1 }
        }
        if peek == 0x65 || peek == 0x45 {
            inexact = true
            index += 1
            if peek == 0x2B || peek == 0x2D { index += 1 }
            guard isDigit(peek) else { throw error("expected a digit in the exponent, \(found())") }
            while isDigit(peek) { index += 1 }
        }
        return JSONSpan(start: start, end: index, kind: .number, flag: inexact)
    }

    @inline(__always)
    private func isDigit(_ byte: Int) -> Bool { byte >= 0x30 && byte <= 0x39 }

    /// Scans a string at `"`, validating escapes and UTF-8; the span is its content.
    @inline(__always)
    mutating func scanString() throws(JSONSyntaxError) -> JSONSpan {
        let open = index
        index += 1
        let start = index
        var escaped = false
        let count = bytes.count
        while true {
            // The common case: runs of printable ASCII, 8 bytes at a time. SWAR tests flag
            // each byte that is `"`, `\`, a control character or non-ASCII; a false flag can
            // only sit above a true one (borrows run upwards), so the lowest flag is exact.
            var found = false
            if let base = bytes.baseAddress {
                let raw = UnsafeRawPointer(base)
                while count - index >= 8 {
                    let word = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: index, as: UInt64.self))
                    let ones: UInt64 = 0x0101_0101_0101_0101
                    let highs: UInt64 = 0x8080_8080_8080_8080
                    let quote = word ^ (ones &* 0x22)
                    let backslash = word ^ (ones &* 0x5C)
                    let special = (word | ((word &- ones &* 0x20) & ~word)
                        | ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash)) & highs
                    if special != 0 {
                        index += special.trailingZeroBitCount >> 3
                        found = true
                        break
                    }
                    index += 8
                }
            }
            if !found {
                while index < count {
                    let byte = bytes[index]
                    guard byte >= 0x20 && byte < 0x80 && byte != 0x22 && byte != 0x5C else { break }
                    index += 1
                }
            }
            guard index < count else { throw error("unterminated string", at: open) }
            let byte = bytes[index]
            if byte == 0x22 {
                let span = JSONSpan(start: start, end: index, kind: .string, flag: escaped)
                index += 1
                return span
            } else if byte == 0x5C {
                escaped = true
                try scanEscape()
            } else if byte < 0x20 {
                throw error("control character U+00\(hex2(byte)) in a string must be escaped")
            } else {
                try scanUTF8Sequence()
            }
        }
    }

    private func hex2(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16, uppercase: true)
        return digits.utf8.count == 1 ? "0" + digits : digits
    }

    private mutating func scanEscape() throws(JSONSyntaxError) {
        let escapeStart = index
        index += 1
        guard index < bytes.count else { throw error("unterminated string") }
        switch bytes[index] {
        case 0x22, 0x5C, 0x2F, 0x62, 0x66, 0x6E, 0x72, 0x74:
            index += 1
        case 0x75:
            index += 1
            let unit = try scanHex4()
            if unit >= 0xD800 && unit <= 0xDBFF {
                guard bytes.count - index >= 2, bytes[index] == 0x5C, bytes[index + 1] == 0x75 else {
                    throw error("lone surrogate \\u\(String(unit, radix: 16, uppercase: true)) (a high surrogate must be followed by a low one)", at: escapeStart)
                }
                index += 2
                let low = try scanHex4()
                guard low >= 0xDC00 && low <= 0xDFFF else {
                    throw error("lone surrogate \\u\(String(unit, radix: 16, uppercase: true)) (a high surrogate must be followed by a low one)", at: escapeStart)
                }
            } else if unit >= 0xDC00 && unit <= 0xDFFF {
                throw error("lone surrogate \\u\(String(unit, radix: 16, uppercase: true))", at: escapeStart)
            }
        default:
            let next = bytes[index]
            let shown = next >= 0x21 && next < 0x7F ? String(Character(Unicode.Scalar(next))) : "byte 0x\(hex2(next))"
            throw error("invalid escape sequence '\\\(shown)'", at: escapeStart)
        }
    }

    private mutating func scanHex4() throws(JSONSyntaxError) -> UInt32 {
        guard bytes.count - index >= 4 else { throw error("expected 4 hex digits after \\u") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = JSONScanner.hexValue(bytes[index]) else {
                throw error("expected 4 hex digits after \\u, \(found())")
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: byte &- 0x30
        case 0x61...0x66: byte &- 0x61 &+ 10
        case 0x41...0x46: byte &- 0x41 &+ 10
        default: nil
        }
    }

    /// One multi-byte UTF-8 sequence, well-formed per Unicode Table 3-7 (no overlongs, no
    /// surrogates, nothing above U+10FFFF).
    private mutating func scanUTF8Sequence() throws(JSONSyntaxError) {
        let lead = bytes[index]
        guard let (length, low, high) = utf8Sequence(lead: lead) else { throw error("invalid UTF-8") }
        guard bytes.count - index >= length else { throw error("invalid UTF-8 (truncated sequence)") }
        let second = bytes[index + 1]
        guard second >= low && second <= high else { throw error("invalid UTF-8") }
        var offset = 2
        while offset < length {
            let continuation = bytes[index + offset]
            guard continuation >= 0x80 && continuation <= 0xBF else { throw error("invalid UTF-8") }
            offset += 1
        }
        index += length
    }
}

extension JSONScanner {
    /// Nil when `bytes` is exactly one well-formed JSON value with no whitespace around it
    /// (the form the decoder stores, so a dump and re-import give back the same text);
    /// otherwise the first problem.
    static func isValidJSON(_ bytes: UnsafeBufferPointer<UInt8>) -> JSONSyntaxError? {
        var scanner = JSONScanner(bytes)
        do {
            _ = try scanner.scanValue()
        } catch {
            return error
        }
        if !scanner.atEnd { return scanner.error("unexpected data after the value, \(scanner.found())") }
        return nil
    }

    /// The content of a validated string span with its escapes resolved, as UTF-8 bytes.
    static func unescape(_ bytes: UnsafeBufferPointer<UInt8>, _ span: JSONSpan) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(span.end - span.start)
        var index = span.start
        func hex4(at position: Int) -> UInt32 {
            var value: UInt32 = 0
            for offset in 0..<4 where position + offset < span.end {
                value = value << 4 | UInt32(JSONScanner.hexValue(bytes[position + offset]) ?? 0)
            }
            return value
        }
        while index < span.end {
            let byte = bytes[index]
            guard byte == 0x5C, index + 1 < span.end else {
                out.append(byte)
                index += 1
                continue
            }
            let code = bytes[index + 1]
            index += 2
            switch code {
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                var scalar = hex4(at: index)
                index += 4
                if scalar >= 0xD800 && scalar <= 0xDBFF {
                    // Validated: a `\uDC00`–`\uDFFF` follows.
                    let low = hex4(at: index + 2)
                    index += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low &- 0xDC00)
                }
                appendUTF8(scalar, to: &out)
            default: out.append(code) // " \ /
            }
        }
        return out
    }

    private static func appendUTF8(_ scalar: UInt32, to out: inout [UInt8]) {
        switch scalar {
        case 0..<0x80:
            out.append(UInt8(truncatingIfNeeded: scalar))
        case 0x80..<0x800:
            out.append(0xC0 | UInt8(truncatingIfNeeded: scalar >> 6))
            out.append(0x80 | UInt8(truncatingIfNeeded: scalar & 0x3F))
        case 0x800..<0x10000:
            out.append(0xE0 | UInt8(truncatingIfNeeded: scalar >> 12))
            out.append(0x80 | UInt8(truncatingIfNeeded: (scalar >> 6) & 0x3F))
            out.append(0x80 | UInt8(truncatingIfNeeded: scalar & 0x3F))
        default:
            out.append(0xF0 | UInt8(truncatingIfNeeded: scalar >> 18))
            out.append(0x80 | UInt8(truncatingIfNeeded: (scalar >> 12) & 0x3F))
            out.append(0x80 | UInt8(truncatingIfNeeded: (scalar >> 6) & 0x3F))
            out.append(0x80 | UInt8(truncatingIfNeeded: scalar & 0x3F))
        }
    }
}

/// True when every byte of `bytes` is ASCII: words ORed together without early exit, the tail
/// read as one overlapping word (no per-byte loop for the short keys and names that dominate).
@inline(__always)
func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
    let count = bytes.count
    guard let base = bytes.baseAddress else { return true }
    let raw = UnsafeRawPointer(base)
    if count >= 8 {
        var merged: UInt64 = 0
        var index = 0
        while count - index >= 32 {
            merged |= raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                | raw.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self)
                | raw.loadUnaligned(fromByteOffset: index + 16, as: UInt64.self)
                | raw.loadUnaligned(fromByteOffset: index + 24, as: UInt64.self)
            index += 32
        }
        while count - index >= 8 {
            merged |= raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            index += 8
        }
        merged |= raw.loadUnaligned(fromByteOffset: count - 8, as: UInt64.self)
        return merged & 0x8080_8080_8080_8080 == 0
    }
    if count >= 4 {
        let merged = raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self) | raw.loadUnaligned(fromByteOffset: count - 4, as: UInt32.self)
        return merged & 0x8080_8080 == 0
    }
    var merged: UInt8 = 0
    for index in 0..<count { merged |= base[index] }
    return merged < 0x80
}

/// True when `bytes` is well-formed UTF-8 (Unicode Table 3-7: no overlongs, no surrogates,
/// nothing above U+10FFFF). ASCII runs are checked 8 bytes at a time.
func isValidUTF8(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
    let count = bytes.count
    var index = 0
    guard let base = bytes.baseAddress else { return true }
    let raw = UnsafeRawPointer(base)
    while index < count {
        // ASCII runs: 32 bytes per step, then 8.
        while count - index >= 32 {
            let merged = raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                | raw.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self)
                | raw.loadUnaligned(fromByteOffset: index + 16, as: UInt64.self)
                | raw.loadUnaligned(fromByteOffset: index + 24, as: UInt64.self)
            guard merged & 0x8080_8080_8080_8080 == 0 else { break }
            index += 32
        }
        while count - index >= 8,
              raw.loadUnaligned(fromByteOffset: index, as: UInt64.self) & 0x8080_8080_8080_8080 == 0 {
            index += 8
        }
        guard index < count else { return true }
        let lead = bytes[index]
        if lead < 0x80 {
            index += 1
            continue
        }
        guard let (length, low, high) = utf8Sequence(lead: lead) else { return false }
        guard count - index >= length else { return false }
        let second = bytes[index + 1]
        guard second >= low && second <= high else { return false }
        var offset = 2
        while offset < length {
            let continuation = bytes[index + offset]
            guard continuation >= 0x80 && continuation <= 0xBF else { return false }
            offset += 1
        }
        index += length
    }
    return true
}

/// A string from bytes already known to be valid UTF-8, in one copy (small ASCII strings are
/// built inline without validation work).
@inline(__always)
func makeString(validUTF8 bytes: UnsafeBufferPointer<UInt8>) -> String {
    let count = bytes.count
    guard count > 0, let source = bytes.baseAddress else { return "" }
    return String(unsafeUninitializedCapacity: count) { target in
        guard let destination = target.baseAddress else { return 0 }
        destination.initialize(from: source, count: count)
        return count
    }
}

/// For a UTF-8 lead byte (≥ 0x80): the sequence length and the allowed range of the second
/// byte, per Unicode Table 3-7 (no overlongs, no surrogates, nothing above U+10FFFF); `nil`
/// when the byte cannot start a sequence.
@inline(__always)
func utf8Sequence(lead: UInt8) -> (length: Int, low: UInt8, high: UInt8)? {
    switch lead {
    case 0xC2...0xDF: (2, 0x80, 0xBF)
    case 0xE0: (3, 0xA0, 0xBF)
    case 0xE1...0xEC, 0xEE...0xEF: (3, 0x80, 0xBF)
    case 0xED: (3, 0x80, 0x9F)
    case 0xF0: (4, 0x90, 0xBF)
    case 0xF1...0xF3: (4, 0x80, 0xBF)
    case 0xF4: (4, 0x80, 0x8F)
    default: nil
    }
}
