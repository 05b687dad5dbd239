import HeraldCore

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
        var validator = ImportValidator(state: state, retryDefaults: environment.retryDefaults, nowMs: clock.nowMs())
        var records = EncodedRecords(batchRecords: batchRecords)
        try input.forEachLine { line, number in
            // Accepted records are kept even after a bad line: later attempt lines may need them.
            if let record = validator.add(line: line, number: number, acceptedSoFar: { try records.decoded() }) {
                records.append(record)
            }
            if number % 100_000 == 0 { progress?(number) }
        }
        guard validator.errors.isEmpty else {
            throw HeraldError.invalidInput(source: input.source, errors: validator.errors, more: validator.errorsDropped)
        }
        let positions = try writer.append(records)
        return ImportResult(lines: records.count, positions: positions)
    }
}
