import ArgumentParser
import Herald

struct ProjectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "project",
        abstract: "Bring the SQLite projection (or, with --postgres, the PostgreSQL one) up to date with the log.",
        discussion: """
            Batches commit with their checkpoint: a killed run resumes where it stopped. \
            --postgres projects into PostgreSQL instead: the seed's Layout E tables and Herald's \
            own, in the schema --postgres-schema (created when missing). Keep the password out of \
            the URL: libpq reads PGPASSWORD and ~/.pgpass.
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Rebuild from position 0 into a new database (or schema), then swap it in.")
    var rebuild = false

    @OptionGroup var postgres: PostgresOptions

    func run() throws {
        let directory = try global.directory
        let progress: (UInt64) -> Void = { position in
            if stderrIsTerminal { printError("… projected through position \(position)") }
        }
        if let url = postgres.postgres {
            let result = rebuild
                ? try directory.rebuildPostgres(url: url, schema: postgres.postgresSchema, progress: progress)
                : try directory.projectPostgres(url: url, schema: postgres.postgresSchema, progress: progress)
            print("projected positions \(result.from + 1)…\(result.to) into PostgreSQL schema \(postgres.postgresSchema) (\(result.records) records)")
            return
        }
        let result = rebuild
            ? try directory.rebuildProjection(progress: progress)
            : try directory.project(progress: progress)
        print("projected positions \(result.from + 1)…\(result.to) into \(directory.projectionPath) (\(result.records) records)")
    }
}

/// `--postgres URL` and `--postgres-schema NAME`, for the commands that reach the PostgreSQL projection.
struct PostgresOptions: ParsableArguments {
    @Option(help: ArgumentHelp("PostgreSQL to project into: a libpq URL (postgresql://user@host:port/db) or key=value string.",
                               valueName: "url"))
    var postgres: String?

    @Option(help: "The schema the PostgreSQL projection lives in.")
    var postgresSchema = "herald"
}

extension PostgresOptions {
    /// `run`/`serve --postgres URL`: a follower of the engine's log, started (or nil without the option).
    func follower(of directory: DataDirectory, engine herald: Herald, name: String) throws -> PostgresFollower? {
        guard let url = postgres else { return nil }
        let follower = try PostgresFollower(directory: directory, url: url, schema: postgresSchema)
        follower.start(through: { herald.durablePosition }, report: { printError("\(name): \($0)") })
        herald.limitCompaction { follower.checkpoint }
        printError("\(name): projecting into PostgreSQL schema \(postgresSchema) about once a second")
        return follower
    }
}
