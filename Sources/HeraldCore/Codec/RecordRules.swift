/// The stateless rules of docs/SEMANTICS.md §2.4: everything that can be checked from one record alone,
/// so a record built through the Swift API is held to the same rules as an imported one.
/// (Rules that need the registry — ids are new, referenced things exist, tenant isolation,
/// a delivery is pending — belong to the registry.)
///
/// ```swift
/// try RecordRules.check(.kv(KVMutation(op: .delete, appID: app, collection: "users", key: "k", value: "1")), ts: nil)
/// // throws "kv.delete: field 'value': must be absent for kv.delete"
/// ```
public enum RecordRules {
    /// The accepted ts: 0 … 9999-12-31T23:59:59.999Z.
    public static let tsRange: ClosedRange<Int64> = 0...Record.tsMax

    /// Checks every stateless rule of `body` (and `ts`, when given).
    ///
    /// - Throws: ``RecordError`` with the record's type, the field's JSON path and the reason;
    ///   `location` is left empty.
    public static func check(_ body: RecordBody, ts: Int64?) throws(RecordError) {
        try check(body, ts: ts, valueIsValidated: false)
    }

    /// Checks a record with its ts.
    public static func check(_ record: Record) throws(RecordError) {
        try check(record.body, ts: record.ts, valueIsValidated: false)
    }

    /// Why `glob` is not a valid `collection_glob`, or nil when it is: `*`, a literal without
    /// `*`, or a literal prefix ending in exactly one `*` (`users:*`).
    public static func collectionGlobProblem(_ glob: String) -> String? {
        let utf8 = glob.utf8
        if utf8.isEmpty { return "must not be empty" }
        var stars = 0
        var lastIsStar = false
        for byte in utf8 {
            lastIsStar = byte == UInt8(ascii: "*")
            if lastIsStar { stars += 1 }
        }
        if stars == 0 || (stars == 1 && lastIsStar) { return nil }
        return "'\(glob)' is not a valid glob: '*' may appear only once, as the last character "
            + "('*', a literal, or a literal prefix ending in one '*')"
    }

    static func check(_ body: RecordBody, ts: Int64?, valueIsValidated: Bool) throws(RecordError) {
        let type = body.type
        func fail(_ field: String, _ reason: String) -> RecordError {
            RecordError(recordType: type.name, field: field, reason: reason)
        }
        if let ts, !tsRange.contains(ts) {
            throw fail("ts", "must be between 0 and \(Record.tsMax), not \(ts)")
        }
        switch body {
        case .adminUserCreated, .adminUserDeleted, .appCreated, .appDeleted, .scriptRegistered,
             .scriptDeleted, .triggerDeleted:
            // Names, emails, runtimes and sources: docs/SEMANTICS.md §2.4 states no rule (Schema/interchange.md).
            return

        case .triggerRegistered(let registration):
            if registration.dispatchMode == .sync {
                throw fail("dispatch_mode", "dispatch_mode 'sync' is not supported")
            }
            try checkRetry(maxAttempts: registration.retry.maxAttempts, baseMs: registration.retry.baseMs, fail)
            switch registration.kind {
            case .kv:
                guard let kv = registration.kv else { throw fail("kv", "required with kind kv") }
                if registration.deadLetter != nil {
                    throw fail("dead_letter", "not allowed with kind kv (the other kind's details are an error)")
                }
                try checkKV(glob: kv.collectionGlob, ops: kv.ops, fail)
            case .deadLetter:
                guard registration.deadLetter != nil else { throw fail("dead_letter", "required with kind dead_letter") }
                if registration.kv != nil {
                    throw fail("kv", "not allowed with kind dead_letter (the other kind's details are an error)")
                }
            }

        case .triggerUpdated(let update):
            if let retry = update.retry {
                try checkRetry(maxAttempts: retry.maxAttempts, baseMs: retry.baseMs, fail)
            }
            if let kv = update.kv {
                if update.deadLetter != nil {
                    throw fail("dead_letter", "not allowed together with kv (a trigger has one kind)")
                }
                try checkKV(glob: kv.collectionGlob, ops: kv.ops, fail)
            }

        case .kv(let mutation):
            if mutation.collection.utf8.isEmpty { throw fail("collection", "must not be empty") }
            if containsStar(mutation.collection) { throw fail("collection", "must not contain '*'") }
            if mutation.key.utf8.isEmpty { throw fail("key", "must not be empty") }
            switch (mutation.op, mutation.value) {
            case (.delete, nil):
                break
            case (.delete, .some):
                throw fail("value", "must be absent for kv.delete")
            case (_, nil):
                throw fail("value", "required for \(type.name)")
            case (_, .some(let value)):
                let size = value.count
                if size > KVMutation.valueBytesMax {
                    throw fail("value", "value is \(size) bytes; the limit is \(KVMutation.valueBytesMax)")
                }
                if !valueIsValidated {
                    if let problem = value.withUTF8({ JSONScanner.isValidJSON($0) }) {
                        throw fail("value", "is not one JSON value: \(problem.reason)")
                    }
                }
            }

        case .deliveryAttempted(let attempt):
            if attempt.attempt < 1 { throw fail("attempt", "must be at least 1, not \(attempt.attempt)") }
            switch (attempt.outcome, attempt.error) {
            case (.ok, .some): throw fail("error", "must be absent or null with outcome ok")
            case (.error, nil): throw fail("error", "required with outcome error")
            default: break
            }
            if attempt.durationMs < 0 { throw fail("duration_ms", "must not be negative, not \(attempt.durationMs)") }

        case .deliveryRedriven(let action), .deliveryCancelled(let action):
            if action.deliveries.isEmpty { throw fail("deliveries", "must list at least one delivery") }
            if action.deliveries.count > OperatorAction.deliveriesMax {
                throw fail("deliveries", "lists \(action.deliveries.count) deliveries; the limit is \(OperatorAction.deliveriesMax) per record")
            }
            var seen = Set<DeliveryID>(minimumCapacity: action.deliveries.count)
            for (index, id) in action.deliveries.enumerated() where !seen.insert(id).inserted {
                let first = action.deliveries.firstIndex(of: id) ?? 0
                throw fail("deliveries[\(index)]", "\(id) is listed twice (also deliveries[\(first)])")
            }

        case .deliveryInvoked(let invocation):
            let size = invocation.payload.count
            if size > ManualInvocation.payloadBytesMax {
                throw fail("payload", "payload is \(size) bytes; the limit is \(ManualInvocation.payloadBytesMax)")
            }
            if !valueIsValidated {
                if let problem = invocation.payload.withUTF8({ JSONScanner.isValidJSON($0) }) {
                    throw fail("payload", "is not one JSON value: \(problem.reason)")
                }
            }
        }
    }

    private static func containsStar(_ string: String) -> Bool {
        var string = string
        return string.withUTF8 { utf8 in
            for byte in utf8 where byte == UInt8(ascii: "*") { return true }
            return false
        }
    }

    private static func checkRetry(maxAttempts: Int64?, baseMs: Int64?,
                                   _ fail: (String, String) -> RecordError) throws(RecordError) {
        if let maxAttempts, !RetryConfig.maxAttemptsRange.contains(maxAttempts) {
            throw fail("retry.max_attempts", "must be between 1 and 100, not \(maxAttempts)")
        }
        if let baseMs, !RetryConfig.baseMsRange.contains(baseMs) {
            throw fail("retry.base_ms", "must be between 0 and 86400000, not \(baseMs)")
        }
    }

    private static func checkKV(glob: String?, ops: OpSet?, _ fail: (String, String) -> RecordError) throws(RecordError) {
        if let glob, let problem = collectionGlobProblem(glob) { throw fail("kv.collection_glob", problem) }
        if let ops, ops.rawValue & ~OpSet.all.rawValue != 0 {
            throw fail("kv.ops", "holds unknown op bits 0x\(String(ops.rawValue, radix: 16))")
        }
    }
}
