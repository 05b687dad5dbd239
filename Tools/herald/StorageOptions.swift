import ArgumentParser
import Herald

/// `herald run` and `herald serve`: what the engine does to its segment log in the background
/// (``Herald/StoragePolicy``; docs/STORAGE.md).
struct StorageOptions: ParsableArguments {
    @Option(help: "Rewrite closed segments with LZ4-HC at this level (3…12) in the background.")
    var recompressLevel: Int32 = 9

    @Flag(help: "Leave closed segments as they were written.")
    var noRecompress = false

    @Option(help: ArgumentHelp("Retention: keep at least the last N records; whole segments before them are compacted into a snapshot.",
                               valueName: "n"))
    var retainRecords: UInt64?

    @Option(help: ArgumentHelp("Retention: keep at least the records this recent, by the log's own time (e.g. 90s, 30m, 12h, 7d, or milliseconds).",
                               valueName: "duration"))
    var retainFor: RetainDuration?

    @Option(help: ArgumentHelp("Copy the segments retention removes into this directory first.", valueName: "dir"))
    var archive: String?

    @Option(help: "How often the storage work runs, in milliseconds.")
    var storageIntervalMs: Int64 = 60_000

    @Option(help: "Start a new segment at this size, in MiB (retention removes whole segments).")
    var segmentMib: UInt64 = 64

    func validate() throws {
        guard (3...12).contains(recompressLevel) else { throw ValidationError("--recompress-level \(recompressLevel) is outside 3…12 (LZ4-HC levels)") }
        if let retainRecords, retainRecords < 1 { throw ValidationError("--retain-records must be at least 1") }
        guard storageIntervalMs >= 100 else { throw ValidationError("--storage-interval-ms must be at least 100") }
        guard (1...4096).contains(segmentMib) else { throw ValidationError("--segment-mib must be 1…4096") }
        if archive != nil && retainRecords == nil && retainFor == nil {
            throw ValidationError("--archive needs --retain-records or --retain-for (it keeps what retention removes)")
        }
    }

    /// Sets `options.storage` and `options.segmentBytesMax`.
    func apply(to options: inout HeraldOptions) {
        options.storage = StoragePolicy(recompressionLevel: noRecompress ? nil : recompressLevel, retainRecords: retainRecords,
                                        retainMs: retainFor?.milliseconds, archiveDirectory: archive, intervalMs: storageIntervalMs)
        options.segmentBytesMax = segmentMib << 20
    }
}

/// `--retain-for`: a count and a unit (ms, s, m, h, d), or milliseconds.
struct RetainDuration: ExpressibleByArgument {
    let milliseconds: Int64

    init?(argument: String) {
        let units: [(String, Int64)] = [("ms", 1), ("s", 1_000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)]
        let unit = units.first { argument.hasSuffix($0.0) && Int64(argument.dropLast($0.0.count)) != nil } ?? ("", 1)
        guard let count = Int64(argument.dropLast(unit.0.count)), count >= 1 else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: unit.1)
        guard !overflow else { return nil }
        milliseconds = product
    }
}
