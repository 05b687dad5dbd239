import HeraldLog

/// A small real log in two segments, written by `LogWriter` on a `SimulatedFileSystem`: what
/// the block index target pairs with a fuzzed index file, and where its seeds come from.
///
/// Small blocks and segments make every path of an index lookup reachable with few bytes: the
/// first segment is closed (readers seek through its index), the second is active (readers
/// start at its index's last entry).
public struct SampleLog: Sendable {
    /// The log's directory on the simulated file system.
    public static let directory = "/log"
    /// The records, position 1 first.
    public let entries: [LogEntry]
    /// The segment files by base position, ascending: name, segment bytes, index bytes.
    public let segments: [(name: String, base: UInt64, segment: [UInt8], indexName: String, index: [UInt8])]

    /// Writes the log (deterministic: same bytes every time).
    public init() throws {
        let fs = SimulatedFileSystem()
        let configuration = LogConfiguration(segmentBytesMax: 1_200, blockRawBytesMax: 160, durability: .none,
                                             lockWaitMilliseconds: 0, preallocationBytesMax: 0)
        let writer = try LogWriter(directory: Self.directory, configuration: configuration, fileSystem: fs)
        var entries: [LogEntry] = []
        for n in 0..<48 {
            let text = #"{"n":\#(n),"key":"users/\#(n % 7)","plan":"\#(["free", "pro", "team"][n % 3])"}"#
            entries.append(LogEntry(ts: Int64(n / 4), payload: Array(text.utf8)))
        }
        // Several appends: a block never spans two of them, so they also shape the blocks.
        for chunk in stride(from: 0, to: entries.count, by: 5) {
            try writer.append(Array(entries[chunk..<min(chunk + 5, entries.count)]))
        }
        try writer.close()
        self.entries = entries
        var segments: [(String, UInt64, [UInt8], String, [UInt8])] = []
        for name in try fs.contentsOfDirectory(Self.directory).sorted() where name.hasSuffix(".log") {
            let stem = String(name.dropLast(4))
            guard let base = UInt64(stem) else { continue }
            let segment = fs.contents(of: Self.directory + "/" + name) ?? []
            let index = fs.contents(of: Self.directory + "/" + stem + ".index") ?? []
            segments.append((name, base, segment, stem + ".index", index))
        }
        self.segments = segments
    }

    /// A fresh simulated file system holding the log, with the index of segment
    /// `replacedIndex` (an offset into ``segments``) replaced by `index` when given.
    public func fileSystem(replacingIndexOf replacedIndex: Int? = nil, with index: [UInt8] = []) -> SimulatedFileSystem {
        let fs = SimulatedFileSystem()
        try? fs.createDirectory(Self.directory)
        for (offset, segment) in segments.enumerated() {
            fs.setDurableContents(of: Self.directory + "/" + segment.name, segment.segment)
            fs.setDurableContents(of: Self.directory + "/" + segment.indexName, offset == replacedIndex ? index : segment.index)
        }
        return fs
    }
}
