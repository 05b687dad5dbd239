import ArgumentParser
import Herald
import HeraldCore
import HeraldNATS

struct CopyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Copy a log between a data directory and a NATS JetStream stream, then prove the two equal.",
        discussion: """
            --from and --to are each a data directory or nats://HOST:PORT[,HOST:PORT…]/STREAM[?replicas=N] \
            (the stream is created on first write: file storage, N replicas, deletes and purges \
            denied). The destination must be empty or hold exactly the source's first records (a \
            copy that stopped resumes). Records go over in appends of --batch-records, each one \
            transaction; then both logs are read back and compared record by record. Exit 1 \
            naming the first position that differs.
            """)

    @Option(help: "The log to read: a data directory or a nats:// URL.")
    var from: String

    @Option(help: "The log to append to: a data directory or a nats:// URL.")
    var to: String

    @Option(help: "Records per append (each one transaction).")
    var batchRecords = 4_096

    func validate() throws {
        guard (1...100_000).contains(batchRecords) else { throw ValidationError("--batch-records must be 1…100,000, not \(batchRecords)") }
        guard from != to else { throw ValidationError("--from and --to are the same log") }
    }

    /// A log to append to.
    enum Destination {
        case directory(DataDirectory, RecordWriter)
        case stream(JetStreamLog)

        var source: any RecordSource {
            get throws {
                switch self {
                case .directory(let directory, _): try directory.openReader()
                case .stream(let log): log
                }
            }
        }

        func append(_ records: [Record]) throws {
            switch self {
            case .directory(_, let writer): _ = try writer.append(records)
            case .stream(let log): _ = try log.append(records)
            }
        }

        func close() throws {
            if case .directory(_, let writer) = self { try writer.close() }
        }
    }

    static func openSource(_ location: String) throws -> any RecordSource {
        if JetStreamLog.isNATS(location) {
            let log = try JetStreamLog(url: location)
            log.diagnostics = Diagnostics.print
            return log
        }
        return try DataDirectory(path: location, diagnostics: Diagnostics.print).openReader()
    }

    func run() throws {
        let source = try Self.openSource(from)
        if let start = try source.compactedStart() {
            throw HeraldError.notOnCompactedLog(command: "copy", firstPosition: start.start)
        }
        let destination: Destination
        if JetStreamLog.isNATS(to) {
            let log = try JetStreamLog(url: to)
            log.diagnostics = Diagnostics.print
            destination = .stream(log)
        } else {
            let directory = DataDirectory(path: to, diagnostics: Diagnostics.print)
            destination = .directory(directory, try directory.openWriter())
        }
        defer { try? destination.close() }
        let sourceLast = try source.lastPosition
        let already = try destination.source.lastPosition
        guard already <= sourceLast else {
            throw CopyError("\(to) holds \(already) records, more than the \(sourceLast) of \(from): it is another log")
        }
        if let position = try Self.firstDifference(source, try destination.source, through: already) {
            throw CopyError("\(to) already holds \(already) records, and position \(position) differs from \(from): it is another log; copy into an empty one")
        }
        var batch: [Record] = []
        batch.reserveCapacity(batchRecords)
        try source.forEach(from: already + 1, through: sourceLast) { _, record in
            batch.append(record.compacted())
            if batch.count == batchRecords {
                try destination.append(batch)
                batch.removeAll(keepingCapacity: true)
            }
            return true
        }
        if !batch.isEmpty { try destination.append(batch) }
        let copied = try destination.source
        let copiedLast = try copied.lastPosition
        guard copiedLast == sourceLast else {
            throw CopyError("\(to) ends at position \(copiedLast) after the copy, \(from) at \(sourceLast)")
        }
        // Compared again only when something was copied (the first comparison covered it all otherwise).
        if sourceLast > already, let position = try Self.firstDifference(source, copied, through: sourceLast) {
            throw CopyError("position \(position) differs between \(from) and \(to) after the copy")
        }
        print("copied positions \(already + 1)…\(sourceLast) (\(sourceLast - already) records) from \(from) to \(to); "
              + "both hold the same \(sourceLast) records, compared one by one")
    }

    /// The first position through `last` whose record (ts and binary encoding) differs, read
    /// in chunks from both; nil when none does.
    static func firstDifference(_ a: any RecordSource, _ b: any RecordSource, through last: UInt64) throws -> UInt64? {
        var start: UInt64 = 1
        let chunk: UInt64 = 8_192
        while start <= last {
            let end = min(last, start + chunk - 1)
            var left: [(Int64, [UInt8])] = []
            try a.forEach(from: start, through: end) { _, record in
                left.append((record.ts, RecordBinaryCodec.encode(record.body)))
                return true
            }
            var index = 0
            var differing: UInt64?
            try b.forEach(from: start, through: end) { position, record in
                guard index < left.count, left[index].0 == record.ts, left[index].1 == RecordBinaryCodec.encode(record.body) else {
                    differing = position
                    return false
                }
                index += 1
                return true
            }
            if let differing { return differing }
            if index != left.count || UInt64(left.count) != end - start + 1 { return start + UInt64(min(index, left.count)) }
            start = end + 1
        }
        return nil
    }
}

struct CopyError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
