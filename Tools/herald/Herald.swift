import ArgumentParser
import Foundation
import Herald

@main
struct HeraldCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "herald",
        abstract: "Herald: an event-sourced trigger engine.",
        discussion: """
            Every fact is appended to a compressed segment log in the data directory (--data, \
            else $HERALD_DATA, else ./herald-data); deliveries, retries and dead letters are \
            derived from it deterministically.
            """,
        version: Herald.version,
        subcommands: [
            ImportCommand.self, DumpCommand.self, StatsCommand.self, ProjectCommand.self, VerifyCommand.self, RepairCommand.self,
            TriggersCommand.self, DeliveriesCommand.self, ExplainCommand.self,
            RunCommand.self, AppendCommand.self, StatusCommand.self, FixturesCommand.self, RecordCommand.self,
            RedriveCommand.self, CancelCommand.self, InvokeCommand.self, WhatifCommand.self, RandomLogCommand.self,
            ServeCommand.self, TokenCommand.self, CopyCommand.self, CompactCommand.self,
        ])

    /// Exit status: 0 ok; 1 an error about the data or the input (a bad record, a damaged log,
    /// an action that does not apply); 2 a usage error (an unknown option, a bad value),
    /// printed with the usage. ArgumentParser's own code for a usage error is 64 (EX_USAGE).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var command = command as? AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}
