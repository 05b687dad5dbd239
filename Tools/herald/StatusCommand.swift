import ArgumentParser
import Herald
import HeraldCore

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Pending, due now, dead and finished deliveries, and the next due time.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let directory = try global.directory
        let state = try directory.currentState()
        let now = SystemClock().nowMs()
        let pending = state.pending
        let (due, next) = pending.dueSummary(now: now)
        let counts = try directory.deliveryCounts()
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
