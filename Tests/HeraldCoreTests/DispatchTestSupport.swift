import HeraldCore
import Testing

/// Short readable ids for hand-written logs: `uid(7)` = 00000000-0000-4000-8000-000000000007.
func uid(_ n: Int) -> String {
    let digits = String(n)
    return "00000000-0000-4000-8000-" + String(repeating: "0", count: 12 - digits.count) + digits
}

/// Ids used by the hand-written logs.
enum IDs {
    static let admin = uid(1), admin2 = uid(2), app = uid(10), app2 = uid(11)
    static let s1 = uid(20), s2 = uid(21), s3 = uid(22)
    static let t1 = uid(30), t2 = uid(31), t3 = uid(32), t4 = uid(33), t5 = uid(34)
}

/// Builds JSON lines with sensible defaults.
struct LogText {
    var lines: [String] = []
    var ts: Int64 = 0

    /// admin, app, scripts s1 and s2 of app (positions 1…4).
    static func standard() -> LogText {
        var log = LogText()
        log.add(#"{"type":"admin_user.created","admin_user_id":"\#(IDs.admin)","email":"ops@example.com"}"#)
        log.add(#"{"type":"app.created","app_id":"\#(IDs.app)","name":"shop"}"#)
        log.add(#"{"type":"script.registered","script_id":"\#(IDs.s1)","app_id":"\#(IDs.app)","name":"one","runtime":"process","source":"true"}"#)
        log.add(#"{"type":"script.registered","script_id":"\#(IDs.s2)","app_id":"\#(IDs.app)","name":"two","runtime":"process","source":"true"}"#)
        return log
    }

    /// Adds a line, inserting `"ts"` unless it has one.
    mutating func add(_ line: String, ts: Int64? = nil) {
        if let ts { self.ts = ts }
        if line.contains(#""ts":"#) {
            lines.append(line)
        } else {
            lines.append(#"{"ts":\#(self.ts),"# + line.dropFirst())
        }
    }

    mutating func kvTrigger(_ id: String, script: String = IDs.s1, glob: String = "c", ops: String = "[]",
                            retry: String? = nil, enabled: Bool = true, by admin: String = IDs.admin) {
        let retryField = retry.map { #","retry":\#($0)"# } ?? ""
        add(#"{"type":"trigger.registered","trigger_id":"\#(id)","app_id":"\#(IDs.app)","script_id":"\#(script)","kind":"kv","enabled":\#(enabled)\#(retryField),"registered_by":"\#(admin)","kv":{"collection_glob":"\#(glob)","ops":\#(ops)}}"#)
    }

    mutating func dlTrigger(_ id: String, script: String = IDs.s2, filters: String = "{}", retry: String? = nil) {
        let retryField = retry.map { #","retry":\#($0)"# } ?? ""
        add(#"{"type":"trigger.registered","trigger_id":"\#(id)","app_id":"\#(IDs.app)","script_id":"\#(script)","kind":"dead_letter"\#(retryField),"registered_by":"\#(IDs.admin)","dead_letter":\#(filters)}"#)
    }

    mutating func kv(_ op: String = "insert", collection: String = "c", key: String = "k", app: String = IDs.app, ts: Int64? = nil) {
        let value = op == "delete" ? "" : #","value":{"n":1}"#
        add(#"{"type":"kv.\#(op)","app_id":"\#(app)","collection":"\#(collection)","key":"\#(key)"\#(value)}"#, ts: ts)
    }

    mutating func attempt(_ position: Int, _ trigger: String, _ attempt: Int, ok: Bool, error: String = "boom",
                          retryable: Bool = true, ts: Int64? = nil) {
        let tail = ok ? "" : #","error":"\#(error)","retryable":\#(retryable)"#
        add(#"{"type":"delivery.attempted","source_position":\#(position),"trigger_id":"\#(trigger)","attempt":\#(attempt),"outcome":"\#(ok ? "ok" : "error")"\#(tail),"duration_ms":5}"#, ts: ts)
    }

    var text: String { lines.joined(separator: "\n") }
}

/// Derives a log: every record validated then applied; returns all deliveries in canonical order.
func derive(_ log: LogText) throws -> (deliveries: [Delivery], dispatcher: Dispatcher, deadLetters: [DeadLetterEvent]) {
    var dispatcher = Dispatcher()
    var ledger = DeliveryLedger()
    var deadLetters: [DeadLetterEvent] = []
    let decoder = RecordJSONDecoder()
    for (index, line) in log.lines.enumerated() {
        do throws(RecordError) {
            let (ts, body) = try decoder.decode(line: line)
            let effects = try dispatcher.apply(Record(ts: ts ?? 0, body: body))
            ledger.absorb(effects)
            for case .deadLetter(let event) in effects { deadLetters.append(event) }
        } catch {
            throw error.at("line \(index + 1)")
        }
    }
    return (ledger.deliveries, dispatcher, deadLetters)
}

/// The canonical `herald deliveries --format jsonl` text.
func canonical(_ deliveries: [Delivery]) -> String {
    var out = JSONOutput()
    for delivery in deliveries {
        CanonicalOutput.append(delivery, to: &out)
        out.newline()
    }
    return out.text
}

/// One canonical line, for expectations.
func line(_ position: Int, _ trigger: String, script: String = IDs.s1, kind: String = "kv", depth: Int = 0,
          status: String, attempts: Int, due: Int64?, error: String? = nil, finished: Int? = nil) -> String {
    let dueText = due.map(String.init) ?? "null"
    let errorText = error.map { #""\#($0)""# } ?? "null"
    let finishedText = finished.map(String.init) ?? "null"
    return #"{"source_position":\#(position),"trigger_id":"\#(trigger)","app_id":"\#(IDs.app)","script_id":"\#(script)","source_kind":"\#(kind)","depth":\#(depth),"status":"\#(status)","attempts":\#(attempts),"due_at":\#(dueText),"last_error":\#(errorText),"finished_at":\#(finishedText)}"#
}
