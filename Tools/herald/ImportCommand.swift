import ArgumentParser
import Herald

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Append JSON Lines records to the log, atomically.",
        discussion: """
            Every line is validated against the state the lines before it build. If any line is \
            invalid, nothing is appended and each bad line is reported with its line number, field \
            and reason (exit 1). Lines without "ts" are stamped by the clock (max(now, last ts)).
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "A JSON Lines file, or - for standard input.")
    var file: String

    func run() throws {
        let environment = try HeraldEnvironment(variables: ProcessEnvironment.variables)
        do {
            let result = try global.directory.importLines(from: file, environment: environment) { lines in
                if stderrIsTerminal { printError("… \(lines) lines validated") }
            }
            if let positions = result.positions {
                print("imported \(result.lines) records at positions \(positions.lowerBound)…\(positions.upperBound)")
            } else {
                print("imported 0 records (empty input)")
            }
        } catch let error as HeraldError {
            printError(error.description)
            throw ExitCode(1)
        }
    }
}
