#if canImport(Glibc)
import Glibc
#endif
import HeraldCore
import HeraldLog

/// A Herald log kept in a NATS JetStream stream: message n of the stream is the n-th Herald
/// block (Schema/log-format.md: the 64-byte header and the LZ4 frame of its records, chained by
/// CRC), so a record's position is in its block's header, never guessed from a sequence.
///
/// - **Appends.** Each block is published with `Nats-Expected-Last-Sequence` (the fence: a
///   writer whose view of the stream is stale fails on its next publish and appends nothing
///   more) and `Nats-Msg-Id` = this writer's id and the sequence (a publish whose ack was lost
///   is sent again and deduplicated by the server). An append of several blocks flags every
///   block but its last `continues`; its records count once the last block is in the stream.
/// - **Torn appends.** A writer that died between the blocks of one append leaves an open
///   transaction at the stream's end, which readers do not show. The next writer supersedes it:
///   its first block starts at the open transaction's first position and chains from the CRC
///   before it; readers drop a transaction so superseded. Its records were never acknowledged.
/// - **Gaps.** Readers check every message: a missing sequence, a block that does not start at
///   the expected position or does not chain to the block before, or a damaged block stops the
///   read with an error naming the stream sequence and the positions — never skipped.
///
/// URL: `nats://HOST:PORT[,HOST:PORT…]/STREAM[?replicas=N]` (the stream's subject is
/// `herald.STREAM`; created on first write with N replicas, default 1, deletes and purges
/// denied, discard-new).
public final class JetStreamLog: RecordSource, PreparedBlocksLog, @unchecked Sendable {
    // @unchecked: one owner at a time, as the segment log's reader and writer; the scan state
    // is only touched by the calls of that owner.
    public let location: String
    let stream: String
    let subject: String
    let replicas: Int64
    private let client: NATSClient
    /// Told a superseded (torn) transaction and other warnings.
    public var diagnostics: (@Sendable (String) -> Void)?

    /// What the stream holds, as far as scanned: committed blocks in order, and the open
    /// transaction after them (in flight, or torn).
    private struct Scan {
        var sequence: UInt64 = 0
        var blocks: [(sequence: UInt64, base: UInt64, end: UInt64)] = []
        var nextPosition: UInt64 = 1
        var chain: UInt32 = 0
        var open: [(sequence: UInt64, block: StandaloneBlock)] = []
    }
    private var scan = Scan()
    private let writerID: String
    /// The stream allows direct gets (streams Herald creates do): blocks are fetched raw.
    private var direct = false
    /// Block sizes and compression of appended blocks.
    private let configuration: LogConfiguration
    /// True once this writer read the stream's end (at its first append). It never reads it
    /// again before an append: an append by anyone else since makes its next publish fail.
    private var writing = false

    /// Parses `url` and connects. Nothing is created until the first append.
    /// Blocks of at most 512 KiB of records: a block's message stays under NATS's default
    /// 1 MiB payload limit even when its records do not compress (a single larger record gets a
    /// block of its own, which the server refuses if it is over its `max_payload`).
    public static let defaultConfiguration = LogConfiguration(blockRawBytesMax: 512 << 10)

    public init(url: String, timeoutMs: Int64 = 2_000, configuration: LogConfiguration = JetStreamLog.defaultConfiguration) throws {
        self.configuration = configuration
        let parsed = try Self.parse(url)
        location = url
        stream = parsed.stream
        subject = "herald." + parsed.stream
        replicas = parsed.replicas
        client = try NATSClient(servers: parsed.servers, timeoutMs: timeoutMs)
        var generator = SystemRandomNumberGenerator()
        writerID = String(generator.next(), radix: 16) + String(generator.next(), radix: 16)
    }

    /// True for a `nats://` location.
    public static func isNATS(_ location: String) -> Bool { location.hasPrefix("nats://") }

    public static func parse(_ url: String) throws -> (servers: String, stream: String, replicas: Int64) {
        func bad(_ why: String) -> JetStreamLogError { .badURL(url: url, reason: why) }
        guard url.hasPrefix("nats://") else { throw bad("it does not start with nats://") }
        let rest = url.dropFirst("nats://".count)
        guard let slash = rest.firstIndex(of: "/") else { throw bad("no /STREAM after the servers") }
        let servers = rest[..<slash].split(separator: ",").map { "nats://" + $0 }
        guard !servers.isEmpty, servers.allSatisfy({ $0.count > 7 }) else { throw bad("no server") }
        var path = rest[rest.index(after: slash)...]
        var replicas: Int64 = 1
        if let question = path.firstIndex(of: "?") {
            let query = path[path.index(after: question)...]
            path = path[..<question]
            for item in query.split(separator: "&") {
                let pair = item.split(separator: "=", maxSplits: 1)
                guard pair.count == 2, pair[0] == "replicas", let n = Int64(pair[1]), (1...5).contains(n) else {
                    throw bad("unknown option \(item) (only replicas=1…5)")
                }
                replicas = n
            }
        }
        let stream = String(path)
        guard !stream.isEmpty, stream.count <= 64,
              stream.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F || $0 == 0x2D })
        else { throw bad("the stream name \"\(stream)\" is not 1–64 of A-Z, a-z, 0-9, _ and -") }
        return (servers.joined(separator: ","), stream, replicas)
    }

    // MARK: - Reading

    /// Reads the messages after the last scanned one, checking each (see the type's notes).
    private func refresh() throws {
        guard let state = try client.streamState(stream) else { return }
        direct = state.allowsDirect
        while scan.sequence < state.lastSequence {
            let sequence = scan.sequence + 1
            guard let data = try fetch(sequence) else {
                throw JetStreamLogError.gap(location: location, sequence: sequence, position: scan.nextPosition,
                                            reason: "the stream has no message at this sequence (last sequence \(state.lastSequence))")
            }
            let block: StandaloneBlock
            switch StandaloneBlock.header(of: data) {
            case .success(let header): block = header
            case .failure(let problem):
                throw JetStreamLogError.damaged(location: location, sequence: sequence, reason: problem.reason)
            }
            if let first = scan.open.first?.block, block.basePosition == first.basePosition, block.previousCRC == first.previousCRC {
                let sequences = "\(scan.open.first?.sequence ?? 0)…\(scan.open.last?.sequence ?? 0)"
                diagnostics?("warning: \(location): stream sequences \(sequences) hold an append that was never completed "
                             + "(positions \(first.basePosition)…\(scan.open.last.map { $0.block.endPosition - 1 } ?? first.basePosition), "
                             + "never acknowledged); the writer after it superseded them")
                scan.open.removeAll()
            }
            let expected = scan.open.last?.block.endPosition ?? scan.nextPosition
            let chain = scan.open.last?.block.blockCRC ?? scan.chain
            guard block.basePosition == expected, block.previousCRC == chain else {
                throw JetStreamLogError.gap(location: location, sequence: sequence, position: expected,
                                            reason: "its block starts at position \(block.basePosition) with previous CRC \(block.previousCRC), "
                                            + "the log expects position \(expected) after CRC \(chain)")
            }
            absorb(block, at: sequence)
        }
    }

    /// Takes `block`, checked to follow the scan, as the one at `sequence`. Only its header
    /// is kept: an open transaction of a large import holds hundreds of blocks.
    private func absorb(_ block: StandaloneBlock, at sequence: UInt64) {
        var header = block
        header.bytes = []
        scan.open.append((sequence, header))
        scan.sequence = sequence
        if !block.continues {
            for entry in scan.open {
                scan.blocks.append((entry.sequence, entry.block.basePosition, entry.block.endPosition))
            }
            scan.nextPosition = block.endPosition
            scan.chain = block.blockCRC
            scan.open.removeAll()
        }
    }

    /// Message `sequence`: by direct get when the stream allows it; a replica that has not
    /// caught up yet answers "not found", so the leader is asked before it counts as a gap.
    private func fetch(_ sequence: UInt64) throws -> [UInt8]? {
        if direct, let data = try client.message(stream, sequence: sequence, direct: true) { return data }
        return try client.message(stream, sequence: sequence, direct: false)
    }

    /// The last position of a completed append (0: none).
    public var lastPosition: UInt64 {
        get throws {
            try refresh()
            return scan.nextPosition - 1
        }
    }

    public func forEach(from: UInt64 = 1, through: UInt64? = nil, _ body: (UInt64, Record) throws -> Bool) throws {
        let last = min(through ?? .max, try lastPosition)
        let first = max(from, 1)
        guard first <= last else { return }
        // The first block holding `first`: blocks are in position order.
        var low = 0, high = scan.blocks.count
        while low < high {
            let middle = (low + high) / 2
            if scan.blocks[middle].end <= first { low = middle + 1 } else { high = middle }
        }
        var index = low
        while index < scan.blocks.count, scan.blocks[index].base <= last {
            let entry = scan.blocks[index]
            guard let data = try fetch(entry.sequence) else {
                throw JetStreamLogError.gap(location: location, sequence: entry.sequence, position: entry.base,
                                            reason: "the message read before is gone")
            }
            let block: LogBlock
            switch StandaloneBlock.open(data) {
            case .success(let opened): block = opened
            case .failure(let problem):
                throw JetStreamLogError.damaged(location: location, sequence: entry.sequence, reason: problem.reason)
            }
            guard block.basePosition == entry.base else {
                throw JetStreamLogError.damaged(location: location, sequence: entry.sequence, reason: "the message changed since it was read")
            }
            var stop = false
            try block.forEachRecord { position, ts, payload in
                guard !stop, position >= first else { return }
                guard position <= last else { stop = true; return }
                let record: Record
                do throws(RecordError) {
                    record = Record(ts: ts, body: try RecordBinaryCodec.decode(payload))
                } catch {
                    throw JetStreamLogError.badRecord(location: location, position: position, reason: error.description)
                }
                if try !body(position, record) { stop = true }
            }
            if stop { return }
            index += 1
        }
    }

    // MARK: - Writing

    /// Makes this log the writer: creates the stream when missing (refuses one that allows
    /// deletes or purges), reads it to its end, and returns the last position the next append
    /// follows (a torn append at the end is superseded by it). Done by the first append anyway.
    @discardableResult
    public func openForAppending() throws -> UInt64 {
        if let state = try client.streamState(stream) {
            guard state.denies else {
                throw JetStreamLogError.badStream(location: location, reason: "it allows deleting or purging messages; Herald needs deny_delete and deny_purge")
            }
        } else {
            try client.createStream(stream, subject: subject, replicas: replicas)
        }
        try refresh()
        writing = true
        return (scan.open.first?.block.basePosition ?? scan.nextPosition) - 1
    }

    /// Appends `records` as one transaction (all or nothing for every reader) and returns
    /// their positions once the stream acknowledged every block.
    /// - Throws: ``JetStreamLogError/fenced(location:expected:reason:)`` when another writer
    ///   appended since this one read the stream; nothing of the batch then counts.
    @discardableResult
    public func append(_ records: [Record]) throws -> ClosedRange<UInt64> {
        precondition(!records.isEmpty, "append needs at least one record")
        var batch = LogBatch(records: records.count, bytes: records.count * 256)
        for record in records {
            batch.append(ts: record.ts) { RecordBinaryCodec.encode(record.body, into: &$0) }
        }
        var prepared = makePreparedBlocks()
        try prepared.append(batch)
        guard let range = try append(prepared) else { preconditionFailure("a batch of records made no block") }
        return range
    }

    /// The largest record: one alone in a block stays under NATS's default 1 MiB payload limit
    /// (LZ4's worst-case growth, the framing and the 64-byte header included).
    public var recordBytesMax: Int { (1 << 20) - (16 << 10) }

    /// Empty blocks of this log's size (at most 512 KiB of records each, by default).
    public func makePreparedBlocks() -> PreparedBlocks {
        PreparedBlocks(configuration: configuration)
    }

    /// Nothing to release: the connection closes with the object.
    public func close() throws {}

    /// Appends the blocks of `prepared` as one transaction (`herald import` onto a stream);
    /// returns their positions once the stream acknowledged the last block (nil when empty).
    @discardableResult
    public func append(_ prepared: PreparedBlocks) throws -> ClosedRange<UInt64>? {
        guard !prepared.isEmpty else { return nil }
        if !writing { try openForAppending() }
        // After a torn append, start where it started: readers then drop it.
        let base = scan.open.first?.block.basePosition ?? scan.nextPosition
        let chain = scan.open.first?.block.previousCRC ?? scan.chain
        let blocks = StandaloneBlock.seal(prepared, base: base, previousCRC: chain)
        for block in blocks {
            let expected = scan.sequence
            let id = "\(writerID)-\(expected + 1)"
            var waitedMs = 0
            while true {
                do {
                    let ack = try client.publish(block.bytes, subject: subject, id: id, expectedLastSequence: expected)
                    if ack.duplicate {
                        diagnostics?("note: \(location): the block of positions \(block.basePosition)…\(block.endPosition - 1) was stored "
                                     + "at sequence \(ack.sequence) already (its first acknowledgement was lost); not stored twice")
                    }
                    guard ack.sequence == expected + 1 else {
                        throw JetStreamLogError.fenced(location: location, expected: expected,
                                                       reason: "the stream stored the block at sequence \(ack.sequence)")
                    }
                    break
                } catch let error as NATSError where error.isTransient && waitedMs < 60_000 {
                    // The ack was lost, or the leader moved: the same id is deduplicated. Up to
                    // about a minute of elections (each try waits its timeout, or 250 ms).
                    if error.isTimeout {
                        waitedMs += Int(client.timeoutMs)
                    } else {
                        usleep(250_000)
                        waitedMs += 250
                    }
                } catch let error as NATSError where error.isWrongLastSequence {
                    throw JetStreamLogError.fenced(location: location, expected: expected, reason: error.description)
                }
            }
            // The ack says the block is at `expected + 1`, after the block this writer knows.
            if scan.open.first?.block.basePosition == block.basePosition, block.basePosition == base {
                scan.open.removeAll()  // this append supersedes a torn one
            }
            absorb(block, at: expected + 1)
        }
        let last = base + UInt64(prepared.count) - 1
        guard scan.nextPosition == last + 1 else {
            throw JetStreamLogError.fenced(location: location, expected: scan.sequence, reason: "the append did not complete as written")
        }
        return base...last
    }
}

/// Errors of the JetStream log.
public enum JetStreamLogError: Error, Sendable, CustomStringConvertible {
    case badURL(url: String, reason: String)
    case badStream(location: String, reason: String)
    /// A sequence or a position missing, or a block that does not follow the one before.
    case gap(location: String, sequence: UInt64, position: UInt64, reason: String)
    case damaged(location: String, sequence: UInt64, reason: String)
    case badRecord(location: String, position: UInt64, reason: String)
    /// Another writer appended since this one read the stream.
    case fenced(location: String, expected: UInt64, reason: String)

    public var description: String {
        switch self {
        case .badURL(let url, let reason):
            "\(url): not a JetStream log URL (nats://HOST:PORT[,HOST:PORT…]/STREAM[?replicas=N]): \(reason)"
        case .badStream(let location, let reason):
            "\(location): the stream is not usable as a Herald log: \(reason)"
        case .gap(let location, let sequence, let position, let reason):
            "\(location): stream sequence \(sequence) should hold position \(position): \(reason); the read stops here (restore the stream from a replica or a copy)"
        case .damaged(let location, let sequence, let reason):
            "\(location): the block at stream sequence \(sequence) is damaged: \(reason)"
        case .badRecord(let location, let position, let reason):
            "\(location): the record at position \(position) does not decode: \(reason)"
        case .fenced(let location, let expected, let reason):
            "\(location): another writer appended after stream sequence \(expected) (\(reason)); this writer stops, nothing more of its append counts"
        }
    }
}
