import HeraldCore
import HeraldThreads

extension Projection {
    /// Streams the canonical `herald deliveries --format jsonl` line (newline included) of each
    /// delivery `selection` picks, in canonical order: the same bytes as
    /// ``HeraldCore/CanonicalOutput`` writes for ``forEachDelivery(matching:_:)``'s deliveries,
    /// written from the columns' bytes without building a `Delivery` (a listing of millions).
    /// Every field is checked as the decoding path checks it.
    ///
    /// Two stages on two threads: a background thread steps the SQLite statement and copies
    /// each row's columns into a batch; the calling thread checks and writes the lines of the
    /// batch before, and calls `body` with them. At most three batches of
    /// ``DeliveryRowBatch/capacity`` rows exist at once, so memory stays flat however many
    /// deliveries there are. The background thread is stopped and joined before this returns
    /// or throws (`body` ending the listing by throwing, or the limit reached); if no thread
    /// can be started, both stages run on the calling thread in turn.
    public func forEachDeliveryLine(matching selection: DeliverySelection, _ body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        try forEachDeliveryLine(matching: selection, batchRows: DeliveryRowBatch.capacity, body)
    }

    /// ``forEachDeliveryLine(matching:_:)`` with batches of `batchRows` rows (tests cross many
    /// batch boundaries with a few rows).
    package func forEachDeliveryLine(matching selection: DeliverySelection, batchRows: Int,
                                     _ body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        let rows = try deliveryRows(matching: selection, rankedBySQL: false)
        var lines = DeliveryLineWriter(path: database.path, limit: selection.limit ?? .max)
        let pipe = DeliveryRowPipe(rows: rows, batchRows: batchRows)
        guard let thread = JoinableThread({ pipe.produce() }) else {
            var scan = DeliveryRowScan(rows: rows)
            var batch = DeliveryRowBatch(capacity: batchRows)
            while lines.wantsMore, try batch.fill(from: &scan) { try lines.write(batch, to: body) }
            try lines.finish(to: body)
            return
        }
        defer {
            pipe.cancel()
            thread.join()
        }
        while lines.wantsMore, let batch = try pipe.take() {
            defer { pipe.recycle(batch) }
            try lines.write(batch, to: body)
        }
        try lines.finish(to: body)
    }
}

/// A statement stepped to its end once: SQLite starts a statement over when it is stepped
/// again after its last row, so a scan that reached the end stays there.
struct DeliveryRowScan {
    let rows: SQLiteStatement
    private(set) var ended = false

    init(rows: SQLiteStatement) { self.rows = rows }

    /// Moves to the next row; false at the end, and from then on.
    mutating func step() throws -> Bool {
        guard !ended else { return false }
        if try rows.step() { return true }
        ended = true
        return false
    }
}

/// The columns of up to ``capacity`` (2,048) deliveries rows (as ``Projection/deliveryRows(matching:rankedBySQL:)``
/// selects them), copied out of SQLite so that another thread can write their lines.
struct DeliveryRowBatch {
    /// The rows of a batch unless told otherwise.
    static let capacity = 2048
    let capacity: Int
    /// The text columns copied, in this order: trigger_id, app_id, script_id, source_kind,
    /// status, last_error.
    static let textColumns: [Int32] = [1, 3, 4, 5, 10, 13]
    /// The integer columns copied, in this order: source_position, trigger_rank, depth,
    /// attempts, due_at, finished_at.
    static let numberColumns: [Int32] = [0, 2, 6, 11, 12, 14]
    /// Per row: the six integers, then a bit set of the columns that are NULL (bit k: the
    /// k-th integer column; bit 6 + k: the k-th text column).
    static let numbersPerRow = 7

    private(set) var count = 0
    private(set) var numbers: [Int64] = []
    /// The text columns' bytes, one after the other.
    private(set) var text: [UInt8] = []
    /// Per row and text column: where its bytes end in `text`.
    private(set) var ends: [Int] = []

    init(capacity: Int = Self.capacity) { self.capacity = max(1, capacity) }

    /// Replaces the batch's rows with the scan's next ones (at most ``capacity``); false when
    /// it had none left.
    mutating func fill(from scan: inout DeliveryRowScan) throws -> Bool {
        count = 0
        numbers.removeAll(keepingCapacity: true)
        text.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        let rows = scan.rows
        while count < capacity, try scan.step() {
            var nulls: Int64 = 0
            for (k, column) in Self.numberColumns.enumerated() {
                if rows.isNull(at: column) { nulls |= 1 << k }
                numbers.append(rows.int64(at: column))
            }
            for (k, column) in Self.textColumns.enumerated() {
                if rows.withText(at: column, { text.append(contentsOf: $0) }) == nil { nulls |= 1 << (6 + k) }
                ends.append(text.count)
            }
            numbers.append(nulls)
            count += 1
        }
        return count > 0
    }
}

/// Writes the canonical lines of batches of deliveries rows, in canonical order: the rows come
/// in the table's key order (source position, trigger id), and the few lines of one source
/// position are put in trigger order before they are passed on.
private struct DeliveryLineWriter {
    private let path: String
    private var out = JSONOutput(capacity: 1 << 12)
    private var group: [(rank: Int64, start: Int, end: Int)] = []
    private var groupPosition: Int64 = -1
    private var remaining: Int

    init(path: String, limit: Int) {
        self.path = path
        self.remaining = limit
    }

    /// False once the limit is reached.
    var wantsMore: Bool { remaining > 0 }

    private static let kinds: [StaticString] = ["kv", "dead_letter", "http", "manual"]
    private static let statuses: [StaticString] = ["pending", "succeeded", "dead", "cancelled"]

    private func damaged(_ column: String) -> StoreError {
        .damaged(path: path, reason: "a deliveries row holds an invalid \(column)")
    }

    mutating func write(_ batch: DeliveryRowBatch, to body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        try batch.text.withUnsafeBufferPointer { text in
            var start = 0
            for row in 0..<batch.count {
                let n = row * DeliveryRowBatch.numbersPerRow
                let nulls = batch.numbers[n + 6]
                // The row's text columns (nil: NULL).
                var columns: [UnsafeBufferPointer<UInt8>?] = []
                columns.reserveCapacity(6)
                for k in 0..<6 {
                    let end = batch.ends[row * 6 + k]
                    columns.append(nulls & (1 << (6 + k)) != 0 ? nil : UnsafeBufferPointer(rebasing: text[start..<end]))
                    start = end
                }
                let position = batch.numbers[n]
                guard position >= 0 else { throw damaged("source_position") }
                if position != groupPosition {
                    try flush(to: body)
                    guard remaining > 0 else { return }
                    groupPosition = position
                }
                let lineStart = out.bytes.count
                out.fragment(#"{"source_position":"#); out.int(position)
                out.fragment(#","trigger_id":"#); guard id(columns[0]) else { throw damaged("trigger_id") }
                out.fragment(#","app_id":"#); guard id(columns[1]) else { throw damaged("app_id") }
                out.fragment(#","script_id":"#); guard id(columns[2]) else { throw damaged("script_id") }
                out.fragment(#","source_kind":"#); guard name(columns[3], Self.kinds) else { throw damaged("source_kind") }
                out.fragment(#","depth":"#); out.int(batch.numbers[n + 2])
                out.fragment(#","status":"#); guard name(columns[4], Self.statuses) else { throw damaged("status") }
                out.fragment(#","attempts":"#); out.int(batch.numbers[n + 3])
                out.fragment(#","due_at":"#)
                if nulls & (1 << 4) != 0 { out.null() } else { out.int(batch.numbers[n + 4]) }
                out.fragment(#","last_error":"#)
                if let error = columns[5] {
                    if error.allSatisfy({ $0 < 0x80 }) {
                        out.string(utf8: error)
                    } else {
                        out.string(String(decoding: error, as: UTF8.self))  // as the decoding path: invalid bytes replaced
                    }
                } else {
                    out.null()
                }
                out.fragment(#","finished_at":"#)
                if nulls & (1 << 5) != 0 {
                    out.null()
                } else {
                    let finished = batch.numbers[n + 5]
                    guard finished >= 0 else { throw damaged("finished_at") }
                    out.int(finished)
                }
                out.endObject()
                out.newline()
                group.append((batch.numbers[n + 1], lineStart, out.bytes.count))
            }
        }
    }

    /// Passes on the lines of the last source position.
    mutating func finish(to body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        try flush(to: body)
    }

    /// Passes on the lines of the source position written so far, in trigger order.
    private mutating func flush(to body: (UnsafeBufferPointer<UInt8>) throws -> Void) throws {
        if group.count > 1 { group.sort { $0.rank < $1.rank } }
        var remaining = self.remaining
        try out.bytes.withUnsafeBufferPointer { lines in
            for line in group where remaining > 0 {
                remaining -= 1
                try body(UnsafeBufferPointer(rebasing: lines[line.start..<line.end]))
            }
        }
        self.remaining = remaining
        group.removeAll(keepingCapacity: true)
        out.removeAll()
    }

    /// Writes an id column (copied when it is in printed form); false when it is no id.
    private mutating func id(_ text: UnsafeBufferPointer<UInt8>?) -> Bool {
        guard let text else { return false }
        if HeraldID.isPrinted(utf8: text) {
            out.string(verbatim: text)
        } else if let id = HeraldID(utf8: text) {
            out.id(id)
        } else {
            return false
        }
        return true
    }

    /// Writes a name column; false unless it is one of `names` (which need no escaping).
    private mutating func name(_ text: UnsafeBufferPointer<UInt8>?, _ names: [StaticString]) -> Bool {
        guard let text, names.contains(where: { UnsafeBufferPointer(start: $0.utf8Start, count: $0.utf8CodeUnitCount).elementsEqual(text) }) else {
            return false
        }
        out.string(verbatim: text)
        return true
    }
}

/// The hand-off between ``Projection/forEachDeliveryLine(matching:_:)``'s two stages: the
/// producer (a background thread) fills spare batches from the statement, the caller takes
/// them in order and gives them back.
///
/// `@unchecked Sendable`: every mutable field is read and written only with `lock` held, but
/// `scan`, used only by the producer until it ends (the caller joins it before it uses or
/// drops the statement).
private final class DeliveryRowPipe: @unchecked Sendable {
    /// Used only by the producer.
    private var scan: DeliveryRowScan
    private let lock = ConditionLock()
    /// Filled batches (or the error that ended the scan), oldest first.
    private var ready: [Result<DeliveryRowBatch, any Error>] = []
    private var spare: [DeliveryRowBatch]
    /// The producer has put its last batch (or error) in `ready`.
    private var exhausted = false
    /// The caller has stopped: the producer ends at its next check.
    private var cancelled = false

    init(rows: SQLiteStatement, batchRows: Int) {
        scan = DeliveryRowScan(rows: rows)
        spare = [DeliveryRowBatch](repeating: DeliveryRowBatch(capacity: batchRows), count: 3)
    }

    func produce() {
        lock.lock()
        defer {
            exhausted = true
            lock.broadcast()
            lock.unlock()
        }
        while !cancelled {
            guard var batch = spare.popLast() else {
                lock.wait()
                continue
            }
            lock.unlock()
            let filled = Result { try batch.fill(from: &scan) }
            lock.lock()
            switch filled {
            case .success(true): ready.append(.success(batch))
            case .success(false): return
            case .failure(let error):
                ready.append(.failure(error))
                return
            }
            lock.broadcast()
        }
    }

    /// The next batch; nil after the last; throws the error that ended the scan.
    func take() throws -> DeliveryRowBatch? {
        lock.lock()
        defer { lock.unlock() }
        while true {
            if !ready.isEmpty { return try ready.removeFirst().get() }
            if exhausted { return nil }
            lock.wait()
        }
    }

    /// Gives a taken batch back for the producer to fill again.
    func recycle(_ batch: DeliveryRowBatch) {
        lock.changeAndBroadcast { spare.append(batch) }
    }

    /// Tells the producer to stop (it finishes the batch it is filling, if any).
    func cancel() {
        lock.changeAndBroadcast { cancelled = true }
    }
}
