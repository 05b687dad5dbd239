/// An enum spelled the same way on every wire Herald has (JSON Lines, the canonical outputs,
/// the projection's text columns, the invocation JSON): `wireName` is its one table of names,
/// an exhaustive switch, so a new case does not compile until it has one. Its binary form is
/// `rawValue`: consecutive numbers (from 0 or 1). Parsing (`init?(wireName:)`, the JSON decoder's
/// choices and their error messages), `description` and every encoder go through these two.
public protocol WireNamed: RawRepresentable, CustomStringConvertible, Sendable where RawValue == UInt8 {
    /// The case's name on the wire.
    var wireName: String { get }
}

extension WireNamed {
    public var description: String { wireName }

    /// The case named `name` on the wire, if any.
    public init?(name: String) {
        // String equality (a length check and a memcmp), not a byte-by-byte walk of two views:
        // the projection parses three of these per delivery row it loads.
        guard let found = Self.firstCase(where: { $0.wireName == name }) else { return nil }
        self = found
    }

    /// The case whose wire name is `bytes` (UTF-8), if any.
    public init?(wireName bytes: some Collection<UInt8>) {
        guard let found = Self.firstCase(where: { $0.wireName.utf8.elementsEqual(bytes) }) else { return nil }
        self = found
    }

    /// Every case, in `rawValue` order.
    public static var wireCases: [Self] {
        var cases: [Self] = []
        _ = firstCase { cases.append($0); return false }
        return cases
    }

    /// The first case, in `rawValue` order, that `predicate` accepts (no array is built).
    static func firstCase(where predicate: (Self) -> Bool) -> Self? {
        var raw: UInt8 = 0
        if Self(rawValue: 0) == nil { raw = 1 }
        while let candidate = Self(rawValue: raw) {
            if predicate(candidate) { return candidate }
            guard raw < .max else { return nil }
            raw += 1
        }
        return nil
    }

    /// The names as an error message lists them: `'a', 'b' or 'c'` (with `orNull`: `null, 'a' or 'b'`).
    static func wireNamesPhrase(orNull: Bool = false) -> String {
        let names = (orNull ? ["null"] : []) + wireCases.map { "'\($0.wireName)'" }
        guard names.count > 1, let last = names.last else { return names.first ?? "" }
        return names.dropLast().joined(separator: ", ") + " or " + last
    }
}

/// Finds a value by its wire name in raw UTF-8, for the decoders' hot paths: the names are
/// bucketed by length, so a key is compared with one or two names of its own length.
/// Built once from a table of names (``WireNamed/wireName``, `JSONField.jsonName`): nothing is
/// spelled a second time.
struct WireNameTable<Value: Sendable>: Sendable {
    /// Every name's bytes, one after another.
    private let bytes: [UInt8]
    /// `(start in bytes, value)` per name, grouped by length.
    private let entries: [(start: Int, value: Value)]
    /// `buckets[n]`: the entries of names n bytes long.
    private let buckets: [Range<Int>]

    init(_ names: [(name: String, value: Value)]) {
        let longest = names.map(\.name.utf8.count).max() ?? 0
        var bytes: [UInt8] = []
        var entries: [(start: Int, value: Value)] = []
        var buckets: [Range<Int>] = []
        for length in 0...longest {
            let first = entries.count
            for (name, value) in names where name.utf8.count == length {
                entries.append((bytes.count, value))
                bytes.append(contentsOf: name.utf8)
            }
            buckets.append(first..<entries.count)
        }
        self.bytes = bytes
        self.entries = entries
        self.buckets = buckets
    }

    /// The value named `key`, if any.
    @inline(__always)
    func lookup(_ key: UnsafeBufferPointer<UInt8>) -> Value? {
        guard key.count < buckets.count else { return nil }
        return bytes.withUnsafeBufferPointer { names -> Value? in
            candidates: for index in buckets[key.count] {
                let start = entries[index].start
                for offset in 0..<key.count where names[start + offset] != key[offset] { continue candidates }
                return entries[index].value
            }
            return nil
        }
    }
}
