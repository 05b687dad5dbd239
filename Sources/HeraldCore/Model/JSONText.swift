/// The text of one JSON value exactly as given, kept as its UTF-8 bytes: a KV value is only
/// ever checked, stored and passed on, so decoding a record does not build a `String` for it
/// (building one validates and copies the bytes again). ``description`` gives the text as a
/// `String`.
///
/// A value decoded from the log or from an import's input **shares** the buffer it was read
/// from (a decompressed log block, about 1 MiB, or a chunk of input lines) instead of
/// copying its bytes into an allocation of its own: a scan or an import then allocates
/// nothing per value. The shared buffer lives as long as any value in it, so code that keeps
/// values for long (a cache, a queue) keeps ``compacted()`` copies, which hold only their own
/// bytes. A value built from a `String` is always compact.
///
/// ```swift
/// let value: JSONText = #"{"name":"alice"}"#
/// print(value)              // {"name":"alice"}
/// value.count               // 16
/// ```
public struct JSONText: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringInterpolation {
    /// The buffer holding the text (maybe among other bytes).
    private let storage: [UInt8]
    /// Where the text sits in `storage`. Values are at most 1 MiB, but a text of 2³² bytes or
    /// more can still be built (and must then be refused by its size): it is never shared and
    /// its `length` is `UInt32.max`, meaning "to the end of `storage`".
    private let start: UInt32
    private let length: UInt32

    /// The text of `string`.
    public init(_ string: String) {
        self.init(owning: Array(string.utf8))
    }

    public init(stringLiteral value: String) {
        self.init(value)
    }

    public init(stringInterpolation: DefaultStringInterpolation) {
        self.init(String(stringInterpolation: stringInterpolation))
    }

    /// Bytes the caller has checked to be valid UTF-8, copied.
    init(validUTF8 bytes: UnsafeBufferPointer<UInt8>) {
        self.init(owning: Array(bytes))
    }

    /// Takes `bytes` (valid UTF-8) as the whole text.
    private init(owning bytes: [UInt8]) {
        storage = bytes
        start = 0
        length = UInt32(exactly: bytes.count) ?? .max
    }

    /// The bytes `range` of `buffer` (checked by the caller to be valid UTF-8), sharing the
    /// buffer; copied instead when the range cannot be stored in 32-bit offsets.
    init(sharing buffer: [UInt8], range: Range<Int>) {
        guard let start = UInt32(exactly: range.lowerBound), let length = UInt32(exactly: range.count), length < .max else {
            self = buffer.withUnsafeBufferPointer { JSONText(validUTF8: UnsafeBufferPointer(rebasing: $0[range])) }
            return
        }
        storage = buffer
        self.start = start
        self.length = length
    }

    /// No bytes (not a JSON value: a placeholder for encoders).
    static let empty = JSONText(owning: [])

    /// Bytes of text.
    public var count: Int { length == .max ? storage.count - Int(start) : Int(length) }

    /// The text's bytes (always valid UTF-8). The slice's indices are those of the buffer the
    /// text sits in, so they need not start at 0: use `withUTF8`, or `Array(utf8)`.
    public var utf8: ArraySlice<UInt8> { storage[Int(start)..<Int(start) + count] }

    /// True when the text holds no buffer but its own bytes (see ``compacted()``).
    public var isCompact: Bool { start == 0 && count == storage.count }

    /// The same text holding only its own bytes: what to keep when a value read from the log
    /// may be kept for long (it would otherwise keep its whole log block alive).
    public func compacted() -> JSONText {
        isCompact ? self : withUTF8 { JSONText(validUTF8: $0) }
    }

    /// The text as a `String`.
    public var description: String { withUTF8 { String(decoding: $0, as: UTF8.self) } }

    /// Calls `body` with the text's bytes.
    public func withUTF8<Result>(_ body: (UnsafeBufferPointer<UInt8>) throws -> Result) rethrows -> Result {
        try storage.withUnsafeBufferPointer { all in
            try body(UnsafeBufferPointer(rebasing: all[Int(start)..<Int(start) + count]))
        }
    }

    /// Equal texts have equal bytes (wherever they are stored).
    public static func == (lhs: JSONText, rhs: JSONText) -> Bool {
        lhs.count == rhs.count && lhs.withUTF8 { a in rhs.withUTF8 { b in a.elementsEqual(b) } }
    }

    public func hash(into hasher: inout Hasher) {
        // The length too, as `[UInt8]` does: texts hashed one after another stay distinct.
        hasher.combine(count)
        withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
    }
}
