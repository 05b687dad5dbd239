import Dispatch
import Foundation
import HeraldCore
import HeraldLog
import Synchronization

/// What an import did.
public struct ImportResult: Sendable {
    /// Lines read and appended.
    public var lines: Int
    /// Positions of the appended records (nil when the input was empty).
    public var positions: ClosedRange<UInt64>?
}

extension DataDirectory {
    /// `herald import`: reads JSON Lines from `path` (`-` = standard input), validates every
    /// line against the state the lines before it build, and appends all of them — or, if
    /// any line is invalid, nothing, throwing ``HeraldError/invalidInput(source:errors:more:)``
    /// that lists each bad line.
    ///
    /// The validated records are encoded (``EncodedRecords``) and handed on batch by batch to
    /// another thread that frames and LZ4-compresses them (``PreparedBlocks``) while parsing
    /// goes on. An import is atomic, so the compressed blocks are held until the end of the
    /// input (about a quarter of its size; after a bad line, the records accepted since are
    /// held uncompressed, as nothing will be appended); then they are written and synced as
    /// one commit.
    public func importLines(from path: String, environment: HeraldEnvironment = HeraldEnvironment(),
                            clock: HeraldClock = SystemClock(), batchRecords: Int = 4096,
                            progress: ((Int) -> Void)? = nil) throws -> ImportResult {
        let writer = try openImportLog()
        // Closing cuts the active segment's preallocated end and releases the lock; an import
        // that fails still closes (it appended nothing).
        defer { try? writer.close() }
        let state = try currentState()
        let input = try LineReader(path: path)
        let start = ImportValidator(state: state, retryDefaults: environment.retryDefaults, nowMs: clock.nowMs(),
                                    recordBytesMax: writer.recordBytesMax)
        let decoder = start.decoder
        // Four stages, in line order, through bounded hand-offs (the cores share them): this
        // thread reads lines into chunks; `decoders` threads decode the chunks (stateless;
        // chunk k goes to decoder k mod `decoders`, decoding is the longest stage); the
        // validating thread takes the decoded chunks back in order and checks each line against
        // the state the lines before it build, and encodes it; the compressing thread frames
        // and compresses each full batch. The log sees nothing until all lines are valid.
        let decoders = max(1, min(4, ProcessInfo.processInfo.activeProcessorCount))
        let raw = (0..<decoders).map { _ in HandOff<LineChunk>(depth: 4) }
        let decoded = (0..<decoders).map { _ in HandOff<[(Int, ImportValidator.Decoded)]>(depth: 4) }
        let batches = HandOff<ToCompress>(depth: 4)
        let validated = Mutex<ImportValidator?>(nil)
        // The compressed blocks are the only copy of the records validated so far (the
        // validator hands each full batch on and forgets it): `acceptedSoFar` reads them back.
        let prepared = Mutex(writer.makePreparedBlocks())
        let compressFailure = Mutex<(any Error)?>(nil)
        /// Calls `visit` with each record compressed so far, in order, once the compressing
        /// thread has caught up (streamed: never all of them decoded at once).
        @Sendable func forEachCompressed(_ visit: (Record) throws -> Void) throws {
            let caughtUp = DispatchSemaphore(value: 0)
            batches.put(.flush(caughtUp))
            caughtUp.wait()
            if let failure = compressFailure.withLock({ $0 }) { throw failure }
            try prepared.withLock { blocks in
                try blocks.forEachRecord { ts, payload in try visit(try RecordBinaryCodec.decodeRecord(ts: ts, payload)) }
            }
        }
        let finished = DispatchSemaphore(value: 0)
        for index in 0..<decoders {
            let input = raw[index], output = decoded[index]
            startStage("herald-import-decode") {
                // Bound: one round per chunk, until the reader's end.
                while let chunk = input.take() {
                    output.put(chunk.decodeReversed(with: decoder))
                }
                output.put(nil)
                finished.signal()
            }
        }
        startStage("herald-import-validate") {
            var validator = start
            var records = EncodedRecords(batchRecords: batchRecords)
            // Bound: one round per chunk, until the end of the input (each decoder's stream ends
            // with nil; chunk k is the next item of decoder k mod `decoders`).
            var next = 0
            while var chunk = decoded[next % decoders].take() {
                next += 1
                // Last line first (see `decodeReversed`): each is moved out, not copied.
                while let (number, line) = chunk.popLast() {
                    // Accepted records are kept even after a bad line: later attempt lines may need them.
                    if let record = validator.add(decoded: line, number: number, acceptedSoFar: { visit in
                        // Every record accepted so far, in order: the compressed ones, then those still held.
                        try forEachCompressed(visit)
                        try records.forEachDecoded(visit)
                    }) {
                        records.append(record)
                        // Compress only while the import can still be appended (no error yet).
                        if records.count % records.batchRecords == 0, validator.errors.isEmpty, let full = records.lastBatch {
                            batches.put(.records(full))
                            records.release()
                        }
                    }
                }
            }
            // The other decoders' end markers (each hand-off is left empty).
            for other in 1..<decoders { _ = decoded[(next + other) % decoders].take() }
            if records.count % records.batchRecords != 0, validator.errors.isEmpty, let last = records.lastBatch { batches.put(.records(last)) }
            batches.put(nil)
            validated.withLock { $0 = validator }
            finished.signal()
        }
        startStage("herald-import-compress") {
            // Bound: one round per item, until the validating thread ends.
            while let item = batches.take() {
                switch item {
                case .records(let batch):
                    guard compressFailure.withLock({ $0 == nil }) else { continue }
                    do {
                        try prepared.withLock { try $0.append(batch) }
                    } catch {
                        compressFailure.withLock { $0 = error }
                    }
                case .flush(let caughtUp):
                    caughtUp.signal()
                }
            }
            finished.signal()
        }
        var chunk = LineChunk()
        var chunks = 0
        do {
            defer {
                if !chunk.isEmpty { raw[chunks % decoders].put(chunk) }
                for input in raw { input.put(nil) }
                for _ in 0..<(decoders + 2) { finished.wait() }
            }
            try input.forEachLine { line, number in
                chunk.append(line, number: number)
                if chunk.count == chunkLines {
                    raw[chunks % decoders].put(chunk)
                    chunks += 1
                    chunk = LineChunk()
                }
                if number % 100_000 == 0 { progress?(number) }
            }
        }
        guard let validator = validated.withLock({ $0.take() }) else {
            preconditionFailure("the validating stage ended without a result")
        }
        // A compression failure first: lines that needed the compressed records back report it
        // only as "cannot re-read".
        if let failure = compressFailure.withLock({ $0 }) { throw failure }
        guard validator.errors.isEmpty else {
            throw HeraldError.invalidInput(source: input.source, errors: validator.errors, more: validator.errorsDropped)
        }
        let blocks = prepared.withLock { $0 }
        let positions = try writer.append(blocks)
        // The records are durable now (the append waited for their sync): a failure to cut the
        // segment's preallocated end on close loses nothing (the next writer finds the filler),
        // so it must not report the import as failed and invite a second, duplicate import.
        try? writer.close()
        return ImportResult(lines: blocks.count, positions: positions)
    }
}

/// What the validating thread hands the compressing one: a full batch, or a request to signal
/// once every batch before it is compressed.
private enum ToCompress: Sendable {
    case records(LogBatch)
    case flush(DispatchSemaphore)
}

/// Starts an import stage on a thread of its own. Not on Dispatch's global queue: its
/// threads are as many as the cores, and stages that block on their hand-offs would hold them
/// all (four stages on two cores ran one at a time).
private func startStage(_ name: String, _ body: @escaping @Sendable () -> Void) {
    let thread = Thread(block: body)
    thread.name = name
    thread.start()
}

/// Lines per chunk handed from the reading thread to a decoding one, and on to the validating one.
private let chunkLines = 1024

/// Lines copied out of the reader's buffer, for a decoding thread.
private struct LineChunk: Sendable {
    private var bytes: [UInt8] = []
    private var ends: [Int] = []
    private var firstNumber = 0

    init() {
        bytes.reserveCapacity(chunkLines * 320)
        ends.reserveCapacity(chunkLines)
    }

    var count: Int { ends.count }
    var isEmpty: Bool { ends.isEmpty }

    /// Adds line `number` (lines come in order, numbered consecutively).
    mutating func append(_ line: UnsafeBufferPointer<UInt8>, number: Int) {
        if ends.isEmpty { firstNumber = number }
        bytes.append(contentsOf: line)
        ends.append(bytes.count)
    }

    /// Each line decoded, with its number, **last line first**: the validator takes them in
    /// order with `popLast`, which moves each out (reversing the array afterwards would copy
    /// every decoded line, retaining its strings).
    /// KV values share the chunk's bytes (no allocation per line); the chunk's buffer is freed
    /// once the validating thread has encoded its last value.
    func decodeReversed(with decoder: RecordJSONDecoder) -> [(Int, ImportValidator.Decoded)] {
        var lines: [(Int, ImportValidator.Decoded)] = []
        lines.reserveCapacity(ends.count)
        for index in ends.indices.reversed() {
            let start = index == 0 ? 0 : ends[index - 1]
            lines.append((firstNumber + index, ImportValidator.decode(in: bytes, range: start..<ends[index], with: decoder)))
        }
        return lines
    }
}

/// Items handed in order from one thread to another; `put` waits while `depth` are queued,
/// `put(nil)` ends the stream (`take` then returns nil).
final class HandOff<Element: Sendable>: Sendable {
    private let queue = Mutex<[Element?]>([])
    private let filled = DispatchSemaphore(value: 0)
    private let free: DispatchSemaphore

    init(depth: Int) {
        free = DispatchSemaphore(value: depth)
    }

    func put(_ item: Element?) {
        free.wait()
        queue.withLock { $0.append(item) }
        filled.signal()
    }

    func take() -> Element? {
        filled.wait()
        let item = queue.withLock { $0.removeFirst() }
        free.signal()
        return item
    }
}
