import Foundation
import HeraldCore

extension HeraldID {
    /// The id with `uuid`'s 128 bits (its text is `uuid.uuidString`, lowercased).
    public init(_ uuid: UUID) {
        let b = uuid.uuid
        let high = [b.0, b.1, b.2, b.3, b.4, b.5, b.6, b.7].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        let low = [b.8, b.9, b.10, b.11, b.12, b.13, b.14, b.15].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        self.init(high: high, low: low)
    }

    /// The same 128 bits as a Foundation `UUID`.
    public var uuid: UUID {
        func byte(_ word: UInt64, _ index: Int) -> UInt8 { UInt8(truncatingIfNeeded: word >> (56 - 8 * UInt64(index))) }
        let h = high, l = low
        return UUID(uuid: (byte(h, 0), byte(h, 1), byte(h, 2), byte(h, 3), byte(h, 4), byte(h, 5), byte(h, 6), byte(h, 7),
                           byte(l, 0), byte(l, 1), byte(l, 2), byte(l, 3), byte(l, 4), byte(l, 5), byte(l, 6), byte(l, 7)))
    }
}

extension Duration {
    /// Whole milliseconds, rounded down, clamped to `Int64`'s range.
    var clampedMilliseconds: Int64 {
        let (seconds, attoseconds) = components
        let (ms, overflowed) = seconds.multipliedReportingOverflow(by: 1000)
        let (sum, overflowedAgain) = ms.addingReportingOverflow(attoseconds / 1_000_000_000_000_000)
        return overflowed || overflowedAgain ? (seconds < 0 ? .min : .max) : sum
    }
}

extension HeraldOptions {
    /// ``attemptTimeoutMs`` as a `Duration` (set: whole milliseconds, at least 1).
    public var attemptTimeout: Duration {
        get { .milliseconds(attemptTimeoutMs) }
        set { attemptTimeoutMs = max(1, newValue.clampedMilliseconds) }
    }

    /// ``projectionIntervalMs`` as a `Duration` (set: whole milliseconds, at least 0).
    public var projectionInterval: Duration {
        get { .milliseconds(projectionIntervalMs) }
        set { projectionIntervalMs = max(0, newValue.clampedMilliseconds) }
    }
}
