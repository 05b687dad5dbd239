/// A UUID, as Herald stores it: 16 bytes, compared and hashed as two integers,
/// printed in canonical lowercase 8-4-4-4-12 form.
///
/// Parsing accepts only the canonical form, in either case (docs/SEMANTICS.md §2.2):
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

    /// True when `bytes` are an id exactly as ``description`` prints it (canonical form,
    /// lowercase): such text can be copied where the printed form is wanted.
    public static func isPrinted(utf8 bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard bytes.count == 36, let base = bytes.baseAddress,
              base[8] == UInt8(ascii: "-"), base[13] == UInt8(ascii: "-"), base[18] == UInt8(ascii: "-"),
              base[23] == UInt8(ascii: "-") else { return false }
        // One table load per byte, no branch (this runs for every id of a listing of millions):
        // hex digits weigh 1, a dash 64, anything else 0. With the four dashes in place the sum
        // is 4·64 + 32 only when the other 32 bytes are all hex digits.
        return printedWeights.withUnsafeBufferPointer { weights in
            var sum = 0
            for index in 0..<36 { sum &+= Int(weights[Int(base[index])]) }
            return sum == 4 * 64 + 32
        }
    }

    private static let printedWeights: [UInt8] = (0..<256).map { byte in
        switch UInt8(byte) {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "f"): 1
        case UInt8(ascii: "-"): 64
        default: 0
        }
    }

    public static func < (lhs: HeraldID, rhs: HeraldID) -> Bool {
        (lhs.high, lhs.low) < (rhs.high, rhs.low)
    }

    /// Appends the canonical lowercase form (36 ASCII bytes) to `out`.
    public func appendCanonical(to out: inout [UInt8]) {
        withCanonicalUTF8 { out.append(contentsOf: $0) }
    }

    /// Calls `body` with the canonical lowercase form's 36 ASCII bytes, formatted on the stack.
    public func withCanonicalUTF8<Result>(_ body: (UnsafeBufferPointer<UInt8>) throws -> Result) rethrows -> Result {
        try withUnsafeTemporaryAllocation(of: UInt8.self, capacity: Self.canonicalBytes) { buffer in
            let written = writeCanonical(into: buffer)
            return try body(UnsafeBufferPointer(rebasing: buffer[0..<written]))
        }
    }

    public var description: String {
        String(unsafeUninitializedCapacity: Self.canonicalBytes) { writeCanonical(into: $0) }
    }

    /// Length of the canonical form: 32 hex digits and 4 hyphens.
    public static let canonicalBytes = 36

    /// Writes the canonical form into the first 36 bytes of `out`; returns the bytes written
    /// (36, or 0 when `out` is shorter). Eight digits at a time, in a 64-bit word.
    @inline(__always)
    private func writeCanonical(into out: UnsafeMutableBufferPointer<UInt8>) -> Int {
        guard out.count >= Self.canonicalBytes, let base = out.baseAddress else { return 0 }
        let raw = UnsafeMutableRawPointer(base)
        let first = Self.hexDigits(UInt32(truncatingIfNeeded: high >> 32))
        let second = Self.hexDigits(UInt32(truncatingIfNeeded: high))
        let third = Self.hexDigits(UInt32(truncatingIfNeeded: low >> 32))
        let fourth = Self.hexDigits(UInt32(truncatingIfNeeded: low))
        let hyphen = UInt8(ascii: "-")
        // 8-4-4-4-12: each word's first 4 digits are its low 4 bytes (little-endian stores).
        raw.storeBytes(of: first.littleEndian, toByteOffset: 0, as: UInt64.self)
        raw.storeBytes(of: hyphen, toByteOffset: 8, as: UInt8.self)
        raw.storeBytes(of: UInt32(truncatingIfNeeded: second).littleEndian, toByteOffset: 9, as: UInt32.self)
        raw.storeBytes(of: hyphen, toByteOffset: 13, as: UInt8.self)
        raw.storeBytes(of: UInt32(truncatingIfNeeded: second >> 32).littleEndian, toByteOffset: 14, as: UInt32.self)
        raw.storeBytes(of: hyphen, toByteOffset: 18, as: UInt8.self)
        raw.storeBytes(of: UInt32(truncatingIfNeeded: third).littleEndian, toByteOffset: 19, as: UInt32.self)
        raw.storeBytes(of: hyphen, toByteOffset: 23, as: UInt8.self)
        raw.storeBytes(of: UInt32(truncatingIfNeeded: third >> 32).littleEndian, toByteOffset: 24, as: UInt32.self)
        raw.storeBytes(of: fourth.littleEndian, toByteOffset: 28, as: UInt64.self)
        return Self.canonicalBytes
    }

    /// The 8 lowercase hex digits of `value`, most significant first, as ASCII bytes packed
    /// from the low byte up (so a little-endian store writes them in reading order).
    @inline(__always)
    static func hexDigits(_ value: UInt32) -> UInt64 {
        // One nibble per byte, the most significant in the high byte, then byte-swapped.
        var x = UInt64(value)
        x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF
        x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF
        x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F
        x = x.byteSwapped
        // '0' + n, plus 0x27 more ('a' - '0' - 10) in the bytes where n >= 10 (n + 6 carries into bit 4).
        let letters = ((x &+ 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101
        return x &+ 0x3030_3030_3030_3030 &+ letters &* 0x27
    }

    /// The first 8 hex digits, for compact tables.
    public var short: String { String(description.prefix(8)) }
}
