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

    @Option(help: "At most N deliveries, the first in canonical order.")
    var limit: Int?

    @Option(help: "table or jsonl.")
    var format: OutputFormat = .table

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1, not \(limit)") }
    }

    func run() throws {
        let directory = try global.directory
        let position = try checkedPosition(at, in: directory)
        let selection = DeliverySelection(app: app, trigger: trigger, status: status, limit: limit)
        try directory.requireKnownIDs(of: selection)
        // Before the log's end: derived by replay. At the end: from the projection (its checkpoint
        // plus the records after it), filtered and limited there.
        let earlier = try position.map { $0 < (try directory.openReader().lastPosition) } ?? false
        func forEachSelected(_ body: (Delivery) throws -> Void) throws {
            if earlier, let position {
                try selection.picked(from: directory.deliveries(at: position)).forEach(body)
            } else {
                try directory.forEachDelivery(matching: selection, body)
            }
        }
        var output = Output()
        switch format {
        case .jsonl where !earlier:
            try directory.forEachDeliveryLine(matching: selection) { output.write(bytes: $0) }
        case .jsonl:
            var line = JSONOutput()
            try forEachSelected { delivery in
                line.removeAll()
                CanonicalOutput.append(delivery, to: &line)
                line.newline()
                output.write(bytes: line.bytes)
            }
        case .table:
            var deliveries: [Delivery] = []
            try forEachSelected { deliveries.append($0) }
            let rows = deliveries.map { d -> [String] in
                [d.id.description, d.sourceKind.description, String(d.depth), d.status.description, String(d.attempts),
                 d.dueAt.map(withUTC) ?? "-", d.finishedAt.map(String.init) ?? "-", d.lastError ?? ""]
            }
            output.write(renderTable(header: ["DELIVERY", "SOURCE", "DEPTH", "STATUS", "ATTEMPTS", "DUE_AT", "FINISHED", "LAST_ERROR"],
                                     rows: rows))
            output.write("\(deliveries.count) deliveries\n")
        }
        output.flush()
    }
}
