import ArgumentParser
import Herald
import HeraldCore

struct AppendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "append",
        abstract: "Validate and append one record, given as one JSON object (the import form).",
        discussion: """
            herald append '{"type":"app.created","app_id":"…","name":"shop"}'
            Prints the new position. The log has one writer: while `herald run` holds it, \
            append through the library API instead.
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The record as JSON.")
    var json: String

    func run() throws {
        let environment = try HeraldEnvironment(variables: ProcessEnvironment.variables)
        let decoded: (ts: Int64?, body: RecordBody)
        do {
            decoded = try RecordJSONDecoder(retryDefaults: environment.retryDefaults).decode(line: json)
        } catch {
            printError("argument: \(error)")
            throw ExitCode(1)
        }
        let herald = try Herald.open(directory: global.directory,
                                     options: HeraldOptions(environment: environment))
        defer { try? herald.close() }
        do {
            let position = try herald.append(decoded.body, ts: decoded.ts)
            print(position)
        } catch let error as RecordError {
            printError(error.description)
            throw ExitCode(1)
        }
    }
}
