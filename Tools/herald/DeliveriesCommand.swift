import ArgumentParser
import Herald
import HeraldCore

struct DeliveriesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deliveries",
        abstract: "Every delivery as of a position, in canonical order (derived from the log).",
        discussion: "--format jsonl is the canonical derived output of docs/SEMANTICS.md §3.4, byte for byte.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Position to look at, 0…last (default: the end).")
    var at: UInt64?

    @Option(help: "Only deliveries with this status: pending, succeeded, dead, cancelled.")
    var status: DeliveryStatus?

    @Option(help: "Only this trigger's deliveries.")
    var trigger: HeraldID?

    @Option(help: "Only this app's deliveries.")
    var app: HeraldID?

    @Option(help: "table or jsonl.")
    var format: OutputFormat = .table

    func run() throws {
        let directory = try global.directory
        let position = try checkedPosition(at, in: directory)
        func selected(_ d: Delivery) -> Bool {
            (status == nil || d.status == status) && (trigger == nil || d.id.triggerID == trigger)
                && (app == nil || d.appID == app)
        }
        var output = Output()
        switch format {
        case .jsonl:
            var line = JSONOutput()
            let write: (Delivery) -> Void = { delivery in
                guard selected(delivery) else { return }
                line.removeAll()
                CanonicalOutput.append(delivery, to: &line)
                line.newline()
                output.write(bytes: line.bytes)
            }
            if let position, position < (try directory.openReader().lastPosition) {
                try directory.deliveries(at: position).forEach(write)  // an earlier state: derived by replay
            } else {
                try directory.forEachDelivery(write)  // now: streamed from the caught-up projection
            }
        case .table:
            let deliveries = try directory.deliveries(at: position).filter(selected)
            let rows = deliveries.map { d -> [String] in
                [d.id.description, d.sourceKind.description, String(d.depth), d.status.description, String(d.attempts),
                 d.dueAt.map(String.init) ?? "-", d.finishedAt.map(String.init) ?? "-", d.lastError ?? ""]
            }
            output.write(renderTable(header: ["DELIVERY", "SOURCE", "DEPTH", "STATUS", "ATTEMPTS", "DUE_AT", "FINISHED", "LAST_ERROR"],
                                     rows: rows))
            output.write("\(deliveries.count) deliveries\n")
        }
        output.flush()
    }
}
