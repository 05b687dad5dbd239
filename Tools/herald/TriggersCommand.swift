import ArgumentParser
import Herald
import HeraldCore

struct TriggersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "triggers",
        abstract: "The live triggers as of a position, in registration order (derived from the log).")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Position to look at, 0…last (default: the end).")
    var at: UInt64?

    @Option(help: "Only this app's triggers.")
    var app: HeraldID?

    @Option(help: "table or jsonl (the canonical form).")
    var format: OutputFormat = .table

    func run() throws {
        let directory = try global.directory
        let position = try checkedPosition(at, in: directory)
        // At the end: the projection's registry and the records after it; earlier, a replay.
        let state: (registry: Registry, position: UInt64)
        if let position, position < (try directory.openReader().lastPosition) {
            let replayed = try directory.replay(through: position)
            state = (replayed.registry, replayed.position)
        } else {
            state = try directory.currentRegistry()
        }
        let triggers = state.registry.liveTriggers(app: app)
        var output = Output()
        switch format {
        case .jsonl:
            var line = JSONOutput()
            for trigger in triggers {
                line.removeAll()
                CanonicalOutput.append(trigger, to: &line)
                line.newline()
                output.write(bytes: line.bytes)
            }
        case .table:
            let rows = triggers.map { t -> [String] in
                let filter: String
                if let kv = t.kv {
                    filter = "\(kv.collectionGlob) \(kv.ops.isEmpty ? "[any op]" : kv.ops.description)"
                } else {
                    let dl = t.deadLetter ?? DeadLetterDetails()
                    filter = "source=\(dl.sourceFilter?.description ?? "*") trigger=\(dl.triggerIDFilter?.short ?? "*") script=\(dl.scriptIDFilter?.short ?? "*")"
                }
                return [String(t.registeredPosition), t.id.description, t.appID.short, t.scriptID.short, t.kind.description,
                        t.enabled ? "yes" : "no",
                        "\(t.retry.maxAttempts)×\(t.retry.backoff) \(t.retry.baseMs)ms", filter]
            }
            output.write(renderTable(header: ["POS", "TRIGGER", "APP", "SCRIPT", "KIND", "ENABLED", "RETRY", "FILTER"],
                                     rows: rows))
            output.write("\(triggers.count) live trigger(s) as of position \(state.position)\n")
        }
        output.flush()
    }
}
