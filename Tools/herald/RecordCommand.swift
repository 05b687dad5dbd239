import ArgumentParser
import Herald
import HeraldCore
import HeraldTesting

struct RecordCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "record",
        abstract: "Turn a slice of a data directory into a self-contained log fixture.",
        discussion: """
            Keeps the slice's records, every record they depend on (a delivery's source and \
            earlier attempts, whole dead-letter chains) and every registry record up to the \
            slice's last record; renumbers them and rewrites source_position to match, then \
            generates the expectations (fixtures/README.md, "Recording").
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "The new fixture directory.")
    var out: String

    @Option(help: "First position of a range slice.")
    var from: UInt64?

    @Option(help: "Last position of a range slice.")
    var to: UInt64?

    @Option(help: "One delivery, P:TRIGGER_ID.")
    var delivery: String?

    @Option(help: "Every delivery of one trigger.")
    var trigger: HeraldID?

    func validate() throws {
        let forms = [from != nil || to != nil, delivery != nil, trigger != nil].filter { $0 }.count
        guard forms == 1 else {
            throw ValidationError("give exactly one of --from P --to P, --delivery P:TRIGGER_ID, --trigger ID")
        }
        if (from == nil) != (to == nil) { throw ValidationError("--from and --to go together") }
        if let delivery, DeliveryID(delivery) == nil {
            throw ValidationError("'\(delivery)' is not a delivery id P:TRIGGER_ID (a UUID)")
        }
    }

    func run() throws {
        let slice: FixtureSlice
        if let from, let to {
            slice = .range(from: from, to: to)
        } else if let text = delivery, let id = DeliveryID(text) {
            slice = .delivery(id)
        } else if let trigger {
            slice = .trigger(trigger)
        } else {
            throw ValidationError("give exactly one of --from P --to P, --delivery P:TRIGGER_ID, --trigger ID")
        }
        let directory = try global.directory
        let target = out
        let outcome: Result<RecordedFixture, FixtureError> = FixturesCommand.blocking {
            do {
                return .success(try await FixtureRecorder.record(from: directory, slice: slice, to: target))
            } catch let error as FixtureError {
                return .failure(error)
            } catch {
                return .failure(FixtureError(path: directory.path, reason: String(describing: error)))
            }
        }
        switch outcome {
        case .success(let recorded):
            print("recorded \(recorded.positions.count) records into \(recorded.path)/log.jsonl")
            for file in recorded.result.updatedFiles { print("  wrote \(file)") }
        case .failure(let error):
            printError(error.description)
            throw ExitCode(1)
        }
    }
}
