import ArgumentParser
import Herald

struct RepairCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Cut a damaged end of the log into quarantine, as the next writer would.",
        discussion: """
            Opens the log for writing, which runs recovery: a torn tail or an append that never \
            completed is moved to log/quarantine/, recorded in log/recovery.jsonl and reported. \
            Acknowledged records (up to the durable watermark) are never cut unless you pass \
            --accept-loss: restore the segment from a backup or replica first if you can. \
            Damage followed by valid blocks, or in a closed segment, is never cut: restore the \
            segment. Positions that are cut are reused by the next appends.
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Also cut acknowledged records that are damaged (they are quarantined, and the loss is recorded).")
    var acceptLoss = false

    func run() throws {
        let directory = try global.directory
        let before = try directory.verifyLog()
        if before.writerActive {
            printError("error: another process holds the writer lock of \(directory.logPath); stop it first")
            throw ExitCode(1)
        }
        if let lost = before.acknowledgedLoss, !acceptLoss {
            let damage = before.damage.map { " (\($0))" } ?? ""
            printError("error: positions \(lost.lowerBound)…\(lost.upperBound) were acknowledged and are damaged or missing\(damage). Restore the segment, or run `herald repair --accept-loss` to cut them (quarantined).")
            throw ExitCode(1)
        }
        guard before.damage != nil || before.acknowledgedLoss != nil else {
            print("log: nothing to repair (\(before.lastPosition) records, the end is clean)")
            return
        }
        let writer = try directory.openWriter(acceptLoss: acceptLoss)
        let report = writer.recovery
        try writer.close()
        if let cut = report.truncation {
            print(cut.description)
        } else if let lost = before.acknowledgedLoss {
            print("Accepted the loss of positions \(lost.lowerBound)…\(lost.upperBound) (the log ends at \(report.lastPosition)); recorded in \(directory.logPath)/recovery.jsonl.")
        }
        print("log: \(report.lastPosition) records; the next append gets position \(report.lastPosition + 1)")
        if report.truncation?.acknowledgedLoss == true || before.acknowledgedLoss != nil, directory.hasProjection {
            // The projection was derived from records that are gone: build it again from the log.
            let rebuilt = try directory.rebuildProjection()
            print("projection: rebuilt from the log (\(rebuilt.to) records)")
        }
    }
}
