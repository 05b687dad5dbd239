import ArgumentParser
import HeraldCore
import HeraldTesting

struct RandomLogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "random-log",
        abstract: "Print a random valid log as JSON Lines, the same for the same seed.",
        discussion: """
            Every record type appears, redrives, cancels and invokes included, and every record \
            passes the rules against the records before it (attempts name pending deliveries at \
            or after their due time). For property tests and for comparing another \
            implementation of docs/SEMANTICS.md: `herald random-log --seed 7 > log.jsonl`, then \
            import it (or make it a fixture: put it in a directory and run \
            `herald fixtures --update DIR`) and compare `herald deliveries --format jsonl`.
            """)

    @Option(help: "The seed: the same seed prints the same bytes.")
    var seed: UInt64 = 1

    @Option(help: "Records to attempt, at most 1,000,000 (each that breaks a rule is dropped, so a few fewer come out).")
    var records: Int = 1_000

    func validate() throws {
        // The generator keeps every record it made (and the state they build) in memory.
        guard (1...1_000_000).contains(records) else { throw ValidationError("--records must be 1…1,000,000, not \(records)") }
    }

    func run() throws {
        var generator = RandomLog(seed: seed)
        let encoder = RecordJSONEncoder()
        var output = Output()
        for record in generator.generate(records: records) {
            output.write(bytes: encoder.encode(record))
            output.write("\n")
        }
        output.flush()
    }
}
