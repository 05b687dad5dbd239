import ArgumentParser
import Herald

struct ProjectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "project",
        abstract: "Bring the SQLite projection up to date with the log.",
        discussion: "Batches commit with their checkpoint: a killed run resumes where it stopped.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Rebuild from position 0 into a new database, then swap it in.")
    var rebuild = false

    func run() throws {
        let directory = try global.directory
        let progress: (UInt64) -> Void = { position in
            if stderrIsTerminal { printError("… projected through position \(position)") }
        }
        let result = rebuild
            ? try directory.rebuildProjection(progress: progress)
            : try directory.project(progress: progress)
        print("projected positions \(result.from + 1)…\(result.to) into \(directory.projectionPath) (\(result.records) records)")
    }
}
