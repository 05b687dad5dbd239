import HeraldCore
import HeraldThreads
import Synchronization

/// What `herald whatif` computes: both worlds' deliveries and the recorded records skipped.
public struct WhatIfResult: Sendable {
    /// The recorded world's deliveries, in canonical order.
    public var recorded: [Delivery]
    /// The what-if world's deliveries, in canonical order.
    public var whatIf: [Delivery]
    /// Recorded records that no longer fit the what-if state.
    public var skipped: Int
    /// Deliveries of apps the what-if did not replay (none of their triggers is overridden):
    /// the same in both worlds, so counted as unchanged and in neither array
    /// (``DataDirectory/whatIfDiff(_:through:)``). 0 when every app was replayed.
    public var unchangedElsewhere = 0

    public init(recorded: [Delivery], whatIf: [Delivery], skipped: Int, unchangedElsewhere: Int = 0) {
        self.recorded = recorded
        self.whatIf = whatIf
        self.skipped = skipped
        self.unchangedElsewhere = unchangedElsewhere
    }

    /// The default output: `-` / `+` lines, then the summary line (each ending in a newline).
    public var diffText: String {
        var text = ""
        forEachDiffLine { text += $0 }
        return text
    }

    /// ``diffText`` a line at a time (each ending in a newline), for output that streams.
    public func forEachDiffLine(_ body: (String) -> Void) {
        var diff = WhatIfDiff(unchanged: unchangedElsewhere)
        diff.compare(recorded: recorded, whatIf: whatIf) { body($0 + "\n") }
        body(diff.summary(skipped: skipped) + "\n")
    }

    /// `--format jsonl`: the what-if world's canonical delivery lines (of every app: a result
    /// with ``unchangedElsewhere`` holds only the replayed apps' deliveries).
    public var jsonl: [UInt8] {
        precondition(unchangedElsewhere == 0, "the jsonl of a what-if that replayed some apps only")
        var out = JSONOutput()
        for delivery in whatIf {
            CanonicalOutput.append(delivery, to: &out)
            out.newline()
        }
        return out.bytes
    }
}

extension RecordSource {
    /// Replays records 1…`through` (`nil`: the end) twice over in one pass: as recorded
    /// (validated) and with `overrides` (docs/SEMANTICS.md §8.4).
    ///
    /// - Throws: ``HeraldError/notOnCompactedLog(command:firstPosition:)`` on a compacted
    ///   log (what-if replays every registration from position 1), ``HeraldCore/WhatIfError`` for an override the log does not support (a
    ///   trigger not registered, a field of the other kind, a filter id of another app), and
    ///   what replay throws.
    public func whatIf(_ overrides: [TriggerOverride], through: UInt64? = nil) throws -> WhatIfResult {
        if let start = try compactedStart() {
            throw HeraldError.notOnCompactedLog(command: "whatif", firstPosition: start.start)
        }
        var replay = WhatIfReplay(overrides: overrides)
        var recorded = DeliveryLedger()
        _ = try self.replay(through: through, effects: { _, record, effects in
            recorded.absorb(effects)
            replay.apply(record)
        })
        try replay.validate()
        return WhatIfResult(recorded: recorded.deliveries, whatIf: replay.ledger.deliveries, skipped: replay.skipped)
    }

    /// ``whatIf(_:through:)`` over the records of `apps` only (``HeraldCore/WhatIfScope``):
    /// both worlds' deliveries of those apps, which must include the app of every overridden
    /// trigger. The recorded world is the what-if replay without overrides (the log is not
    /// validated again: it was when it was appended).
    public func whatIf(_ overrides: [TriggerOverride], through: UInt64? = nil, onlyApps apps: Set<HeraldID>) throws -> WhatIfResult {
        if let start = try compactedStart() {
            throw HeraldError.notOnCompactedLog(command: "whatif", firstPosition: start.start)
        }
        let last = try lastPosition
        if let through, through > last { throw HeraldError.positionOutOfRange(position: through, lastPosition: last) }
        // The what-if world runs on a thread of its own, fed the admitted records in batches,
        // while this one runs the recorded world: two cores, one replay's time.
        let handoff = BatchHandoff<WhatIfStep>(capacity: 16)
        let finished = Mutex<WhatIfReplay?>(nil)
        let worker = JoinableThread {
            var whatIf = WhatIfReplay(overrides: overrides)
            while let batch = handoff.take() {
                for step in batch {
                    switch step {
                    case .pass(let ts): whatIf.pass(ts: ts)
                    case .apply(let record, let skippable): whatIf.apply(record, skippable: skippable)
                    }
                }
            }
            finished.withLock { $0 = whatIf }
        }
        guard let worker else { throw HeraldError.unreadable(source: "whatif", reason: "no thread for the what-if world") }
        var scope = WhatIfScope(apps: apps)
        var recorded = WhatIfReplay(overrides: [])
        var batch: [WhatIfStep] = []
        batch.reserveCapacity(4_096)
        do {
            try forEach(from: 1, through: through ?? last) { _, record in
                switch scope.admit(record) {
                case .pass:
                    recorded.pass(ts: record.ts)
                    batch.append(.pass(ts: record.ts))
                case .replay(let narrowed, let skippable):
                    recorded.apply(narrowed, skippable: skippable)
                    batch.append(.apply(narrowed.withoutValues, skippable: skippable))
                }
                if batch.count == 4_096 {
                    handoff.put(batch)
                    batch.removeAll(keepingCapacity: true)
                }
                return true
            }
            handoff.put(batch)
        } catch {
            handoff.close()
            worker.join()
            throw error
        }
        handoff.close()
        worker.join()
        guard let whatIf = finished.withLock({ $0.take() }) else {
            throw HeraldError.unreadable(source: "whatif", reason: "the what-if world's thread ended without its result")
        }
        try whatIf.validate()
        // A trigger of an app not replayed would have changed nothing here: a wrong answer.
        for override in overrides {
            guard let app = scope.app(of: override.triggerID), apps.contains(app) else {
                throw WhatIfError.usage("\(override.triggerID) is not a trigger of the apps replayed (\(apps.map(\.description).sorted().joined(separator: ", ")))")
            }
        }
        return WhatIfResult(recorded: recorded.ledger.deliveries, whatIf: whatIf.ledger.deliveries, skipped: whatIf.skipped)
    }
}

/// A record handed to the what-if world's thread: only its ts, or the record to replay.
private enum WhatIfStep: Sendable {
    case pass(ts: Int64)
    case apply(Record, skippable: Bool)
}

extension Record {
    /// The record without the values no derivation reads (a KV record's value, an invoke's
    /// payload): a record queued for another thread would otherwise keep the whole log block
    /// its value shares alive, and the reader could not reuse that block's buffer.
    fileprivate var withoutValues: Record {
        switch body {
        case .kv(var mutation) where mutation.value != nil:
            mutation.value = nil
            return Record(ts: ts, body: .kv(mutation))
        case .deliveryInvoked(var invocation):
            invocation.payload = "null"
            return Record(ts: ts, body: .deliveryInvoked(invocation))
        default:
            return self
        }
    }
}

extension DataDirectory {
    /// `herald whatif` in its default format (the diff and the summary). At the log's end, with
    /// a projection caught up with it and every overridden trigger live, only the apps of the
    /// overridden triggers are replayed (``RecordSource/whatIf(_:through:onlyApps:)``) and every
    /// other app's deliveries are counted as unchanged from the projection's counters: the same
    /// diff as ``RecordSource/whatIf(_:through:)``, at the cost of replaying those apps'
    /// records. Otherwise both worlds are replayed whole. Never writes.
    public func whatIfDiff(_ overrides: [TriggerOverride], through: UInt64? = nil) throws -> WhatIfResult {
        let reader = try openReader()
        let last = try reader.lastPosition
        if through ?? last == last, try reader.compactedStart() == nil,
           let scope = try? projectedScope(of: overrides, at: last) {
            var result = try reader.whatIf(overrides, through: last, onlyApps: scope.apps)
            result.unchangedElsewhere = scope.deliveries - result.recorded.count
            return result
        }
        return try reader.whatIf(overrides, through: through)
    }

    /// The apps of the overridden triggers and the number of deliveries, from a projection
    /// caught up with position `last` (read in one snapshot); nil without one, or when an
    /// overridden trigger is not live there. The projection only saves time here: any error
    /// reading it means the whole replay.
    private func projectedScope(of overrides: [TriggerOverride], at last: UInt64) throws -> (apps: Set<HeraldID>, deliveries: Int)? {
        guard let projection = try openProjectionForReading() else { return nil }
        let (registry, position, counts) = try projection.withReadSnapshot {
            (try projection.loadRegistry().registry, try projection.checkpointPosition(), try projection.deliveryCounts())
        }
        let apps = overrides.map { registry.trigger($0.triggerID)?.appID }
        guard position == last, !apps.contains(nil) else { return nil }
        return (Set(apps.compactMap { $0 }), Int(counts.pending + counts.succeeded + counts.dead + counts.cancelled))
    }
}

extension TriggerOverride {
    /// The overrides of a command line's words: `--set TRIGGER_ID.FIELD=VALUE` and
    /// `--disable TRIGGER_ID`, in any order (what a fixture's `whatif.txt` line holds).
    public static func parse(arguments: [String]) throws(WhatIfError) -> [TriggerOverride] {
        var overrides: [TriggerOverride] = []
        var index = 0
        while index < arguments.count {
            let flag = arguments[index]
            guard index + 1 < arguments.count, flag == "--set" || flag == "--disable" else {
                throw .usage("expected --set TRIGGER_ID.FIELD=VALUE or --disable TRIGGER_ID, not '\(flag)'")
            }
            let value = arguments[index + 1]
            overrides.append(flag == "--set" ? try parse(value) : try disable(value))
            index += 2
        }
        return overrides
    }
}
