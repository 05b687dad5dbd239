@testable import HeraldCore
import Testing

/// The compact pending store against a plain dictionary model: thousands of creations,
/// retries and finishes (enough to sweep finished rows several times), with trigger retry
/// configs changing on the way.
@Suite struct PendingDeliveriesTests {
    @Test(arguments: [1, 2, 3] as [UInt64])
    func agreesWithADictionaryModel(seed: UInt64) throws {
        var rng = SeededGenerator(seed: seed)
        let triggers = (0..<12).map { HeraldID(high: 0x7000_0000_0000_4000, low: 0x8000_0000_0000_0000 | UInt64($0)) }
        let app = HeraldID(high: 0xB000_0000_0000_4000, low: 0x8000_0000_0000_0001)
        var retries = triggers.map { _ in RetryConfig.builtIn }
        var store = PendingDeliveries()
        var model: [DeliveryID: Delivery] = [:]
        var live: [DeliveryID] = []  // the model's keys, in an order the seed fixes
        var swept = 0
        var finished: [Delivery] = []  // removed ones, which come back as redrives do
        var reinserted = 0
        for position in UInt64(1)...6000 {
            // A few triggers fire at each position, in rank order.
            let firing = triggers.indices.filter { _ in rng.next() % 4 == 0 }
            for t in firing {
                if rng.next() % 50 == 0 { retries[t] = RetryConfig(maxAttempts: Int64(1 + rng.next() % 100), backoff: .linear, baseMs: 10) }
                let delivery = Delivery(id: DeliveryID(sourcePosition: position, triggerID: triggers[t]), appID: app,
                                        scriptID: app, sourceKind: t % 3 == 0 ? .deadLetter : .kv, depth: Int64(t % 4),
                                        retry: retries[t], triggerRank: UInt64(t + 1), dueAt: Int64(position))
                store.append(delivery)
                model[delivery.id] = delivery
                live.append(delivery.id)
            }
            // Retry or finish some pending deliveries.
            for _ in 0..<2 where !live.isEmpty {
                let index = Int(rng.next() % UInt64(live.count))
                let id = live[index]
                guard var delivery = model[id] else { continue }
                if rng.next() % 3 == 0 {
                    delivery.attempts += 1
                    delivery.dueAt = Int64(position) + 500
                    delivery.lastError = "boom \(position)"
                    store.update(id, attempts: delivery.attempts, dueAt: delivery.dueAt ?? 0, lastError: delivery.lastError)
                    model[id] = delivery
                } else {
                    let before = store.count
                    finished.append(delivery)
                    store.remove(id)
                    if store.count != before - 1 { Issue.record("remove of \(id) did not shrink the store") }
                    model[id] = nil
                    live.swapAt(index, live.count - 1)
                    live.removeLast()
                    swept += 1
                }
            }
            // Now and then, finished deliveries come back pending between the rows (a redrive:
            // any source positions, a budget base).
            if position % 40 == 0, !finished.isEmpty {
                var batch: [Delivery] = []
                for _ in 0..<(1 + rng.next() % 12) where !finished.isEmpty {
                    var delivery = finished.remove(at: Int(rng.next() % UInt64(finished.count)))
                    delivery.dueAt = Int64(position)
                    delivery.budgetBase = delivery.attempts
                    batch.append(delivery)
                    model[delivery.id] = delivery
                    live.append(delivery.id)
                }
                store.insert(batch)
                reinserted += batch.count
            }
            if position % 500 == 0 {
                #expect(store.count == model.count, "seed \(seed) at \(position)")
                // The snapshot gives the same pending set back, and the same bytes again.
                let bytes = store.snapshotBytes()
                let restored = try #require(try? PendingDeliveries(snapshotBytes: bytes))
                #expect(restored == store && restored.snapshotBytes() == bytes, "seed \(seed) at \(position)")
                #expect(store.values == model.values.sorted { $0.orderKey < $1.orderKey }, "seed \(seed) at \(position)")
                for trigger in triggers {
                    #expect(store.values(ofTrigger: trigger) == model.values.filter { $0.id.triggerID == trigger }.sorted { $0.orderKey < $1.orderKey })
                    #expect(store.hasPending(ofTrigger: trigger) == model.values.contains { $0.id.triggerID == trigger })
                }
            }
        }
        #expect(swept > 4000, "enough finishes to sweep finished rows more than once")
        #expect(reinserted > 500, "enough redriven deliveries merged between the rows")
        for (id, delivery) in model { #expect(store[id] == delivery) }
        #expect(store[DeliveryID(sourcePosition: 6001, triggerID: triggers[0])] == nil)
        #expect(store[DeliveryID(sourcePosition: 0, triggerID: triggers[0])] == nil)
        let summary = store.dueSummary(now: 3000)
        #expect(summary.due == model.values.filter { ($0.dueAt ?? .max) <= 3000 }.count)
        #expect(summary.earliest == model.values.compactMap(\.dueAt).min())
    }
}

/// The binary snapshot refuses what is not one, naming the offset: damage anywhere (the
/// checksum), truncation, and fields that do not describe a valid pending set even with a
/// matching checksum.
@Suite struct PendingSnapshotTests {
    static func sample() -> PendingDeliveries {
        let app = HeraldID(high: 0xB000_0000_0000_4000, low: 0x8000_0000_0000_0001)
        var store = PendingDeliveries()
        for position in UInt64(1)...6 {
            for rank in UInt64(1)...2 {
                let trigger = HeraldID(high: 0x7000_0000_0000_4000, low: rank)
                var delivery = Delivery(id: DeliveryID(sourcePosition: position, triggerID: trigger), appID: app, scriptID: app,
                                        sourceKind: .kv, depth: 0, retry: .builtIn, triggerRank: rank, dueAt: Int64(position))
                if position == 2 { delivery.attempts = 1; delivery.lastError = "smtp down" }
                store.append(delivery)
            }
        }
        return store
    }

    /// The bytes with the checksum made to match again.
    static func resealed(_ bytes: [UInt8]) -> [UInt8] {
        var body = Array(bytes.dropLast(8))
        withUnsafeBytes(of: PendingDeliveries.checksum(body[...]).littleEndian) { body.append(contentsOf: $0) }
        return body
    }

    @Test func everyFlippedBitAndEveryTruncationIsRefused() {
        let bytes = Self.sample().snapshotBytes()
        var accepted: [String] = []
        for index in bytes.indices {
            for bit in 0..<8 {
                var damaged = bytes
                damaged[index] ^= 1 << bit
                if (try? PendingDeliveries(snapshotBytes: damaged)) != nil { accepted.append("bit \(bit) of byte \(index)") }
            }
        }
        for length in 0..<bytes.count where (try? PendingDeliveries(snapshotBytes: Array(bytes.prefix(length)))) != nil {
            accepted.append("the first \(length) bytes")
        }
        #expect(accepted.isEmpty)
    }

    @Test func fieldsThatDescribeNoValidPendingSetAreRefusedWithTheirOffset() throws {
        let bytes = Self.sample().snapshotBytes()
        let rows = 4 + 4 + 8 + 2 * PendingDeliveries.snapshotBytesPerSnapshot  // where the columns start
        func refusal(_ change: (inout [UInt8]) -> Void) -> SnapshotError? {
            var changed = bytes
            change(&changed)
            do { _ = try PendingDeliveries(snapshotBytes: Self.resealed(changed)); return nil } catch { return error }
        }
        // Row 2 (position 2, rank 1) moved to position 1, before row 1 (position 1, rank 2).
        let order = refusal { $0[rows + 16] = 1 }
        #expect(order?.offset == rows + 16 && order?.reason.contains("canonical order") == true, "\(String(describing: order))")
        // Row 0's snapshot index past the two snapshots.
        let index = refusal { $0[rows + 12 * 8] = 9 }
        #expect(index?.offset == rows + 12 * 8 && index?.reason.contains("uses snapshot 9 of 2") == true, "\(String(describing: index))")
        // An unknown source kind in the first snapshot.
        let kind = refusal { $0[4 + 4 + 8 + 48] = 200 }
        #expect(kind?.offset == 16 && kind?.reason.contains("unknown source kind 200") == true, "\(String(describing: kind))")
        // The second trigger's snapshot given the first trigger's id: one trigger, two ranks,
        // so two rows of one position would share a delivery id (found by the fuzzer).
        let ranks = refusal { bytes in
            let second = 16 + PendingDeliveries.snapshotBytesPerSnapshot
            for offset in 0..<16 { bytes[second + offset] = bytes[16 + offset] }
        }
        #expect(ranks?.offset == 16 + PendingDeliveries.snapshotBytesPerSnapshot && ranks?.reason.contains("two ranks, 1 and 2") == true,
                "\(String(describing: ranks))")
        // A byte after the last field.
        let extra = refusal { $0.insert(0, at: $0.count - 8) }
        #expect(extra?.reason.contains("1 bytes follow the last field") == true, "\(String(describing: extra))")
        #expect(refusal { _ in } == nil, "the resealed bytes themselves decode")
    }
}

/// The dispatcher's memo of (app, collection) gives what the glob rule and the ops give,
/// in registration order: across trigger registrations, updates, disables and deletions
/// between mutations, and after the memo starts over (more pairs than its limit).
@Suite struct MatchMemoTests {
    @Test func rememberedMatchesEqualTheGlobRule() throws {
        var log = LogText.standard()
        let globs = ["*", "a*", "a1*", "b:*", "a10", "b:7", "c"]
        let opSets = ["[]", #"["insert"]"#, #"["update","delete"]"#, #"["delete"]"#]
        for (index, glob) in globs.enumerated() {
            log.kvTrigger(uid(100 + index), glob: glob, ops: opSets[index % opSets.count])
        }
        var dispatcher = Dispatcher()
        dispatcher.memoLimit = 50
        let decoder = RecordJSONDecoder()
        func apply(_ line: String) throws -> [DispatchEffect] {
            let (ts, body) = try decoder.decode(line: line)
            return try dispatcher.apply(Record(ts: ts ?? 0, body: body))
        }
        for line in log.lines { _ = try apply(line) }
        let names = (0..<300).flatMap { ["a\($0)", "b:\($0 % 9)", "c"] }
        var checked = 0
        var mismatches: [String] = []
        for (index, name) in names.enumerated() {
            // Every 97 mutations a trigger changes: the memo must not answer from before it.
            switch index % 97 {
            case 10: log.lines = []; log.kvTrigger(uid(200 + index), glob: "a*", ops: #"["insert"]"#); _ = try apply(log.lines[0])
            case 20: _ = try apply(#"{"ts":0,"type":"trigger.updated","trigger_id":"\#(uid(101))","enabled":\#(index % 2 == 0)}"#)
            case 30: _ = try apply(#"{"ts":0,"type":"trigger.updated","trigger_id":"\#(uid(100))","kv":{"ops":["\#(["insert", "update", "delete"][index % 3])"]}}"#)
            case 40 where index < 97: _ = try apply(#"{"ts":0,"type":"trigger.deleted","trigger_id":"\#(uid(105))"}"#)
            default: break
            }
            let op = ["insert", "update", "delete"][index % 3]
            let kvOp: KVOp = [.insert, .update, .delete][index % 3]
            let expected = dispatcher.registry.liveTriggers(app: try #require(HeraldID(IDs.app)), kind: .kv)
                .filter { $0.enabled && CollectionGlob.matches($0.kv?.collectionGlob ?? "", name) && ($0.kv?.ops ?? []).admits(kvOp) }
                .map(\.id)
            log.lines = []
            log.kv(op, collection: name)
            let created = try apply(log.lines[0]).compactMap { effect -> HeraldID? in
                if case .created(let delivery) = effect { delivery.id.triggerID } else { nil }
            }
            if created != expected { mismatches.append("\(op) \(name): \(created) != \(expected)") }
            checked += expected.count
        }
        #expect(mismatches.isEmpty)
        #expect(checked > names.count)
    }
}

/// The memo caches each trigger's snapshot index in the pending table; a sweep renumbers the
/// snapshots. Deliveries created after sweeps (and after a retry change) must still carry
/// their own trigger's script, retry and rank.
@Suite struct MatchMemoSweepTests {
    @Test func deliveriesAfterSweepsKeepTheirTriggersSnapshot() throws {
        var log = LogText.standard()                                                   // 1…4
        log.kvTrigger(IDs.t1, script: IDs.s1, retry: #"{"max_attempts":2,"backoff":"constant","base_ms":10}"#)  // 5
        log.kvTrigger(IDs.t2, script: IDs.s2, retry: #"{"max_attempts":7,"backoff":"linear","base_ms":20}"#)    // 6
        var position = 6
        var sources: [Int] = []
        // Rounds of KV records whose deliveries then succeed: each round finishes enough rows
        // to sweep the pending table, while the last round's deliveries stay pending.
        for round in 0..<4 {
            var created: [Int] = []
            for _ in 0..<700 {
                log.kv("insert", collection: "c")
                position += 1
                created.append(position)
            }
            sources += created
            if round < 3 {
                for source in created {
                    log.attempt(source, IDs.t1, 1, ok: true)
                    log.attempt(source, IDs.t2, 1, ok: true)
                    position += 2
                }
            }
        }
        log.add(#"{"type":"trigger.updated","trigger_id":"\#(IDs.t1)","retry":{"max_attempts":9,"base_ms":5000}}"#)
        position += 1
        let updatedAt = position
        for _ in 0..<10 {
            log.kv("update", collection: "c")
            position += 1
            sources.append(position)
        }
        let (deliveries, dispatcher, _) = try derive(log)
        #expect(deliveries.count == 2 * sources.count)
        #expect(dispatcher.pending.count == 2 * (700 + 10))
        let t1 = try #require(HeraldID(IDs.t1)), s1 = try #require(HeraldID(IDs.s1)), s2 = try #require(HeraldID(IDs.s2))
        var wrong: [String] = []
        for delivery in deliveries {
            let isT1 = delivery.id.triggerID == t1
            let expectedRetry = isT1
                ? (Int(delivery.id.sourcePosition) > updatedAt
                    ? RetryConfig(maxAttempts: 9, backoff: .constant, baseMs: 5000)
                    : RetryConfig(maxAttempts: 2, backoff: .constant, baseMs: 10))
                : RetryConfig(maxAttempts: 7, backoff: .linear, baseMs: 20)
            if delivery.scriptID != (isT1 ? s1 : s2) || delivery.retry != expectedRetry
                || delivery.triggerRank != (isT1 ? 5 : 6) {
                wrong.append("\(delivery.id): script \(delivery.scriptID), retry \(delivery.retry), rank \(delivery.triggerRank)")
            }
        }
        #expect(wrong.isEmpty, "\(wrong.prefix(3))")
        // The pending ones, read back from the compact table, say the same.
        for delivery in dispatcher.pendingInOrder {
            let isT1 = delivery.id.triggerID == t1
            #expect(delivery.scriptID == (isT1 ? s1 : s2))
            #expect(delivery.retry.maxAttempts == (isT1 ? (Int(delivery.id.sourcePosition) > updatedAt ? 9 : 2) : 7))
        }
    }
}
