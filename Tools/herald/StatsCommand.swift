import ArgumentParser
import Herald
import HeraldCore
import HeraldLog

struct StatsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stats",
        abstract: "Segments, blocks, records, raw and stored bytes, compression ratio, ts range.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "text, or json: one object with the same fields.")
    var format: SummaryFormat = .text

    func run() throws {
        let directory = try global.directory
        let stats = try directory.logStats()
        let first = try directory.openReader().firstPosition
        let ratio = stats.storedBytes == 0 ? 0 : Double(stats.rawBytes) / Double(stats.storedBytes)
        if format == .json {
            var out = JSONOutput()
            out.beginObject()
            out.key("log"); out.string(directory.logPath)
            out.key("segments"); out.int(Int64(stats.segments))
            out.key("blocks"); out.int(Int64(stats.blocks))
            out.key("records"); out.int(Int64(stats.records))
            out.key("raw_bytes"); out.int(Int64(stats.rawBytes))
            out.key("stored_bytes"); out.int(Int64(stats.storedBytes))
            out.key("first_position"); out.uint(first)
            out.key("first_ts")
            if let first = stats.firstTs { out.int(first) } else { out.null() }
            out.key("last_ts")
            if let last = stats.lastTs { out.int(last) } else { out.null() }
            out.endObject()
            out.newline()
            Output.writeNow(out.bytes)
            return
        }
        var lines = [
            "log          \(directory.logPath)",
            "segments     \(stats.segments)",
            "blocks       \(stats.blocks)",
            "records      \(stats.records)",
            "raw bytes    \(stats.rawBytes)",
            "stored bytes \(stats.storedBytes)",
            "ratio        \(String(format2: ratio)):1",
        ]
        if first > 1 {
            lines.append("first        position \(first) (compacted: the records before it are a snapshot; the segment holding it keeps \(first - (stats.firstPosition ?? first)) earlier record(s) on disk)")
        }
        if let first = stats.firstTs, let last = stats.lastTs {
            lines.append("ts range     \(withUTC(first)) … \(withUTC(last))")
        }
        print(lines.joined(separator: "\n"))
    }
}

extension String {
    /// Two decimals, without Foundation.
    init(format2 value: Double) {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        self = "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
