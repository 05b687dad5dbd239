import Foundation
import Synchronization
import Testing
@testable import HeraldLog

/// Runs `body(i)` on `count` threads at once and waits for all.
func onThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    let group = DispatchGroup()
    for i in 0..<count {
        group.enter()
        Thread.detachNewThread {
            body(i)
            group.leave()
        }
    }
    group.wait()
}

@Suite struct ConcurrencyTests {
    @Test func concurrentAppendsAreCoalesced() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir)
            let threads = 8
            let perThread = 25
            let ranges = Mutex<[Range<UInt64>]>([])
            let failures = Atomic<Int>(0)
            onThreads(threads) { t in
                for i in 0..<perThread {
                    do {
                        let n = t * 1_000 + i
                        let range = try writer.append([LogEntry(ts: 0, payload: payload(n))])
                        ranges.withLock { $0.append(range) }
                    } catch {
                        failures.add(1, ordering: .relaxed)
                    }
                }
            }
            try writer.close()
            #expect(failures.load(ordering: .relaxed) == 0)
            let all = ranges.withLock { $0 }.sorted { $0.lowerBound < $1.lowerBound }
            #expect(all.count == threads * perThread)
            #expect(all.map(\.lowerBound) == (1...UInt64(threads * perThread)).map { $0 })
            let stats = try LogReader(directory: dir).stats()
            #expect(stats.records == UInt64(threads * perThread))
            #expect(stats.blocks < threads * perThread, "\(stats.blocks) blocks for \(threads * perThread) appends")
            // Each thread's records keep their order.
            let records = try readAll(directory: dir)
            let numbers = records.map { Int($0.payload[1]) | Int($0.payload[2]) << 8 }
            for t in 0..<threads {
                #expect(numbers.filter { $0 / 1_000 == t }.map { $0 % 1_000 } == Array(0..<perThread))
            }
            #expect(Set(records.map(\.payload)).count == threads * perThread)
        }
    }

    @Test func readerFollowsAWriterThatAppends() throws {
        try withTemporaryDirectory { dir in
            let config = LogConfiguration(segmentBytesMax: 4_000, blockRawBytesMax: 1_000, durability: .none)
            let writer = try LogWriter(directory: dir, configuration: config)
            try writer.append(entries(0..<5))
            let total = 600
            let done = Atomic<Bool>(false)
            let reader = try LogReader(directory: dir)
            let live = writer.makeReader()
            let group = DispatchGroup()
            group.enter()
            Thread.detachNewThread {
                var n = 5
                while n < total {
                    let k = min(total - n, 1 + n % 7)
                    _ = try? writer.append(entries(n..<(n + k)))
                    n += k
                    usleep(200) // let the followers interleave with the appends
                }
                done.store(true, ordering: .releasing)
                group.leave()
            }
            // Two followers: a standalone reader that refreshes, and the writer's live reader.
            for follower in [reader, live] {
                let cursor = try follower.makeCursor(from: 1)
                var seen: [UInt64] = []
                var payloadsMatch = true
                var rounds = 0
                while seen.count < total && rounds < 1_000_000 {
                    rounds += 1
                    if let block = try cursor.nextBlock() {
                        for record in block {
                            seen.append(record.position)
                            if Array(record.payload) != payload(Int(record.position) - 1) { payloadsMatch = false }
                        }
                    } else {
                        let finished = done.load(ordering: .acquiring)
                        try follower.refresh()
                        if finished && cursor.nextPosition > follower.lastPosition && follower.lastPosition == UInt64(total) { break }
                    }
                }
                #expect(seen == (1...UInt64(total)).map { $0 })
                #expect(payloadsMatch)
            }
            group.wait()
            try writer.close()
        }
    }
}
