import HeraldCore

/// Settings read from environment variables, each checked with an error that names the variable.
public struct HeraldEnvironment: Sendable {
    /// Retry defaults written into `trigger.registered` records that omit them.
    public var retryDefaults: RetryConfig

    /// The built-in defaults (5 attempts, exponential, 1000 ms).
    public init(retryDefaults: RetryConfig = .builtIn) {
        self.retryDefaults = retryDefaults
    }

    /// Reads HERALD_RETRY_MAX_ATTEMPTS, HERALD_RETRY_BACKOFF and HERALD_RETRY_BASE_MS from
    /// `variables` (the process environment by default).
    public init(variables: [String: String]) throws(ConfigurationError) {
        var retry = RetryConfig.builtIn
        if let text = variables["HERALD_RETRY_MAX_ATTEMPTS"] {
            guard let value = Int64(text), RetryConfig.maxAttemptsRange.contains(value) else {
                throw ConfigurationError(source: "HERALD_RETRY_MAX_ATTEMPTS",
                                         reason: "'\(text)' is not an integer between 1 and 100")
            }
            retry.maxAttempts = value
        }
        if let text = variables["HERALD_RETRY_BACKOFF"] {
            guard let value = Backoff(name: text) else {
                throw ConfigurationError(source: "HERALD_RETRY_BACKOFF",
                                         reason: "'\(text)' is not one of exponential, linear, constant")
            }
            retry.backoff = value
        }
        if let text = variables["HERALD_RETRY_BASE_MS"] {
            guard let value = Int64(text), RetryConfig.baseMsRange.contains(value) else {
                throw ConfigurationError(source: "HERALD_RETRY_BASE_MS",
                                         reason: "'\(text)' is not an integer between 0 and 86400000")
            }
            retry.baseMs = value
        }
        self.retryDefaults = retry
    }
}

/// A bad setting: which variable or flag, and why.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    /// The environment variable or flag at fault.
    public var source: String
    public var reason: String

    public var description: String { "\(source): \(reason)" }
}
