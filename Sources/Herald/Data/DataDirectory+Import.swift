import Dispatch
import HeraldCore
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
    /// The validated records are held in their compact binary form (``EncodedRecords``) until
    /// the end of the input (an import is atomic), then appended in group-committed batches.
    public func importLines(from path: String, environment: HeraldEnvironment = HeraldEnvironment(),
                            clock: HeraldClock = SystemClock(), batchRecords: Int = 4096,
                            progress: ((Int) -> Void)? = nil) throws -> ImportResult {
        let writer = try openWriter()
        let state = try currentState()
        let input = try LineReader(path: path)
        let start = ImportValidator(state: state, retryDefaults: environment.retryDefaults, nowMs: clock.nowMs())
        let decoder = start.decoder
        // Two stages on two cores: this thread reads and decodes lines (stateless); the
        // validating thread checks each against the state the lines before it build and keeps
        // the encoded record. Chunks go between them in line order through a bounded queue.
        let chunks = DecodedChunks(depth: 8)
        let validated = Mutex<(ImportValidator, EncodedRecords)?>(nil)
        let finished = DispatchSemaphore(value: 0)
        DispatchQueue.global(qos: .userInitiated).async {
            var validator = start
            var records = EncodedRecords(batchRecords: batchRecords)
            // Bound: one round per chunk; an empty chunk ends the input.
            while true {
                let chunk = chunks.take()
                if chunk.isEmpty { break }
                for (number, decoded) in chunk {
                    // Accepted records are kept even after a bad line: later attempt lines may need them.
                    if let record = validator.add(decoded: decoded, number: number, acceptedSoFar: { try records.decoded() }) {
                        records.append(record)
                    }
                }
            }
            validated.withLock { $0 = (validator, records) }
            finished.signal()
        }
        var chunk: [(Int, ImportValidator.Decoded)] = []
        chunk.reserveCapacity(DecodedChunks.chunkLines)
        do {
            defer {
                if !chunk.isEmpty { chunks.put(chunk) }
                chunks.put([])
                finished.wait()
            }
            try input.forEachLine { line, number in
                chunk.append((number, ImportValidator.decode(line, with: decoder)))
                if chunk.count == DecodedChunks.chunkLines {
                    chunks.put(chunk)
                    chunk.removeAll(keepingCapacity: true)
                }
                if number % 100_000 == 0 { progress?(number) }
            }
        }
        guard let (validator, records) = validated.withLock({ $0.take() }) else {
            preconditionFailure("the validating stage ended without a result")
        }
        guard validator.errors.isEmpty else {
            throw HeraldError.invalidInput(source: input.source, errors: validator.errors, more: validator.errorsDropped)
        }
        let positions = try writer.append(records)
        return ImportResult(lines: records.count, positions: positions)
    }
}

/// Decoded lines in chunks, handed in order from the reading thread to the validating one;
/// `put` waits while `depth` chunks are queued.
final class DecodedChunks: Sendable {
    typealias Chunk = [(Int, ImportValidator.Decoded)]
    static let chunkLines = 1024
    private let queue = Mutex<[Chunk]>([])
    private let filled = DispatchSemaphore(value: 0)
    private let free: DispatchSemaphore

    init(depth: Int) {
        free = DispatchSemaphore(value: depth)
    }

    func put(_ chunk: Chunk) {
        free.wait()
        queue.withLock { $0.append(chunk) }
        filled.signal()
    }

    func take() -> Chunk {
        filled.wait()
        let chunk = queue.withLock { $0.removeFirst() }
        free.signal()
        return chunk
    }
}
