import Herald
import HeraldCore
import HeraldLog
import Synchronization
import Testing

/// What `run` has reported as done survives a power loss: with durability `.always`, every
/// attempt outcome of a finished `run` is synced before `run` returns, including outcomes of
/// rounds that handed nothing to the acknowledger. The log goes through a simulated disk whose
/// syncs take 20 ms, so an outcome `run` did not wait for is still unsynced when it returns,
/// and the power loss drops it.
@Suite struct EngineDurabilityTests {
    @Test func outcomesAreDurableWhenRunReturns() async throws {
        let executed = Atomic<Int>(0)
        let executor = ClosureExecutor(fallback: { _ in
            executed.add(1, ordering: .relaxed)
            return .ok
        })
        try await withTemporaryDirectory { path in
            let disk = SimulatedFileSystem()
            let data = DataDirectory(path: path, fileSystem: disk)
            let herald = try Herald.open(directory: data, options: HeraldOptions(durability: .always, executor: executor,
                                                                                 projectionIntervalMs: 0))
            let (admin, app, script, trigger) = (testID(1), testID(10), testID(20), testID(30))
            try herald.append(oneTriggerSetup(admin: admin, app: app, script: script, trigger: trigger))
            for index in 0..<40 {
                try herald.append(.kv(KVMutation(op: .insert, appID: app, collection: "c", key: "k\(index)", value: "\(index)")))
            }
            disk.setSyncDelay(microseconds: 20_000)
            try await herald.run(untilIdle: true)
            let position = herald.position
            #expect(executed.load(ordering: .relaxed) == 40)
            // Power off before anything else happens: what is left is what was synced.
            disk.powerLoss(.dropUnsynced)
            let reader = try LogReader(directory: data.logPath, fileSystem: disk)
            #expect(reader.lastPosition == position, "records \(reader.lastPosition + 1)…\(position) were not synced when run returned")
            var outcomes = 0
            let cursor = try reader.makeCursor(from: 1)
            while let block = try cursor.nextBlock() {
                block.forEachRecord { _, _, payload in
                    if case .deliveryAttempted = try? RecordBinaryCodec.decode(payload) { outcomes += 1 }
                }
            }
            #expect(outcomes == 40)
        }
    }
}

/// The background projection works off a backlog while `run` goes on (at a bounded rate:
/// `Projector.paceRecords` records, then a pause as long as they took), and catches up.
@Suite struct BackgroundProjectionTests {
    @Test func aBacklogIsProjectedWhileRunGoesOn() async throws {
        try await atHighPriority { try await Self.backlogIsProjected() }
    }

    static func backlogIsProjected() async throws {
        try await withTemporaryDirectory { path in
            let data = DataDirectory(path: path)
            let herald = try Herald.open(directory: data, options: HeraldOptions(
                durability: .none, executor: ClosureExecutor(fallback: { _ in .ok }), projectionIntervalMs: 20))
            let (admin, app, script, trigger) = (testID(1), testID(10), testID(20), testID(30))
            try herald.append(oneTriggerSetup(admin: admin, app: app, script: script, trigger: trigger))
            // More records than one stretch of work (2,048), so the projection pauses on the way.
            try herald.append((0..<3000).map { .kv(KVMutation(op: .insert, appID: app, collection: "c", key: "k\($0)", value: "1")) })
            let running = Task { try await herald.run() }
            let projection = try data.openProjection()
            let deadline = ContinuousClock.now + .seconds(60)
            // Bound: until every delivery ran and the projection reached the log's end, or a minute.
            while ContinuousClock.now < deadline {
                let projected = try projection.loadDispatcher().position
                if herald.pendingCount == 0 && projected >= herald.position { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            #expect(herald.pendingCount == 0)
            #expect(try projection.loadDispatcher().position == herald.position, "the background projection did not catch up")
            herald.stop()
            try await running.value
            try herald.close()
        }
    }
}
