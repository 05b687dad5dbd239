/// A key with a cheap, unseeded hash. Swift's `Hasher` is seeded per process and costs
/// ~30 ns a key; the dispatcher's hot tables (pending deliveries, counts per trigger) hash
/// random UUIDs and dense positions, which a multiply-xorshift mix spreads well enough.
package protocol FastKey: Equatable, Sendable {
    var fastHash: UInt64 { get }
}

@inlinable @inline(__always)
func mix64(_ value: UInt64) -> UInt64 {
    // splitmix64's finalizer.
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

extension HeraldID: FastKey {
    @inlinable package var fastHash: UInt64 { high &* 0x9E37_79B9_7F4A_7C15 ^ low }
}

extension DeliveryID: FastKey {
    @inlinable package var fastHash: UInt64 { triggerID.fastHash &+ sourcePosition &* 0xC2B2_AE3D_27D4_EB4F }
}

/// A hash map for the dispatcher's hot paths: entries live densely in two arrays (appended
/// on insert, swap-removed on delete) and an open-addressing index (linear probing,
/// tombstones) maps keys to them. Its iteration order is deterministic (unseeded hash), but
/// nothing derived relies on it: callers sort where order matters.
package struct FastTable<Key: FastKey, Value: Sendable>: Sendable {
    // A slot is 0 (empty), 1 (deleted), or the upper 32 bits of the key's hash beside its
    // dense index + 2: most probes that do not match are rejected without touching `keys`.
    @usableFromInline static var empty: UInt64 { 0 }
    @usableFromInline static var deleted: UInt64 { 1 }
    @usableFromInline var _keys: [Key] = []
    @usableFromInline var _values: [Value] = []
    @usableFromInline var slots: [UInt64] = []
    @usableFromInline var mask = 0
    @usableFromInline var tombstones = 0
    /// Dense keys, in insertion order (with swap-removal).
    @inlinable package var keys: [Key] { _keys }
    /// Values, beside ``keys``.
    @inlinable package var values: [Value] { _values }

    @inlinable package init() {}

    /// Entries in the table.
    @inlinable package var count: Int { _keys.count }
    @inlinable package var isEmpty: Bool { _keys.isEmpty }

    @inline(__always)
    @usableFromInline static func fingerprint(_ hash: UInt64) -> UInt64 { hash & 0xFFFF_FFFF_0000_0000 }

    @inline(__always)
    @usableFromInline static func position(_ slot: UInt64) -> Int { Int(truncatingIfNeeded: slot & 0xFFFF_FFFF) - 2 }

    /// The slot holding `key`, if present.
    @inline(__always)
    @inlinable func slot(of key: Key) -> Int? {
        guard mask > 0 else { return nil }
        let hash = mix64(key.fastHash)
        let fingerprint = Self.fingerprint(hash)
        var index = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = slots[index]
            if entry == Self.empty { return nil }
            if entry > Self.deleted && Self.fingerprint(entry) == fingerprint && _keys[Self.position(entry)] == key {
                return index
            }
            index = (index + 1) & mask
        }
    }

    /// True when `key` is present (no copy of its value).
    @inline(__always)
    @inlinable package func contains(_ key: Key) -> Bool { slot(of: key) != nil }

    /// The dense position of the entry whose key has hash `hash` (its ``FastKey/fastHash``)
    /// and satisfies `matches`: a lookup that need not build a key.
    @inline(__always)
    @inlinable func position(hash keyHash: UInt64, where matches: (Key) -> Bool) -> Int? {
        guard mask > 0 else { return nil }
        let hash = mix64(keyHash)
        let fingerprint = Self.fingerprint(hash)
        var index = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = slots[index]
            if entry == Self.empty { return nil }
            if entry > Self.deleted && Self.fingerprint(entry) == fingerprint && matches(_keys[Self.position(entry)]) {
                return Self.position(entry)
            }
            index = (index + 1) & mask
        }
    }

    /// The value for `key`; setting `nil` removes it.
    @inlinable package subscript(key: Key) -> Value? {
        get { slot(of: key).map { _values[Self.position(slots[$0])] } }
        set {
            if let newValue {
                if let found = slot(of: key) {
                    _values[Self.position(slots[found])] = newValue
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
    @inlinable package mutating func update(_ key: Key, default initial: @autoclosure () -> Value, _ body: (inout Value) -> Void) {
        if let found = slot(of: key) {
            body(&_values[Self.position(slots[found])])
        } else {
            insertNew(key, initial())
            body(&_values[_values.count - 1])
        }
    }

    /// Adds an entry whose key is known to be absent (a delivery id is created once), without
    /// the lookup that the subscript pays.
    @inlinable package mutating func insertNew(_ key: Key, _ value: Value) {
        if (_keys.count + tombstones + 1) * 4 > slots.count * 3 { rehash(minimumCapacity: _keys.count + 1) }
        place(key, at: _keys.count)
        _keys.append(key)
        _values.append(value)
    }

    @usableFromInline mutating func place(_ key: Key, at position: Int) {
        let hash = mix64(key.fastHash)
        var index = Int(truncatingIfNeeded: hash) & mask
        while slots[index] > Self.deleted { index = (index + 1) & mask }
        if slots[index] == Self.deleted { tombstones -= 1 }
        slots[index] = Self.fingerprint(hash) | UInt64(position + 2)
    }

    @usableFromInline mutating func remove(_ key: Key) {
        guard let found = slot(of: key) else { return }
        let position = Self.position(slots[found])
        slots[found] = Self.deleted
        tombstones += 1
        let last = _keys.count - 1
        if position != last {
            // Move the last entry into the hole and repoint its slot.
            if let moved = slot(of: _keys[last]) {
                slots[moved] = Self.fingerprint(slots[moved]) | UInt64(position + 2)
            }
            _keys.swapAt(position, last)
            _values.swapAt(position, last)
        }
        _keys.removeLast()
        _values.removeLast()
    }

    @usableFromInline mutating func rehash(minimumCapacity: Int) {
        let capacity = Swift.max(16, (minimumCapacity * 2).nextPowerOfTwo)
        slots = Array(repeating: Self.empty, count: capacity)
        mask = capacity - 1
        tombstones = 0
        for (position, key) in _keys.enumerated() {
            place(key, at: position)
        }
    }
}

extension FastTable: Sequence {
    package struct Iterator: IteratorProtocol {
        @usableFromInline let table: FastTable
        @usableFromInline var index = 0

        @inlinable init(table: FastTable) { self.table = table }

        @inlinable package mutating func next() -> (key: Key, value: Value)? {
            guard index < table.keys.count else { return nil }
            defer { index += 1 }
            return (table.keys[index], table.values[index])
        }
    }

    @inlinable package func makeIterator() -> Iterator { Iterator(table: self) }
}

extension FastTable: Equatable where Value: Equatable {
    /// Same keys with equal values, whatever the insertion history.
    package static func == (lhs: FastTable, rhs: FastTable) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for (key, value) in lhs where rhs[key] != value { return false }
        return true
    }
}

extension Int {
    @usableFromInline var nextPowerOfTwo: Int {
        guard self > 1 else { return 1 }
        return 1 << (Int.bitWidth - (self - 1).leadingZeroBitCount)
    }
}
