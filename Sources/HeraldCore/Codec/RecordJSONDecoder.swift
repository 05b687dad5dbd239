/// Decodes one JSON Lines record (`herald import`), strictly: every rule of docs/SEMANTICS.md §2.4 that
/// can be checked without the registry's state, including ``RecordRules``.
///
/// Errors leave ``RecordError/location`` empty; the caller adds `line N`.
///
/// ```swift
/// let decoder = RecordJSONDecoder(retryDefaults: .builtIn)
/// let line = Array(#"{"type":"app.deleted","app_id":"3f2504e0-4f89-11d3-9a0c-0305e82c3301"}"#.utf8)
/// let (ts, body) = try decoder.decode(line: line)   // ts == nil, body == .appDeleted(…)
/// ```
public struct RecordJSONDecoder: Sendable {
    /// The HERALD_RETRY_* defaults: an omitted field inside `retry` of a `trigger.registered`
    /// takes its value from here, and the resolved policy is stored in the record.
    public var retryDefaults: RetryConfig

    /// Creates a decoder that fills omitted retry fields from `retryDefaults`.
    public init(retryDefaults: RetryConfig = .builtIn) {
        self.retryDefaults = retryDefaults
    }

    /// Decodes one line: a JSON object, without its line break (a trailing `\r` is whitespace).
    ///
    /// - Returns: the record's `ts` (nil when omitted: the clock fills it) and its body.
    /// - Throws: ``RecordError`` with `recordType` when known, `field` as a JSON path
    ///   (`retry.max_attempts`, `kv.ops[1]`) and the reason.
    public func decode(line: UnsafeBufferPointer<UInt8>) throws(RecordError) -> (ts: Int64?, body: RecordBody) {
        try decode(line: line, sharing: nil)
    }

    /// Decodes the line at `range` of `buffer`; a KV value shares `buffer` (``JSONText``)
    /// instead of copying its bytes: what an import does with its chunks of lines.
    public func decode(in buffer: [UInt8], range: Range<Int>) throws(RecordError) -> (ts: Int64?, body: RecordBody) {
        let result: Result<(ts: Int64?, body: RecordBody), RecordError> = buffer.withUnsafeBufferPointer { all in
            do throws(RecordError) {
                return .success(try decode(line: UnsafeBufferPointer(rebasing: all[range]), sharing: (buffer, range.lowerBound)))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    private func decode(line: UnsafeBufferPointer<UInt8>, sharing: (buffer: [UInt8], offset: Int)?) throws(RecordError) -> (ts: Int64?, body: RecordBody) {
        try withUnsafeTemporaryAllocation(of: JSONSpan.self, capacity: JSONField.count) {
            (slots: UnsafeMutableBufferPointer<JSONSpan>) throws(RecordError) -> (ts: Int64?, body: RecordBody) in
            var parser = LineParser(bytes: line, slots: slots, retryDefaults: retryDefaults)
            parser.sharing = sharing
            return try parser.parse()
        }
    }

    /// Decodes one line given as bytes.
    public func decode(line: [UInt8]) throws(RecordError) -> (ts: Int64?, body: RecordBody) {
        let result: Result<(ts: Int64?, body: RecordBody), RecordError> = line.withUnsafeBufferPointer { buffer in
            do throws(RecordError) {
                return .success(try decode(line: buffer))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Decodes one line given as a string.
    public func decode(line: String) throws(RecordError) -> (ts: Int64?, body: RecordBody) {
        try decode(line: Array(line.utf8))
    }
}

/// The state of decoding one line.
private struct LineParser {
    let bytes: UnsafeBufferPointer<UInt8>
    let slots: UnsafeMutableBufferPointer<JSONSpan>
    let retryDefaults: RetryConfig
    var present: UInt32 = 0
    var typeName: String?
    /// The buffer `bytes` lies in, at `offset`: values then share it instead of copying.
    var sharing: (buffer: [UInt8], offset: Int)?

    init(bytes: UnsafeBufferPointer<UInt8>, slots: UnsafeMutableBufferPointer<JSONSpan>, retryDefaults: RetryConfig) {
        self.bytes = bytes
        self.slots = slots
        self.retryDefaults = retryDefaults
    }

    func fail(_ field: String?, _ reason: String) -> RecordError {
        RecordError(recordType: typeName, field: field, reason: reason)
    }

    // MARK: Pass 1: the object's syntax and its top-level fields

    mutating func parse() throws(RecordError) -> (ts: Int64?, body: RecordBody) {
        if bytes.count >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF {
            throw fail(nil, "byte-order mark at the start of the line; expected a JSON object")
        }
        var scanner = JSONScanner(bytes)
        scanner.skipWhitespace()
        if scanner.atEnd { throw fail(nil, "blank line; expected a JSON object") }
        guard scanner.peek == 0x7B else {
            throw fail(nil, scanner.error("expected a JSON object ('{'), \(scanner.found())").reason)
        }
        scanner.index += 1
        scanner.skipWhitespace()
        var duplicate: String?
        var unknown: String?
        if scanner.peek == 0x7D {
            scanner.index += 1
        } else {
            while true {
                guard scanner.peek == 0x22 else {
                    throw fail(nil, scanner.error("expected a string key, \(scanner.found())").reason)
                }
                let keySpan: JSONSpan
                do { keySpan = try scanner.scanString() } catch { throw fail(nil, error.reason) }
                let field = fieldNamed(keySpan)
                scanner.skipWhitespace()
                do { try scanner.expect(0x3A, "':' after an object key") } catch { throw fail(nil, error.reason) }
                scanner.skipWhitespace()
                let valueSpan: JSONSpan
                do {
                    valueSpan = try scanner.scanValue()
                } catch {
                    throw fail(field?.jsonName ?? text(keySpan), error.reason)
                }
                if let field {
                    if present & field.bit != 0 {
                        if duplicate == nil { duplicate = field.jsonName }
                    } else {
                        present |= field.bit
                        slots[field.rawValue] = valueSpan
                    }
                } else if unknown == nil {
                    unknown = text(keySpan)
                }
                scanner.skipWhitespace()
                if scanner.peek == 0x2C {
                    scanner.index += 1
                    scanner.skipWhitespace()
                    continue
                }
                do { try scanner.expect(0x7D, "',' or '}' after a field") } catch { throw fail(nil, error.reason) }
                break
            }
        }
        scanner.skipWhitespace()
        if !scanner.atEnd {
            throw fail(nil, scanner.error("unexpected data after the object, \(scanner.found())").reason)
        }

        // The type decides which fields are allowed.
        guard let typeSpan = span(.type) else {
            if duplicate == "type" { throw fail("type", "duplicate key") }
            throw fail("type", "required field is missing")
        }
        if duplicate == "type" { throw fail("type", "duplicate key") }
        guard typeSpan.kind == .string else {
            throw fail("type", typeSpan.kind == .null ? "must not be null" : "must be a string, not \(typeSpan.kind.phrase)")
        }
        let type: RecordType? = withContent(typeSpan) { JSONField.recordType($0) }
        guard let type else { throw fail("type", "unknown record type '\(text(typeSpan))'") }
        typeName = type.name

        if let duplicate { throw fail(duplicate, "duplicate key") }
        if let unknown { throw fail(unknown, "unknown field") }
        let masks = JSONField.masks[Int(type.rawValue)]
        if present & ~masks.allowed != 0 {
            let field = JSONField.allCases.first { present & ~masks.allowed & $0.bit != 0 }
            throw fail(field?.jsonName, "unknown field")
        }
        if masks.required & ~present != 0 {
            let missing = JSONField.layout(of: type).first { masks.required & ~present & $0.field.bit != 0 }
            throw fail(missing?.field.jsonName, "required field is missing")
        }

        var ts: Int64?
        if let tsSpan = span(.ts) { ts = try int64(tsSpan, "ts") }
        let body = try body(of: type)
        try RecordRules.check(body, ts: ts, valueIsValidated: true)
        return (ts, body)
    }

    // MARK: Pass 2: the fields of each type

    mutating func body(of type: RecordType) throws(RecordError) -> RecordBody {
        switch type {
        case .adminUserCreated:
            return .adminUserCreated(adminUserID: try id(required(.adminUserID), "admin_user_id"),
                                     email: try string(required(.email), "email"))
        case .adminUserDeleted:
            return .adminUserDeleted(adminUserID: try id(required(.adminUserID), "admin_user_id"))
        case .appCreated:
            return .appCreated(appID: try id(required(.appID), "app_id"), name: try string(required(.name), "name"))
        case .appDeleted:
            return .appDeleted(appID: try id(required(.appID), "app_id"))
        case .scriptRegistered:
            return .scriptRegistered(ScriptRegistration(
                scriptID: try id(required(.scriptID), "script_id"),
                appID: try id(required(.appID), "app_id"),
                name: try string(required(.name), "name"),
                runtime: try string(required(.runtime), "runtime"),
                source: try string(required(.source), "source")))
        case .scriptDeleted:
            return .scriptDeleted(scriptID: try id(required(.scriptID), "script_id"))
        case .triggerRegistered:
            return .triggerRegistered(try registration())
        case .triggerUpdated:
            return .triggerUpdated(try update())
        case .triggerDeleted:
            return .triggerDeleted(triggerID: try id(required(.triggerID), "trigger_id"))
        case .kvInsert, .kvUpdate, .kvDelete:
            let op: KVOp = type == .kvInsert ? .insert : (type == .kvUpdate ? .update : .delete)
            let appID = try id(required(.appID), "app_id")
            let collection = try string(required(.collection), "collection")
            let key = try string(required(.key), "key")
            var value: JSONText?
            if let valueSpan = span(.value) { value = rawText(valueSpan) }
            return .kv(KVMutation(op: op, appID: appID, collection: collection, key: key, value: value))
        case .deliveryAttempted:
            let sourcePosition = try uint64(required(.sourcePosition), "source_position")
            let triggerID = try id(required(.triggerID), "trigger_id")
            let attempt = try int64(required(.attempt), "attempt")
            let outcome: AttemptOutcome = try choice(required(.outcome), "outcome")
            var error: String?
            if let errorSpan = span(.error), errorSpan.kind != .null { error = try string(errorSpan, "error") }
            var retryable = true
            if let retryableSpan = span(.retryable) { retryable = try bool(retryableSpan, "retryable") }
            let durationMs = try int64(required(.durationMs), "duration_ms")
            return .deliveryAttempted(DeliveryAttempt(
                sourcePosition: sourcePosition, triggerID: triggerID, attempt: attempt,
                outcome: outcome, error: error, retryable: retryable, durationMs: durationMs))
        case .deliveryRedriven, .deliveryCancelled:
            let deliveries = try deliveryIDs(required(.deliveries))
            let by = try id(required(.by), "by")
            var reason: String?
            if let reasonSpan = span(.reason) { reason = try string(reasonSpan, "reason") }
            let action = OperatorAction(deliveries: deliveries, by: by, reason: reason)
            return type == .deliveryRedriven ? .deliveryRedriven(action) : .deliveryCancelled(action)
        case .deliveryInvoked:
            let triggerID = try id(required(.triggerID), "trigger_id")
            let by = try id(required(.by), "by")
            return .deliveryInvoked(ManualInvocation(triggerID: triggerID, by: by, payload: try rawText(required(.payload))))
        }
    }

    /// `deliveries`: an array of `"P:TRIGGER_ID"` strings (P without leading zeros).
    func deliveryIDs(_ array: JSONSpan) throws(RecordError) -> [DeliveryID] {
        guard array.kind == .array else {
            throw fail("deliveries", array.kind == .null ? "must not be null" : "must be an array, not \(array.kind.phrase)")
        }
        var ids: [DeliveryID] = []
        var scanner = JSONScanner(bytes, at: array.start + 1)
        scanner.skipWhitespace()
        if scanner.peek == 0x5D { return ids }
        while true {
            let path = "deliveries[\(ids.count)]"
            let element = try scanned(path) { () throws(JSONSyntaxError) in try scanner.scanValue() }
            guard element.kind == .string else {
                throw fail(path, element.kind == .null ? "must not be null"
                    : "must be a delivery id string \"P:TRIGGER_ID\", not \(element.kind.phrase)")
            }
            let id: DeliveryID? = withContent(element) { DeliveryID(strict: $0) }
            guard let id else {
                throw fail(path, "'\(text(element))' is not a delivery id \"P:TRIGGER_ID\" (P in decimal without leading zeros, then a UUID)")
            }
            ids.append(id)
            scanner.skipWhitespace()
            guard scanner.peek == 0x2C else { return ids }
            scanner.index += 1
            scanner.skipWhitespace()
        }
    }

    func registration() throws(RecordError) -> TriggerRegistration {
        let triggerID = try id(required(.triggerID), "trigger_id")
        let appID = try id(required(.appID), "app_id")
        let scriptID = try id(required(.scriptID), "script_id")
        let kind: TriggerKind = try choice(required(.kind), "kind")
        var enabled = true
        if let enabledSpan = span(.enabled) { enabled = try bool(enabledSpan, "enabled") }
        var dispatchMode = DispatchMode.async
        if let modeSpan = span(.dispatchMode) {
            dispatchMode = try choice(modeSpan, "dispatch_mode")
        }
        var retry = retryDefaults
        if let retrySpan = span(.retry) { retry = try retryPatch(retrySpan).applied(to: retryDefaults) }
        let registeredBy = try id(required(.registeredBy), "registered_by")
        var kv: KVDetails?
        if let kvSpan = span(.kv) {
            let patch = try kvPatch(kvSpan)
            guard let glob = patch.collectionGlob else { throw fail("kv.collection_glob", "required field is missing") }
            guard let ops = patch.ops else { throw fail("kv.ops", "required field is missing") }
            kv = KVDetails(collectionGlob: glob, ops: ops)
        }
        var deadLetter: DeadLetterDetails?
        if let deadLetterSpan = span(.deadLetter) {
            let patch = try deadLetterPatch(deadLetterSpan)
            deadLetter = DeadLetterDetails(sourceFilter: patch.sourceFilter.applied(to: nil),
                                           triggerIDFilter: patch.triggerIDFilter.applied(to: nil),
                                           scriptIDFilter: patch.scriptIDFilter.applied(to: nil))
        }
        return TriggerRegistration(triggerID: triggerID, appID: appID, scriptID: scriptID, kind: kind,
                                   enabled: enabled, dispatchMode: dispatchMode, retry: retry,
                                   registeredBy: registeredBy, kv: kv, deadLetter: deadLetter)
    }

    func update() throws(RecordError) -> TriggerUpdate {
        var update = TriggerUpdate(triggerID: try id(required(.triggerID), "trigger_id"))
        if let enabledSpan = span(.enabled) { update.enabled = try bool(enabledSpan, "enabled") }
        if let retrySpan = span(.retry) { update.retry = try retryPatch(retrySpan) }
        if let kvSpan = span(.kv) { update.kv = try kvPatch(kvSpan) }
        if let deadLetterSpan = span(.deadLetter) { update.deadLetter = try deadLetterPatch(deadLetterSpan) }
        return update
    }

    func retryPatch(_ object: JSONSpan) throws(RecordError) -> RetryPatch {
        var patch = RetryPatch()
        try members(of: object, "retry", ["max_attempts", "backoff", "base_ms"]) { (member, value) throws(RecordError) in
            switch member {
            case 0: patch.maxAttempts = try int64(value, "retry.max_attempts")
            case 1:
                patch.backoff = try choice(value, "retry.backoff") as Backoff
            default: patch.baseMs = try int64(value, "retry.base_ms")
            }
        }
        return patch
    }

    func kvPatch(_ object: JSONSpan) throws(RecordError) -> KVPatch {
        var patch = KVPatch()
        try members(of: object, "kv", ["collection_glob", "ops"]) { (member, value) throws(RecordError) in
            if member == 0 {
                patch.collectionGlob = try string(value, "kv.collection_glob")
            } else {
                patch.ops = try ops(value)
            }
        }
        return patch
    }

    func ops(_ array: JSONSpan) throws(RecordError) -> OpSet {
        guard array.kind == .array else {
            throw fail("kv.ops", array.kind == .null ? "must not be null" : "must be an array, not \(array.kind.phrase)")
        }
        var set = OpSet()
        var scanner = JSONScanner(bytes, at: array.start + 1)
        var position = 0
        scanner.skipWhitespace()
        if scanner.peek == 0x5D { return set }
        while true {
            let path = "kv.ops[\(position)]"
            let element = try scanned(path) { () throws(JSONSyntaxError) in try scanner.scanValue() }
            let op = OpSet(try choice(element, path) as KVOp)
            if set.contains(op) { throw fail(path, "duplicate op '\(text(element))'") }
            set.insert(op)
            position += 1
            scanner.skipWhitespace()
            guard scanner.peek == 0x2C else { return set }
            scanner.index += 1
            scanner.skipWhitespace()
        }
    }

    func deadLetterPatch(_ object: JSONSpan) throws(RecordError) -> DeadLetterPatch {
        var patch = DeadLetterPatch()
        try members(of: object, "dead_letter", ["source_filter", "trigger_id_filter", "script_id_filter"]) {
            (member, value) throws(RecordError) in
            switch member {
            case 0:
                if value.kind == .null {
                    patch.sourceFilter = .set(nil)
                } else {
                    patch.sourceFilter = .set(try choice(value, "dead_letter.source_filter", orNull: true) as SourceKind)
                }
            case 1:
                patch.triggerIDFilter = .set(value.kind == .null ? nil : try id(value, "dead_letter.trigger_id_filter"))
            default:
                patch.scriptIDFilter = .set(value.kind == .null ? nil : try id(value, "dead_letter.script_id_filter"))
            }
        }
        return patch
    }

    /// Calls `body` with each member of a nested object: the index of its name in `names`
    /// and its value. Unknown and duplicate keys are errors named `path.key`.
    func members(of object: JSONSpan, _ path: String, _ names: [StaticString],
                 _ body: (Int, JSONSpan) throws(RecordError) -> Void) throws(RecordError) {
        guard object.kind == .object else {
            throw fail(path, object.kind == .null ? "must not be null" : "must be an object, not \(object.kind.phrase)")
        }
        var seen: UInt32 = 0
        var scanner = JSONScanner(bytes, at: object.start + 1)
        scanner.skipWhitespace()
        if scanner.peek == 0x7D { return }
        while true {
            let key = try scanned(path) { () throws(JSONSyntaxError) in try scanner.scanString() }
            let member: Int? = withContent(key) { content in
                names.firstIndex { name in name.withUTF8Buffer { $0.elementsEqual(content) } }
            }
            guard let member else { throw fail("\(path).\(text(key))", "unknown field") }
            if seen & (1 << UInt32(member)) != 0 { throw fail("\(path).\(text(key))", "duplicate key") }
            seen |= 1 << UInt32(member)
            scanner.skipWhitespace()
            try scanned(path) { () throws(JSONSyntaxError) in try scanner.expect(0x3A, "':'") }
            scanner.skipWhitespace()
            let value = try scanned(path) { () throws(JSONSyntaxError) in try scanner.scanValue() }
            try body(member, value)
            scanner.skipWhitespace()
            guard scanner.peek == 0x2C else { return }
            scanner.index += 1
            scanner.skipWhitespace()
        }
    }

    /// Runs a scan of text pass 1 already validated, turning a syntax error into a RecordError.
    func scanned<T>(_ path: String, _ body: () throws(JSONSyntaxError) -> T) throws(RecordError) -> T {
        do {
            return try body()
        } catch {
            throw fail(path, error.reason)
        }
    }

    // MARK: Values

    @inline(__always)
    func span(_ field: JSONField) -> JSONSpan? {
        present & field.bit != 0 ? slots[field.rawValue] : nil
    }

    /// A field checked present by the required mask; an error only if that check is wrong.
    @inline(__always)
    func required(_ field: JSONField) throws(RecordError) -> JSONSpan {
        guard let found = span(field) else { throw fail(field.jsonName, "required field is missing") }
        return found
    }

    func fieldNamed(_ key: JSONSpan) -> JSONField? {
        withContent(key) { JSONField.match($0) }
    }

    /// Calls `body` with a string's content, escapes resolved.
    @inline(__always)
    func withContent<R>(_ string: JSONSpan, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if !string.flag {
            return body(UnsafeBufferPointer(rebasing: bytes[string.start..<string.end]))
        }
        return JSONScanner.unescape(bytes, string).withUnsafeBufferPointer(body)
    }

    /// A string's content (or a value's text) for messages, cut at 64 bytes.
    func text(_ span: JSONSpan) -> String {
        let full: String
        if span.kind == .string {
            full = withContent(span) { String(decoding: $0, as: UTF8.self) }
        } else {
            full = String(decoding: UnsafeBufferPointer(rebasing: bytes[span.start..<span.end]), as: UTF8.self)
        }
        return full.utf8.count <= 64 ? full : String(full.prefix(60)) + "…"
    }

    /// The exact JSON text of a value, quotes included for strings.
    func rawText(_ span: JSONSpan) -> JSONText {
        let start = span.kind == .string ? span.start - 1 : span.start
        let end = span.kind == .string ? span.end + 1 : span.end
        if let sharing { return JSONText(sharing: sharing.buffer, range: sharing.offset + start ..< sharing.offset + end) }
        return JSONText(validUTF8: UnsafeBufferPointer(rebasing: bytes[start..<end]))
    }

    func string(_ span: JSONSpan, _ path: String) throws(RecordError) -> String {
        guard span.kind == .string else {
            throw fail(path, span.kind == .null ? "must not be null" : "must be a string, not \(span.kind.phrase)")
        }
        return withContent(span) { makeString(validUTF8: $0) }
    }

    func id(_ span: JSONSpan, _ path: String) throws(RecordError) -> HeraldID {
        guard span.kind == .string else {
            throw fail(path, span.kind == .null ? "must not be null" : "must be a UUID string, not \(span.kind.phrase)")
        }
        guard let parsed = withContent(span, { parseHeraldID($0) }) else {
            throw fail(path, "'\(text(span))' is not a UUID in canonical 8-4-4-4-12 form")
        }
        return parsed
    }

    func bool(_ span: JSONSpan, _ path: String) throws(RecordError) -> Bool {
        switch span.kind {
        case .true: return true
        case .false: return false
        case .null: throw fail(path, "must not be null")
        default: throw fail(path, "must be true or false, not \(span.kind.phrase)")
        }
    }

    /// The case of `T` a string value names (`T.wireName`); the error lists the names.
    /// `orNull`: the field may also be null (handled by the caller), and the error says so.
    func choice<T: WireNamed>(_ span: JSONSpan, _ path: String, orNull: Bool = false) throws(RecordError) -> T {
        guard span.kind == .string else {
            throw fail(path, span.kind == .null ? "must not be null"
                : "must be \(T.wireNamesPhrase(orNull: orNull)), not \(span.kind.phrase)")
        }
        let found: T? = withContent(span) { T(wireName: $0) }
        guard let found else { throw fail(path, "must be \(T.wireNamesPhrase(orNull: orNull)), not '\(text(span))'") }
        return found
    }

    /// The magnitude and sign of an integer literal, or an error for fractions and exponents.
    private func integer(_ span: JSONSpan, _ path: String) throws(RecordError) -> (negative: Bool, magnitude: UInt64?) {
        guard span.kind == .number else {
            throw fail(path, span.kind == .null ? "must not be null" : "must be an integer, not \(span.kind.phrase)")
        }
        if span.flag {
            throw fail(path, "must be an integer without a fraction or exponent, not \(text(span))")
        }
        var index = span.start
        let negative = index < span.end && bytes[index] == 0x2D
        if negative { index += 1 }
        var magnitude: UInt64 = 0
        if span.end - index <= 19 {
            // At most 19 digits: below 10^19 < 2^64, so no overflow is possible.
            while index < span.end {
                magnitude = magnitude &* 10 &+ UInt64(bytes[index] &- 0x30)
                index += 1
            }
            return (negative, magnitude)
        }
        while index < span.end {
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(UInt64(bytes[index] &- 0x30))
            if overflow1 || overflow2 { return (negative, nil) }
            magnitude = sum
            index += 1
        }
        return (negative, magnitude)
    }

    func int64(_ span: JSONSpan, _ path: String) throws(RecordError) -> Int64 {
        let (negative, magnitude) = try integer(span, path)
        if let magnitude {
            if negative {
                if magnitude <= UInt64(Int64.max) { return -Int64(magnitude) }
                if magnitude == UInt64(Int64.max) + 1 { return Int64.min }
            } else if magnitude <= UInt64(Int64.max) {
                return Int64(magnitude)
            }
        }
        throw fail(path, "\(text(span)) is out of range for a 64-bit signed integer")
    }

    func uint64(_ span: JSONSpan, _ path: String) throws(RecordError) -> UInt64 {
        let (negative, magnitude) = try integer(span, path)
        if let magnitude, !negative || magnitude == 0 { return magnitude }
        throw fail(path, "\(text(span)) is out of range for a 64-bit unsigned integer")
    }
}

