/// `delivery.redriven` and `delivery.cancelled`: an operator's action on deliveries
/// (docs/SEMANTICS.md §8).
public struct OperatorAction: Equatable, Sendable {
    /// The deliveries acted on, as listed (1 … ``deliveriesMax``, no duplicates).
    public var deliveries: [DeliveryID]
    /// The admin user who acted.
    public var by: HeraldID
    /// Why, if said.
    public var reason: String?

    /// Most deliveries one record lists.
    public static let deliveriesMax = 10_000

    public init(deliveries: [DeliveryID], by: HeraldID, reason: String? = nil) {
        self.deliveries = deliveries
        self.by = by
        self.reason = reason
    }
}

/// `delivery.invoked`: an operator runs a trigger's script once, with a payload of their own.
public struct ManualInvocation: Equatable, Sendable {
    public var triggerID: HeraldID
    /// The admin user who invoked it.
    public var by: HeraldID
    /// Any JSON value (`null` included), as given.
    public var payload: JSONText

    /// Largest accepted payload, in bytes of JSON text.
    public static let payloadBytesMax = 1_048_576

    public init(triggerID: HeraldID, by: HeraldID, payload: JSONText) {
        self.triggerID = triggerID
        self.by = by
        self.payload = payload
    }
}

extension DeliveryID {
    /// Parses `P:TRIGGER_ID` strictly, as records carry it: P in decimal without leading
    /// zeros (`0` alone is allowed, and names no delivery), the UUID in either case.
    public init?(strict text: some Collection<UInt8>) {
        guard let colon = text.firstIndex(of: 0x3A) else { return nil }
        let digits = text[..<colon]
        guard let first = digits.first, digits.count <= 20, first != 0x30 || digits.count == 1 else { return nil }
        var position: UInt64 = 0
        for digit in digits {
            guard digit >= 0x30, digit <= 0x39 else { return nil }
            let (times10, o1) = position.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(digit - 0x30))
            guard !o1, !o2 else { return nil }
            position = sum
        }
        guard let trigger = HeraldID(String(decoding: text[text.index(after: colon)...], as: UTF8.self)) else { return nil }
        self.init(sourcePosition: position, triggerID: trigger)
    }
}
