import ArgumentParser
import Herald
import HeraldCore

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Pending, due now, dead and finished deliveries, and the next due time.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "text, or json: one object with the same fields (times in ms since the epoch).")
    var format: SummaryFormat = .text

    func run() throws {
        let directory = try global.directory
        let now = SystemClock().nowMs()
        let summary = try directory.summary(now: now)
        let counts = summary.counts
        if format == .json {
            var out = JSONOutput()
            out.beginObject()
            out.key("position"); out.uint(summary.position)
            out.key("pending"); out.int(counts.pending)
            out.key("due_now"); out.int(summary.dueNow)
            for status in [DeliveryStatus.succeeded, .dead, .cancelled] {
                out.key(status.wireName); out.int(counts[status])
            }
            out.key("next_due_at")
            if let next = summary.nextDueAt { out.int(next) } else { out.null() }
            out.endObject()
            out.newline()
            Output.writeNow(out.bytes)
            return
        }
        var lines = [
            "position     \(summary.position)",
            "pending      \(counts.pending)",
            "due now      \(summary.dueNow)",
            "succeeded    \(counts.succeeded)",
            "dead         \(counts.dead)",
            "cancelled    \(counts.cancelled)",
        ]
        if let next = summary.nextDueAt {
            lines.append("next due     \(withUTC(next))")
        }
        print(lines.joined(separator: "\n"))
    }
}
