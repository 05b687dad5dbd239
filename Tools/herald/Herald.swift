import ArgumentParser
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
        ])
}
