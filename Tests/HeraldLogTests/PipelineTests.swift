#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
@testable import HeraldLog

/// The commit pipeline: appenders queue, the committer writes commit n+1 while the syncer syncs
/// commit n, and a position is acknowledged only after a sync that began after its write.
@Suite struct PipelineTests {
    static func batch(_ entries: [LogEntry]) -> LogBatch {
        var batch = LogBatch()
        for entry in entries { batch.append(ts: entry.ts, payload: entry.payload) }
        return batch
    }

    /// The power-loss workload queued by a producer that keeps up to `depth` appends in flight.
    /// Returns what the writer had acknowledged (its published position) when the first error
    /// came, and that error.
    static func runPipelined(_ fs: SimulatedFileSystem, depth: Int) -> (acknowledged: UInt64, error: LogError?, writer: LogWriter?) {
        let writer: LogWriter
        do {
            writer = try LogWriter(directory: PowerLossTests.directory, configuration: PowerLossTests.config, fileSystem: fs)
        } catch {
            return (0, error as? LogError, nil)
        }
        var queued: [UInt64] = []
        do {
            for entries in PowerLossTests.batches {
                queued.append(try writer.enqueue(batch(entries)).upperBound - 1)
                if queued.count > depth { try writer.waitUntilAcknowledged(through: queued.removeFirst()) }
            }
            for position in queued { try writer.waitUntilAcknowledged(through: position) }
            try writer.close()
        } catch {
            return (writer.lastPosition, error as? LogError, writer)
        }
        return (writer.lastPosition, nil, writer)
    }

    /// A producer that queues batches faster than the committer writes them compresses its
    /// own (the committer then only writes them): the log holds the same records in the same
    /// order, and what was acknowledged survives a power loss.
    @Test func batchesCompressedByTheirProducerReadBackTheSame() throws {
        let fs = SimulatedFileSystem()
        // Each write takes 20 ms: the committer is busy with the first batch while the rest queue.
        fs.setWriteDelay(microseconds: 20_000)
        let directory = "/sim/helped"
        let writer = try LogWriter(directory: directory, configuration: LogConfiguration(blockRawBytesMax: 4_096), fileSystem: fs)
        var last: UInt64 = 0
        for b in 0..<12 {
            last = try writer.enqueue(Self.batch(entries((b * 40)..<(b * 40 + 40), bytes: 100))).upperBound - 1
        }
        try writer.waitUntilAcknowledged(through: last)
        #expect(writer.helpedBatches.load(ordering: .relaxed) > 0)
        fs.setWriteDelay(microseconds: 0)
        try writer.close()
        fs.powerLoss(.dropUnsynced)
        fs.restart()
        let records = try readAll(directory: directory, fileSystem: fs)
        #expect(records.map(\.position) == Array(1...480))
        #expect(records.map(\.payload) == entries(0..<480, bytes: 100).map(\.payload))
        #expect(records.map(\.ts) == entries(0..<480, bytes: 100).map(\.ts))
    }

    @Test func crashAtEveryIOPointOfAPipelinedProducerKeepsEveryAcknowledgedRecord() throws {
        let counting = SimulatedFileSystem()
        let clean = Self.runPipelined(counting, depth: 4)
        #expect(clean.error == nil)
        #expect(clean.acknowledged == UInt64(PowerLossTests.all.count))
        // How commits coalesce depends on thread timing, so later runs may have a few more
        // I/O points than this one.
        let points = counting.ioPointCount + 10
        var interrupted = 0
        for k in 1...points {
            for mode in [SimulatedFileSystem.PowerLossMode.dropUnsynced, .tornPrefix(seed: UInt64(k))] {
                let fs = SimulatedFileSystem()
                fs.inject(.crash(atIOPoint: k))
                let result = Self.runPipelined(fs, depth: 4)
                if result.error != nil { interrupted += 1 }
                fs.powerLoss(mode)
                let report = try PowerLossTests.verify(fs, acknowledged: result.acknowledged, context: "pipelined, crash at I/O point \(k), \(mode)")
                #expect(report.lastPosition >= result.acknowledged, "crash at I/O point \(k), \(mode): lost an acknowledged record")
            }
        }
        #expect(interrupted > points)
    }

    /// A failed write (the 9th, the 14th) or sync (the 3rd, the 6th), while batches are queued.
    static let faults: [SimulatedFileSystem.Fault] = [.failWrite(n: 9, errno: ENOSPC), .failWrite(n: 14, errno: EIO), .failSync(n: 3, errno: EIO), .failSync(n: 6, errno: ENOSPC)]

    @Test(arguments: faults)
    func aFailedWriteOrSyncInThePipelineFailsTheWriterClosed(fault: SimulatedFileSystem.Fault) throws {
        let fs = SimulatedFileSystem()
        fs.inject(fault)
        let result = Self.runPipelined(fs, depth: 8)
        #expect(result.error != nil, "\(fault) must make the producer fail")
        guard case .writerFailed? = result.error else {
            Issue.record("\(fault): expected writerFailed, got \(String(describing: result.error))")
            return
        }
        let writer = try #require(result.writer)
        let acknowledged = writer.lastPosition
        // Nothing more is acknowledged, nothing more is queued, even though the disk works again.
        #expect(throws: LogError.self) { try writer.enqueue(Self.batch([LogEntry(ts: 1_000, payload: [1])])) }
        #expect(throws: LogError.self) { try writer.append(LogEntry(ts: 1_000, payload: [1])) }
        #expect(throws: LogError.self) { try writer.sync() }
        #expect(throws: LogError.self) { try writer.waitUntilAcknowledged(through: acknowledged + 1) }
        #expect(writer.lastPosition == acknowledged)
        try? writer.close()
        fs.powerLoss(.dropUnsynced)
        try PowerLossTests.verify(fs, acknowledged: acknowledged, context: "pipelined, \(fault)")
    }

    /// The acknowledged listener hears every advance, in order, and never of a position before
    /// it is acknowledged (with `.always`: synced), whatever the durability.
    @Test(arguments: [LogDurability.always, .none])
    func theAcknowledgedListenerHearsEachAdvanceInOrder(durability: LogDurability) throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir, configuration: LogConfiguration(durability: durability))
            let heard = HeardPositions()
            writer.setAcknowledgedListener { [writer] position in
                heard.add(position, acknowledgedThen: writer.lastPosition)
            }
            var last: UInt64 = 0
            for i in 0..<50 {
                let range = try writer.enqueue(Self.batch(entries((i * 3)..<(i * 3 + 3))))
                last = range.upperBound - 1
            }
            try writer.waitUntilAcknowledged(through: last)
            // The listener runs right after the waiters are woken: give it a moment.
            for _ in 0..<500 where heard.positions.last != last { usleep(10_000) }
            let positions = heard.positions
            #expect(positions.last == last)
            #expect(positions == positions.sorted() && Set(positions).count == positions.count, "\(positions)")
            #expect(heard.aheadOfAcknowledged == 0)
            writer.setAcknowledgedListener(nil)
            try writer.close()
        }
    }

    @Test func queuedBatchesKeepTheirOrderAndCloseDrainsThem() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir, configuration: LogConfiguration(segmentBytesMax: 20_000, blockRawBytesMax: 2_000))
            var expected: [LogEntry] = []
            var next = 0
            var lastQueued: UInt64 = 0
            for i in 0..<200 {
                let k = 1 + (i * 13) % 17
                let chunk = entries(next..<(next + k))
                next += k
                let range = try writer.enqueue(Self.batch(chunk))
                #expect(range.lowerBound == UInt64(expected.count + 1))
                expected += chunk
                lastQueued = range.upperBound - 1
                if i == 99 { try writer.waitUntilAcknowledged(through: lastQueued) }
            }
            // The second hundred are never waited for: close commits and syncs them.
            try writer.close()
            #expect(lastQueued == UInt64(expected.count))
            let records = try readAll(directory: dir)
            #expect(records.count == expected.count)
            #expect(records.map(\.payload) == expected.map(\.payload))
            #expect(records.map(\.position) == (1...UInt64(expected.count)).map { $0 })
            #expect(try segmentFiles(dir).count > 1, "the workload must roll segments")
        }
    }

    /// Prepared blocks, written as they are: the same records as appending the same batches
    /// one at a time, mixed with ordinary appends. A prepared append is one transaction: every
    /// block but its last carries the `continues` flag, and it never spans segments (the
    /// segment grows past its limit instead), where the batch appends roll between blocks.
    @Test func preparedBlocksWriteTheSameRecordsAsBatchAppends() throws {
        let config = LogConfiguration(segmentBytesMax: 4_096, blockRawBytesMax: 700)
        var all = entries(0..<300, bytes: 90)
        all[17].payload = []
        let sizes = [1, 2, 50, 7, 100, 140]
        try withTemporaryDirectory { viaBatches in
            try withTemporaryDirectory { viaPrepared in
                let a = try LogWriter(directory: viaBatches, configuration: config)
                let b = try LogWriter(directory: viaPrepared, configuration: config)
                var prepared = PreparedBlocks(configuration: config)
                var start = 0
                for (n, size) in sizes.enumerated() {
                    let slice = Self.batch(Array(all[start..<(start + size)]))
                    try a.append(slice)
                    if n == 3 {
                        // An ordinary append between two prepared appends.
                        #expect(try b.enqueue(prepared) == 1..<54)
                        prepared = PreparedBlocks(configuration: config)
                        try b.append(slice)
                    } else {
                        try prepared.append(slice)
                    }
                    start += size
                }
                let range = try b.enqueue(prepared)
                #expect(range == 61..<301)
                try b.waitUntilAcknowledged(through: range.upperBound - 1)
                try a.close()
                try b.close()
                let expected = all.enumerated().map { ReadRecord(position: UInt64($0.offset + 1), ts: $0.element.ts, payload: $0.element.payload) }
                #expect(try readAll(directory: viaBatches) == expected)
                #expect(try readAll(directory: viaPrepared) == expected)
                // Each prepared append sits whole in one segment: its blocks continue up to the last.
                for name in try segmentFiles(viaPrepared) {
                    let headers = try blockHeaders(viaPrepared + "/" + name)
                    #expect(headers.last?.continues == false, "\(name) ends inside an append")
                    for header in headers where header.continues {
                        #expect(header.basePosition < 54 || header.basePosition >= 61, "the ordinary append (54…60) is one block")
                    }
                }
                #expect(try blockHeaders(viaPrepared + "/00000000000000000001.log").filter(\.continues).count > 3)
            }
        }
    }

    @Test func preparedBlocksAreValidated() throws {
        var prepared = PreparedBlocks()
        try prepared.append(Self.batch([LogEntry(ts: 5, payload: [1])]))
        #expect(throws: LogError.self) { try prepared.append(Self.batch([LogEntry(ts: 4, payload: [1])])) }
        #expect(throws: LogError.self) { try prepared.append(Self.batch([LogEntry(ts: -1, payload: [1])])) }
        #expect(prepared.count == 1)
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir, configuration: LogConfiguration(payloadBytesMax: 10))
            try writer.append(LogEntry(ts: 9, payload: [1]))
            // Older than the log's last record.
            #expect(throws: LogError.self) { try writer.enqueue(prepared) }
            var big = PreparedBlocks()
            try big.append(Self.batch([LogEntry(ts: 10, payload: [UInt8](repeating: 7, count: 11))]))
            #expect(throws: LogError.self) { try writer.enqueue(big) }
            #expect(writer.lastPosition == 1)
            try writer.close()
            #expect(try readAll(directory: dir).count == 1)
        }
    }
}

/// Positions an acknowledged listener heard, and how many were ahead of the writer's
/// acknowledged position when heard.
private final class HeardPositions: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [UInt64] = []
    private var ahead = 0

    func add(_ position: UInt64, acknowledgedThen: UInt64) {
        lock.lock()
        list.append(position)
        if position > acknowledgedThen { ahead += 1 }
        lock.unlock()
    }

    var positions: [UInt64] {
        lock.lock()
        defer { lock.unlock() }
        return list
    }

    var aheadOfAcknowledged: Int {
        lock.lock()
        defer { lock.unlock() }
        return ahead
    }
}
