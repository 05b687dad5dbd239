/// One record as seen by a reader. `payload` shares the block's decompressed buffer (no copy).
public struct LogRecord: Sendable {
    /// The record's position (dense, from 1).
    public var position: UInt64
    /// The record's timestamp.
    public var ts: Int64
    /// The record's bytes, a slice of the block's buffer.
    public var payload: ArraySlice<UInt8>
}

/// A decoded, checksum-verified block, possibly starting after the block's first record when
/// a cursor started inside it.
///
/// Iterate with `for record in block` (payloads are `ArraySlice`s sharing the block buffer) or,
/// fastest, with `forEachRecord` (payloads are borrowed `UnsafeRawBufferPointer`s).
public struct LogBlock: Sendable, Sequence {
    /// Position of the first record this block yields.
    public let basePosition: UInt64
    /// Number of records this block yields.
    public let count: Int
    /// Timestamp of the block's last record.
    public let lastTs: Int64
    /// Decompressed record bytes (framing included); only `0..<rawBytes` is meaningful.
    let bytes: [UInt8]
    let rawBytes: Int
    /// Byte offset of the first yielded record's framing.
    let startOffset: Int
    /// Timestamp of the record before the first yielded one (its delta base).
    let startTs: Int64

    /// Position after the last record.
    public var endPosition: UInt64 { basePosition + UInt64(count) }

    /// Calls `body` with each record's position, timestamp and payload. The payload pointer is
    /// valid only during the call. No allocation per record.
    public func forEachRecord(_ body: (_ position: UInt64, _ ts: Int64, _ payload: UnsafeRawBufferPointer) throws -> Void) rethrows {
        try forEachRecordAndOffset { position, ts, payload, _ in try body(position, ts, payload) }
    }

    /// The block's decompressed bytes, which the offsets of ``forEachRecordAndOffset(_:)``
    /// index. Keeping a slice of it keeps the whole buffer alive (at least 1 MiB: the cursor
    /// decompresses into a buffer that can hold any block).
    public var buffer: [UInt8] { bytes }

    /// ``forEachRecord(_:)`` that also passes the payload's offset in ``buffer``: for decoders
    /// that share the buffer instead of copying out of it.
    public func forEachRecordAndOffset(_ body: (_ position: UInt64, _ ts: Int64, _ payload: UnsafeRawBufferPointer, _ offset: Int) throws -> Void) rethrows {
        try bytes.withUnsafeBytes { all in
            let raw = UnsafeRawBufferPointer(rebasing: all[0..<Swift.min(rawBytes, all.count)])
            var offset = startOffset
            var ts = startTs
            var position = basePosition
            for _ in 0..<count {
                // The block was validated when decoded; these guards only keep hostile
                // states from trapping.
                guard let delta = RecordFraming.readVarint(raw, &offset),
                      let length = RecordFraming.readVarint(raw, &offset),
                      length <= UInt64(raw.count - offset) else { return }
                ts &+= Int64(truncatingIfNeeded: delta)
                let end = offset + Int(length)
                try body(position, ts, UnsafeRawBufferPointer(rebasing: raw[offset..<end]), offset)
                offset = end
                position += 1
            }
        }
    }

    /// An iterator over the block's records.
    public func makeIterator() -> Iterator {
        Iterator(block: self, offset: startOffset, ts: startTs, position: basePosition, remaining: count)
    }

    /// Iterates `LogRecord`s; payloads share the block's buffer.
    public struct Iterator: IteratorProtocol {
        let block: LogBlock
        var offset: Int
        var ts: Int64
        var position: UInt64
        var remaining: Int

        /// The next record, or nil after the last.
        public mutating func next() -> LogRecord? {
            guard remaining > 0 else { return nil }
            let limit = Swift.min(block.rawBytes, block.bytes.count)
            let found: (delta: UInt64, start: Int, end: Int)? = block.bytes.withUnsafeBytes { all in
                let raw = UnsafeRawBufferPointer(rebasing: all[0..<limit])
                var at = offset
                guard let delta = RecordFraming.readVarint(raw, &at),
                      let length = RecordFraming.readVarint(raw, &at),
                      length <= UInt64(raw.count - at) else { return nil }
                return (delta, at, at + Int(length))
            }
            guard let found else {
                remaining = 0
                return nil
            }
            ts &+= Int64(truncatingIfNeeded: found.delta)
            let record = LogRecord(position: position, ts: ts, payload: block.bytes[found.start..<found.end])
            offset = found.end
            position += 1
            remaining -= 1
            return record
        }
    }
}
