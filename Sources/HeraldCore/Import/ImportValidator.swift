/// Validates JSON Lines against the state the log has built, line by line, the way
/// `herald import` does (docs/SEMANTICS.md §2.6): each line is checked against the state the lines
/// before it build; a bad line is reported and skipped, so every bad line is found at once.
///
/// ```swift
/// var validator = ImportValidator(state: dispatcher, retryDefaults: .builtIn, nowMs: clock.nowMs())
/// var accepted: [Record] = []
/// for (number, line) in lines {
///     if let record = validator.add(line: line, number: number, acceptedSoFar: { visit in try accepted.forEach(visit) }) {
///         accepted.append(record)
///     }
/// }
/// if validator.errors.isEmpty { append(accepted) }
/// ```
public struct ImportValidator: Sendable {
    /// The state after the accepted lines so far.
    public private(set) var state: Dispatcher
    /// Every bad line's error, in line order, each located `line N`.
    public private(set) var errors: [RecordError] = []
    /// Number of lines accepted.
    public private(set) var acceptedCount = 0
    /// Cap on reported errors; counting goes on past it.
    public let errorsMax: Int
    /// Bad lines beyond ``errorsMax``.
    public private(set) var errorsDropped = 0
    /// The decoder ``add(line:number:acceptedSoFar:)`` uses.
    public let decoder: RecordJSONDecoder
    /// The largest record encoding the log takes; a line whose record encodes to more is bad.
    public let recordBytesMax: Int
    private let nowMs: Int64
    private var effects: [DispatchEffect] = []
    /// The state the import started from, kept for the switch to delivery tracking.
    private let start: Dispatcher

    /// - Parameters:
    ///   - state: the dispatcher as of the log's last position.
    ///   - retryDefaults: HERALD_RETRY_* defaults for registrations that omit them.
    ///   - nowMs: the clock reading that stamps lines without `ts` (`max(now, last ts)`).
    ///   - recordBytesMax: the log's payload limit (16 MiB unless the log is configured otherwise).
    public init(state: Dispatcher, retryDefaults: RetryConfig, nowMs: Int64, errorsMax: Int = 1000,
                recordBytesMax: Int = RecordBinaryCodec.recordBytesMaxDefault) {
        self.start = state
        self.state = state
        // Deliveries are derived only once an attempt line needs them (see `add`).
        self.state.tracksDeliveries = false
        self.decoder = RecordJSONDecoder(retryDefaults: retryDefaults)
        self.nowMs = nowMs
        self.errorsMax = errorsMax
        self.recordBytesMax = recordBytesMax
    }

    /// Validates one line (without its newline). Returns the record to append, or `nil`
    /// when the line is bad (its error is in ``errors``).
    ///
    /// Until the first `delivery.attempted` line, the state keeps only the registry (no other
    /// rule depends on deliveries). At that line the validator derives them: from the start
    /// state it re-applies every line accepted so far, which `acceptedSoFar` passes to its
    /// argument one by one, in order (streamed: an import never holds them all decoded).
    public mutating func add(line: UnsafeBufferPointer<UInt8>, number: Int,
                             acceptedSoFar: AcceptedSoFar) -> Record? {
        add(decoded: Self.decode(line, with: decoder), number: number, acceptedSoFar: acceptedSoFar)
    }

    /// Calls its argument with every record accepted so far, in order.
    public typealias AcceptedSoFar = (_ visit: (Record) throws -> Void) throws -> Void

    /// A line decoded by ``decode(_:with:)`` (stateless, so it may run on another thread), or
    /// the error that rejected it.
    public typealias Decoded = Result<DecodedLine, RecordError>

    /// The stateless half of ``add(line:number:acceptedSoFar:)``: decodes one line.
    public static func decode(_ line: UnsafeBufferPointer<UInt8>, with decoder: RecordJSONDecoder) -> Decoded {
        decoded { () throws(RecordError) in try decoder.decode(line: line) }
    }

    /// ``decode(_:with:)`` of the line at `range` of `buffer`; its KV value shares `buffer`.
    public static func decode(in buffer: [UInt8], range: Range<Int>, with decoder: RecordJSONDecoder) -> Decoded {
        decoded { () throws(RecordError) in try decoder.decode(in: buffer, range: range) }
    }

    private static func decoded(_ decode: () throws(RecordError) -> (ts: Int64?, body: RecordBody)) -> Decoded {
        do throws(RecordError) {
            let (ts, body) = try decode()
            return .success(DecodedLine(ts: ts, body: body))
        } catch {
            return .failure(error)
        }
    }

    /// The stateful half of ``add(line:number:acceptedSoFar:)``: validates a line decoded by
    /// ``decode(_:with:)`` (lines must come in order, each exactly once).
    public mutating func add(decoded: consuming Decoded, number: Int, acceptedSoFar: AcceptedSoFar) -> Record? {
        do throws(RecordError) {
            // A consuming switch takes the line apart (`Result.get()` copied it first).
            let ts: Int64?
            let body: RecordBody
            switch consume decoded {
            case .success(let line):
                ts = line.ts
                body = line.body
            case .failure(let error):
                throw error
            }
            // Stateless, like decoding: the log would refuse the whole append for this line.
            try RecordBinaryCodec.checkEncodedSize(body, limitBytes: recordBytesMax)
            if body.actsOnDeliveries, !state.tracksDeliveries {
                var full = start
                var scratch: [DispatchEffect] = []
                do {
                    try acceptedSoFar { record in
                        scratch.removeAll(keepingCapacity: true)
                        full.applyChecked(record, effects: &scratch)
                    }
                } catch {
                    throw RecordError(reason: "cannot re-read the lines accepted so far: \(error)")
                }
                state = full
            }
            let record = Record(ts: ts ?? max(nowMs, state.lastTs ?? 0), body: body)
            try state.check(record, statelessRulesChecked: true)
            effects.removeAll(keepingCapacity: true)
            state.applyChecked(record, effects: &effects)
            acceptedCount += 1
            return record
        } catch {
            if errors.count < errorsMax {
                errors.append(error.at("line \(number)"))
            } else {
                errorsDropped += 1
            }
            return nil
        }
    }
}

/// One JSON line decoded: its `ts` (nil when omitted) and body.
public struct DecodedLine: Sendable {
    public var ts: Int64?
    public var body: RecordBody

    public init(ts: Int64?, body: RecordBody) {
        self.ts = ts
        self.body = body
    }
}
