import ArgumentParser
import Herald

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every block and record of the log, then compare the projection with a rebuild.",
        discussion: "Exit 1 with a report naming each difference (table, row, both versions).")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        let directory = global.directory
        // Every block's checksum and every record's encoding and rules, from position 1.
        let state = try directory.replay()
        print("log: \(state.position) records, every block and record valid")
        let problems = try directory.verifyProjection()
        if problems.isEmpty {
            print("projection: identical to a rebuild from the log (integrity_check ok, no foreign key violations)")
        } else {
            printError("projection differs from a rebuild from the log:")
            for problem in problems { printError("  " + problem) }
            throw ExitCode(1)
        }
    }
}
