/// The text of one JSON value exactly as given, kept as its UTF-8 bytes: a KV value is only
/// ever checked, stored and passed on, so decoding a record does not build a `String` for it
/// (building one validates and copies the bytes again, and was most of the cost of reading a
/// KV record back from the log). ``description`` gives the text as a `String`.
///
/// ```swift
/// let value: JSONText = #"{"name":"alice"}"#
/// print(value)              // {"name":"alice"}
/// value.utf8.count          // 16
/// ```
public struct JSONText: Hashable, Sendable, CustomStringConvertible, ExpressibleByStringInterpolation {
    /// The text's bytes: always valid UTF-8.
    public let utf8: [UInt8]

    /// The text of `string`.
    public init(_ string: String) {
        utf8 = Array(string.utf8)
    }

    public init(stringLiteral value: String) {
        self.init(value)
    }

    public init(stringInterpolation: DefaultStringInterpolation) {
        self.init(String(stringInterpolation: stringInterpolation))
    }

    /// Bytes the caller has checked to be valid UTF-8.
    init(validUTF8 bytes: UnsafeBufferPointer<UInt8>) {
        utf8 = Array(bytes)
    }

    /// The text as a `String`.
    public var description: String { String(decoding: utf8, as: UTF8.self) }

    /// Calls `body` with the text's bytes.
    public func withUTF8<Result>(_ body: (UnsafeBufferPointer<UInt8>) throws -> Result) rethrows -> Result {
        try utf8.withUnsafeBufferPointer(body)
    }
}
