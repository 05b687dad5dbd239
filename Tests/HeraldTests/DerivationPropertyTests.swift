import Foundation
import Herald
import HeraldCore
import HeraldTesting
import HeraldStore
import Testing

@Suite struct DerivationPropertyTests {
    func canonical(_ deliveries: [Delivery]) -> String {
        var out = JSONOutput()
        for d in deliveries {
            CanonicalOutput.append(d, to: &out)
            out.newline()
        }
        return out.text
    }

    /// One pass vs. a dispatcher rebuilt from a checkpoint's saved state (the projection's way)
    /// at every cut point: the same pending deliveries and the same canonical output.
    @Test func resumingFromAnyPositionDerivesTheSameState() throws {
        var statuses: [DeliveryStatus: Int] = [:]
        var deadLetterDeliveries = 0
        var redrives = 0, cancels = 0, invokes = 0
        defer {
            #expect(redrives > 50 && cancels > 50 && invokes > 50, "\(redrives) redrives, \(cancels) cancels, \(invokes) invokes")
            // The generator must exercise every outcome, or this test proves little.
            for status in DeliveryStatus.allCases { #expect(statuses[status, default: 0] > 50, "\(status): \(statuses)") }
            #expect(deadLetterDeliveries > 50)
        }
        for seed in UInt64(1)...2000 {
            var generator = RandomLog(seed: seed)
            let records = generator.generate(records: 60)
            var ledger = DeliveryLedger()
            var onePass = Dispatcher()
            var whatIf = WhatIfReplay(overrides: [])
            for record in records {
                ledger.absorb(try onePass.apply(record))
                whatIf.apply(record)
                if case .deliveryRedriven = record.body { redrives += 1 }
                if case .deliveryCancelled = record.body { cancels += 1 }
                if case .deliveryInvoked = record.body { invokes += 1 }
            }
            // What-if replay with no override is the recorded world (docs/SEMANTICS.md §8.4).
            #expect(whatIf.ledger.deliveries == ledger.deliveries, "seed \(seed)")
            #expect(whatIf.skipped == 0, "seed \(seed)")
            for delivery in ledger.deliveries {
                statuses[delivery.status, default: 0] += 1
                if delivery.sourceKind == .deadLetter { deadLetterDeliveries += 1 }
            }
            let cut = Int(seed % UInt64(records.count + 1))
            var first = Dispatcher()
            for record in records[..<cut] { _ = try first.apply(record) }
            // Rebuild from exactly what a checkpoint saves: registry rows, pending deliveries, position.
            let registry = first.registry
            var resumed = Dispatcher(
                registry: Registry(apps: Array(registry.apps.values), adminUsers: Array(registry.adminUsers.values),
                                   scripts: Array(registry.scripts.values), triggers: Array(registry.triggers.values),
                                   usedIDs: records[..<cut].compactMap(Self.createdID)),
                pending: first.pendingInOrder, position: first.position, lastTs: first.lastTs,
                createdCount: first.createdCount, redrivable: first.redrivable.values)
            for record in records[cut...] { _ = try resumed.apply(record) }
            #expect(resumed.pending == onePass.pending, "seed \(seed) cut \(cut)")
            #expect(resumed.redrivable.values.sorted { $0.id < $1.id } == onePass.redrivable.values.sorted { $0.id < $1.id },
                    "seed \(seed) cut \(cut)")
            #expect(resumed.createdCount == onePass.createdCount, "seed \(seed) cut \(cut)")
            #expect(resumed.position == onePass.position, "seed \(seed)")
        }
    }

    static func createdID(_ record: Record) -> HeraldID? {
        switch record.body {
        case .adminUserCreated(let id, _), .appCreated(let id, _): id
        case .scriptRegistered(let s): s.scriptID
        case .triggerRegistered(let t): t.triggerID
        default: nil
        }
    }

    /// The projection, built incrementally in two steps or rebuilt from 0, holds exactly the
    /// one-pass derivation; and two `herald` processes print the same canonical bytes.
    @Test func projectionAndProcessesAgreeWithOnePass() async throws {
        for seed in UInt64(1)...40 {
            var generator = RandomLog(seed: seed &* 7919)
            let records = generator.generate(records: 150)
            var ledger = DeliveryLedger()
            var onePass = Dispatcher()
            for record in records { ledger.absorb(try onePass.apply(record)) }
            let expected = canonical(ledger.deliveries)
            try await withTemporaryDirectory { path in
                let directory = DataDirectory(path: path)
                let cut = records.count / 2
                let writer = try directory.openWriter(durability: .none)
                try writer.append(Array(records[..<cut]))
                try directory.project()
                try writer.append(Array(records[cut...]))
                try writer.close()
                try directory.project()
                #expect(canonical(try directory.deliveries()) == expected, "seed \(seed)")
                let projection = try directory.openProjection()
                let loaded = try projection.loadDispatcher()
                #expect(loaded.pending == onePass.pending, "seed \(seed): projection's pending deliveries")
                let rows = try projection.database.rows("SELECT count(*) FROM deliveries").first?.first?.integer
                #expect(rows == Int64(ledger.deliveries.count), "seed \(seed)")
                #expect(try directory.verifyProjection().isEmpty, "seed \(seed): incremental == rebuild")
                if seed <= 3 {
                    let binary = packageRoot + "/.build/debug/herald"
                    var outputs: [String] = []
                    for _ in 0..<2 {
                        outputs.append(try await runProgram(binary, ["deliveries", "--data", path, "--format", "jsonl"]).stdout)
                    }
                    #expect(outputs[0] == expected, "seed \(seed): CLI output equals the library's")
                    #expect(outputs[0] == outputs[1], "seed \(seed): identical across processes")
                }
            }
        }
    }
}
