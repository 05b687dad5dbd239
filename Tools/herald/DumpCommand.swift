import ArgumentParser
import Herald
import HeraldCore

struct DumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Write the log's records as JSON Lines (the form `herald import` reads).")

    @OptionGroup var global: GlobalOptions

    @Option(help: "First position to write (default: the log's first, 1 unless it was compacted).")
    var from: UInt64?

    @Option(help: "Last position to write (default: the end).")
    var to: UInt64?

    @Option(help: "Only records whose type starts with this prefix, e.g. kv. or trigger.")
    var type: String?

    func run() throws {
        let reader = try global.directory.openReader()
        let from = try from ?? reader.firstPosition
        if let to, to < from {
            throw ValidationError("--to \(to) is before --from \(from)")
        }
        var output = Output()
        var line = JSONOutput(capacity: 1024)
        let prefix = type.map { Array($0.utf8) }
        let encoder = RecordJSONEncoder()
        let last = try reader.lastPosition
        try reader.forEach(from: from, through: min(to ?? last, last)) { _, record in
            if let prefix, !record.body.type.name.utf8.starts(with: prefix) { return true }
            line.removeAll()
            encoder.append(record, to: &line)
            line.newline()
            output.write(bytes: line.bytes)
            return true
        }
        output.flush()
    }
}
