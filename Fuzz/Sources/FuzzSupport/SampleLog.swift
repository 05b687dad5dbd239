import HeraldLog

/// A small real log in three segments, written by `LogWriter` on a `SimulatedFileSystem`: what
/// the block index target pairs with a fuzzed index or watermark file, and where its seeds
/// come from.
///
/// Small blocks and segments make every path of an index lookup reachable with few bytes: the
/// first segments are closed (readers seek through their indexes), the last is active (readers
/// start at its index's last entry).
public struct SampleLog: Sendable {
    /// The log's directory on the simulated file system.
    public static let directory = "/log"
    /// The durable watermark's file name (`DurableWatermark.fileName`).
    public static let watermarkName = "DURABLE"
    /// The records, position 1 first.
    public let entries: [LogEntry]
    /// The segments, ascending: segment file name, base position, size in bytes, index file name.
    public let segments: [(name: String, base: UInt64, bytes: Int, indexName: String)]
    /// Every file of the log by name (segments, indexes, the watermark), sorted by name.
    public let files: [(name: String, bytes: [UInt8])]

    /// Writes the log (deterministic: same bytes every time).
    public init() throws {
        let fs = SimulatedFileSystem()
        let configuration = LogConfiguration(segmentBytesMax: 1_200, blockRawBytesMax: 160, durability: .always,
                                             lockWaitMilliseconds: 0, preallocationBytesMax: 0)
        let writer = try LogWriter(directory: Self.directory, configuration: configuration, fileSystem: fs)
        var entries: [LogEntry] = []
        for n in 0..<48 {
            let text = #"{"n":\#(n),"key":"users/\#(n % 7)","plan":"\#(["free", "pro", "team"][n % 3])"}"#
            entries.append(LogEntry(ts: Int64(n / 4), payload: Array(text.utf8)))
        }
        // Several appends: they also shape the blocks.
        for chunk in stride(from: 0, to: entries.count, by: 5) {
            try writer.append(Array(entries[chunk..<min(chunk + 5, entries.count)]))
        }
        try writer.close()
        self.entries = entries
        var segments: [(String, UInt64, Int, String)] = []
        var files: [(String, [UInt8])] = []
        for name in try fs.contentsOfDirectory(Self.directory).sorted() {
            guard let bytes = fs.contents(of: Self.directory + "/" + name), name != "LOCK" else { continue }
            files.append((name, bytes))
            if name.hasSuffix(".log"), let base = UInt64(name.dropLast(4)) {
                segments.append((name, base, bytes.count, String(name.dropLast(4)) + ".index"))
            }
        }
        self.segments = segments
        self.files = files
    }

    /// A fresh simulated file system holding the log, with file `replaced` (a name in
    /// ``files``) holding `bytes` instead, when given.
    public func fileSystem(replacing replaced: String? = nil, with bytes: [UInt8] = []) -> SimulatedFileSystem {
        let fs = SimulatedFileSystem()
        try? fs.createDirectory(Self.directory)
        for file in files {
            fs.setDurableContents(of: Self.directory + "/" + file.name, file.name == replaced ? bytes : file.bytes)
        }
        return fs
    }
}
