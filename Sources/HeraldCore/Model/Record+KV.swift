/// `kv.insert`, `kv.update`, `kv.delete`.
public struct KVMutation: Equatable, Sendable {
    public var op: KVOp
    public var appID: HeraldID
    public var collection: String
    public var key: String
    /// The value's JSON text exactly as given; `nil` for delete (and only for delete).
    public var value: JSONText?

    /// Largest accepted value, in bytes of JSON text.
    public static let valueBytesMax = 1_048_576

    public init(op: KVOp, appID: HeraldID, collection: String, key: String, value: JSONText?) {
        self.op = op
        self.appID = appID
        self.collection = collection
        self.key = key
        self.value = value
    }
}
