// Writes the seed corpora of the fuzz targets (Tools/fuzz runs it before fuzzing):
//
//     FuzzSeeds OUT FIXTURE.jsonl…
//
// - OUT/json-line: each fixture file whole (lines in order, for the stateful validator);
// - OUT/binary-record: the binary payload of every valid line of the fixtures (deduplicated);
// - OUT/segment: per fixture, the segment file `LogWriter` writes for its valid lines (small
//   blocks, so several per segment);
// - OUT/block-index: the index and watermark files of `SampleLog` behind their selector byte;
// - OUT/engine-snapshot: per fixture, the engine snapshot of the pending deliveries after its
//   valid lines, without the checksum (the target appends it).
// Files are named by content (FNV-1a), so the corpora are the same on every run.
import Foundation
import FuzzSupport
import HeraldCore
import HeraldLog

func fnv1a(_ bytes: [UInt8]) -> String {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return String(hash, radix: 16)
}

func write(_ bytes: [UInt8], to directory: String) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try Data(bytes).write(to: URL(fileURLWithPath: directory + "/" + fnv1a(bytes)))
}

/// Never called: `-sanitize=fuzzer` links libFuzzer's `main`, which needs this symbol, into
/// every executable of the package (SwiftPM's `main` of the target's top-level code wins).
@_cdecl("LLVMFuzzerTestOneInput")
public func unused(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt { 0 }

let arguments = CommandLine.arguments.dropFirst()
guard let out = arguments.first else {
    FileHandle.standardError.write(Data("usage: FuzzSeeds OUT FIXTURE.jsonl…\n".utf8))
    exit(2)
}
do {
    let decoder = RecordJSONDecoder()
    for fixture in arguments.dropFirst() {
        let text = try [UInt8](Data(contentsOf: URL(fileURLWithPath: fixture)))
        try write(text, to: out + "/json-line")
        var entries: [LogEntry] = []
        var ts: Int64 = 0
        var dispatcher = Dispatcher()
        for line in text.split(separator: 0x0A) {
            guard let (lineTs, body) = try? decoder.decode(line: Array(line)) else { continue }
            let payload = RecordBinaryCodec.encode(body)
            try write(payload, to: out + "/binary-record")
            ts = max(ts, lineTs ?? ts)
            entries.append(LogEntry(ts: ts, payload: payload))
            _ = try? dispatcher.apply(Record(ts: ts, body: body))
        }
        try write(Array(dispatcher.snapshotBytes().dropLast(8)), to: out + "/engine-snapshot")
        guard !entries.isEmpty else { continue }
        let fs = SimulatedFileSystem()
        let writer = try LogWriter(directory: "/log", configuration: LogConfiguration(
            blockRawBytesMax: 512, durability: .none, lockWaitMilliseconds: 0, preallocationBytesMax: 0), fileSystem: fs)
        try writer.append(entries)
        try writer.close()
        if let segment = fs.contents(of: "/log/00000000000000000001.log") { try write(segment, to: out + "/segment") }
    }
    // The selector byte of FuzzBlockIndex picks the indexes in order, then the watermark.
    let sample = try SampleLog()
    let choices = sample.segments.map(\.indexName) + [SampleLog.watermarkName]
    for (selector, name) in choices.enumerated() {
        guard let file = sample.files.first(where: { $0.name == name }) else { continue }
        try write([UInt8(selector)] + file.bytes, to: out + "/block-index")
    }
} catch {
    FileHandle.standardError.write(Data("FuzzSeeds: \(error)\n".utf8))
    exit(1)
}
