import HeraldCore

/// Runs in-process closures, chosen by script id first, then by the script's runtime.
/// For embedders and tests.
///
/// ```swift
/// let executor = ClosureExecutor(byRuntime: ["swift": { invocation in
///     print("hello from", invocation.delivery)
///     return .ok
/// }])
/// ```
public struct ClosureExecutor: ScriptExecutor {
    public typealias Handler = @Sendable (Invocation) async -> ExecutionResult

    private let byScript: [HeraldID: Handler]
    private let byRuntime: [String: Handler]
    private let fallback: Handler?

    public init(byScript: [HeraldID: Handler] = [:], byRuntime: [String: Handler] = [:], fallback: Handler? = nil) {
        self.byScript = byScript
        self.byRuntime = byRuntime
        self.fallback = fallback
    }

    public func execute(_ invocation: Invocation) async -> ExecutionResult {
        if let handler = byScript[invocation.script.id] ?? byRuntime[invocation.script.runtime] ?? fallback {
            return await handler(invocation)
        }
        return .error("no executor for script \(invocation.script.id) (runtime '\(invocation.script.runtime)')",
                      retryable: false)
    }
}

/// Routes by the script's runtime: `process` to a ``ProcessExecutor``, others to the closures.
public struct RuntimeRouter: ScriptExecutor {
    private let routes: [String: any ScriptExecutor]
    private let fallback: (any ScriptExecutor)?

    public init(_ routes: [String: any ScriptExecutor], fallback: (any ScriptExecutor)? = nil) {
        self.routes = routes
        self.fallback = fallback
    }

    public func execute(_ invocation: Invocation) async -> ExecutionResult {
        if let executor = routes[invocation.script.runtime] ?? fallback {
            return await executor.execute(invocation)
        }
        return .error("no executor for runtime '\(invocation.script.runtime)'", retryable: false)
    }
}
