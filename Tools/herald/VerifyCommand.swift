import ArgumentParser
import Herald

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every block and record of the log, then compare the projection with a rebuild.",
        discussion: """
            The log is checked with the writer's own recovery rules, read-only: damage a writer \
            refuses (a damaged block followed by a valid one, a damaged closed segment, \
            acknowledged records missing at the end) exits 1 naming segment, offset and \
            positions; a torn tail past the durable watermark, which the next writer cuts into \
            quarantine, is a warning. While another process appends, everything up to the log's \
            end as first read is checked. Exit 1 with a report naming each difference of the \
            projection (table, row, both versions). With --postgres, the PostgreSQL projection \
            is the one compared (brought up to the log's end first, unless another projector \
            holds it).
            """)

    @OptionGroup var global: GlobalOptions
    @OptionGroup var postgres: PostgresOptions

    func run() throws {
        let directory = try global.directory
        if let location = directory.externalLog?.location {
            // A stream: its reader checks every block's header, checksum chain and sequence
            // (a gap or damage is an error naming the stream sequence), the replay every record.
            let last = try directory.openReader().lastPosition
            let state = try directory.replay(through: last) { position, _, _, _ in
                if position % 100_000 == 0, stderrIsTerminal { printError("… records checked through position \(position)") }
            }
            print("log: \(state.position) records in \(location), every block, sequence and record valid")
            try compareProjection(directory, through: last)
            return
        }
        let log = try directory.verifyLog()
        if let lost = log.acknowledgedLoss {
            let where_ = log.damage.map { " (\($0))" } ?? ""
            printError("log: positions \(lost.lowerBound)…\(lost.upperBound) were acknowledged and are damaged or missing\(where_); a writer refuses this log. Restore the segment, or run `herald repair --accept-loss` to cut them (quarantined).")
            throw ExitCode(1)
        }
        if let damage = log.damage {
            printError("warning: \(damage); the next writer cuts it into quarantine (herald repair does it now)")
        }
        // Every record's encoding and rules, from position 1 to the end checked above.
        let state = try directory.replay(through: log.lastPosition) { position, _, _, _ in
            if position % 100_000 == 0, stderrIsTerminal { printError("… records checked through position \(position)") }
        }
        let active = log.writerActive ? " (a writer is appending: checked through the end as first read)" : ""
        if log.firstPosition > 1 {
            print("log: positions \(log.firstPosition)…\(state.position) in \(log.blocks) blocks, \(log.segments) segment(s), every block and record valid, after the snapshot of the state at \(log.firstPosition - 1) (compacted; it decodes and its checksum holds)\(active)")
        } else {
            print("log: \(state.position) records in \(log.blocks) blocks, \(log.segments) segment(s), every block and record valid\(active)")
        }
        try compareProjection(directory, through: log.lastPosition)
    }

    /// The projection half: PostgreSQL's with --postgres, else SQLite's, against a rebuild.
    func compareProjection(_ directory: DataDirectory, through last: UInt64) throws {
        let rebuilding: (UInt64) -> Void = { position in
            if stderrIsTerminal { printError("… projection rebuilt through position \(position) for the comparison") }
        }
        if let url = postgres.postgres {
            let problems = try directory.verifyPostgres(url: url, schema: postgres.postgresSchema, through: last,
                                                        progress: rebuilding)
            guard problems.isEmpty else {
                printError("PostgreSQL projection (schema \(postgres.postgresSchema)) differs from a rebuild from the log:")
                for problem in problems { printError("  " + problem) }
                throw ExitCode(1)
            }
            print("PostgreSQL projection (schema \(postgres.postgresSchema)): identical to a rebuild from the log, table by table")
            return
        }
        let problems = try directory.verifyProjection(through: last, progress: rebuilding)
        if problems.isEmpty {
            print("projection: identical to a rebuild from the log (integrity_check ok, no foreign key violations)")
        } else {
            printError("projection differs from a rebuild from the log:")
            for problem in problems { printError("  " + problem) }
            throw ExitCode(1)
        }
    }
}
