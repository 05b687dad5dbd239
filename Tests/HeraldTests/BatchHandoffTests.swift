import Glibc
import HeraldThreads
import Synchronization
import Testing

/// `BatchHandoff`, which feeds `herald whatif`'s second world: batches arrive in order, the
/// producer waits while `capacity` are queued, and a close lets the consumer drain the rest.
@Suite struct BatchHandoffTests {
    @Test func batchesArriveInOrderAndTheProducerWaitsForRoom() throws {
        let handoff = BatchHandoff<Int>(capacity: 2)
        let taken = Mutex<[[Int]]>([])
        let consumer = try #require(JoinableThread {
            while let batch = handoff.take() {
                taken.withLock { $0.append(batch) }
                usleep(200)  // slower than the producer: it must wait for room
            }
        })
        for n in 0..<200 { #expect(handoff.put([n, n + 1_000])) }
        handoff.close()
        consumer.join()
        #expect(taken.withLock { $0 } == (0..<200).map { [$0, $0 + 1_000] })
    }

    @Test func aCloseLetsTheConsumerDrainThenEnds() {
        let handoff = BatchHandoff<String>(capacity: 4)
        #expect(handoff.put(["a"]) && handoff.put(["b", "c"]))
        handoff.close()
        #expect(!handoff.put(["late"]))
        #expect(handoff.take() == ["a"])
        #expect(handoff.take() == ["b", "c"])
        #expect(handoff.take() == nil)
    }
}
