/// Why a fixture could not be run (as opposed to running and not matching its expectations).
///
/// Every case names the file (and, for fixture input, the line) at fault, so a malformed
/// fixture says where to look.
public struct FixtureError: Error, Sendable, CustomStringConvertible, Equatable {
    /// The file or directory at fault.
    public var path: String
    /// The 1-based line, when the problem is on one line.
    public var line: Int?
    /// Why, as a phrase a person can act on.
    public var reason: String

    /// Creates an error about `path` (and `line`, when one line is at fault).
    public init(path: String, line: Int? = nil, reason: String) {
        self.path = path
        self.line = line
        self.reason = reason
    }

    /// `path:line: reason` (or `path: reason`).
    public var description: String {
        if let line { return "\(path):\(line): \(reason)" }
        return "\(path): \(reason)"
    }
}
