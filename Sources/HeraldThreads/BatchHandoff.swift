/// Hands batches of work from one thread to another, in order, with at most `capacity`
/// batches waiting (the producer waits for room, so memory stays bounded).
///
/// `@unchecked Sendable`: every stored property is read and written under `lock`.
package final class BatchHandoff<Element: Sendable>: @unchecked Sendable {
    private let lock = ConditionLock()
    private var batches: [[Element]] = []
    private var closed = false
    private let capacity: Int

    package init(capacity: Int) {
        precondition(capacity >= 1)
        self.capacity = capacity
    }

    /// Queues `batch`, waiting for room; false (and dropped) once the handoff is closed.
    @discardableResult
    package func put(_ batch: [Element]) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        while batches.count >= capacity && !closed { lock.wait() }
        guard !closed else { return false }
        batches.append(batch)
        lock.broadcast()
        return true
    }

    /// The next batch, waiting for one; nil once the handoff is closed and every batch queued
    /// before was taken.
    package func take() -> [Element]? {
        lock.lock()
        defer { lock.unlock() }
        while batches.isEmpty && !closed { lock.wait() }
        guard !batches.isEmpty else { return nil }
        let batch = batches.removeFirst()
        lock.broadcast()
        return batch
    }

    /// No more batches: `take` returns what is queued, then nil.
    package func close() {
        lock.changeAndBroadcast { closed = true }
    }
}
