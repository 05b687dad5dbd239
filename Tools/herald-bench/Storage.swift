import Glibc
import Herald
import HeraldCore
import HeraldLog

extension Benchmarks {
    // MARK: storage

    /// `herald compact` on a copy of the `import` log: the segment rolled and rewritten with
    /// LZ4-HC 9, bytes per event before and after, `lz4 -dc`-level identity (decoded record
    /// bytes, block by block), then the decoded and the raw scan of both logs in alternating
    /// passes (5 each, medians): recompression must not make the scan slower.
    func storage() throws {
        guard fileExists(importDirectory + "/log") else {
            throw BenchError("storage needs the log of --only import under \(options.workDirectory): run it first")
        }
        let copy = options.workDirectory + "/storage"
        removeTree(copy)
        try makeDirectories(copy + "/log")
        let source = try LogReader(directory: importDirectory + "/log")
        for name in try listDirectory(importDirectory + "/log") where name.hasSuffix(".log") || name.hasSuffix(".index") || name == "DURABLE" {
            try copyFile(importDirectory + "/log/" + name, to: copy + "/log/" + name)
        }
        let before = try source.stats()
        let events = Double(options.workload.expectedEvents ?? Int(before.records))
        let data = DataDirectory(path: copy)
        let start = nowNs()
        let report = try data.compact(before: nil, archiveDirectory: nil, recompressionLevel: 9)
        let elapsed = seconds(start, nowNs())
        let after = report.stats
        // The same records, byte for byte, block by block.
        let a = try source.makeCursor(from: 1), b = try LogReader(directory: copy + "/log").makeCursor(from: 1)
        var blocks = 0
        func records(_ block: LogBlock) -> [[UInt8]] {
            var out: [[UInt8]] = []
            block.forEachRecord { _, ts, payload in out.append(withUnsafeBytes(of: ts) { Array($0) } + Array(payload)) }
            return out
        }
        while let x = try a.nextBlock() {
            guard let y = try b.nextBlock(), x.basePosition == y.basePosition, records(x) == records(y) else {
                throw BenchError("storage: block \(blocks) of the recompressed log differs from the original")
            }
            blocks += 1
        }
        guard try b.nextBlock() == nil else { throw BenchError("storage: the recompressed log has more blocks") }
        reporter.emit(Row(workload: "storage", measure: "stored bytes per event after herald compact (LZ4-HC 9)", value: Double(after.storedBytes) / events,
                          unit: "B/event", target: "≤ 45",
                          note: "\(after.storedBytes) bytes (were \(before.storedBytes), \(format3(Double(before.storedBytes) / events)) B/event); rewritten in \(format3(elapsed)) s, \(blocks) blocks read back identical",
                          extra: [("bytes_before", Double(before.storedBytes)), ("bytes_after", Double(after.storedBytes)), ("seconds", elapsed)]))
        // Alternating scans of the two logs.
        let logs = [DataDirectory(path: importDirectory), data]
        var decoded: [[Double]] = [[], []]
        var raw: [[Double]] = [[], []]
        for _ in 0..<5 {
            for (i, log) in logs.enumerated() {
                let reader = try log.openReader()
                var count = 0
                let t0 = nowNs()
                try reader.forEach(from: 1) { _, record in
                    if case .kv = record.body { count += 1 }
                    return true
                }
                decoded[i].append(Double(try reader.lastPosition) / seconds(t0, nowNs()))
                let cursor = try LogReader(directory: log.logPath).makeCursor(from: 1)
                var n = 0
                let t1 = nowNs()
                while let block = try cursor.nextBlock() { n += block.count }
                raw[i].append(Double(n) / seconds(t1, nowNs()))
            }
        }
        for (measure, values) in [("decoded", decoded), ("raw (CRC+LZ4)", raw)] {
            reporter.emit(Row(workload: "storage", measure: "scan records/s, \(measure): recompressed vs as written", value: median(values[1]), unit: "records/s",
                              note: "as written \(grouped(median(values[0]))) records/s; medians of 5 alternating passes (recompressed \(values[1].map { grouped($0) }.joined(separator: ", ")))",
                              extra: [("as_written", median(values[0])), ("recompressed", median(values[1]))]))
        }
    }
}

/// The names in a directory.
func listDirectory(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else { throw BenchError("cannot list \(path): \(String(cString: strerror(errno)))") }
    defer { closedir(dir) }
    var names: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

/// Copies a file byte for byte.
func copyFile(_ from: String, to: String) throws {
    let input = open(from, O_RDONLY)
    guard input >= 0 else { throw BenchError("cannot open \(from)") }
    defer { close(input) }
    let output = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard output >= 0 else { throw BenchError("cannot create \(to)") }
    defer { close(output) }
    var buffer = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
        guard n >= 0 else { throw BenchError("cannot read \(from)") }
        if n == 0 { return }
        let written = buffer.withUnsafeBytes { write(output, $0.baseAddress, n) }
        guard written == n else { throw BenchError("cannot write \(to)") }
    }
}
