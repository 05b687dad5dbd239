/// `script.registered`.
public struct ScriptRegistration: Equatable, Sendable {
    public var scriptID: HeraldID
    public var appID: HeraldID
    public var name: String
    public var runtime: String
    public var source: String

    public init(scriptID: HeraldID, appID: HeraldID, name: String, runtime: String, source: String) {
        self.scriptID = scriptID
        self.appID = appID
        self.name = name
        self.runtime = runtime
        self.source = source
    }
}
