import ArgumentParser
import Herald
import HeraldLog

struct CompactCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compact",
        abstract: "Keep the log small: rewrite closed segments with LZ4-HC, and compact the records before a position.",
        discussion: """
            Without --before: rewrites every closed segment (all but the last) with LZ4-HC at \
            --level, block for block, crash-safely; readers and `lz4 -dc` read it unchanged. \
            With --before P: first brings the projection up to the log's end, then replaces \
            the records before P by a snapshot of the state at P-1 (the registry, every \
            pending, dead or redrivable delivery with its whole story, the counts of the \
            others) and removes the segments wholly before P, after copying them to \
            --archive DIR when given. Positions never change; reads before P are refused. \
            Run again, a compaction cut short by a crash finishes. Refused while `herald run` \
            or `herald serve` holds the log: use their --retain options there.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "Compact the records before this position (2 … last position + 1).")
    var before: UInt64?

    @Option(help: ArgumentHelp("Copy the segments a compaction removes into this directory first.", valueName: "dir"))
    var archive: String?

    @Option(help: "LZ4-HC level for closed segments, 3…12.")
    var level: Int32 = 9

    @Flag(help: "Do not rewrite closed segments.")
    var noRecompress = false

    func validate() throws {
        guard (3...12).contains(level) else { throw ValidationError("--level \(level) is outside 3…12 (LZ4-HC levels)") }
        if archive != nil && before == nil { throw ValidationError("--archive needs --before (it keeps what a compaction removes)") }
        if let before, before < 2 { throw ValidationError("--before \(before): the first position a log can start at after compaction is 2") }
    }

    func run() throws {
        let directory = try global.directory
        let report = try directory.compact(before: before, archiveDirectory: archive, recompressionLevel: noRecompress ? nil : level)
        if let projected = report.projected, projected.records > 0 {
            print("projection: projected positions \(projected.from + 1)…\(projected.to) first")
        }
        if let compaction = report.compaction {
            var line = "compaction: the log starts at position \(compaction.start)"
            if compaction.removedSegments.isEmpty {
                line += "; no segment lies wholly before it"
            } else {
                line += "; removed \(compaction.removedSegments.count) segment(s), \(compaction.removedBytes) bytes"
                if let archive = compaction.archiveDirectory { line += ", archived in \(archive)" }
            }
            print(line)
        }
        if let r = report.recompression {
            var line = "recompression: \(r.rewritten) closed segment(s) rewritten at level \(level)"
            if r.rewritten > 0 { line += ", \(r.bytesBefore) → \(r.bytesAfter) bytes" }
            if r.alreadyAtLevel > 0 { line += "; \(r.alreadyAtLevel) already at that level" }
            print(line)
        }
        let s = report.stats
        let records = max(s.records, 1)
        print("log: positions \(report.firstPosition)…\(s.lastPosition ?? 0), \(s.segments) segment(s), \(s.storedBytes) bytes stored (\(String(format2: Double(s.storedBytes) / Double(records))) bytes per record on disk)")
    }
}
