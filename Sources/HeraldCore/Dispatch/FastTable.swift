/// A key with a cheap, unseeded hash. Swift's `Hasher` is seeded per process and costs
/// ~30 ns a key; the dispatcher's hot tables (pending deliveries, counts per trigger) hash
/// random UUIDs and dense positions, which a multiply-xorshift mix spreads well enough.
public protocol FastKey: Equatable, Sendable {
    var fastHash: UInt64 { get }
}

@inline(__always)
func mix64(_ value: UInt64) -> UInt64 {
    // splitmix64's finalizer.
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

extension HeraldID: FastKey {
    @inlinable public var fastHash: UInt64 { high &* 0x9E37_79B9_7F4A_7C15 ^ low }
}

extension DeliveryID: FastKey {
    @inlinable public var fastHash: UInt64 { triggerID.fastHash &+ sourcePosition &* 0xC2B2_AE3D_27D4_EB4F }
}

/// A hash map for the dispatcher's hot paths: entries live densely in two arrays (appended
/// on insert, swap-removed on delete) and an open-addressing index (linear probing,
/// tombstones) maps keys to them. Its iteration order is deterministic (unseeded hash), but
/// nothing derived relies on it: callers sort where order matters.
public struct FastTable<Key: FastKey, Value: Sendable>: Sendable {
    // A slot is 0 (empty), 1 (deleted), or the upper 32 bits of the key's hash beside its
    // dense index + 2: most probes that do not match are rejected without touching `keys`.
    private static var empty: UInt64 { 0 }
    private static var deleted: UInt64 { 1 }
    /// Dense entries.
    public private(set) var keys: [Key] = []
    public private(set) var values: [Value] = []
    private var slots: [UInt64] = []
    private var mask = 0
    private var tombstones = 0

    public init() {}

    /// Entries in the table.
    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    @inline(__always)
    private static func fingerprint(_ hash: UInt64) -> UInt64 { hash & 0xFFFF_FFFF_0000_0000 }

    @inline(__always)
    private static func position(_ slot: UInt64) -> Int { Int(truncatingIfNeeded: slot & 0xFFFF_FFFF) - 2 }

    /// The slot holding `key`, if present.
    @inline(__always)
    private func slot(of key: Key) -> Int? {
        guard mask > 0 else { return nil }
        let hash = mix64(key.fastHash)
        let fingerprint = Self.fingerprint(hash)
        var index = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = slots[index]
            if entry == Self.empty { return nil }
            if entry > Self.deleted && Self.fingerprint(entry) == fingerprint && keys[Self.position(entry)] == key {
                return index
            }
            index = (index + 1) & mask
        }
    }

    /// True when `key` is present (no copy of its value).
    @inline(__always)
    public func contains(_ key: Key) -> Bool { slot(of: key) != nil }

    /// The dense position of the entry whose key has hash `hash` (its ``FastKey/fastHash``)
    /// and satisfies `matches`: a lookup that need not build a key.
    @inline(__always)
    func position(hash keyHash: UInt64, where matches: (Key) -> Bool) -> Int? {
        guard mask > 0 else { return nil }
        let hash = mix64(keyHash)
        let fingerprint = Self.fingerprint(hash)
        var index = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = slots[index]
            if entry == Self.empty { return nil }
            if entry > Self.deleted && Self.fingerprint(entry) == fingerprint && matches(keys[Self.position(entry)]) {
                return Self.position(entry)
            }
            index = (index + 1) & mask
        }
    }

    /// The value for `key`; setting `nil` removes it.
    public subscript(key: Key) -> Value? {
        get { slot(of: key).map { values[Self.position(slots[$0])] } }
        set {
            if let newValue {
                if let found = slot(of: key) {
                    values[Self.position(slots[found])] = newValue
                } else {
                    insertNew(key, newValue)
                }
            } else {
                remove(key)
            }
        }
    }

    /// Changes the value for `key` in place, inserting `initial` first if it is absent: one
    /// probe where `table[key] = f(table[key])` takes two.
    public mutating func update(_ key: Key, default initial: @autoclosure () -> Value, _ body: (inout Value) -> Void) {
        if let found = slot(of: key) {
            body(&values[Self.position(slots[found])])
        } else {
            insertNew(key, initial())
            body(&values[values.count - 1])
        }
    }

    /// Adds an entry whose key is known to be absent (a delivery id is created once), without
    /// the lookup that the subscript pays.
    public mutating func insertNew(_ key: Key, _ value: Value) {
        if (keys.count + tombstones + 1) * 4 > slots.count * 3 { rehash(minimumCapacity: keys.count + 1) }
        place(key, at: keys.count)
        keys.append(key)
        values.append(value)
    }

    private mutating func place(_ key: Key, at position: Int) {
        let hash = mix64(key.fastHash)
        var index = Int(truncatingIfNeeded: hash) & mask
        while slots[index] > Self.deleted { index = (index + 1) & mask }
        if slots[index] == Self.deleted { tombstones -= 1 }
        slots[index] = Self.fingerprint(hash) | UInt64(position + 2)
    }

    private mutating func remove(_ key: Key) {
        guard let found = slot(of: key) else { return }
        let position = Self.position(slots[found])
        slots[found] = Self.deleted
        tombstones += 1
        let last = keys.count - 1
        if position != last {
            // Move the last entry into the hole and repoint its slot.
            if let moved = slot(of: keys[last]) {
                slots[moved] = Self.fingerprint(slots[moved]) | UInt64(position + 2)
            }
            keys.swapAt(position, last)
            values.swapAt(position, last)
        }
        keys.removeLast()
        values.removeLast()
    }

    private mutating func rehash(minimumCapacity: Int) {
        let capacity = Swift.max(16, (minimumCapacity * 2).nextPowerOfTwo)
        slots = Array(repeating: Self.empty, count: capacity)
        mask = capacity - 1
        tombstones = 0
        for (position, key) in keys.enumerated() {
            place(key, at: position)
        }
    }
}

extension FastTable: Sequence {
    public struct Iterator: IteratorProtocol {
        let table: FastTable
        var index = 0

        public mutating func next() -> (key: Key, value: Value)? {
            guard index < table.keys.count else { return nil }
            defer { index += 1 }
            return (table.keys[index], table.values[index])
        }
    }

    public func makeIterator() -> Iterator { Iterator(table: self) }
}

extension FastTable: Equatable where Value: Equatable {
    /// Same keys with equal values, whatever the insertion history.
    public static func == (lhs: FastTable, rhs: FastTable) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for (key, value) in lhs where rhs[key] != value { return false }
        return true
    }
}

extension Int {
    var nextPowerOfTwo: Int {
        guard self > 1 else { return 1 }
        return 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount)
    }
}
