import Dispatch
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
    /// The validated records are held in their compact binary form (``EncodedRecords``), and
    /// framed and LZ4-compressed batch by batch on another thread (``PreparedBlocks``) while
    /// parsing goes on, until the end of the input (an import is atomic); then the blocks are
    /// written and synced as one commit.
    public func importLines(from path: String, environment: HeraldEnvironment = HeraldEnvironment(),
                            clock: HeraldClock = SystemClock(), batchRecords: Int = 4096,
                            progress: ((Int) -> Void)? = nil) throws -> ImportResult {
        let writer = try openWriter()
        // Closing cuts the active segment's preallocated end and releases the lock; an import
        // that fails still closes (it appended nothing).
        defer { try? writer.close() }
        let state = try currentState()
        let input = try LineReader(path: path)
        let start = ImportValidator(state: state, retryDefaults: environment.retryDefaults, nowMs: clock.nowMs())
        let decoder = start.decoder
        let configuration = writer.writer.configuration
        // Three stages, in line order, through bounded hand-offs (the two cores share them):
        // this thread reads and decodes lines (stateless); the validating thread checks each
        // against the state the lines before it build and encodes it; the compressing thread
        // frames and compresses each full batch. The log sees nothing until all lines are valid.
        let chunks = HandOff<[(Int, ImportValidator.Decoded)]>(depth: 8)
        let batches = HandOff<LogBatch>(depth: 4)
        let validated = Mutex<ImportValidator?>(nil)
        let compressed = Mutex<Result<PreparedBlocks, any Error>?>(nil)
        let finished = DispatchSemaphore(value: 0)
        DispatchQueue.global(qos: .userInitiated).async {
            var validator = start
            var records = EncodedRecords(batchRecords: batchRecords)
            // Bound: one round per chunk, until the end of the input.
            while var chunk = chunks.take() {
                // Each line is moved out of the chunk (popLast, after one reversal), not copied.
                chunk.reverse()
                while let (number, decoded) = chunk.popLast() {
                    // Accepted records are kept even after a bad line: later attempt lines may need them.
                    if let record = validator.add(decoded: decoded, number: number, acceptedSoFar: { try records.decoded() }) {
                        records.append(record)
                        // Compress only while the import can still be appended (no error yet).
                        if records.count % records.batchRecords == 0, validator.errors.isEmpty, let full = records.lastBatch {
                            batches.put(full)
                        }
                    }
                }
            }
            if records.count % records.batchRecords != 0, validator.errors.isEmpty, let last = records.lastBatch { batches.put(last) }
            batches.put(nil)
            validated.withLock { $0 = validator }
            finished.signal()
        }
        DispatchQueue.global(qos: .userInitiated).async {
            var prepared = PreparedBlocks(configuration: configuration)
            var failure: (any Error)?
            // Bound: one round per batch, until the validating thread ends.
            while let batch = batches.take() {
                guard failure == nil else { continue }
                do { try prepared.append(batch) } catch { failure = error }
            }
            let result: Result<PreparedBlocks, any Error> = failure.map { .failure($0) } ?? .success(prepared)
            compressed.withLock { $0 = result }
            finished.signal()
        }
        var chunk: [(Int, ImportValidator.Decoded)] = []
        chunk.reserveCapacity(chunkLines)
        do {
            defer {
                if !chunk.isEmpty { chunks.put(chunk) }
                chunks.put(nil)
                finished.wait()
                finished.wait()
            }
            try input.forEachLine { line, number in
                chunk.append((number, ImportValidator.decode(line, with: decoder)))
                if chunk.count == chunkLines {
                    chunks.put(chunk)
                    chunk.removeAll(keepingCapacity: true)
                }
                if number % 100_000 == 0 { progress?(number) }
            }
        }
        guard let validator = validated.withLock({ $0.take() }), let blocks = compressed.withLock({ $0.take() }) else {
            preconditionFailure("an import stage ended without a result")
        }
        guard validator.errors.isEmpty else {
            throw HeraldError.invalidInput(source: input.source, errors: validator.errors, more: validator.errorsDropped)
        }
        let prepared = try blocks.get()
        let positions = try writer.append(prepared)
        // The records are durable now (the append waited for their sync): a failure to cut the
        // segment's preallocated end on close loses nothing (the next writer finds the filler),
        // so it must not report the import as failed and invite a second, duplicate import.
        try? writer.close()
        return ImportResult(lines: prepared.count, positions: positions)
    }
}

/// Lines per chunk handed from the decoding thread to the validating one.
private let chunkLines = 1024

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
