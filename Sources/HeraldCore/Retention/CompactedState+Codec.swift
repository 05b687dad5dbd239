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
/// | retained deliveries: count (4); each its timeline (below) | |
/// | checksum of every byte before it | 8 |
///
/// A timeline: the delivery now and as created (a *delivery*: id (8 + 16), app, script (16
/// each), source kind (1), depth, retry max attempts (8 each), backoff (1), base ms, trigger
/// rank (8 each), status (1), attempts (8), due at, last error, finished at (each a flag (1)
/// and the value), budget base (8)); the record that created it (flag; ts (8), its body in the
/// log's binary form, length (4) first); the trigger, script and principal as of its creation
/// (flag and fields each, as in the engine snapshot); then its events (count (4), each a tag
/// (1): 1 an attempt — position, ts, the `delivery.attempted` body, delay, next due (flags),
/// status; 2 a death — the dead-letter event and the deliveries it caused; 3 a cancellation —
/// position and cause; 4 a redrive — position, ts, by, reason, attempts before).
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
        out.put(UInt32(truncatingIfNeeded: timelines.count))
        for timeline in timelines { out.putTimeline(timeline) }
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
        var counts = DeliveryCounts()
        for status in DeliveryStatus.allCases {
            let at = reader.offset
            counts[status] = Int64(bitPattern: try reader.uint64())
            guard counts[status] >= 0 else { throw SnapshotError(offset: at, reason: "a negative count of \(status) deliveries") }
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
        let timelineCount = Int(try reader.uint32())
        guard timelineCount <= reader.remaining / 100 else {
            throw SnapshotError(offset: reader.offset - 4, reason: "\(timelineCount) deliveries do not fit in \(reader.remaining) bytes")
        }
        var timelines: [DeliveryTimeline] = []
        timelines.reserveCapacity(timelineCount)
        for _ in 0..<timelineCount {
            let at = reader.offset
            let timeline = try reader.timeline(through: dispatcher.position)
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

    mutating func putTimeline(_ t: DeliveryTimeline) {
        putFlag(t.current != nil); if let current = t.current { putDelivery(current) }
        putFlag(t.created != nil); if let created = t.created { putDelivery(created) }
        putFlag(t.sourceRecord != nil)
        if let record = t.sourceRecord { put(UInt64(bitPattern: record.ts)); putBody(record.body) }
        putFlag(t.trigger != nil)
        if let trigger = t.trigger {
            putBody(.triggerRegistered(trigger.registration))
            put(trigger.registeredPosition); put(UInt64(bitPattern: trigger.createdTs))
            put(UInt64(bitPattern: trigger.updatedTs)); put(trigger.updatedPosition)
        }
        putFlag(t.script != nil)
        if let s = t.script {
            put(s.id); put(s.appID); putText(s.name); putText(s.runtime); putText(s.source)
            put(s.createdPosition); put(UInt64(bitPattern: s.createdTs))
        }
        putFlag(t.principal != nil)
        if let p = t.principal { put(p.id); putText(p.email); put(p.createdPosition); put(UInt64(bitPattern: p.createdTs)) }
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

    mutating func timeline(through position: UInt64) throws(SnapshotError) -> DeliveryTimeline {
        let at = offset
        guard try flag() else { throw SnapshotError(offset: at, reason: "a retained delivery without its state") }
        let current = try delivery(through: position)
        var t = DeliveryTimeline(id: current.id)
        t.current = current
        t.created = try flag() ? try delivery(through: position) : nil
        if try flag() {
            let ts = try int64()
            t.sourceRecord = Record(ts: ts, body: try body())
        }
        if try flag() {
            let bodyAt = offset
            guard case .triggerRegistered(let registration) = try body() else {
                throw SnapshotError(offset: bodyAt, reason: "a trigger that is not a trigger registration")
            }
            var trigger = Registry.Trigger(registration, registeredPosition: try uint64(), ts: try int64())
            trigger.updatedTs = try int64()
            trigger.updatedPosition = try uint64()
            t.trigger = trigger
        }
        if try flag() {
            t.script = Registry.Script(id: try id(), appID: try id(), name: try text(), runtime: try text(), source: try text(),
                                       createdPosition: try uint64(), createdTs: try int64())
        }
        if try flag() {
            t.principal = Registry.AdminUser(id: try id(), email: try text(), createdPosition: try uint64(), createdTs: try int64())
        }
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
