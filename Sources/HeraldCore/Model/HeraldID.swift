/// A UUID, as Herald stores it: 16 bytes, compared and hashed as two integers,
/// printed in canonical lowercase 8-4-4-4-12 form.
///
/// Parsing accepts only the canonical form, in either case (DESIGN.md §2):
/// ```swift
/// let id = HeraldID("3F2504E0-4F89-11D3-9A0C-0305E82C3301")   // stored lowercase
/// id?.description  // "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
/// ```
public struct HeraldID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The first 8 bytes, big-endian.
    public var high: UInt64
    /// The last 8 bytes, big-endian.
    public var low: UInt64

    /// Creates an id from its two halves.
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Parses the canonical 8-4-4-4-12 hexadecimal form, either case; `nil` for any other spelling.
    public init?(_ text: String) {
        var text = text
        let parsed: HeraldID? = text.withUTF8 { HeraldID(utf8: $0) }
        guard let parsed else { return nil }
        self = parsed
    }

    /// Parses the canonical form from UTF-8 bytes; `nil` for any other spelling.
    public init?(utf8 bytes: UnsafeBufferPointer<UInt8>) {
        guard bytes.count == 36 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        var nibbles = 0
        for index in 0..<36 {
            let byte = bytes[index]
            if index == 8 || index == 13 || index == 18 || index == 23 {
                guard byte == UInt8(ascii: "-") else { return nil }
                continue
            }
            let value: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = byte &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = byte &- UInt8(ascii: "a") &+ 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): value = byte &- UInt8(ascii: "A") &+ 10
            default: return nil
            }
            if nibbles < 16 {
                high = (high << 4) | UInt64(value)
            } else {
                low = (low << 4) | UInt64(value)
            }
            nibbles += 1
        }
        self.high = high
        self.low = low
    }

    public static func < (lhs: HeraldID, rhs: HeraldID) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    /// Appends the canonical lowercase form (36 ASCII bytes) to `out`.
    public func appendCanonical(to out: inout [UInt8]) {
        let digits: StaticString = "0123456789abcdef"
        digits.withUTF8Buffer { hex in
            for nibble in 0..<32 {
                if nibble == 8 || nibble == 12 || nibble == 16 || nibble == 20 {
                    out.append(UInt8(ascii: "-"))
                }
                let word = nibble < 16 ? high : low
                let shift = UInt64(60 - (nibble % 16) * 4)
                out.append(hex[Int((word >> shift) & 0xF)])
            }
        }
    }

    public var description: String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(36)
        appendCanonical(to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The first 8 hex digits, for compact tables.
    public var short: String { String(description.prefix(8)) }
}
