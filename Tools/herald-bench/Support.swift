import Glibc
import HeraldCore

/// A failure the tool reports as one clear line and exit status 2 (bad arguments, missing input)
/// or 1 (a benchmark that could not run or produced a wrong count).
struct BenchError: Error, CustomStringConvertible {
    var description: String
    var usage = false
    init(_ description: String, usage: Bool = false) {
        self.description = description
        self.usage = usage
    }
}

/// Monotonic nanoseconds.
@inline(__always) func nowNs() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

func seconds(_ start: UInt64, _ end: UInt64) -> Double { Double(end &- start) / 1e9 }

/// The median of a non-empty list (the mean of the middle two for an even count).
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// Fields of /proc/self/status in KiB (VmHWM = peak resident set, VmRSS = current).
func procStatusKiB(_ field: String) -> Int? {
    guard let file = fopen("/proc/self/status", "r") else { return nil }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 512)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix(field + ":") {
            let digits = text.dropFirst(field.count + 1).filter { $0.isNumber }
            return Int(digits)
        }
    }
    return nil
}

func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

func fileSize(_ path: String) -> Int {
    var st = stat()
    guard stat(path, &st) == 0 else { return 0 }
    return Int(st.st_size)
}

/// `rm -rf` for the tool's own scratch directories.
func removeTree(_ path: String) {
    guard fileExists(path) else { return }
    let pid = fork()
    if pid == 0 {
        let args: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/rm"), strdup("-rf"), strdup(path), nil]
        execv("/bin/rm", args)
        _exit(127)
    }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
}

func makeDirectories(_ path: String) throws {
    var built = ""
    for part in path.split(separator: "/", omittingEmptySubsequences: true) {
        built += "/" + part
        if mkdir(built, 0o755) != 0 && errno != EEXIST {
            throw BenchError("cannot create \(built): \(String(cString: strerror(errno)))")
        }
    }
}

/// A whole file in memory with the byte ranges of its lines (without `\n`).
struct LineFile {
    let path: String
    let bytes: [UInt8]
    let lines: [Range<Int>]

    init(path: String) throws {
        self.path = path
        guard let file = fopen(path, "rb") else {
            throw BenchError("cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { fclose(file) }
        let size = fileSize(path)
        var bytes = [UInt8](repeating: 0, count: size)
        let got = bytes.withUnsafeMutableBytes { fread($0.baseAddress, 1, size, file) }
        guard got == size else { throw BenchError("short read of \(path): \(got) of \(size) bytes") }
        var lines: [Range<Int>] = []
        lines.reserveCapacity(size / 200)
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            var start = 0
            while start < size {
                if let hit = memchr(base + start, 0x0A, size - start) {
                    let end = base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                    if end > start { lines.append(start..<end) }
                    start = end + 1
                } else {
                    lines.append(start..<size)
                    start = size
                }
            }
        }
        self.bytes = bytes
        self.lines = lines
    }

    /// Decodes every line strictly (the import decoder), failing on the first bad one.
    func records(defaultTs: Int64 = 0) throws -> [Record] {
        let decoder = RecordJSONDecoder(retryDefaults: .builtIn)
        var out: [Record] = []
        out.reserveCapacity(lines.count)
        var lastTs = defaultTs
        try bytes.withUnsafeBufferPointer { buffer in
            for (index, range) in lines.enumerated() {
                do throws(RecordError) {
                    let (ts, body) = try decoder.decode(line: UnsafeBufferPointer(rebasing: buffer[range]))
                    let stamped = ts ?? lastTs
                    lastTs = stamped
                    out.append(Record(ts: stamped, body: body))
                } catch {
                    throw BenchError("\(path) line \(index + 1): \(error)")
                }
            }
        }
        return out
    }
}

/// The workload directory: setup.jsonl + events.jsonl, and workload.json when
/// Tools/gen-workload made it (its `events` and `kv_deliveries` counts check derive).
struct Workload {
    let directory: String
    var setupPath: String { directory + "/setup.jsonl" }
    var eventsPath: String { directory + "/events.jsonl" }
    /// From workload.json: how many events the generator wrote and how many KV deliveries
    /// they create (docs/SEMANTICS.md §3, counted by the generator's own matcher).
    private(set) var expectedEvents: Int?
    private(set) var expectedDeliveries: Int?

    init(directory: String) throws {
        self.directory = directory
        for path in [directory + "/setup.jsonl", directory + "/events.jsonl"] where !fileExists(path) {
            throw BenchError("workload file \(path) is missing; generate it with: Tools/gen-workload \(directory)", usage: true)
        }
        let manifest = directory + "/workload.json"
        if fileExists(manifest) {
            let file = try LineFile(path: manifest)
            expectedEvents = Self.integer(named: "events", in: file.bytes)
            expectedDeliveries = Self.integer(named: "kv_deliveries", in: file.bytes)
        }
    }

    /// The integer value of `"name": N` in a flat JSON object (the manifest's shape), or nil.
    private static func integer(named name: String, in bytes: [UInt8]) -> Int? {
        let key = Array("\"\(name)\"".utf8)
        guard bytes.count >= key.count else { return nil }
        for start in 0...(bytes.count - key.count) where bytes[start..<(start + key.count)].elementsEqual(key) {
            var index = start + key.count
            while index < bytes.count, bytes[index] == UInt8(ascii: " ") || bytes[index] == UInt8(ascii: ":") { index += 1 }
            var value = 0
            var digits = 0
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                value = value * 10 + Int(bytes[index] - UInt8(ascii: "0"))
                digits += 1
                index += 1
            }
            return digits > 0 ? value : nil
        }
        return nil
    }
}

/// One result line: printed as a table row and as a JSON object.
struct Row {
    var workload: String
    var measure: String
    var value: Double
    var unit: String
    var peer: String = ""
    var target: String = ""
    var note: String = ""
    var extra: [(String, Double)] = []

    var json: String {
        var out = "{\"workload\":\(quote(workload)),\"measure\":\(quote(measure)),\"value\":\(number(value)),\"unit\":\(quote(unit))"
        if !peer.isEmpty { out += ",\"peer\":\(quote(peer))" }
        if !target.isEmpty { out += ",\"target\":\(quote(target))" }
        if !note.isEmpty { out += ",\"note\":\(quote(note))" }
        for (key, value) in extra { out += ",\(quote(key)):\(number(value))" }
        return out + "}"
    }
}

func quote(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        default:
            if scalar.value < 0x20 { out += "\\u00" + (scalar.value < 16 ? "0" : "") + String(scalar.value, radix: 16) } else { out.unicodeScalars.append(scalar) }
        }
    }
    return out + "\""
}

func number(_ v: Double) -> String {
    if v.isNaN || v.isInfinite { return "null" }
    if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
    return String(format3(v))
}

func format3(_ v: Double) -> String {
    let scaled = (v * 1000).rounded() / 1000
    return "\(scaled)"
}

/// 1234567.8 → "1,234,568".
func grouped(_ v: Double) -> String {
    guard v.isFinite else { return "-" }
    if abs(v) < 100 && v != v.rounded() { return format3(v) }
    let n = Int64(v.rounded())
    let digits = String(abs(n))
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + out
}

func pad(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

final class Reporter {
    let jsonFile: UnsafeMutablePointer<FILE>?
    var rows: [Row] = []

    init(jsonPath: String?) throws {
        if let jsonPath {
            guard let f = fopen(jsonPath, "a") else {
                throw BenchError("cannot open --json file \(jsonPath): \(String(cString: strerror(errno)))", usage: true)
            }
            jsonFile = f
        } else {
            jsonFile = nil
        }
        print(pad("workload", 14) + " " + pad("measure", 46) + " " + pad("value", 14) + " " + pad("unit", 12) + " " + pad("peer", 26) + " " + pad("target", 14) + " note")
    }

    deinit { if let jsonFile { fclose(jsonFile) } }

    func emit(_ row: Row) {
        rows.append(row)
        print(pad(row.workload, 14) + " " + pad(row.measure, 46) + " " + pad(grouped(row.value), 14) + " " + pad(row.unit, 12) + " "
              + pad(row.peer, 26) + " " + pad(row.target, 14) + " " + row.note)
        print("JSON " + row.json)
        if let jsonFile {
            fputs(row.json + "\n", jsonFile)
            fflush(jsonFile)
        }
        fflush(nil)
    }
}
