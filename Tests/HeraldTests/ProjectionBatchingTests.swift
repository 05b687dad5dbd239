@testable import Herald
import HeraldCore
import HeraldTesting
@testable import HeraldStore
import Testing

/// A projection batch writes each delivery it creates once, in its state at the end of the
/// batch (``Projection/finalStates(of:)``). Projected one record per transaction (nothing to
/// coalesce) or all at once, a log gives the same tables.
@Suite struct ProjectionBatchingTests {
    /// A step keeps a KV record without its value (the projection stores no KV data), so a
    /// batch read from the log pins none of its blocks; everything else is kept.
    @Test func aStepKeepsNoKVValue() {
        let app = HeraldID(high: 1, low: 1)
        let insert = Record(ts: 7, body: .kv(KVMutation(op: .insert, appID: app, collection: "c", key: "k", value: #"{"a":1}"#)))
        let step = Projection.Step(position: 3, record: insert, effects: [])
        #expect(step.record == Record(ts: 7, body: .kv(KVMutation(op: .insert, appID: app, collection: "c", key: "k", value: nil))))
        let deleted = Record(ts: 8, body: .appDeleted(appID: app))
        #expect(Projection.Step(position: 4, record: deleted, effects: []).record == deleted)
    }

    @Test func oneRecordPerBatchAndOneBatchGiveTheSameTables() async throws {
        var coalesced = 0
        for seed in UInt64(1)...25 {
            var generator = RandomLog(seed: seed &* 104_729)
            let records = generator.generate(records: 150)
            try await withTemporaryDirectory { path in
                let directory = DataDirectory(path: path)
                let writer = try directory.openWriter(durability: .none)
                try writer.append(records)
                try writer.close()

                let whole = try Projection(path: path + "/whole.sqlite")
                try Projector(directory: directory, projection: whole).catchUp()
                let single = try Projection(path: path + "/single.sqlite")
                let projector = try Projector(directory: directory, projection: single)
                // Bound: one record per round, until the end of the log.
                while try projector.catchUp(limit: 1).records > 0 {}
                #expect(try whole.differences(from: single).isEmpty, "seed \(seed)")
                #expect(try single.differences(from: whole).isEmpty, "seed \(seed)")
                #expect(try whole.integrityProblems().isEmpty, "seed \(seed)")

                // Deliveries the single batch created and then attempted or cancelled.
                var dispatcher = Dispatcher()
                var steps: [Projection.Step] = []
                for (index, record) in records.enumerated() {
                    steps.append(Projection.Step(position: UInt64(index + 1), record: record, effects: try dispatcher.apply(record)))
                }
                let finals = Projection.finalStates(of: steps)
                coalesced += steps.flatMap(\.effects).filter { effect in
                    switch effect {
                    case .attempted(let d, _, _, _), .cancelled(let d): finals[d.id] != nil
                    default: false
                    }
                }.count
            }
        }
        // The logs must make the batch coalesce, or this test proves little.
        #expect(coalesced > 100, "\(coalesced) attempts or cancellations of deliveries created in the same batch")
    }

    /// Two processes projecting one log into one projection (`herald verify` beside a starting
    /// `herald run`): the one that finds the checkpoint moved goes on from there instead of
    /// failing, and the tables are those of a single projector.
    @Test func aProjectorWhoseCheckpointMovedGoesOnFromThere() async throws {
        var generator = RandomLog(seed: 77)
        let records = generator.generate(records: 300)
        let last = UInt64(records.count)
        #expect(last > 150)
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            let writer = try directory.openWriter(durability: .none)
            try writer.append(records)
            try writer.close()
            let shared = path + "/shared.sqlite"
            let slow = try Projector(directory: directory, projection: Projection(path: shared))
            #expect(try slow.catchUp(limit: 100).records == 100)
            // Another process projects the rest meanwhile.
            #expect(try Projector(directory: directory, projection: Projection(path: shared)).catchUp().records == last - 100)
            // The first one's next batch starts at 101: refused by the store, resumed at the end.
            #expect(try slow.catchUp().to == last)
            #expect(slow.dispatcher.position == last)
            let alone = try Projection(path: path + "/alone.sqlite")
            try Projector(directory: directory, projection: alone).catchUp()
            #expect(try alone.differences(from: Projection(path: shared)).isEmpty)
        }
    }
}
