import HeraldCore
import HeraldLog
import Synchronization

/// Reads records back from the log, decoding each payload: the data directory's segment log,
/// or a log kept elsewhere (``DataDirectory/externalLog``, a NATS JetStream stream).
public final class RecordReader: Sendable {
    private enum Backing: Sendable {
        case segments(LogReader)
        case external(any RecordSource)
    }
    private let backing: Backing
    /// The decoded snapshot of a compacted log, by its start (decoded once per reader).
    private let compacted = Mutex<CompactedState?>(nil)

    init(reader: LogReader) {
        backing = .segments(reader)
    }

    init(external source: any RecordSource) {
        backing = .external(source)
    }

    /// The last published position (0 for an empty log); looks for new blocks first.
    ///
    /// - Throws: what `LogReader.refresh()` throws (damage found at the end of the log).
    public var lastPosition: UInt64 {
        get throws {
            switch backing {
            case .segments(let reader): try reader.refresh()
            case .external(let source): try source.lastPosition
            }
        }
    }

    /// Damage at the end of the log that this reader stops before, when no writer is at work
    /// (see `LogReader.tailDamage`). Nil for an external log (it reports its own).
    public var tailDamage: TailDamage? {
        if case .segments(let reader) = backing { reader.tailDamage } else { nil }
    }

    /// What a compacted log starts from (see ``HeraldCore/CompactedState``); nil for a log
    /// that starts at position 1.
    ///
    /// - Throws: `LogError.damagedSnapshot` for a damaged snapshot file,
    ///   ``HeraldError/badSnapshot(position:offset:reason:)`` for one that does not decode.
    public func compactedStart() throws -> CompactedState? {
        switch backing {
        case .external(let source): return try source.compactedStart()
        case .segments(let reader):
            let start = try reader.firstPosition()
            guard start > 1 else { return nil }
            if let cached = compacted.withLock({ $0 }), cached.start == start { return cached }
            guard let snapshot = try reader.snapshot() else { return nil }
            let state: CompactedState
            do {
                state = try CompactedState(encoded: snapshot.payload)
            } catch {
                throw HeraldError.badSnapshot(position: snapshot.start, offset: error.offset, reason: error.reason)
            }
            guard state.start == snapshot.start else {
                throw HeraldError.badSnapshot(position: snapshot.start, offset: 0,
                                              reason: "it holds the state through position \(state.start - 1), not \(snapshot.start - 1)")
            }
            compacted.withLock { $0 = state }
            return state
        }
    }

    /// The log's first position: 1, or a compacted log's start.
    public var firstPosition: UInt64 {
        get throws {
            switch backing {
            case .segments(let reader): try reader.firstPosition()
            case .external(let source): try source.compactedStart()?.start ?? 1
            }
        }
    }

    private struct Stop: Error {}

    @inline(__always)
    private static func decode(position: UInt64, ts: Int64, _ payload: UnsafeRawBufferPointer, checked: Bool,
                               sharing buffer: [UInt8], at offset: Int) throws -> Record {
        do throws(RecordError) {
            return try RecordBinaryCodec.decodeRecord(ts: ts, payload, checked: checked, sharing: buffer, at: offset)
        } catch {
            throw HeraldError.badLogRecord(position: position, reason: error.description)
        }
    }

    /// True when every payload of `block` decodes (run on the read-ahead thread).
    @Sendable
    private static func payloadsValid(_ block: LogBlock) -> Bool {
        var valid = true
        block.forEachRecord { _, _, payload in
            if valid && !RecordBinaryCodec.isValid(payload) { valid = false }
        }
        return valid
    }

    /// Calls `body` for each record from `from` through `through` (inclusive; `nil` = the end
    /// as of the call). Stops early when `body` returns false. Seeks by the block index.
    ///
    /// A KV value in a record shares the decompressed block it was read from (no copy, see
    /// ``HeraldCore/JSONText``): keep ``HeraldCore/Record/compacted()`` copies of records
    /// kept for long, or each keeps its whole block (about 1 MiB) alive.
    ///
    /// When the range goes past the first block, the following blocks are read, checked and
    /// decompressed a few blocks ahead on a background thread (``LogCursor/forEachBlock(through:readAhead:_:)``)
    /// while `body` runs on the calling thread; records and errors arrive in the same order.
    public func forEach(from: UInt64 = 1, through: UInt64? = nil,
                        _ body: (UInt64, Record) throws -> Bool) throws {
        let reader: LogReader
        switch backing {
        case .segments(let segments): reader = segments
        case .external(let source): return try source.forEach(from: from, through: through, body)
        }
        let last = min(through ?? .max, try lastPosition)
        let first = max(from, 1)
        guard first <= last else { return }
        let cursor = try reader.makeCursor(from: first)
        /// Delivers one block's records; false once the range (or `body`) is done. `checked`:
        /// every payload of the block passed `RecordBinaryCodec.isValid`.
        func deliver(_ block: LogBlock, checked: Bool) throws -> Bool {
            if block.basePosition > last { return false }
            let buffer = block.buffer
            try block.forEachRecordAndOffset { position, ts, payload, offset in
                guard position >= first else { return }
                guard position <= last else { throw Stop() }
                // Decoded straight into the argument (no extra move); a KV value shares the
                // block's buffer.
                if try !body(position, try Self.decode(position: position, ts: ts, payload, checked: checked, sharing: buffer, at: offset)) { throw Stop() }
            }
            return block.endPosition <= last
        }
        do {
            // One block on this thread (a short read starts no thread), the rest read ahead;
            // the read-ahead thread also checks every payload, so the decoding here skips
            // the UTF-8 checks of the blocks that passed.
            guard let head = try cursor.nextBlock(), try deliver(head, checked: false) else { return }
            try cursor.forEachBlock(through: last, readAhead: 2, check: Self.payloadsValid, deliver)
        } catch is Stop {
            return
        } catch LogError.compacted(_, let position, let start) {
            // Said in the engine's words (the server answers it 404).
            throw HeraldError.compacted(position: position, firstPosition: start)
        }
    }
}
