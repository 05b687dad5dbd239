import Synchronization

/// The last position the writer has acknowledged, shared with in-process readers.
final class PublishedPosition: Sendable {
    private let value: Atomic<UInt64>
    init(_ initial: UInt64) { value = Atomic(initial) }
    func load() -> UInt64 { value.load(ordering: .acquiring) }
    func store(_ position: UInt64) { value.store(position, ordering: .releasing) }
}
