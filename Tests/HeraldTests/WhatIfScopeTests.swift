import HeraldCore
import HeraldTesting
import HeraldStore
@testable import Herald
import Testing

/// `herald whatif`'s diff at the log's end replays only the apps of the overridden triggers and
/// counts every other app's deliveries as unchanged from the projection
/// (`DataDirectory.whatIfDiff`): it must print exactly what the replay of both whole worlds
/// prints (`RecordSource.whatIf`).
///
/// Long and synchronous: it yields the concurrency pool's thread between steps, so the
/// in-process servers of other suites get to run (a 2-core machine has two).
@Suite struct WhatIfScopeTests {
    /// A small deterministic generator (SplitMix64) for picking triggers and fields.
    struct Picker {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(bound))
        }
    }

    /// An override of `trigger` that is valid for its kind, drawn by `picker`.
    static func override(of trigger: Registry.Trigger, _ picker: inout Picker) throws -> TriggerOverride {
        let id = trigger.id
        var choices = ["\(id).retry.max_attempts=\(1 + picker.next(4))", "\(id).retry.base_ms=\(picker.next(3) * 500)",
                       "\(id).retry.backoff=constant", "\(id).enabled=false", "\(id).enabled=true"]
        switch trigger.kind {
        case .kv: choices += ["\(id).kv.collection_glob=*", "\(id).kv.ops=delete", "\(id).kv.ops="]
        case .deadLetter: choices += ["\(id).dead_letter.source_filter=null", "\(id).dead_letter.source_filter=kv"]
        }
        return try TriggerOverride.parse(choices[picker.next(choices.count)])
    }

    @Test func replayingTheChangedAppsGivesTheWholeReplaysDiff() async throws {
        var comparisons = 0
        var withOtherApps = 0
        var skippedSome = 0
        for seed in UInt64(1)...30 {
            var generator = RandomLog(seed: seed)
            let records = generator.generate(records: 500)
            try await withTemporaryDirectory { path in
                let data = DataDirectory(path: path)
                let writer = try data.openWriter()
                try writer.append(records)
                try writer.close()
                let reader = try data.openReader()
                let registry = try reader.replay().registry
                let triggers = registry.liveTriggers(app: nil)
                guard !triggers.isEmpty else { return }
                // Without a projection (or behind it) both worlds are replayed whole.
                var picker = Picker(state: seed)
                let first = [try Self.override(of: triggers[picker.next(triggers.count)], &picker)]
                #expect(try data.whatIfDiff(first).unchangedElsewhere == 0)
                try Projector(directory: data, projection: try data.openProjection()).catchUp()
                for _ in 0..<4 {
                    var overrides: [TriggerOverride] = []
                    for _ in 0...picker.next(2) {
                        overrides.append(try Self.override(of: triggers[picker.next(triggers.count)], &picker))
                    }
                    let whole = try reader.whatIf(overrides)
                    let scoped = try data.whatIfDiff(overrides)
                    #expect(scoped.diffText == whole.diffText, "seed \(seed): \(overrides)")
                    #expect(scoped.skipped == whole.skipped, "seed \(seed): \(overrides)")
                    comparisons += 1
                    await Task.yield()
                    if scoped.unchangedElsewhere > 0 { withOtherApps += 1 }
                    if whole.skipped > 0 { skippedSome += 1 }
                }
                // Before the log's end (`--at`): the whole replay.
                #expect(try data.whatIfDiff(first, through: UInt64(records.count - 1)).unchangedElsewhere == 0)
            }
        }
        // A log long enough for many batches to the what-if world's thread, and a projection
        // behind the log's end (the whole replay then).
        for seed in UInt64(101)...102 {
            var generator = RandomLog(seed: seed)
            let records = generator.generate(records: 12_000)
            try await withTemporaryDirectory { path in
                let data = DataDirectory(path: path)
                let writer = try data.openWriter()
                try writer.append(Array(records[..<(records.count - 50)]))
                try Projector(directory: data, projection: try data.openProjection()).catchUp()
                try writer.append(Array(records[(records.count - 50)...]))
                try writer.close()
                await Task.yield()
                let reader = try data.openReader()
                let triggers = try reader.replay().registry.liveTriggers(app: nil)
                await Task.yield()
                var picker = Picker(state: seed)
                let overrides = [try Self.override(of: triggers[picker.next(triggers.count)], &picker)]
                await Task.yield()
                let behind = try data.whatIfDiff(overrides)
                #expect(behind.unchangedElsewhere == 0, "a projection behind the log is not used")
                #expect(behind.diffText == (try reader.whatIf(overrides)).diffText)
                await Task.yield()
                try Projector(directory: data, projection: try data.openProjection()).catchUp()
                await Task.yield()
                let scoped = try data.whatIfDiff(overrides)
                #expect(scoped.diffText == (try reader.whatIf(overrides)).diffText, "seed \(seed): \(overrides)")
                #expect(scoped.unchangedElsewhere > 0)
                comparisons += 1
            }
        }
        // The scoped path must have run with other apps left out, and on skipped records.
        #expect(comparisons >= 100 && withOtherApps >= 30 && skippedSome >= 10,
                "\(comparisons) comparisons, \(withOtherApps) with other apps, \(skippedSome) with skipped records")
    }
}
