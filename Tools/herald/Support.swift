import ArgumentParser
import Glibc
import Herald
import HeraldNATS
import HeraldCore
import Synchronization

/// Options every subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Data directory (default: $HERALD_DATA, else ./herald-data).")
    var data: String?

    @Option(name: .long, help: ArgumentHelp("Read the log from a NATS JetStream stream instead of the data directory's log/ (nats://HOST:PORT[,HOST:PORT…]/STREAM; default: $HERALD_LOG). The data directory then holds only the projection.",
                                            valueName: "nats-url"))
    var log: String?

    var directory: DataDirectory {
        get throws {
            let variables = ProcessEnvironment.variables
            var directory = DataDirectory(path: data ?? variables["HERALD_DATA"] ?? "./herald-data",
                                          fileSystem: try KillingFileSystem.fromEnvironment(variables), diagnostics: Diagnostics.print)
            if let location = log ?? variables["HERALD_LOG"] {
                _ = try JetStreamLog.parse(location)  // a bad URL fails here, naming it
                let stream: @Sendable () throws -> JetStreamLog = {
                    let stream = try JetStreamLog(url: location)
                    stream.diagnostics = Diagnostics.print
                    return stream
                }
                directory.externalLog = ExternalLog(
                    location: location, openReader: stream,
                    openEngineLog: { try JetStreamRecordLog(url: location, diagnostics: Diagnostics.print) },
                    openImportLog: stream)
            }
            return directory
        }
    }
}

enum ProcessEnvironment {
    /// The process environment, read once.
    static var variables: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}

/// Buffered standard output: one write per 64 KiB, not per line.
struct Output {
    private var buffer: [UInt8] = []

    init() {
        buffer.reserveCapacity(1 << 16)
    }

    mutating func write(_ text: String) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= 1 << 16 { flush() }
    }

    mutating func write(bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 16 { flush() }
    }

    mutating func write(bytes: UnsafeBufferPointer<UInt8>) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= 1 << 16 { flush() }
    }

    mutating func flush() {
        Output.writeNow(buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes `bytes` to stdout at once, unbuffered (retrying an interrupted write).
    static func writeNow(_ bytes: [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { raw -> Int in
                guard let base = raw.baseAddress else { return 0 }
                return Glibc.write(1, base + offset, raw.count - offset)
            }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            offset += n
        }
    }
}

/// Writes to standard error.
func printError(_ text: String) {
    var line = text
    if !line.hasSuffix("\n") { line += "\n" }
    var bytes = Array(line.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { raw -> Int in
            guard let base = raw.baseAddress else { return 0 }
            return Glibc.write(2, base + offset, raw.count - offset)
        }
        if n <= 0 { break }
        offset += n
    }
}

/// Warnings for the operator on standard error, each printed once per process (a command may
/// open the log several times).
enum Diagnostics {
    private static let printed = Mutex<Set<String>>([])

    @Sendable static func print(_ message: String) {
        let first = printed.withLock { $0.insert(message).inserted }
        if first { printError(message) }
    }
}

/// An error about the data (a position past the log's end, a delivery an action cannot take):
/// printed as `Error: …` without the usage, exit 1. Usage errors (`ValidationError`) exit 2.
struct DataError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// True when standard error is a terminal (progress is shown only then).
var stderrIsTerminal: Bool { isatty(2) != 0 }

/// Parses a `--at P` value against the log: 0…last position. Outside it is a usage error
/// (exit 2, with the usage), as docs/SEMANTICS.md §3.5 says.
func checkedPosition(_ position: UInt64?, in directory: DataDirectory) throws -> UInt64? {
    guard let position else { return nil }
    let last = try directory.openReader().lastPosition
    guard position <= last else {
        throw ValidationError("--at \(position) is outside the log (0…\(last))")
    }
    return position
}

extension HeraldID: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(argument)
    }
}

extension DeliveryStatus: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(name: argument)
    }

    /// The names help and completions offer (not the raw values).
    public static var allValueStrings: [String] { allCases.map(\.wireName) }
    public var defaultValueDescription: String { wireName }
}

/// `text` for people, `json` (one object) for tools: `herald status` and `herald stats`.
enum SummaryFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
}

/// `table` for people, `jsonl` for tools.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table
    case jsonl
}

/// Left-aligned text columns.
/// A record time as printed for people: the epoch milliseconds and, beside them, the same
/// instant in UTC (ISO 8601); the milliseconds alone when they name no such instant.
func withUTC(_ ms: Int64) -> String {
    let utc = Timestamp.iso8601(ms)
    return utc == String(ms) ? utc : "\(ms) (\(utc))"
}

func renderTable(header: [String], rows: [[String]]) -> String {
    var widths = header.map(\.count)
    for row in rows {
        for (index, cell) in row.enumerated() where index < widths.count {
            widths[index] = max(widths[index], cell.count)
        }
    }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { index, cell in
            index == cells.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
        }.joined(separator: "  ")
    }
    return ([line(header)] + rows.map(line)).joined(separator: "\n") + "\n"
}
