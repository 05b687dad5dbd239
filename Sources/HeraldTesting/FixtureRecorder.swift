import Herald
import HeraldCore

/// Which part of a data directory ``FixtureRecorder`` turns into a fixture.
public enum FixtureSlice: Sendable, Equatable {
    /// Records `from…to` (inclusive), plus what they depend on.
    case range(from: UInt64, to: UInt64)
    /// One delivery `P:TRIGGER_ID` and what it depends on.
    case delivery(DeliveryID)
    /// Every delivery of one trigger.
    case trigger(HeraldID)

    /// The slice of one delivery written `P:TRIGGER_ID`; `nil` when `text` is not one.
    public static func delivery(_ text: String) -> FixtureSlice? {
        DeliveryID(text).map { .delivery($0) }
    }
}

/// What ``FixtureRecorder/record(from:slice:to:)`` wrote.
public struct RecordedFixture: Sendable {
    /// The new fixture directory.
    public var path: String
    /// Original log positions kept, in order; the record at `positions[i]` is line `i + 1`
    /// (position `i + 1`) of the fixture's `log.jsonl`.
    public var positions: [UInt64]
    /// The result of generating the fixture's expectations.
    public var result: FixtureResult

    /// The fixture position of an original position, when that record was kept.
    public func newPosition(of original: UInt64) -> UInt64? {
        var low = 0, high = positions.count
        while low < high {
            let mid = (low + high) / 2
            if positions[mid] < original { low = mid + 1 } else { high = mid }
        }
        guard low < positions.count, positions[low] == original else { return nil }
        return UInt64(low + 1)
    }
}

/// `herald record`: turns a slice of a real data directory into a self-contained log fixture
/// with its expectations generated. The rule (fixtures/README.md, "Recording"):
///
/// 1. Seeds: for `range(A, B)` every position in A…B; for a delivery, its source position,
///    every `delivery.attempted` of it and, when cancelled, the cancelling position; for a
///    trigger, the seeds of each of its deliveries (or its registration when it has none).
/// 2. Closure: a kept `delivery.attempted` keeps its delivery's source record and every
///    earlier attempt of the same delivery; a source that is itself a `delivery.attempted`
///    (a dead letter) is kept by the same rule, so whole dead-letter chains come along.
/// 3. Every registry record (admin users, apps, scripts, triggers) up to the last seed is kept,
///    so the registry — including retry configs, disabled flags and cascades — is exactly
///    the original's at every kept position.
/// 4. Kept records are renumbered densely in their original order (ts unchanged, so ts never
///    decreases) and each `source_position` is rewritten to the new number of its source.
///
/// Kept KV records may create deliveries for other triggers too; those show up in the
/// fixture's expected deliveries (pending unless their attempts were kept).
public enum FixtureRecorder {
    /// Writes `fixtureDirectory/log.jsonl` for `slice` of `data`, then generates its
    /// expectations (as `herald fixtures --update` does). For a delivery slice it also asks for
    /// `expected/explain/<P>:<TRIGGER_ID>.txt` (P renumbered).
    ///
    /// - Throws: `HeraldError.notOnCompactedLog` for a compacted log (record from an
    ///   uncompacted copy, or the archived segments with the rest),
    ///   ``FixtureError`` for a slice outside the log, an unknown delivery or trigger,
    ///   a directory that already holds a fixture, or a symbolic link at the directory or at
    ///   a file or directory it would write (then it writes nothing).
    public static func record(from data: DataDirectory, slice: FixtureSlice, to fixtureDirectory: String) async throws -> RecordedFixture {
        // Nothing is written through a symbolic link: the directory itself is checked now, every
        // file it will hold before the first is written.
        try FileIO.checkNotSymlink(fixtureDirectory)
        for existing in [Fixture.logFile, Fixture.scenarioFile] where FileIO.exists(fixtureDirectory + "/" + existing) {
            throw FixtureError(path: fixtureDirectory + "/" + existing, reason: "already exists; record into a new directory")
        }
        let reader = try data.openReader()
        if let start = try reader.compactedStart() {
            // A fixture replays from position 1: the registry records before the start are gone.
            throw HeraldError.notOnCompactedLog(command: "record", firstPosition: start.start)
        }
        var records: [Record] = []
        try reader.forEach { _, record in
            records.append(record.compacted())  // a kept value would keep its whole log block
            return true
        }
        let deliveries = try data.deliveries()
        let kept = try select(records: records, deliveries: deliveries, slice: slice, source: data.path)
        var newNumber: [UInt64: UInt64] = [:]
        for (index, position) in kept.enumerated() { newNumber[position] = UInt64(index + 1) }
        var out = JSONOutput(capacity: 4096)
        let encoder = RecordJSONEncoder()
        /// A listed delivery with its source position renumbered (the closure keeps every source).
        func renumbered(_ id: DeliveryID) -> DeliveryID {
            guard let position = newNumber[id.sourcePosition] else {
                preconditionFailure("the closure keeps the source of every delivery a kept record names")
            }
            return DeliveryID(sourcePosition: position, triggerID: id.triggerID)
        }
        for position in kept {
            var record = records[Int(position - 1)]
            switch record.body {
            case .deliveryAttempted(var attempt):
                attempt.sourcePosition = renumbered(DeliveryID(sourcePosition: attempt.sourcePosition,
                                                               triggerID: attempt.triggerID)).sourcePosition
                record.body = .deliveryAttempted(attempt)
            case .deliveryRedriven(var action):
                action.deliveries = action.deliveries.map(renumbered)
                record.body = .deliveryRedriven(action)
            case .deliveryCancelled(var action):
                action.deliveries = action.deliveries.map(renumbered)
                record.body = .deliveryCancelled(action)
            default:
                break
            }
            encoder.append(record, to: &out)
            out.newline()
        }
        var request: String?
        if case .delivery(let id) = slice, let position = newNumber[id.sourcePosition] {
            request = "\(LogFixture.explainDirectory)/\(position):\(id.triggerID).txt"
        }
        for file in [Fixture.logFile, LogFixture.deliveriesFile, LogFixture.triggersFile, LogFixture.errorFile] + (request.map { [$0] } ?? []) {
            try FileIO.checkWritable(file, inside: fixtureDirectory)
        }
        try FileIO.write(out.bytes, to: Fixture.logFile, inside: fixtureDirectory)
        if let request { try FileIO.write([], to: request, inside: fixtureDirectory) }
        guard let fixture = Fixture.at(fixtureDirectory) else {
            throw FixtureError(path: fixtureDirectory, reason: "the recorded fixture could not be found again")
        }
        let result = await FixtureRunner.run(fixture, update: true)
        if let error = result.error { throw FixtureError(path: fixtureDirectory, reason: error) }
        return RecordedFixture(path: fixtureDirectory, positions: kept, result: result)
    }

    /// The original positions a slice keeps (steps 1–3 of the rule), ascending.
    static func select(records: [Record], deliveries: [Delivery], slice: FixtureSlice,
                       source: String) throws(FixtureError) -> [UInt64] {
        let last = UInt64(records.count)
        // The records that act on each delivery after its creation: attempts, redrives, cancels.
        var actsOn: [DeliveryID: [UInt64]] = [:]
        for (index, record) in records.enumerated() {
            switch record.body {
            case .deliveryAttempted(let a):
                actsOn[DeliveryID(sourcePosition: a.sourcePosition, triggerID: a.triggerID), default: []].append(UInt64(index + 1))
            case .deliveryRedriven(let action), .deliveryCancelled(let action):
                for id in action.deliveries { actsOn[id, default: []].append(UInt64(index + 1)) }
            default:
                break
            }
        }
        func seeds(of delivery: Delivery) -> [UInt64] {
            var list = [delivery.id.sourcePosition] + (actsOn[delivery.id] ?? [])
            if delivery.status == .cancelled, let at = delivery.finishedAt { list.append(at) }
            return list
        }
        /// The deliveries a record acts on (an attempt's, or those an action lists).
        func actedOn(_ record: Record) -> [DeliveryID] {
            switch record.body {
            case .deliveryAttempted(let a): [DeliveryID(sourcePosition: a.sourcePosition, triggerID: a.triggerID)]
            case .deliveryRedriven(let action), .deliveryCancelled(let action): action.deliveries
            default: []
            }
        }
        var seedList: [UInt64] = []
        switch slice {
        case .range(let from, let to):
            guard from >= 1, from <= to, to <= last else {
                throw FixtureError(path: source, reason: "--from \(from) --to \(to) is not a range inside the log (1…\(last))")
            }
            seedList = Array(from...to)
        case .delivery(let id):
            guard let delivery = deliveries.first(where: { $0.id == id }) else {
                throw FixtureError(path: source, reason: "no delivery \(id) in the log (see `herald explain \(id.sourcePosition)`)")
            }
            seedList = seeds(of: delivery)
        case .trigger(let id):
            for delivery in deliveries where delivery.id.triggerID == id { seedList += seeds(of: delivery) }
            if seedList.isEmpty {
                guard let registered = records.firstIndex(where: {
                    if case .triggerRegistered(let r) = $0.body { return r.triggerID == id }
                    return false
                }) else {
                    throw FixtureError(path: source, reason: "no trigger \(id) was ever registered in the log")
                }
                seedList = [UInt64(registered + 1)]
            }
        }
        let end = seedList.max() ?? 0
        var keep = Set<UInt64>()
        var work = seedList
        while let position = work.popLast() {
            guard position >= 1, position <= last, keep.insert(position).inserted else { continue }
            // A kept attempt, redrive or cancel needs each delivery it names whole up to it: its
            // source and every earlier record acting on it.
            for id in actedOn(records[Int(position - 1)]) {
                work.append(id.sourcePosition)
                work += (actsOn[id] ?? []).filter { $0 < position }
            }
        }
        for (index, record) in records.prefix(Int(end)).enumerated() {
            switch record.body {
            case .kv, .deliveryAttempted, .deliveryRedriven, .deliveryCancelled, .deliveryInvoked: continue
            default: keep.insert(UInt64(index + 1))
            }
        }
        return keep.sorted()
    }
}
