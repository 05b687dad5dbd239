/// The pending deliveries of a ``Dispatcher``, stored compactly in canonical order.
///
/// A delivery is created at the position of the record being applied, and the deliveries
/// created at one position come in trigger registration order, so appending rows keeps them
/// sorted by (source_position, trigger registration position): the canonical order, with no
/// sorting and no hash index. A row is 25 bytes (source position, snapshot index, due time,
/// attempts, depth); what a delivery copied from its trigger (app, script, kind, retry,
/// registration position) sits once per trigger version in a snapshot table. A lookup by id
/// is a binary search on the position column, then a scan of that position's few rows.
/// Finished rows are marked and swept once they outnumber the live ones, so memory is
/// bounded by the pending deliveries (and the trigger versions they reference).
public struct PendingDeliveries: Sendable {
    /// What a delivery copies from its trigger when it is created.
    struct Snapshot: Equatable, Sendable {
        var triggerID: HeraldID
        var appID: HeraldID
        var scriptID: HeraldID
        var sourceKind: SourceKind
        var retry: RetryConfig
        var triggerRank: UInt64
    }

    private static let finishedFlag: UInt8 = 0x80

    // Row columns (same length).
    var positions: [UInt64] = []
    var snapshotOf: [UInt32] = []
    var dueAt: [Int64] = []
    var attempts: [Int32] = []
    /// Depth in the low bits; ``finishedFlag`` once the row left the pending set.
    var depthAndFlags: [UInt8] = []
    var finishedRows = 0
    /// Errors of pending deliveries whose last attempt failed (rare next to rows).
    var lastErrors = FastTable<DeliveryID, String>()
    /// Budget bases of pending deliveries that were redriven (rarer still).
    var budgetBases = FastTable<DeliveryID, Int64>()

    var snapshots: [Snapshot] = []
    /// Pending rows per snapshot (same length as `snapshots`).
    var liveRows: [Int32] = []
    /// Latest snapshot index per trigger, to reuse a snapshot while the trigger is unchanged.
    var latestSnapshot = FastTable<HeraldID, UInt32>()
    /// Changes whenever snapshot indices are renumbered (a sweep): an index returned by
    /// ``intern(_:)`` stays valid while the epoch is unchanged.
    private(set) var snapshotEpoch: UInt64 = 1

    public init() {}

    /// Pending deliveries.
    public var count: Int { positions.count - finishedRows }
    public var isEmpty: Bool { count == 0 }

    /// Every pending delivery in canonical order.
    public var values: [Delivery] {
        var result: [Delivery] = []
        result.reserveCapacity(count)
        forEach { result.append($0) }
        return result
    }

    /// Calls `body` with each pending delivery in canonical order.
    public func forEach(_ body: (Delivery) throws -> Void) rethrows {
        for row in positions.indices where isLive(row) {
            try body(delivery(row))
        }
    }

    /// The pending delivery `id`, if any.
    public subscript(id: DeliveryID) -> Delivery? {
        row(of: id).map { delivery($0) }
    }

    /// Calls `body` with the due time and canonical key of each pending delivery, in
    /// canonical order, without building the deliveries (a restart queues every one).
    func forEachDueKey(_ body: (_ dueAt: Int64, _ sourcePosition: UInt64, _ triggerRank: UInt64, _ triggerID: HeraldID) -> Void) {
        for row in positions.indices where isLive(row) {
            let snapshot = snapshots[Int(snapshotOf[row])]
            body(dueAt[row], positions[row], snapshot.triggerRank, snapshot.triggerID)
        }
    }

    /// Number of pending deliveries due at or before `ms`, and the earliest due time.
    public func dueSummary(now ms: Int64) -> (due: Int, earliest: Int64?) {
        var due = 0
        var earliest: Int64?
        for row in positions.indices where isLive(row) {
            let at = dueAt[row]
            if at <= ms { due += 1 }
            if earliest.map({ at < $0 }) ?? true { earliest = at }
        }
        return (due, earliest)
    }

    // MARK: - Changes (the dispatcher's)

    /// Appends a new pending delivery. Its source position must be ≥ every row's, and among
    /// rows of the same position its trigger must rank after theirs (canonical order).
    mutating func append(_ delivery: Delivery) {
        let snapshot = Snapshot(triggerID: delivery.id.triggerID, appID: delivery.appID, scriptID: delivery.scriptID,
                                sourceKind: delivery.sourceKind, retry: delivery.retry, triggerRank: delivery.triggerRank)
        append(sourcePosition: delivery.id.sourcePosition, snapshot: snapshot, depth: delivery.depth,
               dueAt: delivery.dueAt ?? 0, attempts: delivery.attempts)
        if let error = delivery.lastError { lastErrors[delivery.id] = error }
        if delivery.budgetBase != 0 { budgetBases[delivery.id] = delivery.budgetBase }
    }

    /// Adds pending deliveries whose source positions may be anywhere (redriven ones), keeping
    /// the rows in canonical order: appended when they all come after the last row, else merged
    /// in one pass over the rows.
    mutating func insert(_ deliveries: [Delivery]) {
        guard !deliveries.isEmpty else { return }
        let sorted = deliveries.sorted { $0.orderKey < $1.orderKey }
        if let lastRow = positions.indices.last, let first = sorted.first,
           first.orderKey < (positions[lastRow], snapshots[Int(snapshotOf[lastRow])].triggerRank) {
            merge(sorted)
        } else {
            for delivery in sorted { append(delivery) }
        }
    }

    /// ``insert(_:)`` of deliveries that go between rows, in place: each column grows by
    /// their number, then, from the end, each stretch of old rows moves once (a `memmove`) to
    /// make room for the new row before it. No column is rebuilt or reallocated beyond growth.
    private mutating func merge(_ sorted: [Delivery]) {
        // Where each new row goes among the old rows (before the first old row with a larger
        // key): nondecreasing, as `sorted` is.
        var before: [Int] = []
        before.reserveCapacity(sorted.count)
        var low = 0
        for delivery in sorted {
            var high = positions.count
            while low < high {
                let mid = low + (high - low) / 2
                if (positions[mid], snapshots[Int(snapshotOf[mid])].triggerRank) < delivery.orderKey { low = mid + 1 } else { high = mid }
            }
            before.append(low)
        }
        var newSnapshots: [UInt32] = []
        newSnapshots.reserveCapacity(sorted.count)
        for delivery in sorted {
            let snapshot = Snapshot(triggerID: delivery.id.triggerID, appID: delivery.appID, scriptID: delivery.scriptID,
                                    sourceKind: delivery.sourceKind, retry: delivery.retry, triggerRank: delivery.triggerRank)
            let index = intern(snapshot)
            liveRows[Int(index)] += 1
            newSnapshots.append(index)
            if let error = delivery.lastError { lastErrors[delivery.id] = error }
            if delivery.budgetBase != 0 { budgetBases[delivery.id] = delivery.budgetBase }
        }
        Self.splice(&positions, sorted.map(\.id.sourcePosition), before: before)
        Self.splice(&snapshotOf, newSnapshots, before: before)
        Self.splice(&dueAt, sorted.map { $0.dueAt ?? 0 }, before: before)
        Self.splice(&attempts, sorted.map { Int32(clamping: $0.attempts) }, before: before)
        Self.splice(&depthAndFlags, sorted.map { UInt8(clamping: min(max($0.depth, 0), 0x7F)) }, before: before)
    }

    /// Inserts `values[i]` before the old element at `before[i]` (nondecreasing indexes).
    private static func splice<T: BitwiseCopyable>(_ column: inout [T], _ values: [T], before: [Int]) {
        guard let filler = values.first else { return }
        var end = column.count
        column.append(contentsOf: repeatElement(filler, count: values.count))
        column.withUnsafeMutableBufferPointer { rows in
            guard let base = rows.baseAddress else { return }
            for index in values.indices.reversed() {
                let start = before[index]
                // The old rows start..<end move up by the index + 1 new rows before them.
                UnsafeMutableRawPointer(base + start + index + 1)
                    .copyMemory(from: base + start, byteCount: (end - start) * MemoryLayout<T>.stride)
                base[start + index] = values[index]
                end = start
            }
        }
    }

    /// Appends a new pending delivery with no attempt yet (the hot path of matching).
    mutating func append(sourcePosition: UInt64, snapshot: Snapshot, depth: Int64, dueAt due: Int64, attempts count: Int64 = 0) {
        append(sourcePosition: sourcePosition, snapshotIndex: intern(snapshot), depth: depth, dueAt: due, attempts: count)
    }

    /// Appends a new pending delivery whose snapshot is `snapshotIndex`, from ``intern(_:)``
    /// in the current ``snapshotEpoch``.
    @inline(__always)
    mutating func append(sourcePosition: UInt64, snapshotIndex: UInt32, depth: Int64, dueAt due: Int64, attempts count: Int64 = 0) {
        positions.append(sourcePosition)
        snapshotOf.append(snapshotIndex)
        liveRows[Int(snapshotIndex)] += 1
        dueAt.append(due)
        attempts.append(Int32(clamping: count))
        depthAndFlags.append(UInt8(clamping: min(max(depth, 0), 0x7F)))
    }

    /// Records an attempt of a delivery that stays pending.
    mutating func update(_ id: DeliveryID, attempts count: Int64, dueAt due: Int64, lastError: String?) {
        guard let row = row(of: id) else { return }
        update(row: row, id: id, attempts: count, dueAt: due, lastError: lastError)
    }

    /// ``update(_:attempts:dueAt:lastError:)`` of the delivery at `row` (from ``row(of:)``).
    mutating func update(row: Int, id: DeliveryID, attempts count: Int64, dueAt due: Int64, lastError: String?) {
        attempts[row] = Int32(clamping: count)
        dueAt[row] = due
        lastErrors[id] = lastError
    }

    /// Removes a delivery from the pending set.
    mutating func remove(_ id: DeliveryID) {
        guard let row = row(of: id) else { return }
        remove(row: row, id: id)
    }

    /// ``remove(_:)`` of the delivery at `row` (from ``row(of:)``); rows after it may move.
    mutating func remove(row: Int, id: DeliveryID) {
        depthAndFlags[row] |= Self.finishedFlag
        liveRows[Int(snapshotOf[row])] -= 1
        finishedRows += 1
        lastErrors[id] = nil
        if budgetBases.count > 0 { budgetBases[id] = nil }
        if finishedRows > 1024 && finishedRows * 2 > positions.count { sweep() }
    }

    /// True when some pending delivery belongs to `trigger` (a scan of the snapshots, not the rows).
    func hasPending(ofTrigger trigger: HeraldID) -> Bool {
        for index in snapshots.indices where liveRows[index] > 0 && snapshots[index].triggerID == trigger { return true }
        return false
    }

    /// The pending deliveries of `trigger`, in canonical order.
    func values(ofTrigger trigger: HeraldID) -> [Delivery] {
        var result: [Delivery] = []
        for row in positions.indices where isLive(row) {
            if snapshots[Int(snapshotOf[row])].triggerID == trigger { result.append(delivery(row)) }
        }
        return result
    }

    // MARK: - Rows

    @inline(__always)
    func isLive(_ row: Int) -> Bool { depthAndFlags[row] & Self.finishedFlag == 0 }

    /// Attempts so far and due time of the delivery at `row`, without building it.
    func attemptsAndDue(row: Int) -> (attempts: Int64, dueAt: Int64) {
        (Int64(attempts[row]), dueAt[row])
    }

    func delivery(_ row: Int) -> Delivery {
        let snapshot = snapshots[Int(snapshotOf[row])]
        let id = DeliveryID(sourcePosition: positions[row], triggerID: snapshot.triggerID)
        return Delivery(id: id, appID: snapshot.appID, scriptID: snapshot.scriptID, sourceKind: snapshot.sourceKind,
                        depth: Int64(depthAndFlags[row] & 0x7F), retry: snapshot.retry, triggerRank: snapshot.triggerRank,
                        attempts: Int64(attempts[row]), dueAt: dueAt[row], lastError: lastErrors[id],
                        budgetBase: budgetBases.count > 0 ? budgetBases[id] ?? 0 : 0)
    }

    /// The row of pending delivery `id`, valid until the next change.
    func row(of id: DeliveryID) -> Int? {
        // Lower bound of the source position.
        var low = 0
        var high = positions.count
        while low < high {
            let mid = low + (high - low) / 2
            if positions[mid] < id.sourcePosition { low = mid + 1 } else { high = mid }
        }
        var row = low
        while row < positions.count, positions[row] == id.sourcePosition {
            if isLive(row), snapshots[Int(snapshotOf[row])].triggerID == id.triggerID {
                return row
            }
            row += 1
        }
        return nil
    }

    /// The index of a snapshot equal to `snapshot`, added if need be; valid until
    /// ``snapshotEpoch`` changes.
    mutating func intern(_ snapshot: Snapshot) -> UInt32 {
        if let index = latestSnapshot[snapshot.triggerID], snapshots[Int(index)] == snapshot { return index }
        let index = UInt32(truncatingIfNeeded: snapshots.count)
        snapshots.append(snapshot)
        liveRows.append(0)
        latestSnapshot[snapshot.triggerID] = index
        return index
    }

    /// Drops finished rows (keeping the order) and the snapshots no pending row uses.
    private mutating func sweep() {
        var keptSnapshots: [Snapshot] = []
        var keptLive: [Int32] = []
        var remap = [UInt32](repeating: .max, count: snapshots.count)
        var write = 0
        for row in positions.indices where isLive(row) {
            let old = Int(snapshotOf[row])
            if remap[old] == .max {
                remap[old] = UInt32(truncatingIfNeeded: keptSnapshots.count)
                keptSnapshots.append(snapshots[old])
                keptLive.append(liveRows[old])
            }
            positions[write] = positions[row]
            snapshotOf[write] = remap[old]
            dueAt[write] = dueAt[row]
            attempts[write] = attempts[row]
            depthAndFlags[write] = depthAndFlags[row]
            write += 1
        }
        let removed = positions.count - write
        positions.removeLast(removed)
        snapshotOf.removeLast(removed)
        dueAt.removeLast(removed)
        attempts.removeLast(removed)
        depthAndFlags.removeLast(removed)
        finishedRows = 0
        snapshots = keptSnapshots
        liveRows = keptLive
        snapshotEpoch += 1
        latestSnapshot = FastTable()
        for (index, snapshot) in snapshots.enumerated() {
            latestSnapshot[snapshot.triggerID] = UInt32(truncatingIfNeeded: index)
        }
    }
}

extension PendingDeliveries: Equatable {
    /// The same pending deliveries with equal values, whatever the storage history.
    public static func == (lhs: PendingDeliveries, rhs: PendingDeliveries) -> Bool {
        lhs.count == rhs.count && lhs.values == rhs.values
    }
}
