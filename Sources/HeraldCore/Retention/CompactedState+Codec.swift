/// The compaction snapshot's bytes: what a compacted log's snapshot file holds
/// (Schema/log-format.md, "Compaction"; docs/SEMANTICS.md, "Retention").
///
/// Little-endian, in this order:
///
/// | field | bytes |
/// |---|---|
/// | magic `HCS1` | 4 |
/// | engine snapshot: length (8), ``Dispatcher/snapshotBytes()`` | |
/// | counts: pending, succeeded, dead, cancelled | 32 |
/// | used ids: count (4); each id (16), kind (1), created position (8) | |
/// | source records: count (4); each position, ts (8 each), its body in the log's binary form (length (4) first) | |
/// | triggers as of a creation: count (4); each its registration body (length (4) first), registered position, created ts, updated ts, updated position (8 each) | |
/// | scripts as of a creation: count (4); each id, app (16 each), name, runtime, source, created position, created ts (8 each) | |
/// | principals as of a creation: count (4); each id (16), email, created position, created ts (8 each) | |
/// | retained deliveries: count (4); each its timeline (below) | |
/// | checksum of every byte before it | 8 |
///
/// The four tables hold each distinct value once (a KV mutation that created several kept
/// deliveries, the trigger most of them share); a timeline names its entries by index (4; all
/// ones: none). A timeline: the delivery now (a *delivery*: id (8 + 16), app, script (16
/// each), source kind (1), depth, retry max attempts (8 each), backoff (1), base ms, trigger
/// rank (8 each), status (1), attempts (8), due at, last error, finished at (each a flag (1)
/// and the value), budget base (8)); the delivery as created (0 none, 1 the same as now, 2 a
/// delivery follows); its source record, trigger, script and principal (indexes); then its
/// events (count (4), each a tag (1): 1 an attempt — position, ts, the `delivery.attempted`
/// body, delay, next due (flags), status; 2 a death — the dead-letter event and the
/// deliveries it caused; 3 a cancellation — position and cause; 4 a redrive — position, ts,
/// by, reason, attempts before).
extension CompactedState {
    static let magic: [UInt8] = Array("HCS1".utf8)

    /// The state's bytes.
    public func encoded() -> [UInt8] {
        var out = SnapshotWriter()
        out.bytes.append(contentsOf: Self.magic)
        let engine = dispatcher.snapshotBytes()
        out.put(UInt64(engine.count))
        out.bytes.append(contentsOf: engine)
        for status in DeliveryStatus.allCases { out.put(UInt64(bitPattern: counts[status])) }
        out.put(UInt32(truncatingIfNeeded: usedIDs.count))
        for used in usedIDs {
            out.put(used.id); out.put(used.kind.rawValue); out.put(used.createdPosition)
        }
        var tables = SharedTables()
        let refs = timelines.map { tables.add($0) }
        for table in [tables.records, tables.triggers, tables.scripts, tables.principals] {
            out.put(UInt32(truncatingIfNeeded: table.count))
            out.bytes.append(contentsOf: table.bytes)
        }
        out.put(UInt32(truncatingIfNeeded: timelines.count))
        for (timeline, ref) in zip(timelines, refs) { out.putTimeline(timeline, ref) }
        out.put(PendingDeliveries.checksum(out.bytes[...]))
        return out.bytes
    }

    /// Decodes ``encoded()``.
    ///
    /// - Throws: ``SnapshotError`` naming the byte offset and the reason when the bytes are not
    ///   the snapshot of a valid state.
    public init(encoded bytes: [UInt8]) throws(SnapshotError) {
        guard bytes.count >= Self.magic.count + 8 + 32 + 8 + 8 else {
            throw SnapshotError(offset: 0, reason: "\(bytes.count) bytes is too short for a compaction snapshot")
        }
        let bodyEnd = bytes.count - 8
        guard PendingDeliveries.checksum(bytes[..<bodyEnd]) == SnapshotReader(bytes: bytes, end: bytes.count, offset: bodyEnd).peekUInt64() else {
            throw SnapshotError(offset: bodyEnd, reason: "the checksum does not match the bytes (the snapshot is damaged)")
        }
        guard Array(bytes[0..<4]) == Self.magic else {
            throw SnapshotError(offset: 0, reason: "not a compaction snapshot (magic \(Array(bytes[0..<4])))")
        }
        var reader = SnapshotReader(bytes: bytes, end: bodyEnd, offset: 4)
        let engineStart = reader.offset
        let engineLength = try reader.uint64()
        guard engineLength <= UInt64(reader.remaining) else {
            throw SnapshotError(offset: engineStart, reason: "the engine snapshot takes \(engineLength) bytes, \(reader.remaining) are left")
        }
        let dispatcher: Dispatcher
        do {
            dispatcher = try Dispatcher(snapshotBytes: Array(try reader.bytes(Int(engineLength))))
        } catch {
            throw SnapshotError(offset: engineStart + 8 + error.offset, reason: "engine snapshot: \(error.reason)")
        }
        guard dispatcher.position < UInt64.max / 2 else {
            throw SnapshotError(offset: engineStart + 8, reason: "position \(dispatcher.position) is past any log position")
        }
        var counts = DeliveryCounts()
        for status in DeliveryStatus.allCases {
            let at = reader.offset
            counts[status] = Int64(bitPattern: try reader.uint64())
            guard counts[status] >= 0, counts[status] < 1 << 62 else {
                throw SnapshotError(offset: at, reason: "count \(counts[status]) of \(status) deliveries is out of range")
            }
        }
        let usedCount = Int(try reader.uint32())
        guard usedCount <= reader.remaining / 25 else {
            throw SnapshotError(offset: reader.offset - 4, reason: "\(usedCount) used ids do not fit in \(reader.remaining) bytes")
        }
        var usedIDs: [UsedID] = []
        usedIDs.reserveCapacity(usedCount)
        for _ in 0..<usedCount {
            let at = reader.offset
            let id = try reader.id(), kindByte = try reader.uint8(), position = try reader.uint64()
            guard let kind = UsedID.Kind(rawValue: kindByte), position >= 1, position <= dispatcher.position else {
                throw SnapshotError(offset: at, reason: "used id \(id) has kind \(kindByte) or position \(position) out of range")
            }
            usedIDs.append(UsedID(id: id, kind: kind, createdPosition: position))
        }
        let tables = try SharedTables.Decoded(&reader, through: dispatcher.position)
        let timelineCount = Int(try reader.uint32())
        guard timelineCount <= reader.remaining / 100 else {
            throw SnapshotError(offset: reader.offset - 4, reason: "\(timelineCount) deliveries do not fit in \(reader.remaining) bytes")
        }
        var timelines: [DeliveryTimeline] = []
        timelines.reserveCapacity(timelineCount)
        for _ in 0..<timelineCount {
            let at = reader.offset
            let timeline = try reader.timeline(through: dispatcher.position, tables)
            if let last = timelines.last?.current, let current = timeline.current, !(last.orderKey < current.orderKey) {
                throw SnapshotError(offset: at, reason: "delivery \(timeline.id) is not after \(last.id) in canonical order")
            }
            timelines.append(timeline)
        }
        guard reader.remaining == 0 else {
            throw SnapshotError(offset: reader.offset, reason: "\(reader.remaining) bytes after the last delivery")
        }
        self.init(dispatcher: dispatcher, counts: counts, usedIDs: usedIDs, timelines: timelines)
    }
}

extension SnapshotWriter {
    mutating func putFlag(_ present: Bool) { put(UInt8(present ? 1 : 0)) }

    mutating func putDelivery(_ d: Delivery) {
        put(d.id); put(d.appID); put(d.scriptID); put(d.sourceKind.rawValue)
        put(UInt64(bitPattern: d.depth))
        put(UInt64(bitPattern: d.retry.maxAttempts)); put(d.retry.backoff.rawValue); put(UInt64(bitPattern: d.retry.baseMs))
        put(d.triggerRank); put(d.status.rawValue); put(UInt64(bitPattern: d.attempts))
        putFlag(d.dueAt != nil); if let due = d.dueAt { put(UInt64(bitPattern: due)) }
        putFlag(d.lastError != nil); if let error = d.lastError { putText(error) }
        putFlag(d.finishedAt != nil); if let finished = d.finishedAt { put(finished) }
        put(UInt64(bitPattern: d.budgetBase))
    }

    mutating func putBody(_ body: RecordBody) {
        let encoded = RecordBinaryCodec.encode(body)
        put(UInt32(truncatingIfNeeded: encoded.count))
        bytes.append(contentsOf: encoded)
    }

    mutating func putTimeline(_ t: DeliveryTimeline, _ ref: SharedTables.Ref) {
        putFlag(t.current != nil); if let current = t.current { putDelivery(current) }
        if let created = t.created {
            if created == t.current { put(UInt8(1)) } else { put(UInt8(2)); putDelivery(created) }
        } else {
            put(UInt8(0))
        }
        put(ref.record); put(ref.trigger); put(ref.script); put(ref.principal)
        put(UInt32(truncatingIfNeeded: t.events.count))
        for event in t.events {
            switch event {
            case .attempt(let a):
                put(UInt8(1)); put(a.position); put(UInt64(bitPattern: a.ts)); putBody(.deliveryAttempted(a.attempt))
                putFlag(a.delayMs != nil); if let delay = a.delayMs { put(UInt64(bitPattern: delay)) }
                putFlag(a.nextDueAt != nil); if let due = a.nextDueAt { put(UInt64(bitPattern: due)) }
                put(a.status.rawValue)
            case .dead(let e, let caused):
                put(UInt8(2)); put(e.position); put(UInt64(bitPattern: e.ts)); put(e.delivery); put(e.appID)
                put(e.sourceKind.rawValue); put(e.triggerID); put(e.scriptID); put(UInt64(bitPattern: e.depth))
                putFlag(e.lastError != nil); if let error = e.lastError { putText(error) }
                put(UInt32(truncatingIfNeeded: caused.count))
                for d in caused { putDelivery(d) }
            case .cancelled(let position, let cause):
                put(UInt8(3)); put(position); putText(cause)
            case .redriven(let r):
                put(UInt8(4)); put(r.position); put(UInt64(bitPattern: r.ts)); put(r.by)
                putFlag(r.reason != nil); if let reason = r.reason { putText(reason) }
                put(UInt64(bitPattern: r.attemptsBefore))
            }
        }
    }
}

extension SnapshotReader {
    mutating func flag() throws(SnapshotError) -> Bool {
        let at = offset
        let value = try uint8()
        guard value <= 1 else { throw SnapshotError(offset: at, reason: "flag \(value) is neither 0 nor 1") }
        return value == 1
    }

    mutating func int64() throws(SnapshotError) -> Int64 { Int64(bitPattern: try uint64()) }

    mutating func body() throws(SnapshotError) -> RecordBody {
        let at = offset
        let length = Int(try uint32())
        let slice = try bytes(length)
        do throws(RecordError) {
            return try RecordBinaryCodec.decode(Array(slice))
        } catch {
            throw SnapshotError(offset: at, reason: "a record body that does not decode: \(error)")
        }
    }

    mutating func delivery(through position: UInt64) throws(SnapshotError) -> Delivery {
        let at = offset
        let delivery = try deliveryID(), app = try id(), script = try id()
        let kindByte = try uint8(), depth = try int64()
        let maxAttempts = try int64(), backoffByte = try uint8(), baseMs = try int64()
        let rank = try uint64(), statusByte = try uint8(), attempts = try int64()
        let due = try flag() ? try int64() : nil
        let error = try flag() ? try text() : nil
        let finished = try flag() ? try uint64() : nil
        let base = try int64()
        guard let kind = SourceKind(rawValue: kindByte), let backoff = Backoff(rawValue: backoffByte),
              let status = DeliveryStatus(rawValue: statusByte), (status == .pending) == (due != nil), (status == .pending) == (finished == nil),
              delivery.sourcePosition >= 1, delivery.sourcePosition <= position, finished.map({ $0 <= position }) ?? true,
              attempts >= 0, depth >= 0, base >= 0, base <= attempts else {
            throw SnapshotError(offset: at, reason: "delivery \(delivery) has an invalid field")
        }
        return Delivery(id: delivery, appID: app, scriptID: script, sourceKind: kind, depth: depth,
                        retry: RetryConfig(maxAttempts: maxAttempts, backoff: backoff, baseMs: baseMs),
                        triggerRank: rank, status: status, attempts: attempts, dueAt: due, lastError: error,
                        finishedAt: finished, budgetBase: base)
    }

    mutating func timeline(through position: UInt64, _ tables: SharedTables.Decoded) throws(SnapshotError) -> DeliveryTimeline {
        let at = offset
        guard try flag() else { throw SnapshotError(offset: at, reason: "a retained delivery without its state") }
        let current = try delivery(through: position)
        var t = DeliveryTimeline(id: current.id)
        t.current = current
        let createdAt = offset
        switch try uint8() {
        case 0: t.created = nil
        case 1: t.created = current
        case 2: t.created = try delivery(through: position)
        case let tag: throw SnapshotError(offset: createdAt, reason: "created tag \(tag) is not 0, 1 or 2")
        }
        func pick<T>(_ table: [T], _ what: String) throws(SnapshotError) -> T? {
            let at = offset
            let index = try uint32()
            if index == SharedTables.none { return nil }
            guard Int(index) < table.count else { throw SnapshotError(offset: at, reason: "\(what) \(index) of \(table.count)") }
            return table[Int(index)]
        }
        let source = try pick(tables.records, "source record")
        if let source, source.position != current.id.sourcePosition {
            throw SnapshotError(offset: offset - 4, reason: "delivery \(current.id) names the record at \(source.position) as its source")
        }
        t.sourceRecord = source?.record
        t.trigger = try pick(tables.triggers, "trigger")
        t.script = try pick(tables.scripts, "script")
        t.principal = try pick(tables.principals, "principal")
        let count = Int(try uint32())
        guard count <= remaining / 9 else { throw SnapshotError(offset: offset - 4, reason: "\(count) events do not fit in \(remaining) bytes") }
        for _ in 0..<count {
            let eventAt = offset
            switch try uint8() {
            case 1:
                let at = try uint64(), ts = try int64()
                let bodyAt = offset
                guard case .deliveryAttempted(let attempt) = try body() else {
                    throw SnapshotError(offset: bodyAt, reason: "an attempt that is not a delivery.attempted body")
                }
                let delay = try flag() ? try int64() : nil
                let due = try flag() ? try int64() : nil
                guard let status = DeliveryStatus(rawValue: try uint8()) else { throw SnapshotError(offset: offset - 1, reason: "an invalid status") }
                let a = DeliveryTimeline.Attempt(position: at, ts: ts, attempt: attempt, delayMs: delay, nextDueAt: due, status: status)
                t.attempts.append(a)
                t.events.append(.attempt(a))
            case 2:
                let at = try uint64(), ts = try int64(), dead = try deliveryID(), app = try id()
                guard let kind = SourceKind(rawValue: try uint8()) else { throw SnapshotError(offset: offset - 1, reason: "an invalid source kind") }
                let trigger = try id(), script = try id(), depth = try int64()
                let error = try flag() ? try text() : nil
                let e = DeadLetterEvent(position: at, ts: ts, delivery: dead, appID: app, sourceKind: kind, triggerID: trigger,
                                        scriptID: script, depth: depth, lastError: error)
                let causedCount = Int(try uint32())
                guard causedCount <= remaining / 100 else { throw SnapshotError(offset: offset - 4, reason: "\(causedCount) caused deliveries do not fit") }
                var caused: [Delivery] = []
                for _ in 0..<causedCount { caused.append(try delivery(through: position)) }
                t.deadLetter = e
                t.caused = caused
                t.events.append(.dead(e, caused: caused))
            case 3:
                let at = try uint64(), cause = try text()
                t.cancelledAt = (at, cause)
                t.events.append(.cancelled(position: at, cause: cause))
            case 4:
                let r = DeliveryTimeline.Redrive(position: try uint64(), ts: try int64(), by: try id(),
                                                 reason: try flag() ? try text() : nil, attemptsBefore: try int64())
                t.redrives.append(r)
                t.events.append(.redriven(r))
            case let tag:
                throw SnapshotError(offset: eventAt, reason: "unknown event tag \(tag)")
            }
        }
        return t
    }
}

/// The tables of values timelines share (see the format above): each distinct value once,
/// in order of first use by the timelines in canonical order, so the same state gives the
/// same bytes. The dictionaries are looked up only, never iterated.
struct SharedTables {
    static let none = UInt32.max

    struct Ref {
        var record = SharedTables.none
        var trigger = SharedTables.none
        var script = SharedTables.none
        var principal = SharedTables.none
    }

    struct Table {
        var bytes: [UInt8] = []
        var count = 0
        var index: [[UInt8]: UInt32] = [:]

        mutating func add(_ entry: [UInt8]) -> UInt32 {
            if let found = index[entry] { return found }
            let at = UInt32(count)
            index[entry] = at
            bytes.append(contentsOf: entry)
            count += 1
            return at
        }
    }

    var records = Table()
    var recordIndex: [UInt64: UInt32] = [:]
    var triggers = Table()
    var scripts = Table()
    var principals = Table()

    mutating func add(_ t: DeliveryTimeline) -> Ref {
        var ref = Ref()
        if let record = t.sourceRecord {
            // One record per position: looked up by it, not by its bytes.
            if let found = recordIndex[t.id.sourcePosition] {
                ref.record = found
            } else {
                var out = SnapshotWriter()
                out.put(t.id.sourcePosition); out.put(UInt64(bitPattern: record.ts)); out.putBody(record.body)
                ref.record = UInt32(records.count)
                recordIndex[t.id.sourcePosition] = ref.record
                records.bytes.append(contentsOf: out.bytes)
                records.count += 1
            }
        }
        if let trigger = t.trigger {
            var out = SnapshotWriter()
            out.putBody(.triggerRegistered(trigger.registration))
            out.put(trigger.registeredPosition); out.put(UInt64(bitPattern: trigger.createdTs))
            out.put(UInt64(bitPattern: trigger.updatedTs)); out.put(trigger.updatedPosition)
            ref.trigger = triggers.add(out.bytes)
        }
        if let s = t.script {
            var out = SnapshotWriter()
            out.put(s.id); out.put(s.appID); out.putText(s.name); out.putText(s.runtime); out.putText(s.source)
            out.put(s.createdPosition); out.put(UInt64(bitPattern: s.createdTs))
            ref.script = scripts.add(out.bytes)
        }
        if let p = t.principal {
            var out = SnapshotWriter()
            out.put(p.id); out.putText(p.email); out.put(p.createdPosition); out.put(UInt64(bitPattern: p.createdTs))
            ref.principal = principals.add(out.bytes)
        }
        return ref
    }

    /// The four tables, read back.
    struct Decoded {
        var records: [(position: UInt64, record: Record)] = []
        var triggers: [Registry.Trigger] = []
        var scripts: [Registry.Script] = []
        var principals: [Registry.AdminUser] = []

        init(_ reader: inout SnapshotReader, through position: UInt64) throws(SnapshotError) {
            func count(_ what: String, _ minimum: Int) throws(SnapshotError) -> Int {
                let n = Int(try reader.uint32())
                guard n <= reader.remaining / minimum else {
                    throw SnapshotError(offset: reader.offset - 4, reason: "\(n) \(what) do not fit in \(reader.remaining) bytes")
                }
                return n
            }
            for _ in 0..<(try count("source records", 20)) {
                let at = reader.offset
                let source = try reader.uint64(), ts = try reader.int64()
                guard source >= 1, source <= position else { throw SnapshotError(offset: at, reason: "a source record at position \(source), not in 1…\(position)") }
                records.append((source, Record(ts: ts, body: try reader.body())))
            }
            for _ in 0..<(try count("triggers", 36)) {
                let at = reader.offset
                guard case .triggerRegistered(let registration) = try reader.body() else {
                    throw SnapshotError(offset: at, reason: "a trigger that is not a trigger registration")
                }
                var trigger = Registry.Trigger(registration, registeredPosition: try reader.uint64(), ts: try reader.int64())
                trigger.updatedTs = try reader.int64()
                trigger.updatedPosition = try reader.uint64()
                triggers.append(trigger)
            }
            for _ in 0..<(try count("scripts", 60)) {
                scripts.append(Registry.Script(id: try reader.id(), appID: try reader.id(), name: try reader.text(), runtime: try reader.text(),
                                               source: try reader.text(), createdPosition: try reader.uint64(), createdTs: try reader.int64()))
            }
            for _ in 0..<(try count("principals", 36)) {
                principals.append(Registry.AdminUser(id: try reader.id(), email: try reader.text(), createdPosition: try reader.uint64(),
                                                     createdTs: try reader.int64()))
            }
        }
    }
}
