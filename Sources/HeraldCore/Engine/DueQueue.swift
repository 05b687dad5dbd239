/// Pending deliveries ordered by due time, then canonical order: a binary min-heap.
/// Entries are not removed when a delivery finishes or is rescheduled; the engine drops
/// stale ones when they surface (the heap is a hint, the dispatcher's state is the truth).
struct DueQueue: Sendable {
    struct Entry: Sendable {
        var dueAt: Int64
        var sourcePosition: UInt64
        var triggerRank: UInt64
        var id: DeliveryID

        func precedes(_ other: Entry) -> Bool {
            (dueAt, sourcePosition, triggerRank) < (other.dueAt, other.sourcePosition, other.triggerRank)
        }
    }

    private var heap: [Entry] = []

    init() {}

    /// A queue of every delivery of `pending`, built in O(n) instead of n pushes, from its rows
    /// (no delivery is built): a restart queues every pending delivery at once.
    init(_ pending: PendingDeliveries) {
        heap.reserveCapacity(pending.count)
        pending.forEachDueKey { due, position, rank, trigger in
            heap.append(Entry(dueAt: due, sourcePosition: position, triggerRank: rank,
                              id: DeliveryID(sourcePosition: position, triggerID: trigger)))
        }
        heapify()
    }

    private mutating func heapify() {
        var parent = heap.count / 2
        while parent > 0 {
            parent -= 1
            siftDown(from: parent)
        }
    }

    var count: Int { heap.count }
    var first: Entry? { heap.first }

    mutating func push(_ delivery: Delivery) {
        guard let due = delivery.dueAt else { return }
        heap.append(Entry(dueAt: due, sourcePosition: delivery.id.sourcePosition, triggerRank: delivery.triggerRank,
                          id: delivery.id))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].precedes(heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popFirst() -> Entry? {
        guard !heap.isEmpty else { return nil }
        heap.swapAt(0, heap.count - 1)
        let top = heap.removeLast()
        siftDown(from: 0)
        return top
    }

    private mutating func siftDown(from start: Int) {
        var parent = start
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && heap[left].precedes(heap[smallest]) { smallest = left }
            if right < heap.count && heap[right].precedes(heap[smallest]) { smallest = right }
            if smallest == parent { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
    }
}
