@testable import HeraldCore
import Testing

/// The compact pending store against a plain dictionary model: thousands of creations,
/// retries and finishes (enough to sweep finished rows several times), with trigger retry
/// configs changing on the way.
@Suite struct PendingDeliveriesTests {
    @Test(arguments: [1, 2, 3] as [UInt64])
    func agreesWithADictionaryModel(seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let triggers = (0..<12).map { HeraldID(high: 0x7000_0000_0000_4000, low: 0x8000_0000_0000_0000 | UInt64($0)) }
        let app = HeraldID(high: 0xB000_0000_0000_4000, low: 0x8000_0000_0000_0001)
        var retries = triggers.map { _ in RetryConfig.builtIn }
        var store = PendingDeliveries()
        var model: [DeliveryID: Delivery] = [:]
        var live: [DeliveryID] = []  // the model's keys, in an order the seed fixes
        var swept = 0
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
                    store.remove(id)
                    if store.count != before - 1 { Issue.record("remove of \(id) did not shrink the store") }
                    model[id] = nil
                    live.swapAt(index, live.count - 1)
                    live.removeLast()
                    swept += 1
                }
            }
            if position % 500 == 0 {
                #expect(store.count == model.count, "seed \(seed) at \(position)")
                #expect(store.values == model.values.sorted { $0.orderKey < $1.orderKey }, "seed \(seed) at \(position)")
                for trigger in triggers {
                    #expect(store.values(ofTrigger: trigger) == model.values.filter { $0.id.triggerID == trigger }.sorted { $0.orderKey < $1.orderKey })
                }
            }
        }
        #expect(swept > 4000, "enough finishes to sweep finished rows more than once")
        for (id, delivery) in model { #expect(store[id] == delivery) }
        #expect(store[DeliveryID(sourcePosition: 6001, triggerID: triggers[0])] == nil)
        #expect(store[DeliveryID(sourcePosition: 0, triggerID: triggers[0])] == nil)
        let summary = store.dueSummary(now: 3000)
        #expect(summary.due == model.values.filter { ($0.dueAt ?? .max) <= 3000 }.count)
        #expect(summary.earliest == model.values.compactMap(\.dueAt).min())
    }
}

/// The matcher's memo of collection names gives the trie walk's answer, also after it
/// starts over (more distinct names than `memoLimit`) and for every op.
@Suite struct MatcherMemoTests {
    @Test func rememberedMatchesEqualTheWalk() {
        let globs = ["*", "a*", "a1*", "b:*", "a10", "b:7", "c"]
        let opSets: [OpSet] = [[], [.insert], [.update, .delete], [.delete]]
        var triggers: [Registry.Trigger] = []
        for (index, glob) in globs.enumerated() {
            triggers.append(Registry.Trigger(
                id: HeraldID(high: 0, low: UInt64(index)), appID: HeraldID(high: 1, low: 0), scriptID: HeraldID(high: 2, low: 0),
                kind: .kv, enabled: true, dispatchMode: .async, retry: .builtIn, registeredBy: HeraldID(high: 3, low: 0),
                kv: KVDetails(collectionGlob: glob, ops: opSets[index % opSets.count]), deadLetter: nil,
                registeredPosition: UInt64(index + 1), createdTs: 0, updatedTs: 0, updatedPosition: 0))
        }
        var matcher = KVMatcher(triggers: triggers)
        let names = (0..<(KVMatcher.memoLimit + 500)).flatMap { ["a\($0)", "b:\($0 % 9)", "c"] }
        var walked: [KVMatcher.Entry] = []
        var remembered: [KVMatcher.Entry] = []
        var mismatches = 0
        for (index, name) in names.enumerated() {
            let op: KVOp = [.insert, .update, .delete][index % 3]
            matcher.match(collection: name, op: op, into: &walked)
            remembered.removeAll()
            matcher.matchRemembering(collection: name, op: op, into: &remembered)
            if walked.map(\.triggerID) != remembered.map(\.triggerID) { mismatches += 1 }
        }
        #expect(mismatches == 0)
        #expect(!walked.isEmpty)
    }
}
