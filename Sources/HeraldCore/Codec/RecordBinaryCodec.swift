/// The compact binary form of a record body, as the log stores it (Schema/interchange.md,
/// "Binary encoding", documents every byte). `ts` is not part of it: the log keeps it beside
/// each payload.
///
/// Byte 0 is the format version (``formatVersion``), byte 1 the ``RecordType`` raw value;
/// integers are LEB128 varints (signed ones zigzag-encoded), strings a varint length and
/// UTF-8, ids 16 raw bytes, optional parts behind a presence byte.
///
/// Decoding never traps: truncated input, unknown versions, types or enum values, invalid
/// UTF-8, non-minimal varints, lengths past the end and trailing bytes are errors.
///
/// ```swift
/// var payload: [UInt8] = []
/// RecordBinaryCodec.encode(.appDeleted(appID: app), into: &payload)
/// let body = try payload.withUnsafeBytes { try RecordBinaryCodec.decode($0) }
/// ```
public enum RecordBinaryCodec {
    /// The format version written as byte 0.
    public static let formatVersion: UInt8 = 1

    /// Appends the encoding of `body` to `out`.
    public static func encode(_ body: RecordBody, into out: inout [UInt8]) {
        if case .kv(let mutation) = body {
            // Nearly every record: sized once, written through one pointer.
            encodeKV(mutation, type: body.type, into: &out)
            return
        }
        out.append(formatVersion)
        out.append(body.type.rawValue)
        switch body {
        case .adminUserCreated(let adminUserID, let email):
            appendID(adminUserID, to: &out)
            appendString(email, to: &out)
        case .adminUserDeleted(let adminUserID):
            appendID(adminUserID, to: &out)
        case .appCreated(let appID, let name):
            appendID(appID, to: &out)
            appendString(name, to: &out)
        case .appDeleted(let appID):
            appendID(appID, to: &out)
        case .scriptRegistered(let script):
            appendID(script.scriptID, to: &out)
            appendID(script.appID, to: &out)
            appendString(script.name, to: &out)
            appendString(script.runtime, to: &out)
            appendString(script.source, to: &out)
        case .scriptDeleted(let scriptID):
            appendID(scriptID, to: &out)
        case .triggerRegistered(let trigger):
            appendID(trigger.triggerID, to: &out)
            appendID(trigger.appID, to: &out)
            appendID(trigger.scriptID, to: &out)
            out.append(trigger.kind.rawValue)
            out.append(trigger.enabled ? 1 : 0)
            out.append(trigger.dispatchMode.rawValue)
            appendVarInt(trigger.retry.maxAttempts, to: &out)
            out.append(trigger.retry.backoff.rawValue)
            appendVarInt(trigger.retry.baseMs, to: &out)
            appendID(trigger.registeredBy, to: &out)
            out.append((trigger.kv != nil ? 1 : 0) | (trigger.deadLetter != nil ? 2 : 0))
            if let kv = trigger.kv {
                appendString(kv.collectionGlob, to: &out)
                out.append(kv.ops.rawValue)
            }
            if let deadLetter = trigger.deadLetter {
                var mask: UInt8 = 0
                if deadLetter.sourceFilter != nil { mask |= 1 }
                if deadLetter.triggerIDFilter != nil { mask |= 2 }
                if deadLetter.scriptIDFilter != nil { mask |= 4 }
                out.append(mask)
                if let source = deadLetter.sourceFilter { out.append(source.rawValue) }
                if let trigger = deadLetter.triggerIDFilter { appendID(trigger, to: &out) }
                if let script = deadLetter.scriptIDFilter { appendID(script, to: &out) }
            }
        case .triggerUpdated(let update):
            appendID(update.triggerID, to: &out)
            var mask: UInt8 = 0
            if update.enabled != nil { mask |= 1 }
            if update.retry != nil { mask |= 2 }
            if update.kv != nil { mask |= 4 }
            if update.deadLetter != nil { mask |= 8 }
            out.append(mask)
            if let enabled = update.enabled { out.append(enabled ? 1 : 0) }
            if let retry = update.retry {
                out.append((retry.maxAttempts != nil ? 1 : 0) | (retry.backoff != nil ? 2 : 0) | (retry.baseMs != nil ? 4 : 0))
                if let maxAttempts = retry.maxAttempts { appendVarInt(maxAttempts, to: &out) }
                if let backoff = retry.backoff { out.append(backoff.rawValue) }
                if let baseMs = retry.baseMs { appendVarInt(baseMs, to: &out) }
            }
            if let kv = update.kv {
                out.append((kv.collectionGlob != nil ? 1 : 0) | (kv.ops != nil ? 2 : 0))
                if let glob = kv.collectionGlob { appendString(glob, to: &out) }
                if let ops = kv.ops { out.append(ops.rawValue) }
            }
            if let deadLetter = update.deadLetter {
                // Bits 0–2: the filter is set; bits 3–5: it is set to a value (not null).
                var mask: UInt8 = 0
                if case .set(let source) = deadLetter.sourceFilter { mask |= source != nil ? 0b1001 : 0b1 }
                if case .set(let trigger) = deadLetter.triggerIDFilter { mask |= trigger != nil ? 0b10010 : 0b10 }
                if case .set(let script) = deadLetter.scriptIDFilter { mask |= script != nil ? 0b100100 : 0b100 }
                out.append(mask)
                if case .set(let source?) = deadLetter.sourceFilter { out.append(source.rawValue) }
                if case .set(let trigger?) = deadLetter.triggerIDFilter { appendID(trigger, to: &out) }
                if case .set(let script?) = deadLetter.scriptIDFilter { appendID(script, to: &out) }
            }
        case .triggerDeleted(let triggerID):
            appendID(triggerID, to: &out)
        case .kv:
            return  // written whole by `encodeKV` above
        case .deliveryAttempted(let attempt):
            appendVarUInt(attempt.sourcePosition, to: &out)
            appendID(attempt.triggerID, to: &out)
            appendVarInt(attempt.attempt, to: &out)
            out.append(attempt.outcome.rawValue)
            out.append((attempt.error != nil ? 1 : 0) | (attempt.retryable ? 2 : 0))
            if let error = attempt.error { appendString(error, to: &out) }
            appendVarInt(attempt.durationMs, to: &out)
        case .deliveryRedriven(let action), .deliveryCancelled(let action):
            appendVarUInt(UInt64(action.deliveries.count), to: &out)
            for id in action.deliveries {
                appendVarUInt(id.sourcePosition, to: &out)
                appendID(id.triggerID, to: &out)
            }
            appendID(action.by, to: &out)
            out.append(action.reason != nil ? 1 : 0)
            if let reason = action.reason { appendString(reason, to: &out) }
        case .deliveryInvoked(let invocation):
            appendID(invocation.triggerID, to: &out)
            appendID(invocation.by, to: &out)
            invocation.payload.withUTF8 { payload in
                appendVarUInt(UInt64(payload.count), to: &out)
                out.append(contentsOf: payload)
            }
        }
    }

    /// The encoding of `body` as a new array.
    public static func encode(_ body: RecordBody) -> [UInt8] {
        var out: [UInt8] = []
        encode(body, into: &out)
        return out
    }

    /// Decodes one payload; every byte must be used.
    ///
    /// - Throws: ``RecordError`` naming the record type (when the type byte was read), the
    ///   field and what is wrong with it; `location` is left empty for the caller.
    public static func decode(_ bytes: UnsafeRawBufferPointer) throws(RecordError) -> RecordBody {
        try decodeRecord(ts: 0, bytes).body
    }

    /// Decodes one payload into a `Record` with timestamp `ts` (what log readers need), building
    /// the record in place instead of moving a decoded body into it.
    public static func decodeRecord(ts: Int64, _ bytes: UnsafeRawBufferPointer) throws(RecordError) -> Record {
        try decodeRecord(ts: ts, bytes, checked: false)
    }

    /// True when ``decode(_:)`` would accept `bytes`: the same checks, without keeping what
    /// they build. A scan runs it on its read-ahead thread, then decodes with
    /// `decodeRecord(ts:_:checked: true)` on the caller's.
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if isPlainValidKV(bytes) { return true }
        do throws(RecordError) {
            var reader = try BinaryReader(header: bytes)
            let type = reader.type.unsafelyUnwrapped
            switch type {
            case .kvInsert, .kvUpdate, .kvDelete: _ = try reader.kvLayout(type)
            default: _ = try reader.body(of: type)
            }
            try reader.end()
            return true
        } catch {
            return false
        }
    }

    /// True for a KV payload in its common shape — lengths in one- or two-byte varints, every
    /// string within the payload and valid UTF-8, nothing after the value — checked with plain
    /// loads and no error path; false means "not shown valid here", and ``isValid(_:)`` then
    /// runs every check. (A scan checks every payload this way on the thread that decompressed
    /// its block: half the instructions of the reader's checks.)
    @inline(__always)
    static func isPlainValidKV(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let count = bytes.count
        // version, type, 16-byte app id, three lengths and the presence byte at least.
        guard count >= 21, let base = bytes.baseAddress, base.load(as: UInt8.self) == formatVersion else { return false }
        let type = base.load(fromByteOffset: 1, as: UInt8.self)
        guard type == RecordType.kvInsert.rawValue || type == RecordType.kvUpdate.rawValue
                || type == RecordType.kvDelete.rawValue else { return false }
        var index = 18
        /// A length-prefixed UTF-8 string at `index`, moved past; false if it is not plain.
        @inline(__always) func string() -> Bool {
            guard index < count else { return false }
            var length = Int(base.load(fromByteOffset: index, as: UInt8.self))
            index += 1
            if length >= 0x80 {
                guard index < count else { return false }
                let second = base.load(fromByteOffset: index, as: UInt8.self)
                guard second != 0, second < 0x80 else { return false }
                length = (length & 0x7F) | Int(second) << 7
                index += 1
            }
            guard length <= count - index else { return false }
            let utf8 = UnsafeBufferPointer(start: (base + index).assumingMemoryBound(to: UInt8.self), count: length)
            index += length
            return isASCII(utf8) || isValidUTF8(utf8)
        }
        guard string(), string(), index < count else { return false }
        switch base.load(fromByteOffset: index, as: UInt8.self) {
        case 0:
            return index + 1 == count
        case 1:
            index += 1
            return string() && index == count
        default:
            return false
        }
    }

    /// ``decodeRecord(ts:_:)``; with `checked` true the caller vouches that ``isValid(_:)``
    /// accepted these very bytes, and the UTF-8 checks of the record's strings (most of a
    /// decode's work) are skipped. Every length is still checked against the payload, so even
    /// bytes that were not checked cannot make it read out of bounds.
    public static func decodeRecord(ts: Int64, _ bytes: UnsafeRawBufferPointer, checked: Bool) throws(RecordError) -> Record {
        try decodeRecord(ts: ts, bytes, checked: checked, sharing: nil)
    }

    /// ``decodeRecord(ts:_:checked:)`` of `bytes`, which are the bytes at `offset` of `buffer`
    /// (the caller holds them, e.g. inside `buffer.withUnsafeBytes`): a KV value shares
    /// `buffer` (``JSONText``) instead of copying its bytes, so decoding allocates nothing for it.
    public static func decodeRecord(ts: Int64, _ bytes: UnsafeRawBufferPointer, checked: Bool,
                                    sharing buffer: [UInt8], at offset: Int) throws(RecordError) -> Record {
        try decodeRecord(ts: ts, bytes, checked: checked, sharing: (buffer, offset))
    }

    /// `sharing`: the buffer `bytes` lies in and their offset in it.
    @inline(__always)
    private static func decodeRecord(ts: Int64, _ bytes: UnsafeRawBufferPointer, checked: Bool,
                                     sharing: (buffer: [UInt8], offset: Int)?) throws(RecordError) -> Record {
        var reader = try BinaryReader(header: bytes)
        reader.utf8Known = checked
        let type = reader.type.unsafelyUnwrapped
        switch type {
        case .kvInsert, .kvUpdate, .kvDelete:
            // Every check first (same fields, same order, same errors as `kv(_:)`), then the
            // strings and the record are built with nothing left that can throw: no copy of
            // the mutation is kept alive across a throwing call.
            let layout = try reader.kvLayout(type)
            try reader.end()
            // Shared: byte 0 of the buffer sits `offset` bytes before the payload.
            let buffer = sharing.flatMap { sharing in bytes.baseAddress.map { (sharing.buffer, $0 - sharing.offset) } }
            return Record(ts: ts, body: .kv(layout.mutation(sharing: buffer)))
        default:
            let body = try reader.body(of: type)
            try reader.end()
            return Record(ts: ts, body: body)
        }
    }

    /// Decodes one payload held in an array.
    public static func decode(_ bytes: [UInt8]) throws(RecordError) -> RecordBody {
        let result: Result<RecordBody, RecordError> = bytes.withUnsafeBytes { raw in
            do throws(RecordError) {
                return .success(try decode(raw))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    // MARK: Writing

    /// Zeros to grow an output buffer by before writing through a pointer.
    private static let zeroPad = [UInt8](repeating: 0, count: 16_384)

    /// The kv.* encoding (same bytes as the generic path): grows `out` by the largest possible
    /// size once, writes through a pointer, then trims to the bytes written.
    static func encodeKV(_ mutation: KVMutation, type: RecordType, into out: inout [UInt8]) {
        var collection = mutation.collection
        var key = mutation.key
        let value = mutation.value ?? JSONText.empty
        let hasValue = mutation.value != nil
        collection.withUTF8 { c in
            key.withUTF8 { k in
                value.withUTF8 { v in
                    // version, type, id, 3 varints (<= 10 bytes each), presence byte, strings.
                    let most = 2 + 16 + 30 + 1 + c.count + k.count + v.count
                    let start = out.count
                    if most <= zeroPad.count {
                        // A contiguous source appends with one memcpy; `repeatElement` goes byte by byte.
                        zeroPad.withUnsafeBufferPointer { out.append(contentsOf: UnsafeBufferPointer(rebasing: $0[0..<most])) }
                    } else {
                        out.append(contentsOf: repeatElement(0, count: most))
                    }
                    let written = out.withUnsafeMutableBytes { buffer -> Int in
                        let base = buffer.baseAddress.unsafelyUnwrapped
                        var at = start
                        base.storeBytes(of: formatVersion, toByteOffset: at, as: UInt8.self)
                        base.storeBytes(of: type.rawValue, toByteOffset: at + 1, as: UInt8.self)
                        base.storeBytes(of: mutation.appID.high.bigEndian, toByteOffset: at + 2, as: UInt64.self)
                        base.storeBytes(of: mutation.appID.low.bigEndian, toByteOffset: at + 10, as: UInt64.self)
                        at += 18
                        @inline(__always) func putVarint(_ value: Int) {
                            var remaining = UInt64(value)
                            while remaining >= 0x80 {
                                base.storeBytes(of: UInt8(truncatingIfNeeded: remaining) | 0x80, toByteOffset: at, as: UInt8.self)
                                remaining >>= 7
                                at += 1
                            }
                            base.storeBytes(of: UInt8(truncatingIfNeeded: remaining), toByteOffset: at, as: UInt8.self)
                            at += 1
                        }
                        @inline(__always) func putBytes(_ bytes: UnsafeBufferPointer<UInt8>) {
                            putVarint(bytes.count)
                            if let source = bytes.baseAddress, bytes.count > 0 {
                                (base + at).copyMemory(from: source, byteCount: bytes.count)
                                at += bytes.count
                            }
                        }
                        putBytes(c)
                        putBytes(k)
                        base.storeBytes(of: hasValue ? 1 : 0, toByteOffset: at, as: UInt8.self)
                        at += 1
                        if hasValue { putBytes(v) }
                        return at - start
                    }
                    out.removeLast(most - written)
                }
            }
        }
    }

    @inline(__always)
    static func appendVarUInt(_ value: UInt64, to out: inout [UInt8]) {
        var remaining = value
        while remaining >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: remaining) | 0x80)
            remaining >>= 7
        }
        out.append(UInt8(truncatingIfNeeded: remaining))
    }

    @inline(__always)
    static func appendVarInt(_ value: Int64, to out: inout [UInt8]) {
        appendVarUInt(UInt64(bitPattern: (value << 1) ^ (value >> 63)), to: &out)
    }

    @inline(__always)
    static func appendID(_ id: HeraldID, to out: inout [UInt8]) {
        withUnsafeBytes(of: id.high.bigEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: id.low.bigEndian) { out.append(contentsOf: $0) }
    }

    @inline(__always)
    static func appendString(_ string: String, to out: inout [UInt8]) {
        var string = string
        string.withUTF8 { utf8 in
            appendVarUInt(UInt64(utf8.count), to: &out)
            out.append(contentsOf: utf8)
        }
    }
}

/// Reads a payload; every read checks the remaining length (no read ever goes past
/// `count`, whatever the bytes say).
private struct BinaryReader {
    /// Start of the payload (nil only when `count` is 0).
    let base: UnsafeRawPointer?
    let count: Int
    var index = 0
    /// The record type once read; names the record in errors.
    var type: RecordType?
    /// The payload's strings are known to be valid UTF-8 (checked before, on these bytes).
    var utf8Known = false

    init(bytes: UnsafeRawBufferPointer) {
        self.base = bytes.baseAddress
        self.count = bytes.count
    }

    /// A reader past the version and type bytes (checked; `type` is set).
    @inline(__always)
    init(header bytes: UnsafeRawBufferPointer) throws(RecordError) {
        self.init(bytes: bytes)
        let version = try byte("version")
        guard version == RecordBinaryCodec.formatVersion else {
            throw fail("version", "unknown binary format version \(version) (this build reads \(RecordBinaryCodec.formatVersion))")
        }
        let typeByte = try byte("type")
        guard let type = RecordType(rawValue: typeByte) else {
            throw fail("type", "unknown record type byte \(typeByte)")
        }
        self.type = type
    }

    /// Every byte must have been used.
    @inline(__always)
    func end() throws(RecordError) {
        guard index == count else { throw fail(nil, "\(count - index) trailing bytes after the record") }
    }

    func fail(_ field: String?, _ reason: String) -> RecordError {
        RecordError(recordType: type?.name, field: field, reason: reason)
    }

    func truncated(_ field: String) -> RecordError {
        fail(field, "truncated record: the payload ends at byte \(count) inside this field")
    }

    /// The byte at `index`; callers have checked `index < count` (so `base` is non-nil).
    @inline(__always)
    func load(_ at: Int) -> UInt8 {
        base.unsafelyUnwrapped.load(fromByteOffset: at, as: UInt8.self)
    }

    @inline(__always)
    mutating func byte(_ field: String) throws(RecordError) -> UInt8 {
        guard index < count else { throw truncated(field) }
        let value = load(index)
        index += 1
        return value
    }

    @inline(__always)
    mutating func bool(_ field: String) throws(RecordError) -> Bool {
        switch try byte(field) {
        case 0: return false
        case 1: return true
        case let other: throw fail(field, "invalid boolean byte \(other)")
        }
    }

    /// A byte whose set bits must all be within `allowed`.
    mutating func mask(_ field: String, allowed: UInt8) throws(RecordError) -> UInt8 {
        let value = try byte(field)
        guard value & ~allowed == 0 else { throw fail(field, "invalid presence byte 0x\(String(value, radix: 16))") }
        return value
    }

    @inline(__always)
    mutating func varUInt(_ field: String) throws(RecordError) -> UInt64 {
        // One- and two-byte varints (lengths < 16,384) are the common case; anything else,
        // including every error, goes through the checked loop from the same index.
        if index < count {
            let first = load(index)
            if first < 0x80 {
                index += 1
                return UInt64(first)
            }
            if count - index >= 2 {
                let second = load(index + 1)
                if second < 0x80 && second != 0 {
                    index += 2
                    return UInt64(first & 0x7F) | UInt64(second) << 7
                }
            }
        }
        return try varUIntSlow(field)
    }

    mutating func varUIntSlow(_ field: String) throws(RecordError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let next = try byte(field)
            let payload = UInt64(next & 0x7F)
            if shift == 63 && payload > 1 { throw fail(field, "varint overflows 64 bits") }
            result |= payload << shift
            if next & 0x80 == 0 {
                if next == 0 && shift > 0 { throw fail(field, "non-minimal varint") }
                return result
            }
            shift += 7
            if shift > 63 { throw fail(field, "varint longer than 10 bytes") }
        }
    }

    mutating func varInt(_ field: String) throws(RecordError) -> Int64 {
        let raw = try varUInt(field)
        return Int64(bitPattern: (raw >> 1) ^ (0 &- (raw & 1)))
    }

    @inline(__always)
    mutating func id(_ field: String) throws(RecordError) -> HeraldID {
        guard count - index >= 16, let base else { throw truncated(field) }
        let high = UInt64(bigEndian: base.loadUnaligned(fromByteOffset: index, as: UInt64.self))
        let low = UInt64(bigEndian: base.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self))
        index += 16
        return HeraldID(high: high, low: low)
    }

    @inline(__always)
    mutating func string(_ field: String) throws(RecordError) -> String {
        try checkedString(field).make()
    }

    /// A checked UTF-8 field: where its bytes are (`start` is nil for an empty string).
    struct CheckedString {
        let start: UnsafePointer<UInt8>?
        let count: Int

        @inline(__always)
        func make() -> String {
            makeString(validUTF8: UnsafeBufferPointer(start: start, count: count))
        }

        /// The field as a value sharing `buffer`, whose byte 0 is at `base`.
        @inline(__always)
        func shared(in buffer: [UInt8], base: UnsafeRawPointer) -> JSONText {
            guard let start else { return JSONText(validUTF8: UnsafeBufferPointer(start: nil, count: 0)) }
            let offset = UnsafeRawPointer(start) - base
            return JSONText(sharing: buffer, range: offset..<offset + count)
        }
    }

    /// The fields of a kv record, every one checked, strings not yet built.
    struct KVLayout {
        let op: KVOp
        let appID: HeraldID
        let collection: CheckedString
        let key: CheckedString
        let value: CheckedString?

        /// Builds the strings (cannot fail: every byte was checked). The value shares `sharing`'s
        /// buffer (whose byte 0 is at its base) when given, else owns a copy of its bytes.
        @inline(__always)
        func mutation(sharing: (buffer: [UInt8], base: UnsafeRawPointer)? = nil) -> KVMutation {
            KVMutation(op: op, appID: appID, collection: collection.make(), key: key.make(),
                       value: value.map { value in
                           if let sharing { return value.shared(in: sharing.buffer, base: sharing.base) }
                           return JSONText(validUTF8: UnsafeBufferPointer(start: value.start, count: value.count))
                       })
        }
    }

    /// Like `string(_:)` (same checks and errors) without building the string.
    @inline(__always)
    mutating func checkedString(_ field: String) throws(RecordError) -> CheckedString {
        let length = try varUInt(field)
        guard length <= UInt64(count - index) else {
            throw fail(field, "string length \(length) runs past the end of the payload (\(count - index) bytes left)")
        }
        let length32 = Int(length)
        guard length32 > 0, let base else { return CheckedString(start: nil, count: 0) }
        let start = base.advanced(by: index).assumingMemoryBound(to: UInt8.self)
        index += length32
        let utf8 = UnsafeBufferPointer(start: start, count: length32)
        guard utf8Known || isASCII(utf8) || isValidUTF8(utf8) else { throw fail(field, "invalid UTF-8") }
        return CheckedString(start: start, count: length32)
    }

    /// `kv(_:)` in two steps: the checks (here), then `KVLayout.mutation()`.
    @inline(__always)
    mutating func kvLayout(_ type: RecordType) throws(RecordError) -> KVLayout {
        let op: KVOp = type == .kvInsert ? .insert : (type == .kvUpdate ? .update : .delete)
        let appID = try id("app_id")
        let collection = try checkedString("collection")
        let key = try checkedString("key")
        let value: CheckedString? = try bool("value") ? try checkedString("value") : nil
        return KVLayout(op: op, appID: appID, collection: collection, key: key, value: value)
    }

    mutating func enumByte<T: RawRepresentable>(_ field: String, _: T.Type) throws(RecordError) -> T where T.RawValue == UInt8 {
        let raw = try byte(field)
        guard let value = T(rawValue: raw) else { throw fail(field, "invalid value \(raw)") }
        return value
    }

    mutating func body(of type: RecordType) throws(RecordError) -> RecordBody {
        switch type {
        case .adminUserCreated:
            return .adminUserCreated(adminUserID: try id("admin_user_id"), email: try string("email"))
        case .adminUserDeleted:
            return .adminUserDeleted(adminUserID: try id("admin_user_id"))
        case .appCreated:
            return .appCreated(appID: try id("app_id"), name: try string("name"))
        case .appDeleted:
            return .appDeleted(appID: try id("app_id"))
        case .scriptRegistered:
            return .scriptRegistered(ScriptRegistration(
                scriptID: try id("script_id"), appID: try id("app_id"), name: try string("name"),
                runtime: try string("runtime"), source: try string("source")))
        case .scriptDeleted:
            return .scriptDeleted(scriptID: try id("script_id"))
        case .triggerRegistered:
            let triggerID = try id("trigger_id")
            let appID = try id("app_id")
            let scriptID = try id("script_id")
            let kind = try enumByte("kind", TriggerKind.self)
            let enabled = try bool("enabled")
            let dispatchMode = try enumByte("dispatch_mode", DispatchMode.self)
            let retry = RetryConfig(maxAttempts: try varInt("retry.max_attempts"),
                                    backoff: try enumByte("retry.backoff", Backoff.self),
                                    baseMs: try varInt("retry.base_ms"))
            let registeredBy = try id("registered_by")
            let details = try mask("details", allowed: 0b11)
            var kv: KVDetails?
            if details & 1 != 0 {
                kv = KVDetails(collectionGlob: try string("kv.collection_glob"), ops: try ops())
            }
            var deadLetter: DeadLetterDetails?
            if details & 2 != 0 {
                let filters = try mask("dead_letter", allowed: 0b111)
                var value = DeadLetterDetails()
                if filters & 1 != 0 { value.sourceFilter = try enumByte("dead_letter.source_filter", SourceKind.self) }
                if filters & 2 != 0 { value.triggerIDFilter = try id("dead_letter.trigger_id_filter") }
                if filters & 4 != 0 { value.scriptIDFilter = try id("dead_letter.script_id_filter") }
                deadLetter = value
            }
            return .triggerRegistered(TriggerRegistration(
                triggerID: triggerID, appID: appID, scriptID: scriptID, kind: kind, enabled: enabled,
                dispatchMode: dispatchMode, retry: retry, registeredBy: registeredBy, kv: kv, deadLetter: deadLetter))
        case .triggerUpdated:
            var update = TriggerUpdate(triggerID: try id("trigger_id"))
            let fields = try mask("fields", allowed: 0b1111)
            if fields & 1 != 0 { update.enabled = try bool("enabled") }
            if fields & 2 != 0 {
                let set = try mask("retry", allowed: 0b111)
                var patch = RetryPatch()
                if set & 1 != 0 { patch.maxAttempts = try varInt("retry.max_attempts") }
                if set & 2 != 0 { patch.backoff = try enumByte("retry.backoff", Backoff.self) }
                if set & 4 != 0 { patch.baseMs = try varInt("retry.base_ms") }
                update.retry = patch
            }
            if fields & 4 != 0 {
                let set = try mask("kv", allowed: 0b11)
                var patch = KVPatch()
                if set & 1 != 0 { patch.collectionGlob = try string("kv.collection_glob") }
                if set & 2 != 0 { patch.ops = try ops() }
                update.kv = patch
            }
            if fields & 8 != 0 {
                let set = try mask("dead_letter", allowed: 0b111111)
                // A filter "set to a value" must also be "set".
                guard (set >> 3) & ~set == 0 else { throw fail("dead_letter", "invalid presence byte 0x\(String(set, radix: 16))") }
                var patch = DeadLetterPatch()
                if set & 1 != 0 {
                    patch.sourceFilter = .set(set & 8 != 0 ? try enumByte("dead_letter.source_filter", SourceKind.self) : nil)
                }
                if set & 2 != 0 {
                    patch.triggerIDFilter = .set(set & 16 != 0 ? try id("dead_letter.trigger_id_filter") : nil)
                }
                if set & 4 != 0 {
                    patch.scriptIDFilter = .set(set & 32 != 0 ? try id("dead_letter.script_id_filter") : nil)
                }
                update.deadLetter = patch
            }
            return .triggerUpdated(update)
        case .triggerDeleted:
            return .triggerDeleted(triggerID: try id("trigger_id"))
        case .kvInsert, .kvUpdate, .kvDelete:
            return .kv(try kvLayout(type).mutation())
        case .deliveryAttempted:
            let sourcePosition = try varUInt("source_position")
            let triggerID = try id("trigger_id")
            let attempt = try varInt("attempt")
            let outcome = try enumByte("outcome", AttemptOutcome.self)
            let flags = try mask("flags", allowed: 0b11)
            let error: String? = flags & 1 != 0 ? try string("error") : nil
            return .deliveryAttempted(DeliveryAttempt(
                sourcePosition: sourcePosition, triggerID: triggerID, attempt: attempt, outcome: outcome,
                error: error, retryable: flags & 2 != 0, durationMs: try varInt("duration_ms")))
        case .deliveryRedriven, .deliveryCancelled:
            let count = try varUInt("deliveries")
            // Each id takes at least 17 bytes: a count the payload cannot hold is refused before
            // anything is allocated for it.
            guard count <= UInt64(OperatorAction.deliveriesMax), count <= UInt64((self.count - index) / 17) else {
                throw fail("deliveries", "invalid count \(count)")
            }
            var deliveries: [DeliveryID] = []
            deliveries.reserveCapacity(Int(count))
            for index in 0..<Int(count) {
                let position = try varUInt("deliveries[\(index)]")
                deliveries.append(DeliveryID(sourcePosition: position, triggerID: try id("deliveries[\(index)]")))
            }
            let by = try id("by")
            let reason: String? = try mask("flags", allowed: 0b1) != 0 ? try string("reason") : nil
            let action = OperatorAction(deliveries: deliveries, by: by, reason: reason)
            return type == .deliveryRedriven ? .deliveryRedriven(action) : .deliveryCancelled(action)
        case .deliveryInvoked:
            let triggerID = try id("trigger_id")
            let by = try id("by")
            let payload = try checkedString("payload")
            return .deliveryInvoked(ManualInvocation(triggerID: triggerID, by: by,
                                                     payload: JSONText(validUTF8: UnsafeBufferPointer(start: payload.start, count: payload.count))))
        }
    }

    mutating func ops() throws(RecordError) -> OpSet {
        OpSet(rawValue: try mask("kv.ops", allowed: OpSet.all.rawValue))
    }
}

extension RecordBinaryCodec {
    /// The log's default limit on one record's encoding: HeraldLog's
    /// `LogConfiguration.payloadBytesMax`, 16,777,216 bytes (16 MiB).
    public static let recordBytesMaxDefault = 16 << 20

    /// Checks that `body` encodes (``encode(_:into:)``) to at most `limitBytes` bytes, the
    /// largest payload the log takes, so an input line or an append that is too large is
    /// refused with its validation errors instead of failing the log's append.
    ///
    /// Costs a few string lengths: the record is encoded only when they come near the limit.
    ///
    /// - Throws: ``RecordError``: "record encodes to N bytes, over the L-byte record limit".
    public static func checkEncodedSize(_ body: RecordBody, limitBytes: Int) throws(RecordError) {
        guard encodedBytesUpperBound(body) > limitBytes else { return }
        let bytes = encode(body).count
        guard bytes > limitBytes else { return }
        throw RecordError(recordType: body.type.name,
                          reason: "record encodes to \(grouped(bytes)) bytes, over the \(grouped(limitBytes))-byte record limit")
    }

    /// At least the length of `body`'s encoding: its strings' bytes plus 256, more than the
    /// fixed fields, flags and length prefixes of any record type take (a trigger
    /// registration's, the largest, about 160).
    static func encodedBytesUpperBound(_ body: RecordBody) -> Int {
        let strings: Int
        switch body {
        case .adminUserCreated(_, let email): strings = email.utf8.count
        case .appCreated(_, let name): strings = name.utf8.count
        case .scriptRegistered(let script):
            strings = script.name.utf8.count + script.runtime.utf8.count + script.source.utf8.count
        case .triggerRegistered(let trigger): strings = trigger.kv?.collectionGlob.utf8.count ?? 0
        case .triggerUpdated(let update): strings = update.kv?.collectionGlob?.utf8.count ?? 0
        case .kv(let mutation):
            strings = mutation.collection.utf8.count + mutation.key.utf8.count + (mutation.value?.count ?? 0)
        case .deliveryAttempted(let attempt): strings = attempt.error?.utf8.count ?? 0
        case .deliveryRedriven(let action), .deliveryCancelled(let action):
            strings = action.deliveries.count * 26 + (action.reason?.utf8.count ?? 0)
        case .deliveryInvoked(let invocation): strings = invocation.payload.count
        case .adminUserDeleted, .appDeleted, .scriptDeleted, .triggerDeleted: strings = 0
        }
        return strings + 256
    }

    /// `16777216` as `16,777,216`.
    private static func grouped(_ number: Int) -> String {
        let digits = Array(String(number.magnitude))
        var text = number < 0 ? "-" : ""
        for (index, digit) in digits.enumerated() {
            if index > 0 && (digits.count - index) % 3 == 0 { text.append(",") }
            text.append(digit)
        }
        return text
    }
}
