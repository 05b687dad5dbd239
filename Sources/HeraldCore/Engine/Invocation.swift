/// Everything a script attempt receives: the delivery, the attempt number, the event that
/// caused it, the script, the app, and the principal it runs as.
public struct Invocation: Sendable {
    /// What happened.
    public enum Event: Sendable {
        /// A KV mutation (the record at the delivery's source position).
        case kv(position: UInt64, ts: Int64, mutation: KVMutation)
        /// Another delivery ran out of retries.
        case deadLetter(DeadLetterEvent)
        /// An operator invoked the trigger (`delivery.invoked` at `position`) with a payload.
        case manual(position: UInt64, ts: Int64, invocation: ManualInvocation)
    }

    public var delivery: DeliveryID
    /// 1-based.
    public var attempt: Int64
    /// When this attempt was due.
    public var dueAt: Int64
    public var depth: Int64
    public var event: Event
    public var script: Registry.Script
    public var app: Registry.App?
    /// The admin user who registered the trigger, resolved when the attempt starts.
    public var principal: Registry.AdminUser?

    /// The invocation as one JSON object (what the `process` runtime writes to stdin).
    public var json: String {
        var out = JSONOutput(capacity: 512)
        out.beginObject()
        out.key("delivery"); out.string(delivery.description)
        out.key("source_position"); out.uint(delivery.sourcePosition)
        out.key("trigger_id"); out.id(delivery.triggerID)
        out.key("attempt"); out.int(attempt)
        out.key("due_at"); out.int(dueAt)
        out.key("depth"); out.int(depth)
        out.key("app")
        out.beginObject()
        out.key("app_id"); out.id(script.appID)
        out.key("name"); out.string(app?.name)
        out.endObject()
        out.key("script")
        out.beginObject()
        out.key("script_id"); out.id(script.id)
        out.key("name"); out.string(script.name)
        out.key("runtime"); out.string(script.runtime)
        out.endObject()
        out.key("principal")
        if let principal {
            out.beginObject()
            out.key("admin_user_id"); out.id(principal.id)
            out.key("email"); out.string(principal.email)
            out.endObject()
        } else {
            out.null()
        }
        out.key("event")
        out.beginObject()
        switch event {
        case .kv(let position, let ts, let m):
            out.key("kind"); out.string("kv")
            out.key("position"); out.uint(position)
            out.key("ts"); out.int(ts)
            out.key("op"); out.string(m.op.description)
            out.key("collection"); out.string(m.collection)
            out.key("key"); out.string(m.key)
            out.key("value")
            if let value = m.value { out.raw(value) } else { out.null() }
        case .deadLetter(let e):
            out.key("kind"); out.string("dead_letter")
            out.key("position"); out.uint(e.position)
            out.key("ts"); out.int(e.ts)
            out.key("delivery"); out.string(e.delivery.description)
            out.key("source_kind"); out.string(e.sourceKind.description)
            out.key("trigger_id"); out.id(e.triggerID)
            out.key("script_id"); out.id(e.scriptID)
            out.key("depth"); out.int(e.depth)
            out.key("last_error"); out.string(e.lastError)
        case .manual(let position, let ts, let invocation):
            out.key("kind"); out.string("manual")
            out.key("position"); out.uint(position)
            out.key("ts"); out.int(ts)
            out.key("invoked_by"); out.id(invocation.by)
            out.key("payload"); out.raw(invocation.payload)
        }
        out.endObject()
        out.endObject()
        return out.text
    }
}

/// What one attempt came to.
public struct ExecutionResult: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        case ok
        /// Failed; `retryable: false` gives up at once.
        case error(String, retryable: Bool)
    }

    public var outcome: Outcome
    /// How long the attempt took, when the executor knows better than the engine's clock
    /// (simulated executors in virtual time). `nil`: the engine measures it.
    public var durationMs: Int64?

    public init(_ outcome: Outcome, durationMs: Int64? = nil) {
        self.outcome = outcome
        self.durationMs = durationMs
    }

    public static let ok = ExecutionResult(.ok)

    /// A retryable failure.
    public static func error(_ message: String, retryable: Bool = true, durationMs: Int64? = nil) -> ExecutionResult {
        ExecutionResult(.error(message, retryable: retryable), durationMs: durationMs)
    }
}
