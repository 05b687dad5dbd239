import HeraldCore

/// Who may append, read and act on what (docs/SERVER.md "Tokens"): a token acts as its admin
/// user; one bound to an app reaches that app's records and deliveries only; a read-only token
/// never appends or acts. Pure: decided from the grant and the engine's state.
public enum AccessRules {
    /// Why `grant` may not append `body` (nil: it may). `state` answers which app an existing
    /// script, trigger or delivery belongs to; an id it does not know is left to validation.
    public static func refusal(of body: RecordBody, by grant: Grant, in state: Dispatcher) -> String? {
        if grant.readOnly { return "the token is read-only" }
        let registry = state.registry
        func outside(_ app: HeraldID?) -> String? {
            guard let bound = grant.app, let app, app != bound else { return nil }
            return "the token is bound to app \(bound), not app \(app)"
        }
        func acting(as by: HeraldID, _ field: String) -> String? {
            by == grant.admin ? nil : "\(field) \(by) is not the token's admin user \(grant.admin)"
        }
        func appOfTrigger(_ id: HeraldID) -> HeraldID? { registry.trigger(id)?.appID }
        func appOf(_ delivery: DeliveryID) -> HeraldID? {
            known(delivery, in: state)?.appID ?? appOfTrigger(delivery.triggerID)
        }
        switch body {
        case .adminUserCreated, .adminUserDeleted, .appCreated, .appDeleted:
            return grant.app.map { "the token is bound to app \($0): \(body.type.name) needs a token not bound to an app" }
        case .scriptRegistered(let s): return outside(s.appID)
        case .scriptDeleted(let id): return outside(registry.script(id)?.appID)
        case .triggerRegistered(let r): return outside(r.appID) ?? acting(as: r.registeredBy, "registered_by")
        case .triggerUpdated(let u): return outside(appOfTrigger(u.triggerID))
        case .triggerDeleted(let id): return outside(appOfTrigger(id))
        case .kv(let m): return outside(m.appID)
        case .deliveryAttempted(let a): return outside(appOf(DeliveryID(sourcePosition: a.sourcePosition, triggerID: a.triggerID)))
        case .deliveryRedriven(let action), .deliveryCancelled(let action):
            return acting(as: action.by, "by") ?? action.deliveries.lazy.compactMap { outside(appOf($0)) }.first
        case .deliveryInvoked(let i): return acting(as: i.by, "by") ?? outside(appOfTrigger(i.triggerID))
        }
    }

    /// Why `grant` may not read or act on something of `app` (nil: it may).
    public static func refusal(reading app: HeraldID?, by grant: Grant) -> String? {
        guard let bound = grant.app else { return nil }
        guard let app else { return "the token is bound to app \(bound): this needs a token not bound to an app" }
        return app == bound ? nil : "the token is bound to app \(bound), not app \(app)"
    }

    /// The app a record belongs to, as far as `state` (before it) tells; nil for records of
    /// no app (admin users) and records whose app it cannot tell.
    public static func app(of body: RecordBody, in state: Dispatcher) -> HeraldID? {
        let registry = state.registry
        switch body {
        case .adminUserCreated, .adminUserDeleted: return nil
        case .appCreated(let id, _), .appDeleted(let id): return id
        case .scriptRegistered(let s): return s.appID
        case .scriptDeleted(let id): return registry.script(id)?.appID
        case .triggerRegistered(let r): return r.appID
        case .triggerUpdated(let u): return registry.trigger(u.triggerID)?.appID
        case .triggerDeleted(let id): return registry.trigger(id)?.appID
        case .kv(let m): return m.appID
        case .deliveryAttempted(let a):
            return known(DeliveryID(sourcePosition: a.sourcePosition, triggerID: a.triggerID), in: state)?.appID
                ?? registry.trigger(a.triggerID)?.appID
        case .deliveryRedriven(let action), .deliveryCancelled(let action):
            return action.deliveries.first.flatMap { known($0, in: state)?.appID ?? registry.trigger($0.triggerID)?.appID }
        case .deliveryInvoked(let i): return registry.trigger(i.triggerID)?.appID
        }
    }

    /// A pending, dead or cancelled delivery of `state` (succeeded ones are not kept).
    static func known(_ id: DeliveryID, in state: Dispatcher) -> Delivery? {
        state.pending[id] ?? state.redrivable[id]
    }
}
