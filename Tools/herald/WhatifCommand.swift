import ArgumentParser
import Herald
import HeraldCore

struct WhatifCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "whatif",
        abstract: "Replay the log with triggers changed, and compare with what was recorded. Appends nothing.",
        discussion: """
            herald whatif --set TRIGGER_ID.retry.max_attempts=10
            herald whatif --at 5000 --disable TRIGGER_ID --format jsonl
            FIELD: enabled, retry.max_attempts, retry.backoff, retry.base_ms, kv.collection_glob, \
            kv.ops (comma list, may be empty), dead_letter.source_filter, \
            dead_letter.trigger_id_filter, dead_letter.script_id_filter (filters take null). \
            Recorded attempts, redrives and cancellations that no longer fit are skipped and \
            counted. A bad override is a usage error (exit 2).
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "Replay records 1…P (default: the whole log).")
    var at: UInt64?

    @Option(name: .customLong("set"), help: "TRIGGER_ID.FIELD=VALUE (repeatable).")
    var sets: [String] = []

    @Option(name: .customLong("disable"), help: "TRIGGER_ID: as if it were disabled (repeatable).")
    var disables: [String] = []

    enum WhatifFormat: String, ExpressibleByArgument, CaseIterable {
        case diff
        case jsonl
    }

    @Option(help: "diff (- and + lines, then a summary) or jsonl (the what-if world's canonical delivery lines).")
    var format: WhatifFormat = .diff

    func run() throws {
        var overrides: [TriggerOverride] = []
        do {
            for text in sets { overrides.append(try TriggerOverride.parse(text)) }
            for text in disables { overrides.append(try TriggerOverride.disable(text)) }
        } catch {
            printError("whatif: \(error)")
            throw ExitCode(2)
        }
        guard !overrides.isEmpty else {
            printError("whatif: give at least one --set TRIGGER_ID.FIELD=VALUE or --disable TRIGGER_ID")
            throw ExitCode(2)
        }
        let directory = try global.directory
        let result: WhatIfResult
        do {
            let through = try checkedPosition(at, in: directory)
            switch format {
            case .jsonl: result = try directory.openReader().whatIf(overrides, through: through)
            case .diff: result = try directory.whatIfDiff(overrides, through: through)
            }
        } catch let error as WhatIfError {
            printError("whatif: \(error)")
            throw ExitCode(2)
        }
        var output = Output()
        switch format {
        case .jsonl: output.write(bytes: result.jsonl)
        case .diff: result.forEachDiffLine { output.write($0) }
        }
        output.flush()
    }
}
