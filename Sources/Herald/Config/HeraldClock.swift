import Glibc
import Synchronization

/// Where Herald reads the time: the wall clock in production, a virtual clock in tests.
/// Only the shells read it (to stamp new records and to wait); derivation never does.
public protocol HeraldClock: Sendable {
    /// Milliseconds since the Unix epoch, UTC.
    func nowMs() -> Int64
    /// False for a clock that moves only when told (``VirtualClock``): the engine then runs
    /// each round to its sync before the next and advances the clock to the next due time
    /// itself instead of waiting. True by default.
    var movesByItself: Bool { get }
    /// Moves a clock that moves only when told to `ms` (never backwards); nothing by default.
    func advance(to ms: Int64)
}

extension HeraldClock {
    public var movesByItself: Bool { true }
    public func advance(to ms: Int64) {}
}

/// The system's real-time clock.
public struct SystemClock: HeraldClock {
    public init() {}

    public func nowMs() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }
}

/// A clock that moves only when told: makes the live engine deterministic in tests.
public final class VirtualClock: HeraldClock {
    private let now: Mutex<Int64>

    /// Starts at `startMs`.
    public init(startMs: Int64) {
        now = Mutex(startMs)
    }

    public func nowMs() -> Int64 { now.withLock { $0 } }

    public var movesByItself: Bool { false }

    /// Moves the clock to `ms` (never backwards).
    public func advance(to ms: Int64) {
        now.withLock { $0 = max($0, ms) }
    }
}
