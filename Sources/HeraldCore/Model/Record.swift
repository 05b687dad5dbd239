/// One fact in the log. Its position is implied by where it sits in the log;
/// `ts` is milliseconds since the Unix epoch (UTC) and never decreases along the log.
public struct Record: Equatable, Sendable {
    /// Milliseconds since the Unix epoch, UTC; 0 ≤ ts ≤ ``Record/tsMax``.
    public var ts: Int64
    /// What happened.
    public var body: RecordBody

    /// Creates a record.
    public init(ts: Int64, body: RecordBody) {
        self.ts = ts
        self.body = body
    }

    /// The largest accepted ts: 9999-12-31T23:59:59.999Z, so no due time can overflow.
    public static let tsMax: Int64 = 253_402_300_799_999

    /// The record with its KV value or invocation payload (if any) holding only its own bytes: what to keep when a
    /// record read from the log is kept for long (``JSONText/compacted()``).
    public func compacted() -> Record {
        switch body {
        case .kv(var mutation):
            guard let value = mutation.value, !value.isCompact else { return self }
            mutation.value = value.compacted()
            return Record(ts: ts, body: .kv(mutation))
        case .deliveryInvoked(var invocation):
            guard !invocation.payload.isCompact else { return self }
            invocation.payload = invocation.payload.compacted()
            return Record(ts: ts, body: .deliveryInvoked(invocation))
        default:
            return self
        }
    }
}

/// The vocabulary of the log (docs/SEMANTICS.md §2.3).
///
/// The rare, large payloads (registrations) are `indirect` (boxed) so that a body is only as
/// large as its hot cases, a ``KVMutation`` (64 bytes) and a ``DeliveryAttempt`` (72), instead
/// of 170: every record a scan decodes is moved and copied at that size.
public enum RecordBody: Equatable, Sendable {
    case adminUserCreated(adminUserID: HeraldID, email: String)
    case adminUserDeleted(adminUserID: HeraldID)
    case appCreated(appID: HeraldID, name: String)
    case appDeleted(appID: HeraldID)
    indirect case scriptRegistered(ScriptRegistration)
    case scriptDeleted(scriptID: HeraldID)
    indirect case triggerRegistered(TriggerRegistration)
    indirect case triggerUpdated(TriggerUpdate)
    case triggerDeleted(triggerID: HeraldID)
    case kv(KVMutation)
    case deliveryAttempted(DeliveryAttempt)
    indirect case deliveryRedriven(OperatorAction)
    indirect case deliveryCancelled(OperatorAction)
    indirect case deliveryInvoked(ManualInvocation)

    /// True for the records whose rules depend on deliveries (attempts and operator actions on
    /// deliveries): checking them needs a dispatcher that tracks deliveries.
    public var actsOnDeliveries: Bool {
        switch self {
        case .deliveryAttempted, .deliveryRedriven, .deliveryCancelled: true
        default: false
        }
    }

    /// The record's `"type"` as written in JSON Lines.
    public var type: RecordType {
        switch self {
        case .adminUserCreated: .adminUserCreated
        case .adminUserDeleted: .adminUserDeleted
        case .appCreated: .appCreated
        case .appDeleted: .appDeleted
        case .scriptRegistered: .scriptRegistered
        case .scriptDeleted: .scriptDeleted
        case .triggerRegistered: .triggerRegistered
        case .triggerUpdated: .triggerUpdated
        case .triggerDeleted: .triggerDeleted
        case .kv(let mutation):
            switch mutation.op {
            case .insert: .kvInsert
            case .update: .kvUpdate
            case .delete: .kvDelete
            }
        case .deliveryAttempted: .deliveryAttempted
        case .deliveryRedriven: .deliveryRedriven
        case .deliveryCancelled: .deliveryCancelled
        case .deliveryInvoked: .deliveryInvoked
        }
    }
}

/// Record types; the raw value is the type byte of the binary encoding (Schema/log-format.md).
public enum RecordType: UInt8, CaseIterable, Sendable, WireNamed {
    case adminUserCreated = 1
    case adminUserDeleted = 2
    case appCreated = 3
    case appDeleted = 4
    case scriptRegistered = 5
    case scriptDeleted = 6
    case triggerRegistered = 7
    case triggerUpdated = 8
    case triggerDeleted = 9
    case kvInsert = 10
    case kvUpdate = 11
    case kvDelete = 12
    case deliveryAttempted = 13
    case deliveryRedriven = 14
    case deliveryCancelled = 15
    case deliveryInvoked = 16

    /// The JSON Lines spelling, e.g. `"trigger.registered"` (the same as ``wireName``).
    public var name: String { wireName }

    /// The JSON Lines spelling, e.g. `"trigger.registered"`.
    public var wireName: String {
        switch self {
        case .adminUserCreated: "admin_user.created"
        case .adminUserDeleted: "admin_user.deleted"
        case .appCreated: "app.created"
        case .appDeleted: "app.deleted"
        case .scriptRegistered: "script.registered"
        case .scriptDeleted: "script.deleted"
        case .triggerRegistered: "trigger.registered"
        case .triggerUpdated: "trigger.updated"
        case .triggerDeleted: "trigger.deleted"
        case .kvInsert: "kv.insert"
        case .kvUpdate: "kv.update"
        case .kvDelete: "kv.delete"
        case .deliveryAttempted: "delivery.attempted"
        case .deliveryRedriven: "delivery.redriven"
        case .deliveryCancelled: "delivery.cancelled"
        case .deliveryInvoked: "delivery.invoked"
        }
    }
}
