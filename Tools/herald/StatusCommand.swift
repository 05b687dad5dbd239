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
        let state = try directory.currentState()
        let now = SystemClock().nowMs()
        let pending = state.pending
        let (due, next) = pending.dueSummary(now: now)
        let counts = try directory.deliveryCounts()
        if format == .json {
            var out = JSONOutput()
            out.beginObject()
            out.key("position"); out.uint(state.position)
            out.key("pending"); out.int(pending.count)
            out.key("due_now"); out.int(due)
            for status in [DeliveryStatus.succeeded, .dead, .cancelled] {
                out.key(status.wireName); out.int(counts[status, default: 0])
            }
            out.key("next_due_at")
            if let next { out.int(next) } else { out.null() }
            out.endObject()
            out.newline()
            Output.writeNow(out.bytes)
            return
        }
        var lines = [
            "position     \(state.position)",
            "pending      \(pending.count)",
            "due now      \(due)",
            "succeeded    \(counts[.succeeded, default: 0])",
            "dead         \(counts[.dead, default: 0])",
            "cancelled    \(counts[.cancelled, default: 0])",
        ]
        if let next {
            lines.append("next due     \(next) (\(Timestamp.iso8601(next)))")
        }
        print(lines.joined(separator: "\n"))
    }
}
