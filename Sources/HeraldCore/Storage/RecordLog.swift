/// Records by position, as readers see them: what replay, `deliveries`, `explain` and the
/// projector read. Implemented by the segment log's reader (`RecordReader`); a second
/// implementation (a log on another engine, an in-memory log in tests) needs no change to the
/// core or the engine.
public protocol RecordSource: Sendable {
    /// The last readable position (0: empty), as of now.
    var lastPosition: UInt64 { get throws }

    /// Calls `body` with each record from `from` through `through` (`nil`: the last position
    /// when the call starts; past it: clamped), in order, until it returns false. A record
    /// handed to `body` may share its storage with the log; keep a `compacted()` copy.
    func forEach(from: UInt64, through: UInt64?, _ body: (UInt64, Record) throws -> Bool) throws

    /// What a compacted log starts from: the state through the position before its first
    /// record (``CompactedState``). Nil for a log that starts at position 1 (the default).
    func compactedStart() throws -> CompactedState?
}

extension RecordSource {
    /// A log that starts at position 1.
    public func compactedStart() throws -> CompactedState? { nil }
}

/// The log the live engine appends to: ordered, with a durability point.
///
/// The engine validates records before it hands them over, fixes their order under its own
/// lock with ``enqueue(_:)`` (which must not block on the disk), and waits for durability
/// outside it with ``waitUntilDurable(through:)``, so concurrent commands and outcomes share
/// one sync. A failed append or sync leaves the engine refusing work (it fails closed).
public protocol RecordLog: RecordSource, AnyObject {
    /// The largest encoded record (`RecordBinaryCodec`) the log takes, in bytes.
    var recordBytesMax: Int { get }

    /// Queues `records` (not empty, already validated) as one all-or-nothing batch after every
    /// record queued before; returns their positions at once.
    func enqueue(_ records: [Record]) throws -> ClosedRange<UInt64>

    /// The last position that is durable under the log's policy (acknowledged).
    var durablePosition: UInt64 { get }

    /// Returns once `position` is durable; throws if the log cannot make it so.
    func waitUntilDurable(through position: UInt64) throws

    /// Calls `listener` each time the durable position advances, with the new durable
    /// position, from whatever thread advanced it: a syncing thread, or the caller of
    /// ``enqueue(_:)`` itself for a log that is durable as soon as it queues (so the listener
    /// must not take a lock held around `enqueue`, nor call back into the log). One listener;
    /// a later call replaces it.
    func onDurable(_ listener: @escaping @Sendable (UInt64) -> Void)

    /// Flushes and releases the log. Appends after it fail.
    func close() throws
}
