import Foundation
import Glibc
import Herald
import HeraldCore
import HeraldStore
import HeraldLog
import Synchronization

/// What the no-op executor saw: when each attempt started (monotonic ns), by source position.
final class StartLog: Sendable {
    let executed = Atomic<Int>(0)
    let starts = Mutex<[(position: UInt64, ns: UInt64)]>([])

    func record(_ position: UInt64) {
        let t = nowNs()
        starts.withLock { $0.append((position, t)) }
        executed.add(1, ordering: .relaxed)
    }
}

extension Benchmarks {
    var liveDirectory: String { options.workDirectory + "/live" }

    func live() async throws {
        let setupFile = try LineFile(path: options.workload.setupPath)
        let setup = try setupFile.records()
        let all = try LineFile(path: options.workload.eventsPath).records(defaultTs: setup.last?.ts ?? 0)
        let sustainedCount = min(options.liveEvents ?? 20_000, all.count)
        guard sustainedCount > 0 else { throw BenchError("live: the workload has no events") }
        let sustained = all[0..<sustainedCount].map(\.body)
        let pacedCount = Int(Double(options.liveRate) * options.liveSeconds)
        let paced = (0..<pacedCount).map { all[($0 + sustainedCount) % all.count].body }

        // Expected deliveries, from the pure dispatcher (untimed).
        var model = Dispatcher()
        for record in setup {
            do throws(RecordError) { _ = try model.apply(record) } catch { throw BenchError("setup record rejected: \(error)") }
        }
        var effects: [DispatchEffect] = []
        var ts = setup.last?.ts ?? 0
        for body in sustained {
            ts += 1
            do throws(RecordError) { try model.check(Record(ts: ts, body: body)) } catch { throw BenchError("event rejected: \(error)") }
            model.applyChecked(Record(ts: ts, body: body), effects: &effects)
        }
        let expectedSustained = Int(model.createdCount)

        removeTree(liveDirectory)
        let data = DataDirectory(path: liveDirectory)
        _ = try data.importLines(from: options.workload.setupPath)
        let log = StartLog()
        let executor = ClosureExecutor(fallback: { invocation in
            log.record(invocation.delivery.sourcePosition)
            return .ok
        })
        let engineOptions = HeraldOptions(durability: options.liveDurability, executor: executor,
                                          concurrency: options.liveConcurrency, projectionIntervalMs: options.liveProjectionMs)
        let herald = try Herald.open(directory: data, options: engineOptions)
        let runner = Task { try await herald.run() }

        // Phase 1: append as fast as the engine accepts, while run() dispatches. The producer
        // is a thread of its own, as an application's would be: it blocks on appends and
        // sleeps, which must not take a thread of the cooperative pool the engine runs on.
        let batch = options.liveBatch
        let (start, appended, drained) = try await onThread { () throws -> (UInt64, UInt64, UInt64) in
            let start = nowNs()
            var index = 0
            while index < sustained.count {
                let end = min(index + batch, sustained.count)
                try herald.append(Array(sustained[index..<end]))
                index = end
            }
            let appended = nowNs()
            let deadline = appended + 600 * 1_000_000_000
            while log.executed.load(ordering: .relaxed) < expectedSustained || herald.pendingCount > 0 {
                if nowNs() > deadline { throw BenchError("live: deliveries did not finish within 10 minutes (\(log.executed.load(ordering: .relaxed)) of \(expectedSustained))") }
                usleep(2_000)
            }
            return (start, appended, nowNs())
        }
        let sustainedSeconds = seconds(start, drained)
        reporter.emit(Row(workload: "live", measure: "deliveries/s sustained (append+run)", value: Double(expectedSustained) / sustainedSeconds, unit: "deliveries/s",
                          target: "≥ 100,000",
                          note: "\(sustainedCount) events → \(expectedSustained) deliveries in \(format3(sustainedSeconds)) s (appends took \(format3(seconds(start, appended))) s); concurrency \(options.liveConcurrency), batch \(options.liveBatch), durability \(options.liveDurability)",
                          extra: [("events", Double(sustainedCount)), ("deliveries", Double(expectedSustained)), ("seconds", sustainedSeconds),
                                  ("append_seconds", seconds(start, appended)), ("concurrency", Double(options.liveConcurrency))]))

        // Phase 2: paced appends; delay = attempt start (executor clock) − time the append call began.
        let firstPacedPosition = herald.position + 1
        // Outcomes of the engine interleave with our appends, so positions are not dense.
        let rate = options.liveRate
        let (appendTimes, returnTimes, pacedStart, pacedAppended) = try await onThread { () throws -> ([UInt64: UInt64], [UInt64: UInt64], UInt64, UInt64) in
            var appendTimes: [UInt64: UInt64] = [:]
            var returnTimes: [UInt64: UInt64] = [:]
            returnTimes.reserveCapacity(pacedCount)
            appendTimes.reserveCapacity(pacedCount)
            let pacedStart = nowNs()
            var sent = 0
            while sent < pacedCount {
                let now = nowNs()
                let due = min(pacedCount, Int(Double(now - pacedStart) / 1e9 * Double(rate)) + 1)
                if due > sent {
                    let end = min(due, sent + 1000)
                    let range = try herald.append(Array(paced[sent..<end]))
                    let returned = nowNs()
                    for position in range {
                        appendTimes[position] = now
                        returnTimes[position] = returned
                    }
                    sent = end
                } else {
                    usleep(100)
                }
            }
            let pacedAppended = nowNs()
            let pacedDeadline = pacedAppended + 120 * 1_000_000_000
            while herald.pendingCount > 0 {
                if nowNs() > pacedDeadline { throw BenchError("live: paced deliveries did not finish within 2 minutes") }
                usleep(2_000)
            }
            return (appendTimes, returnTimes, pacedStart, pacedAppended)
        }
        let pacedSeconds = seconds(pacedStart, pacedAppended)
        // The delay, and its two parts: the append call (which returns once the record is
        // durable) and from its return to the attempt's start (the engine's own share).
        var delays: [Double] = [], appendParts: [Double] = [], dispatchParts: [Double] = []
        log.starts.withLock { starts in
            for entry in starts where entry.position >= firstPacedPosition {
                guard let appended = appendTimes[entry.position], let returned = returnTimes[entry.position] else { continue }
                delays.append(Double(entry.ns &- appended) / 1e6)
                appendParts.append(Double(returned &- appended) / 1e6)
                dispatchParts.append(Double(Int64(bitPattern: entry.ns &- returned)) / 1e6)
            }
        }
        delays.sort()
        appendParts.sort()
        dispatchParts.sort()
        func percentile(_ p: Double, of values: [Double]) -> Double {
            guard !values.isEmpty else { return .nan }
            return values[min(values.count - 1, Int(Double(values.count) * p))]
        }
        func percentile(_ p: Double) -> Double { percentile(p, of: delays) }
        let parts = "p99 of its parts: the append call (durable) \(format3(percentile(0.99, of: appendParts))) ms, "
            + "its return → attempt start \(format3(percentile(0.99, of: dispatchParts))) ms"
        let achievedRate = Double(pacedCount) / pacedSeconds
        reporter.emit(Row(workload: "live", measure: "p50 delay append→attempt start", value: percentile(0.5), unit: "ms",
                          note: "paced \(grouped(achievedRate)) events/s for \(format3(pacedSeconds)) s, \(delays.count) attempts",
                          extra: [("p50_ms", percentile(0.5)), ("events_per_s", achievedRate), ("attempts", Double(delays.count))]))
        reporter.emit(Row(workload: "live", measure: "p99 delay append→attempt start", value: percentile(0.99), unit: "ms",
                          target: "≤ 5 ms", note: "max \(format3(percentile(1.0))) ms; includes the append's own fsync; \(parts)",
                          extra: [("p99_ms", percentile(0.99)), ("max_ms", percentile(1.0)),
                                  ("p99_append_ms", percentile(0.99, of: appendParts)), ("p99_dispatch_ms", percentile(0.99, of: dispatchParts))]))

        herald.stop()
        try await runner.value
        let closeStart = nowNs()
        try herald.close()
        let closeSeconds = seconds(closeStart, nowNs())

        // Restart: open on the directory holding every finished delivery (projection caught up by close()).
        let finished = log.executed.load(ordering: .relaxed)
        let openStart = nowNs()
        let reopened = try Herald.open(directory: data, options: engineOptions)
        let openSeconds = seconds(openStart, nowNs())
        let pendingAfter = reopened.pendingCount
        let position = reopened.position
        try reopened.close()
        reporter.emit(Row(workload: "live", measure: "restart: Herald.open", value: openSeconds * 1000, unit: "ms",
                          note: "log of \(position) records, \(finished) finished deliveries, \(pendingAfter) pending; close() before it took \(format3(closeSeconds)) s",
                          extra: [("open_seconds", openSeconds), ("finished_deliveries", Double(finished)), ("records", Double(position)),
                                  ("close_seconds", closeSeconds)]))
    }
}

extension Benchmarks {
    var restartDirectory: String { options.workDirectory + "/restart" }

    /// Restart time: `Herald.open` on a directory whose log holds `restartEvents` events and a
    /// successful attempt for every delivery they made, with the projection caught up. The
    /// directory is built untimed through RecordWriter (.none) and `DataDirectory.project()`.
    func restart() throws {
        let setup = try LineFile(path: options.workload.setupPath).records()
        let all = try LineFile(path: options.workload.eventsPath).records(defaultTs: setup.last?.ts ?? 0)
        let count = min(options.restartEvents, all.count)
        removeTree(restartDirectory)
        let data = DataDirectory(path: restartDirectory)
        let buildStart = nowNs()
        var model = Dispatcher()
        var effects: [DispatchEffect] = []
        var batch: [Record] = []
        let writer = try data.openWriter(durability: .none)
        func add(_ record: Record) throws {
            do throws(RecordError) { try model.check(record) } catch { throw BenchError("restart: record rejected: \(error)") }
            effects.removeAll(keepingCapacity: true)
            model.applyChecked(record, effects: &effects)
            batch.append(record)
            if batch.count >= 4096 {
                try writer.append(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
        for record in setup { try add(record) }
        var finished = 0
        for record in all[0..<count] {
            try add(record)
            let created: [Delivery] = effects.compactMap { if case .created(let d) = $0 { d } else { nil } }
            for delivery in created {
                try add(Record(ts: record.ts, body: .deliveryAttempted(DeliveryAttempt(
                    sourcePosition: delivery.id.sourcePosition, triggerID: delivery.id.triggerID, attempt: 1, outcome: .ok, durationMs: 1))))
                finished += 1
            }
        }
        if !batch.isEmpty { try writer.append(batch) }
        try writer.close()
        let projectStart = nowNs()
        let projected = try data.project()
        let built = nowNs()
        let engineOptions = HeraldOptions(durability: .always, executor: ClosureExecutor(fallback: { _ in .ok }))
        let openStart = nowNs()
        let herald = try Herald.open(directory: data, options: engineOptions)
        let openSeconds = seconds(openStart, nowNs())
        let pending = herald.pendingCount
        try herald.close()
        reporter.emit(Row(workload: "restart", measure: "Herald.open, projection caught up", value: openSeconds * 1000, unit: "ms",
                          note: "\(projected.to) records, \(finished) finished deliveries, \(pending) pending (built untimed in \(format3(seconds(buildStart, built))) s, of which project() \(format3(seconds(projectStart, built))) s = \(grouped(Double(projected.records) / seconds(projectStart, built))) records/s)",
                          extra: [("open_seconds", openSeconds), ("finished_deliveries", Double(finished)), ("records", Double(projected.to)),
                                  ("project_seconds", seconds(projectStart, built))]))
    }
}

/// Runs `body` on a new thread and returns its result: producers that block (appends waiting
/// for fsync, sleeps) stay off the cooperative pool.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
        let thread = Thread {
            do { continuation.resume(returning: try body()) } catch { continuation.resume(throwing: error) }
        }
        thread.start()
    }
}

extension Benchmarks {
    var restartPendingDirectory: String { options.workDirectory + "/restart-pending" }

    /// Restart time with every delivery of the workload pending (about 1.45 M): `Herald.open`
    /// when the engine snapshot is at the checkpoint (after a clean close), when it is
    /// `tail` records behind it (a crash after the background projection moved on), and
    /// without one (the projection's rows). The directory is built untimed.
    func restartPending() throws {
        let setup = try LineFile(path: options.workload.setupPath).records()
        let all = try LineFile(path: options.workload.eventsPath).records(defaultTs: setup.last?.ts ?? 0)
        let tail = min(100_000, all.count / 10)
        removeTree(restartPendingDirectory)
        let data = DataDirectory(path: restartPendingDirectory)
        let writer = try data.openWriter(durability: .none)
        for start in stride(from: 0, to: setup.count + all.count - tail, by: 4096) {
            let end = min(start + 4096, setup.count + all.count - tail)
            try writer.append((start..<end).map { $0 < setup.count ? setup[$0] : all[$0 - setup.count] })
        }
        try writer.close()
        try data.project()  // the snapshot is saved here, `tail` records before the end
        let late = try data.openWriter(durability: .none)
        for start in stride(from: all.count - tail, to: all.count, by: 4096) {
            try late.append(Array(all[start..<min(start + 4096, all.count)]))
        }
        try late.close()
        // The tail projected as the running engine's background projection does: no snapshot.
        let projection = try data.openProjection()
        let reader = try data.openReader()
        var dispatcher = try reader.restoredState(from: projection)
        var steps: [ProjectionStep] = []
        try reader.replay(into: &dispatcher) { position, record, effects, after in
            steps.append(ProjectionStep(position: position, record: record, effects: effects))
            if steps.count == 50_000 || position == all.count + setup.count {
                try projection.apply(steps, registryAfter: after.registry)
                steps.removeAll(keepingCapacity: true)
            }
        }
        let engineOptions = HeraldOptions(durability: .none, executor: ClosureExecutor(fallback: { _ in .ok }))
        func open(_ measure: String, _ note: String) throws {
            let start = nowNs()
            let herald = try Herald.open(directory: data, options: engineOptions)
            let openSeconds = seconds(start, nowNs())
            let pending = herald.pendingCount
            try herald.close(projecting: false)
            reporter.emit(Row(workload: "restart-pending", measure: measure, value: openSeconds * 1000, unit: "ms",
                              note: "\(pending) pending deliveries; \(note)", extra: [("open_seconds", openSeconds), ("pending", Double(pending))]))
        }
        let behind = try projection.snapshotPosition() ?? 0
        try open("Herald.open, snapshot \(tail) records behind the checkpoint (after kill -9)",
                 "snapshot at \(behind), checkpoint \(try projection.checkpointPosition())")
        try projection.database.execute("DELETE FROM engine_snapshot")
        try open("Herald.open, no snapshot (the projection's rows)", "the rows at the checkpoint")
        try data.project()
        try open("Herald.open, snapshot at the checkpoint (after a clean close)", "snapshot at \(try projection.snapshotPosition() ?? 0)")
    }
}
