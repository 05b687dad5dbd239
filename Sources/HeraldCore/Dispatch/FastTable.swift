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

/// An open-addressing hash table (linear probing, tombstones) for the dispatcher's hot paths.
/// Its iteration order is deterministic (unseeded hash), but nothing derived relies on it:
/// callers sort where order matters.
public struct FastTable<Key: FastKey, Value: Sendable>: Sendable {
    private enum Slot: UInt8 { case empty, full, deleted }
    private var keySlots: [Key?] = []
    private var valueSlots: [Value?] = []
    private var states: [Slot] = []
    private var mask = 0
    /// Entries in the table.
    public private(set) var count = 0
    private var used = 0  // full + deleted

    public init() {}

    public var isEmpty: Bool { count == 0 }

    @inline(__always)
    private func home(_ key: Key) -> Int { Int(truncatingIfNeeded: mix64(key.fastHash)) & mask }

    private func find(_ key: Key) -> Int? {
        guard mask > 0 else { return nil }
        var index = home(key)
        while true {
            switch states[index] {
            case .empty: return nil
            case .full where keySlots[index] == key: return index
            default: index = (index + 1) & mask
            }
        }
    }

    /// The value for `key`; setting `nil` removes it.
    public subscript(key: Key) -> Value? {
        get { find(key).flatMap { valueSlots[$0] } }
        set {
            if let newValue {
                insert(key, newValue)
            } else if let index = find(key) {
                states[index] = .deleted
                keySlots[index] = nil
                valueSlots[index] = nil
                count -= 1
            }
        }
    }

    private mutating func insert(_ key: Key, _ value: Value) {
        if (used + 1) * 4 > states.count * 3 { grow() }
        var index = home(key)
        var firstDeleted: Int?
        while true {
            switch states[index] {
            case .empty:
                let target = firstDeleted ?? index
                if firstDeleted == nil { used += 1 }
                states[target] = .full
                keySlots[target] = key
                valueSlots[target] = value
                count += 1
                return
            case .deleted:
                if firstDeleted == nil { firstDeleted = index }
            case .full where keySlots[index] == key:
                valueSlots[index] = value
                return
            case .full:
                break
            }
            index = (index + 1) & mask
        }
    }

    private mutating func grow() {
        let oldKeys = keySlots, oldValues = valueSlots, oldStates = states
        let capacity = Swift.max(16, (count * 2 + 1).nextPowerOfTwo)
        keySlots = Array(repeating: nil, count: capacity)
        valueSlots = Array(repeating: nil, count: capacity)
        states = Array(repeating: .empty, count: capacity)
        mask = capacity - 1
        count = 0
        used = 0
        for index in oldStates.indices where oldStates[index] == .full {
            if let key = oldKeys[index], let value = oldValues[index] { insert(key, value) }
        }
    }

    /// Every value (in table order: sort where order matters).
    public var values: [Value] { compactMapEntries { _, value in value } }

    /// Every key (in table order).
    public var keys: [Key] { compactMapEntries { key, _ in key } }

    private func compactMapEntries<T>(_ transform: (Key, Value) -> T) -> [T] {
        var result: [T] = []
        result.reserveCapacity(count)
        for index in states.indices where states[index] == .full {
            if let key = keySlots[index], let value = valueSlots[index] { result.append(transform(key, value)) }
        }
        return result
    }
}

extension FastTable: Sequence {
    public struct Iterator: IteratorProtocol {
        let table: FastTable
        var index = 0

        public mutating func next() -> (key: Key, value: Value)? {
            while index < table.states.count {
                defer { index += 1 }
                if table.states[index] == .full, let key = table.keySlots[index], let value = table.valueSlots[index] {
                    return (key, value)
                }
            }
            return nil
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
