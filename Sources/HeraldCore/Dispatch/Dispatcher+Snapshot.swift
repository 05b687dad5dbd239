/// The engine snapshot: the whole state a ``Dispatcher`` restores from at one position (docs/
/// SEMANTICS.md §6, "Restart"), so a restart reads one value and replays only the records after
/// it instead of the log or one projection row per delivery.
///
/// Little-endian, in this order:
///
/// | field | bytes |
/// |---|---|
/// | magic `HDS1` | 4 |
/// | position, created count (8 each); last ts: present (1), value (8) | 25 |
/// | apps: count (4); each id (16), name, created position (8), created ts (8) | |
/// | admin users: count (4); each id (16), email, created position (8), created ts (8) | |
/// | scripts: count (4); each id, app (16 each), name, runtime, source, created position, created ts (8 each) | |
/// | triggers: count (4); each its registration as a `trigger.registered` record body in the log's binary form (length 4, bytes), registered position, created ts, updated ts, updated position (8 each) | |
/// | used ids: count (4), ids (16 each), ascending | |
/// | redrivable deliveries: count (4); each id (8 + 16), app, script (16 each), source kind (1), depth (8), retry max attempts (8), backoff (1), base ms (8), trigger rank (8), status (1), attempts (8), last error (flag 1, text), finished at (flag 1, 8), budget base (8) | |
/// | pending deliveries: length (8), the ``PendingDeliveries`` snapshot (its own checksum) | |
/// | checksum of every byte before it (``PendingDeliveries`` `checksum`) | 8 |
///
/// Texts are a UTF-8 length (4) and the bytes. Registry entries are in id order, redrivable
/// deliveries in canonical order: the same state gives the same bytes whether it was replayed
/// or restored, so `herald verify` compares a snapshot with a replay byte for byte. Decoding
/// checks every field and the references between them (a script's app, a trigger's app and
/// script, a redrivable delivery's trigger): a snapshot that does not describe a valid state is
/// refused, never half used.
extension Dispatcher {
    static let snapshotMagic: [UInt8] = Array("HDS1".utf8)

    /// The snapshot's bytes.
    public func snapshotBytes() -> [UInt8] {
        var out = SnapshotWriter()
        let pendingBytes = pending.snapshotBytes()
        out.bytes.reserveCapacity(pendingBytes.count + 1024 + registry.triggers.count * 256 + redrivable.count * 128)
        out.bytes.append(contentsOf: Self.snapshotMagic)
        out.put(position)
        out.put(createdCount)
        out.put(UInt8(lastTs == nil ? 0 : 1))
        out.put(UInt64(bitPattern: lastTs ?? 0))

        let apps = registry.apps.values.sorted { $0.id < $1.id }
        out.put(UInt32(truncatingIfNeeded: apps.count))
        for app in apps {
            out.put(app.id); out.putText(app.name); out.put(app.createdPosition); out.put(UInt64(bitPattern: app.createdTs))
        }
        let users = registry.adminUsers.values.sorted { $0.id < $1.id }
        out.put(UInt32(truncatingIfNeeded: users.count))
        for user in users {
            out.put(user.id); out.putText(user.email); out.put(user.createdPosition); out.put(UInt64(bitPattern: user.createdTs))
        }
        let scripts = registry.scripts.values.sorted { $0.id < $1.id }
        out.put(UInt32(truncatingIfNeeded: scripts.count))
        for script in scripts {
            out.put(script.id); out.put(script.appID)
            out.putText(script.name); out.putText(script.runtime); out.putText(script.source)
            out.put(script.createdPosition); out.put(UInt64(bitPattern: script.createdTs))
        }
        let triggers = registry.triggers.values.sorted { $0.id < $1.id }
        out.put(UInt32(truncatingIfNeeded: triggers.count))
        for trigger in triggers {
            let body = RecordBinaryCodec.encode(.triggerRegistered(trigger.registration))
            out.put(UInt32(truncatingIfNeeded: body.count))
            out.bytes.append(contentsOf: body)
            out.put(trigger.registeredPosition); out.put(UInt64(bitPattern: trigger.createdTs))
            out.put(UInt64(bitPattern: trigger.updatedTs)); out.put(trigger.updatedPosition)
        }
        let used = registry.usedIDsInOrder
        out.put(UInt32(truncatingIfNeeded: used.count))
        for id in used { out.put(id) }

        let dead = redrivable.values.sorted { $0.orderKey < $1.orderKey }
        out.put(UInt32(truncatingIfNeeded: dead.count))
        for d in dead {
            out.put(d.id); out.put(d.appID); out.put(d.scriptID); out.put(d.sourceKind.rawValue)
            out.put(UInt64(bitPattern: d.depth))
            out.put(UInt64(bitPattern: d.retry.maxAttempts)); out.put(d.retry.backoff.rawValue); out.put(UInt64(bitPattern: d.retry.baseMs))
            out.put(d.triggerRank); out.put(d.status.rawValue); out.put(UInt64(bitPattern: d.attempts))
            out.put(UInt8(d.lastError == nil ? 0 : 1))
            if let error = d.lastError { out.putText(error) }
            out.put(UInt8(d.finishedAt == nil ? 0 : 1))
            if let finished = d.finishedAt { out.put(finished) }
            out.put(UInt64(bitPattern: d.budgetBase))
        }
        out.put(UInt64(pendingBytes.count))
        out.bytes.append(contentsOf: pendingBytes)
        out.put(PendingDeliveries.checksum(out.bytes[...]))
        return out.bytes
    }

    /// Decodes ``snapshotBytes()``.
    /// - Throws: ``SnapshotError`` naming the offset and the reason when the bytes are not a
    ///   snapshot of a valid state.
    public init(snapshotBytes bytes: [UInt8]) throws(SnapshotError) {
        guard bytes.count >= Self.snapshotMagic.count + 25 + 8 else {
            throw SnapshotError(offset: 0, reason: "\(bytes.count) bytes is too short for an engine snapshot")
        }
        let bodyEnd = bytes.count - 8
        let stored = SnapshotReader(bytes: bytes, end: bytes.count, offset: bodyEnd).peekUInt64()
        guard PendingDeliveries.checksum(bytes[..<bodyEnd]) == stored else {
            throw SnapshotError(offset: bodyEnd, reason: "the checksum does not match the bytes (the snapshot is damaged)")
        }
        guard Array(bytes[0..<4]) == Self.snapshotMagic else {
            throw SnapshotError(offset: 0, reason: "not an engine snapshot (magic \(Array(bytes[0..<4])))")
        }
        var reader = SnapshotReader(bytes: bytes, end: bodyEnd, offset: 4)
        let position = try reader.uint64()
        let createdCount = try reader.uint64()
        let hasTs = try reader.uint8()
        let ts = Int64(bitPattern: try reader.uint64())
        guard hasTs <= 1 else { throw SnapshotError(offset: reader.offset - 9, reason: "last ts flag \(hasTs)") }

        /// Reads `count` entries, each with an id that must come after the previous one's.
        func entries<T>(_ what: String, _ read: (inout SnapshotReader) throws(SnapshotError) -> (HeraldID, T)) throws(SnapshotError) -> [T] {
            let count = Int(try reader.uint32())
            guard count <= reader.remaining / 16 else {
                throw SnapshotError(offset: reader.offset - 4, reason: "\(count) \(what) do not fit in \(reader.remaining) bytes")
            }
            var result: [T] = []
            result.reserveCapacity(count)
            var previous: HeraldID?
            for _ in 0..<count {
                let start = reader.offset
                let (id, value) = try read(&reader)
                if let previous, previous >= id {
                    throw SnapshotError(offset: start, reason: "\(what): \(id) is not after \(previous)")
                }
                previous = id
                result.append(value)
            }
            return result
        }
        func created(_ reader: inout SnapshotReader, _ what: HeraldID) throws(SnapshotError) -> (UInt64, Int64) {
            let start = reader.offset
            let at = try reader.uint64(), ts = Int64(bitPattern: try reader.uint64())
            guard at >= 1, at <= position else {
                throw SnapshotError(offset: start, reason: "\(what) was created at position \(at), not in 1…\(position)")
            }
            return (at, ts)
        }
        let apps: [Registry.App] = try entries("apps") { (r: inout SnapshotReader) throws(SnapshotError) in
            let id = try r.id(), name = try r.text()
            let (at, ts) = try created(&r, id)
            return (id, Registry.App(id: id, name: name, createdPosition: at, createdTs: ts))
        }
        let users: [Registry.AdminUser] = try entries("admin users") { (r: inout SnapshotReader) throws(SnapshotError) in
            let id = try r.id(), email = try r.text()
            let (at, ts) = try created(&r, id)
            return (id, Registry.AdminUser(id: id, email: email, createdPosition: at, createdTs: ts))
        }
        let appIDs = Set(apps.map(\.id))
        let scripts: [Registry.Script] = try entries("scripts") { (r: inout SnapshotReader) throws(SnapshotError) in
            let start = r.offset
            let id = try r.id(), app = try r.id()
            let name = try r.text(), runtime = try r.text(), source = try r.text()
            let (at, ts) = try created(&r, id)
            guard appIDs.contains(app) else { throw SnapshotError(offset: start, reason: "script \(id) belongs to no app (\(app))") }
            return (id, Registry.Script(id: id, appID: app, name: name, runtime: runtime, source: source, createdPosition: at, createdTs: ts))
        }
        let scriptApps = Dictionary(uniqueKeysWithValues: scripts.map { ($0.id, $0.appID) })
        let triggers: [Registry.Trigger] = try entries("triggers") { (r: inout SnapshotReader) throws(SnapshotError) in
            let start = r.offset
            let length = Int(try r.uint32())
            let body = Array(try r.bytes(length))
            let decoded: RecordBody
            do throws(RecordError) {
                decoded = try RecordBinaryCodec.decode(body)
            } catch {
                throw SnapshotError(offset: start, reason: "a trigger that does not decode: \(error)")
            }
            guard case .triggerRegistered(let registration) = decoded else {
                throw SnapshotError(offset: start, reason: "a trigger that is not a trigger registration")
            }
            let registered = try r.uint64(), createdTs = Int64(bitPattern: try r.uint64())
            let updatedTs = Int64(bitPattern: try r.uint64()), updated = try r.uint64()
            let id = registration.triggerID
            guard registered >= 1, registered <= updated, updated <= position else {
                throw SnapshotError(offset: start, reason: "trigger \(id) registered at \(registered) and updated at \(updated), not in 1…\(position)")
            }
            guard appIDs.contains(registration.appID), scriptApps[registration.scriptID] == registration.appID else {
                throw SnapshotError(offset: start, reason: "trigger \(id) names an app or a script the snapshot does not hold")
            }
            var trigger = Registry.Trigger(registration, registeredPosition: registered, ts: createdTs)
            trigger.updatedTs = updatedTs
            trigger.updatedPosition = updated
            return (id, trigger)
        }
        let used: [HeraldID] = try entries("used ids") { (r: inout SnapshotReader) throws(SnapshotError) in
            let id = try r.id()
            return (id, id)
        }
        let usedSet = Set(used)
        let live = apps.map(\.id) + users.map(\.id) + scripts.map(\.id) + triggers.map(\.id)
        if let missing = live.first(where: { !usedSet.contains($0) }) {
            throw SnapshotError(offset: reader.offset, reason: "\(missing) is live but not among the used ids")
        }
        let triggerRanks = Dictionary(uniqueKeysWithValues: triggers.map { ($0.id, $0.registeredPosition) })

        let deadCount = Int(try reader.uint32())
        guard deadCount <= reader.remaining / 100 else {
            throw SnapshotError(offset: reader.offset - 4, reason: "\(deadCount) redrivable deliveries do not fit in \(reader.remaining) bytes")
        }
        var redrivable: [Delivery] = []
        redrivable.reserveCapacity(deadCount)
        for _ in 0..<deadCount {
            let start = reader.offset
            let id = try reader.deliveryID(), app = try reader.id(), script = try reader.id()
            let kindByte = try reader.uint8()
            let depth = Int64(bitPattern: try reader.uint64())
            let maxAttempts = Int64(bitPattern: try reader.uint64()), backoffByte = try reader.uint8()
            let baseMs = Int64(bitPattern: try reader.uint64())
            let rank = try reader.uint64(), statusByte = try reader.uint8()
            let attempts = Int64(bitPattern: try reader.uint64())
            let hasError = try reader.uint8()
            let error = hasError == 1 ? try reader.text() : nil
            let hasFinished = try reader.uint8()
            let finished = hasFinished == 1 ? try reader.uint64() : nil
            let base = Int64(bitPattern: try reader.uint64())
            guard let kind = SourceKind(rawValue: kindByte), let backoff = Backoff(rawValue: backoffByte),
                  let status = DeliveryStatus(rawValue: statusByte), status == .dead || status == .cancelled,
                  hasError <= 1, hasFinished == 1, let finished, finished <= position, id.sourcePosition < finished,
                  attempts >= 0, depth >= 0, base >= 0, base <= attempts else {
                throw SnapshotError(offset: start, reason: "redrivable delivery \(id) has an invalid field")
            }
            guard triggerRanks[id.triggerID] == rank else {
                throw SnapshotError(offset: start, reason: "redrivable delivery \(id) names a trigger the snapshot does not hold at rank \(rank)")
            }
            let delivery = Delivery(id: id, appID: app, scriptID: script, sourceKind: kind, depth: depth,
                                    retry: RetryConfig(maxAttempts: maxAttempts, backoff: backoff, baseMs: baseMs),
                                    triggerRank: rank, status: status, attempts: attempts, dueAt: nil, lastError: error,
                                    finishedAt: finished, budgetBase: base)
            if let last = redrivable.last, !(last.orderKey < delivery.orderKey) {
                throw SnapshotError(offset: start, reason: "redrivable delivery \(id) is not after \(last.id) in canonical order")
            }
            redrivable.append(delivery)
        }
        let pendingStart = reader.offset
        let pendingLength = try reader.uint64()
        guard pendingLength == UInt64(reader.remaining) else {
            throw SnapshotError(offset: pendingStart, reason: "the pending deliveries take \(pendingLength) bytes, \(reader.remaining) are left")
        }
        let pending: PendingDeliveries
        do {
            pending = try PendingDeliveries(snapshotBytes: Array(try reader.bytes(Int(pendingLength))))
        } catch {
            throw SnapshotError(offset: pendingStart + 8 + error.offset, reason: error.reason)
        }
        guard pending.lastRowPosition.map({ $0 <= position }) ?? true else {
            throw SnapshotError(offset: pendingStart, reason: "a pending delivery comes after the snapshot's position \(position)")
        }
        guard UInt64(pending.count + redrivable.count) <= createdCount else {
            throw SnapshotError(offset: 4, reason: "\(createdCount) deliveries created, fewer than the \(pending.count + redrivable.count) held")
        }
        let registry = Registry(apps: apps, adminUsers: users, scripts: scripts, triggers: triggers, usedIDs: used)
        self.init(registry: registry, pending: pending, position: position, lastTs: hasTs == 1 ? ts : nil,
                  createdCount: createdCount, redrivable: redrivable)
    }
}

extension SnapshotWriter {
    mutating func putText(_ text: String) {
        var text = text
        text.withUTF8 { utf8 in
            put(UInt32(truncatingIfNeeded: utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }
}

extension SnapshotReader {
    mutating func text() throws(SnapshotError) -> String {
        let start = offset
        let length = Int(try uint32())
        let utf8 = try bytes(length)
        guard let text = String(validating: utf8, as: UTF8.self) else {
            throw SnapshotError(offset: start, reason: "a text that is not UTF-8")
        }
        return text
    }
}
