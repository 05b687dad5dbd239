/// Record framing inside a block's uncompressed bytes: for each record,
/// `varint(ts - previousTs)` (previousTs starts at the block's firstTs), `varint(payload.count)`,
/// then the payload. Varints are unsigned LEB128, at most 10 bytes.
enum RecordFraming {
    /// Bytes `value` takes as a varint.
    @inline(__always) static func varintSize(_ value: UInt64) -> Int {
        var v = value
        var n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    @inline(__always) static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(truncatingIfNeeded: v))
    }

    /// Decodes a varint at `offset`, advancing it. Returns nil on truncation or overflow.
    @inline(__always) static func readVarint(_ bytes: UnsafeRawBufferPointer, _ offset: inout Int) -> UInt64? {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        var i = offset
        while i < bytes.count {
            let byte = bytes[i]
            i += 1
            if shift == 63 && byte > 1 { return nil }
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 {
                offset = i
                return result
            }
            shift += 7
            if shift > 63 { return nil }
        }
        return nil
    }

    /// Checks that `bytes` hold exactly `count` well-formed records whose timestamps run from
    /// `firstTs` to `lastTs`; returns the byte offset of record `skip` (0-based) and the
    /// timestamp its delta applies to, or a reason.
    static func validate(_ bytes: UnsafeRawBufferPointer, count: UInt32, firstTs: Int64, lastTs: Int64, skip: Int) -> Result<(offset: Int, ts: Int64), HeaderProblem> {
        var offset = 0
        var ts = firstTs
        var skipPoint = (offset: 0, ts: firstTs)
        for index in 0..<Int(count) {
            if index == skip { skipPoint = (offset, ts) }
            guard let delta = readVarint(bytes, &offset) else { return .failure(.init("record \(index): bad timestamp varint")) }
            guard delta <= UInt64(Int64.max) else { return .failure(.init("record \(index): timestamp delta overflows")) }
            let (next, overflow) = ts.addingReportingOverflow(Int64(delta))
            guard !overflow, next <= lastTs else { return .failure(.init("record \(index): timestamp beyond the block's last timestamp")) }
            ts = next
            guard let length = readVarint(bytes, &offset) else { return .failure(.init("record \(index): bad length varint")) }
            guard length <= UInt64(bytes.count - offset) else { return .failure(.init("record \(index): payload of \(length) bytes runs past the block")) }
            offset += Int(length)
        }
        guard offset == bytes.count else { return .failure(.init("\(bytes.count - offset) trailing bytes after the last record")) }
        guard ts == lastTs else { return .failure(.init("last record's timestamp \(ts) differs from the header's \(lastTs)")) }
        return .success(skipPoint)
    }
}
