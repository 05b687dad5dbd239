import ArgumentParser
import Dispatch
import HeraldTesting
import Synchronization

struct FixturesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fixtures",
        abstract: "Run regression fixtures; show a unified diff for every mismatching golden file.",
        discussion: """
            Every directory holding log.jsonl (a log fixture) or scenario.jsonl (a scenario \
            fixture) under DIR is run in its own temporary data directory (fixtures/README.md). \
            The last line is exactly "N passed, M failed"; the exit status is 1 when any failed. \
            --update rewrites the golden files with what the fixtures produce and lists the \
            files it changed.
            """)

    @Argument(help: "Directories to search for fixtures (each may itself be one fixture).")
    var directories: [String]

    @Flag(help: "Rewrite expected files instead of comparing.")
    var update = false

    @Option(help: "Only fixtures whose name contains this text.")
    var filter: String?

    func run() throws {
        let results = FixturesCommand.blocking { [directories, update, filter] in
            await FixtureRunner.run(directories: directories, update: update, filter: filter)
        }
        var output = Output()
        for result in results where !result.passed || !result.updatedFiles.isEmpty {
            output.write(result.report)
        }
        output.write(FixtureResult.summary(results) + "\n")
        output.flush()
        if results.contains(where: { !$0.passed }) { throw ExitCode(1) }
    }

    /// Runs async work from this synchronous command: the root command is synchronous, and
    /// the main thread is not part of the cooperative pool, so waiting here cannot deadlock it.
    static func blocking<T: Sendable>(_ work: @escaping @Sendable () async -> T) -> T {
        let box = Mutex<T?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let value = await work()
            box.withLock { $0 = value }
            done.signal()
        }
        done.wait()
        guard let value = box.withLock({ $0 }) else { preconditionFailure("the task finished without a result") }
        return value
    }
}
