/// A snapshot (of the pending deliveries, or the engine's whole state) that does not decode:
/// where in its bytes and why.
public struct SnapshotError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The byte offset in the snapshot where decoding stopped.
    public var offset: Int
    public var reason: String

    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }

    public var description: String { "byte \(offset) of the snapshot: \(reason)" }
}

/// The binary snapshot of ``PendingDeliveries`` (docs/SEMANTICS.md §6, "Restart"): what a
/// restart with many pending deliveries reads instead of one SQL row per delivery.
///
/// Little-endian, in this order:
///
/// | field | bytes |
/// |---|---|
/// | magic `HPD1` | 4 |
/// | snapshot count S, row count N | 4 + 8 |
/// | S snapshots: trigger, app, script (id halves high, low: 16 each), source kind (1), retry max attempts (8), backoff (1), base ms (8), trigger rank (8) | 66 each |
/// | N source positions (8 each), N snapshot indexes (4), N due times (8), N attempts (4), N depths (1) | 25 N |
/// | E last errors: count (4); each delivery (position 8, trigger 16), UTF-8 length (4), bytes | |
/// | B budget bases: count (4); each delivery (position 8, trigger 16), base (8) | |
/// | checksum of every byte before it (see ``checksum(_:)``) | 8 |
///
/// Rows are the pending deliveries in canonical order (finished rows are not written), errors
/// and budget bases in the order of their rows. Decoding checks every field: a snapshot that
/// does not describe a valid pending set is refused, never half used.
extension PendingDeliveries {
    static let snapshotMagic: [UInt8] = Array("HPD1".utf8)
    static let snapshotBytesPerSnapshot = 16 * 3 + 1 + 8 + 1 + 8 + 8
    static let snapshotBytesPerRow = 8 + 4 + 8 + 4 + 1

    /// The snapshot's bytes (the same pending deliveries give the same bytes).
    public func snapshotBytes() -> [UInt8] {
        // The live rows and the snapshots they use, renumbered in order of first use.
        var remap = [UInt32](repeating: .max, count: snapshots.count)
        var usedSnapshots: [Snapshot] = []
        var rowPositions: [UInt64] = []
        var rowSnapshots: [UInt32] = []
        var rowDue: [Int64] = []
        var rowAttempts: [Int32] = []
        var rowDepths: [UInt8] = []
        let live = count
        rowPositions.reserveCapacity(live); rowSnapshots.reserveCapacity(live); rowDue.reserveCapacity(live)
        rowAttempts.reserveCapacity(live); rowDepths.reserveCapacity(live)
        var errors: [(DeliveryID, String)] = []
        var bases: [(DeliveryID, Int64)] = []
        for row in positions.indices where isLive(row) {
            let old = Int(snapshotOf[row])
            if remap[old] == .max {
                remap[old] = UInt32(truncatingIfNeeded: usedSnapshots.count)
                usedSnapshots.append(snapshots[old])
            }
            rowPositions.append(positions[row])
            rowSnapshots.append(remap[old])
            rowDue.append(dueAt[row])
            rowAttempts.append(attempts[row])
            rowDepths.append(depthAndFlags[row])
            if lastErrors.count > 0 || budgetBases.count > 0 {
                let id = DeliveryID(sourcePosition: positions[row], triggerID: snapshots[old].triggerID)
                if let error = lastErrors[id] { errors.append((id, error)) }
                if let base = budgetBases[id] { bases.append((id, base)) }
            }
        }
        var out = SnapshotWriter()
        out.bytes.reserveCapacity(16 + usedSnapshots.count * Self.snapshotBytesPerSnapshot + live * Self.snapshotBytesPerRow)
        out.bytes.append(contentsOf: Self.snapshotMagic)
        out.put(UInt32(truncatingIfNeeded: usedSnapshots.count))
        out.put(UInt64(live))
        for snapshot in usedSnapshots {
            out.put(snapshot.triggerID); out.put(snapshot.appID); out.put(snapshot.scriptID)
            out.put(snapshot.sourceKind.rawValue)
            out.put(UInt64(bitPattern: snapshot.retry.maxAttempts)); out.put(snapshot.retry.backoff.rawValue)
            out.put(UInt64(bitPattern: snapshot.retry.baseMs)); out.put(snapshot.triggerRank)
        }
        out.putColumn(rowPositions); out.putColumn(rowSnapshots); out.putColumn(rowDue)
        out.putColumn(rowAttempts); out.putColumn(rowDepths)
        out.put(UInt32(truncatingIfNeeded: errors.count))
        for (id, error) in errors {
            out.put(id)
            let utf8 = Array(error.utf8)
            out.put(UInt32(truncatingIfNeeded: utf8.count))
            out.bytes.append(contentsOf: utf8)
        }
        out.put(UInt32(truncatingIfNeeded: bases.count))
        for (id, base) in bases {
            out.put(id)
            out.put(UInt64(bitPattern: base))
        }
        out.put(Self.checksum(out.bytes[...]))
        return out.bytes
    }

    /// Decodes ``snapshotBytes()``.
    /// - Throws: ``SnapshotError`` naming the offset and the reason when the bytes are not a
    ///   snapshot of a valid pending set (wrong magic or checksum, truncated, a snapshot index
    ///   out of range, rows out of canonical order, an error or budget base of no pending row).
    public init(snapshotBytes bytes: [UInt8]) throws(SnapshotError) {
        self.init()
        guard bytes.count >= Self.snapshotMagic.count + 12 + 8 + 8 else {
            throw SnapshotError(offset: 0, reason: "\(bytes.count) bytes is too short for a snapshot")
        }
        let bodyEnd = bytes.count - 8
        var reader = SnapshotReader(bytes: bytes, end: bodyEnd)
        let stored = SnapshotReader(bytes: bytes, end: bytes.count, offset: bodyEnd).peekUInt64()
        guard Self.checksum(bytes[..<bodyEnd]) == stored else {
            throw SnapshotError(offset: bodyEnd, reason: "the checksum does not match the bytes (the snapshot is damaged)")
        }
        guard Array(bytes[0..<4]) == Self.snapshotMagic else {
            throw SnapshotError(offset: 0, reason: "not a pending-deliveries snapshot (magic \(Array(bytes[0..<4])))")
        }
        reader.offset = 4
        let snapshotCount = Int(try reader.uint32())
        let rowCount64 = try reader.uint64()
        guard rowCount64 <= UInt64(Int32.max) else {
            throw SnapshotError(offset: reader.offset - 8, reason: "row count \(rowCount64) is out of range")
        }
        let rowCount = Int(rowCount64)
        guard snapshotCount <= reader.remaining / Self.snapshotBytesPerSnapshot else {
            throw SnapshotError(offset: reader.offset, reason: "\(snapshotCount) snapshots do not fit in \(reader.remaining) bytes")
        }
        snapshots.reserveCapacity(snapshotCount)
        // A trigger has one rank (its registration position), so (source position, trigger)
        // names one row exactly when (source position, rank) does.
        var rankOf = FastTable<HeraldID, UInt64>()
        for _ in 0..<snapshotCount {
            let start = reader.offset
            let trigger = try reader.id(), app = try reader.id(), script = try reader.id()
            let kindByte = try reader.uint8()
            let maxAttempts = Int64(bitPattern: try reader.uint64())
            let backoffByte = try reader.uint8()
            let baseMs = Int64(bitPattern: try reader.uint64())
            let rank = try reader.uint64()
            guard let kind = SourceKind(rawValue: kindByte), let backoff = Backoff(rawValue: backoffByte) else {
                throw SnapshotError(offset: start, reason: "unknown source kind \(kindByte) or backoff \(backoffByte)")
            }
            if let other = rankOf[trigger], other != rank {
                throw SnapshotError(offset: start, reason: "trigger \(trigger) has two ranks, \(other) and \(rank)")
            }
            rankOf[trigger] = rank
            snapshots.append(Snapshot(triggerID: trigger, appID: app, scriptID: script, sourceKind: kind,
                                      retry: RetryConfig(maxAttempts: maxAttempts, backoff: backoff, baseMs: baseMs),
                                      triggerRank: rank))
        }
        liveRows = [Int32](repeating: 0, count: snapshotCount)
        guard rowCount <= reader.remaining / Self.snapshotBytesPerRow else {
            throw SnapshotError(offset: reader.offset, reason: "\(rowCount) rows do not fit in \(reader.remaining) bytes")
        }
        let columnsStart = reader.offset
        positions = reader.column(rowCount)
        snapshotOf = reader.column(rowCount)
        dueAt = reader.column(rowCount)
        attempts = reader.column(rowCount)
        depthAndFlags = reader.column(rowCount)
        for row in 0..<rowCount {
            let index = Int(snapshotOf[row])
            guard index < snapshotCount else {
                throw SnapshotError(offset: columnsStart + rowCount * 8 + row * 4,
                                    reason: "row \(row) uses snapshot \(index) of \(snapshotCount)")
            }
            guard depthAndFlags[row] <= 0x7F, attempts[row] >= 0, positions[row] >= 1 else {
                throw SnapshotError(offset: columnsStart + row * 8, reason: "row \(row) has position \(positions[row]), "
                                    + "attempts \(attempts[row]) and depth \(depthAndFlags[row])")
            }
            if row > 0 {
                let previous = (positions[row - 1], snapshots[Int(snapshotOf[row - 1])].triggerRank)
                guard previous < (positions[row], snapshots[index].triggerRank) else {
                    throw SnapshotError(offset: columnsStart + row * 8, reason: "row \(row) is not after row \(row - 1) in canonical order")
                }
            }
            liveRows[index] += 1
        }
        for (index, snapshot) in snapshots.enumerated() {
            latestSnapshot[snapshot.triggerID] = UInt32(truncatingIfNeeded: index)
        }
        let errorCount = try reader.uint32()
        for _ in 0..<errorCount {
            let start = reader.offset
            let id = try reader.deliveryID()
            let length = Int(try reader.uint32())
            let utf8 = try reader.bytes(length)
            guard let text = String(validating: utf8, as: UTF8.self) else {
                throw SnapshotError(offset: start, reason: "the last error of \(id) is not UTF-8")
            }
            guard row(of: id) != nil, lastErrors[id] == nil else {
                throw SnapshotError(offset: start, reason: "a last error of \(id), which has no pending row or has one already")
            }
            lastErrors[id] = text
        }
        let baseCount = try reader.uint32()
        for _ in 0..<baseCount {
            let start = reader.offset
            let id = try reader.deliveryID()
            let base = Int64(bitPattern: try reader.uint64())
            guard row(of: id) != nil, budgetBases[id] == nil, base > 0 else {
                throw SnapshotError(offset: start, reason: "a budget base \(base) of \(id), which has no pending row, has one already or is not positive")
            }
            budgetBases[id] = base
        }
        guard reader.remaining == 0 else {
            throw SnapshotError(offset: reader.offset, reason: "\(reader.remaining) bytes follow the last field")
        }
    }

    /// The source position of the last row (live or not), if any.
    var lastRowPosition: UInt64? { positions.last }

    /// The snapshot's checksum: each 8-byte word (then each byte left) is xored in and
    /// multiplied by the 64-bit FNV prime, an invertible step, so any change confined to one
    /// word always changes the sum. Not for adversaries: for damage.
    static func checksum(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(bytes.count)
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset + 8 <= raw.count {
                hash = (hash ^ UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self))) &* 0x100_0000_01B3
                hash ^= hash >> 29
                offset += 8
            }
            while offset < raw.count {
                hash = (hash ^ UInt64(raw[offset])) &* 0x100_0000_01B3
                offset += 1
            }
        }
        return hash
    }
}

/// Appends little-endian fields to a byte array.
struct SnapshotWriter {
    var bytes: [UInt8] = []

    mutating func put<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func put(_ id: HeraldID) {
        put(id.high)
        put(id.low)
    }

    mutating func put(_ id: DeliveryID) {
        put(id.sourcePosition)
        put(id.triggerID)
    }

    /// A whole column at once.
    mutating func putColumn<T: FixedWidthInteger>(_ values: [T]) {
        #if _endian(little)
        values.withUnsafeBytes { bytes.append(contentsOf: $0) }
        #else
        for value in values { put(value) }
        #endif
    }
}

/// Reads little-endian fields from `bytes[offset..<end]`; reading past `end` throws.
struct SnapshotReader {
    let bytes: [UInt8]
    let end: Int
    var offset = 0

    var remaining: Int { end - offset }

    private mutating func take(_ count: Int) throws(SnapshotError) -> Int {
        guard count >= 0, count <= remaining else {
            throw SnapshotError(offset: offset, reason: "the snapshot ends inside a field (\(count) bytes needed, \(remaining) left)")
        }
        defer { offset += count }
        return offset
    }

    private mutating func load<T: FixedWidthInteger>(_: T.Type) throws(SnapshotError) -> T {
        let at = try take(MemoryLayout<T>.size)
        return bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: at, as: T.self)) }
    }

    func peekUInt64() -> UInt64 {
        bytes.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
    }

    mutating func uint8() throws(SnapshotError) -> UInt8 { try load(UInt8.self) }
    mutating func uint32() throws(SnapshotError) -> UInt32 { try load(UInt32.self) }
    mutating func uint64() throws(SnapshotError) -> UInt64 { try load(UInt64.self) }

    mutating func id() throws(SnapshotError) -> HeraldID {
        HeraldID(high: try uint64(), low: try uint64())
    }

    mutating func deliveryID() throws(SnapshotError) -> DeliveryID {
        DeliveryID(sourcePosition: try uint64(), triggerID: try id())
    }

    mutating func bytes(_ count: Int) throws(SnapshotError) -> ArraySlice<UInt8> {
        let at = try take(count)
        return bytes[at..<(at + count)]
    }

    /// `count` values; the caller has checked that they fit.
    mutating func column<T: FixedWidthInteger>(_ count: Int) -> [T] {
        let at = offset
        offset += count * MemoryLayout<T>.size
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { raw in
                for index in 0..<count {
                    buffer[index] = T(littleEndian: raw.loadUnaligned(fromByteOffset: at + index * MemoryLayout<T>.size, as: T.self))
                }
            }
            initialized = count
        }
    }
}
