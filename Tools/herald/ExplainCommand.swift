import ArgumentParser
import Herald
import HeraldCore

struct ExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Why record P fired what it fired, or the timeline of delivery P:TRIGGER_ID.",
        discussion: """
            herald explain 42             every trigger considered for record 42, and why it matched or not
            herald explain 42:TRIGGER_ID  the delivery's attempts, delays, dead letter or cancellation
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "A position P, or a delivery P:TRIGGER_ID.")
    var target: String

    @Option(help: "text, or json for tools (a record's explanation or a delivery's timeline).")
    var format: ExplainFormat = .text

    enum ExplainFormat: String, ExpressibleByArgument, CaseIterable {
        case text
        case json
    }

    func run() throws {
        let directory = try global.directory
        if let position = UInt64(target) {
            let last = try directory.openReader().lastPosition
            guard position >= 1, position <= last else {
                throw DataError("position \(position) is outside the log (1…\(last))")
            }
            let explanation = try directory.explain(position: position)
            switch format {
            case .text: print(ExplanationText.render(explanation), terminator: "")
            case .json: print(ExplanationText.json(explanation), terminator: "")
            }
        } else if let id = DeliveryID(target) {
            let timeline = try directory.timeline(of: id)
            switch format {
            case .text: print(ExplanationText.render(timeline), terminator: "")
            case .json: print(ExplanationText.json(timeline), terminator: "")
            }
            if timeline.created == nil { throw ExitCode(1) }
        } else {
            throw ValidationError("'\(target)' is neither a position nor a delivery id P:TRIGGER_ID (a UUID)")
        }
    }
}
