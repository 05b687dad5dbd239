import HeraldCore

/// What `herald whatif` computes: both worlds' deliveries and the recorded records skipped.
public struct WhatIfResult: Sendable {
    /// The recorded world's deliveries, in canonical order.
    public var recorded: [Delivery]
    /// The what-if world's deliveries, in canonical order.
    public var whatIf: [Delivery]
    /// Recorded records that no longer fit the what-if state.
    public var skipped: Int

    /// The default output: `-` / `+` lines, then the summary line (each ending in a newline).
    public var diffText: String {
        var lines: [String] = []
        var diff = WhatIfDiff()
        diff.compare(recorded: recorded, whatIf: whatIf) { lines.append($0) }
        lines.append(diff.summary(skipped: skipped))
        return lines.joined(separator: "\n") + "\n"
    }

    /// `--format jsonl`: the what-if world's canonical delivery lines.
    public var jsonl: [UInt8] {
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
        _ = try self.replay(through: through) { _, record, effects, _ in
            recorded.absorb(effects)
            replay.apply(record)
        }
        try replay.validate()
        return WhatIfResult(recorded: recorded.deliveries, whatIf: replay.ledger.deliveries, skipped: replay.skipped)
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
