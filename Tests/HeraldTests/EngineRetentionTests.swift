import Herald
import HeraldCore
import HeraldLog
import Synchronization
import Testing

/// A running engine with a retention policy (``StoragePolicy``): it compacts its log while it
/// works, removing whole segments, and still runs the deliveries that were pending before the
/// compaction point with their own events, keeps the dead ones, and restarts on the compacted log.
@Suite struct EngineRetentionTests {
    @Test func retentionRemovesSegmentsAndLosesNoPendingOrDeadDelivery() async throws {
        try await atHighPriority { try await Self.retention() }
    }

    static func retention() async throws {
        // Keys "hold…" fail (retryable) until `release` is set, then must arrive with their own
        // value; keys "dead…" give up at once; the rest succeed.
        let released = Atomic<Bool>(false)
        let wrongValues = Atomic<Int>(0)
        let heldRuns = Atomic<Int>(0)
        let executor = ClosureExecutor(fallback: { invocation in
            guard case .kv(_, _, let mutation) = invocation.event else { return .ok }
            if mutation.key.hasPrefix("dead") { return .error("gone", retryable: false) }
            guard mutation.key.hasPrefix("hold") else { return .ok }
            guard released.load(ordering: .relaxed) else { return .error("not yet") }
            if mutation.value?.description != "\"value of \(mutation.key)\"" { wrongValues.add(1, ordering: .relaxed) }
            heldRuns.add(1, ordering: .relaxed)
            return .ok
        })
        try await withTemporaryDirectory { path in
            let data = DataDirectory(path: path)
            var options = HeraldOptions(durability: .none, executor: executor, projectionIntervalMs: 20,
                                        storage: StoragePolicy(recompressionLevel: 9, retainRecords: 200, intervalMs: 50),
                                        segmentBytesMax: 4_096)
            options.concurrency = 4
            let (admin, app, script, trigger) = (testID(1), testID(10), testID(20), testID(30))
            let herald = try Herald.open(directory: data, options: options)
            try herald.append(oneTriggerSetup(admin: admin, app: app, script: script, trigger: trigger,
                                              retry: RetryConfig(maxAttempts: 100, backoff: .constant, baseMs: 1_000)))
            func insert(_ key: String) -> RecordBody {
                .kv(KVMutation(op: .insert, appID: app, collection: "c", key: key, value: JSONText("\"value of \(key)\"")))
            }
            try herald.append((0..<5).map { insert("dead\($0)") } + (0..<5).map { insert("hold\($0)") })
            let running = Task { try await herald.run() }
            // Enough other work to fill many 4 KiB segments.
            for batch in 0..<40 {
                try herald.append((0..<20).map { insert("ok\(batch)-\($0)") })
                try await Task.sleep(for: .milliseconds(10))
            }
            let reader = try data.openReader()
            let deadline = ContinuousClock.now + .seconds(60)
            // Bound: until the log was compacted past the held deliveries' records, or a minute.
            while ContinuousClock.now < deadline, try reader.firstPosition <= 20 {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(try reader.firstPosition > 20, "the log was not compacted past the held deliveries")
            released.store(true, ordering: .relaxed)
            while ContinuousClock.now < deadline, herald.pendingCount > 0 {
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(herald.pendingCount == 0)
            #expect(heldRuns.load(ordering: .relaxed) == 5 && wrongValues.load(ordering: .relaxed) == 0,
                    "held deliveries run from the snapshot's records with their own values")
            herald.stop()
            try await running.value
            try herald.close()

            // Retention bounded the log: segments before the kept records are gone.
            let log = try LogReader(directory: data.logPath)
            let stats = try log.stats()
            #expect(try log.firstPosition() > 20)
            #expect(stats.segments < 60, "\(stats.segments) segments held")
            // The dead deliveries and the released ones are still listed; a restart works.
            let deliveries = try data.openReader().deliveries()
            #expect(deliveries.filter { $0.status == .dead }.count == 5)
            #expect(deliveries.filter { $0.status == .succeeded && $0.id.sourcePosition <= 14 }.count == 5)
            let again = try Herald.open(directory: data, options: options)
            #expect(again.pendingCount == 0)
            try again.close()
            #expect(try data.verifyProjection().isEmpty, "the projection equals one rebuilt from the compacted log")
            // The engine pruned its projection as it compacted: it lists what a replay lists.
            var listed: [Delivery] = []
            try data.forEachDelivery { listed.append($0) }
            #expect(listed == deliveries)
        }
    }
}

/// The retention policy's compaction point (``StoragePolicy/compactionPoint``): the first
/// position of the earliest segment a bound keeps, by count, by the log's own time, or the
/// union of both, never past the projection, and nil when nothing would be removed.
@Suite struct StoragePolicyTests {
    /// Three closed segments of 100 records each (timestamps 1 000 per segment), the active one from 301.
    let closed = [SegmentSpan(base: 1, lastPosition: 100, lastTs: 1_000),
                  SegmentSpan(base: 101, lastPosition: 200, lastTs: 2_000),
                  SegmentSpan(base: 201, lastPosition: 300, lastTs: 3_000)]

    func point(_ policy: StoragePolicy, start: UInt64 = 1, limit: UInt64 = .max) -> UInt64? {
        policy.compactionPoint(closed: closed, activeBase: 301, last: 350, lastTs: 3_500, start: start, limit: limit)
    }

    @Test func byCountKeepsTheSegmentsHoldingTheLastRecords() {
        #expect(point(StoragePolicy(retainRecords: 50)) == 301)     // 301…350 in the active segment
        #expect(point(StoragePolicy(retainRecords: 100)) == 201)    // 251…350: the third segment stays
        #expect(point(StoragePolicy(retainRecords: 250)) == 101)    // 101…350
        #expect(point(StoragePolicy(retainRecords: 300)) == nil)    // 51…350 reaches into the first segment
        #expect(point(StoragePolicy(retainRecords: 1_000)) == nil)  // everything is kept
        #expect(point(StoragePolicy(retainRecords: .max)) == nil)   // no overflow
    }

    @Test func byAgeKeepsTheSegmentsWithRecentRecords() {
        #expect(point(StoragePolicy(retainMs: 400)) == 301)         // after ts 3 100: the active segment
        #expect(point(StoragePolicy(retainMs: 1_499)) == 201)       // from ts 2 001: the third segment on
        #expect(point(StoragePolicy(retainMs: 1_500)) == 101)       // ts 2 000 is within 1 500 ms of 3 500
        #expect(point(StoragePolicy(retainMs: 1_501)) == 101)
        #expect(point(StoragePolicy(retainMs: .max)) == nil)        // no overflow
    }

    @Test func bothBoundsKeepWhatEitherKeeps() {
        #expect(point(StoragePolicy(retainRecords: 50, retainMs: 1_501)) == 101)
        #expect(point(StoragePolicy(retainRecords: 250, retainMs: 400)) == 101)
    }

    @Test func neverPastTheProjectionNorBeforeTheStart() {
        #expect(point(StoragePolicy(retainRecords: 50), limit: 250) == 201)  // aligned down to a segment
        #expect(point(StoragePolicy(retainRecords: 50), limit: 100) == nil)  // only segment 1: nothing to remove
        #expect(point(StoragePolicy(retainRecords: 50), start: 301) == nil)  // already compacted there
        #expect(point(StoragePolicy()) == nil)                               // no retention set
    }
}
