import Herald
import HeraldCore
import Synchronization
import Testing

/// Operator actions in the live engine (docs/SEMANTICS.md §8): a redriven delivery runs again
/// with a fresh budget, an invoked one runs with its payload, and a cancel that lands while the
/// attempt runs leaves the delivery cancelled (the outcome is dropped).
private let admin = testID(1), app = testID(2), script = testID(3), trigger = testID(4)

@Suite struct OperatorEngineTests {

    @Test func redrivenAndInvokedDeliveriesRun() async throws {
        let fixed = Mutex(false)
        let seen = Mutex<[String]>([])
        let executor = ClosureExecutor(fallback: { invocation in
            seen.withLock { $0.append("\(invocation.delivery)#\(invocation.attempt)") }
            if case .manual(_, _, let manual) = invocation.event {
                #expect(manual.payload == #"{"order":42}"#)
                #expect(invocation.json.contains(#""kind":"manual""#) && invocation.json.contains(#""payload":{"order":42}"#))
                return .ok
            }
            return fixed.withLock { $0 } ? .ok : .error("down")
        })
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            let clock = VirtualClock(startMs: 1_000_000)
            let herald = try Herald.open(directory: directory, options: HeraldOptions(durability: .none, clock: clock, executor: executor))
            try herald.append(oneTriggerSetup(admin: admin, app: app, script: script, trigger: trigger,
                                              retry: RetryConfig(maxAttempts: 2, backoff: .constant, baseMs: 10)))
            let source = try herald.append(.kv(KVMutation(op: .insert, appID: app, collection: "c", key: "k", value: "1")))
            try await herald.run(untilIdle: true)
            let id = DeliveryID(sourcePosition: source, triggerID: trigger)
            #expect(try herald.deliveries().first { $0.id == id }?.status == .dead)

            fixed.withLock { $0 = true }
            let redriven = try herald.redrive(DeliverySelection(trigger: trigger), by: admin, reason: "fixed")
            #expect(redriven.deliveries == [id])
            let invoked = try herald.invoke(trigger: trigger, by: admin, payload: #"{"order":42}"#)
            try await herald.run(untilIdle: true)
            let deliveries = try herald.deliveries()
            let again = deliveries.first { $0.id == id }
            #expect(again?.status == .succeeded)
            #expect(again?.attempts == 3)
            let manual = deliveries.first { $0.id == DeliveryID(sourcePosition: invoked, triggerID: trigger) }
            #expect(manual?.sourceKind == .manual && manual?.status == .succeeded)
            #expect(seen.withLock { $0 } == ["\(id)#1", "\(id)#2", "\(id)#3", "\(invoked):\(trigger)#1"])
            // Nothing left to redrive: the selection is empty and nothing is appended.
            #expect(try herald.redrive(DeliverySelection(trigger: trigger), by: admin).positions == nil)
            try herald.close()
            // The projection restores the same state: nothing pending, nothing redrivable.
            let reopened = try Herald.open(directory: directory, options: HeraldOptions(durability: .none, clock: clock, executor: executor))
            #expect(reopened.pendingCount == 0 && reopened.dispatcher.redrivable.isEmpty)
            try reopened.close()
        }
    }

    /// The cancel lands while the attempt runs: the delivery is cancelled, the attempt's
    /// outcome is dropped (it no longer fits), and it never starts again.
    @Test func aCancelDuringAnAttemptWins() async throws {
        let started = Mutex<CheckedContinuation<Void, Never>?>(nil)
        let release = Mutex<CheckedContinuation<Void, Never>?>(nil)
        let runs = Mutex(0)
        let executor = ClosureExecutor(fallback: { _ in
            runs.withLock { $0 += 1 }
            await withCheckedContinuation { (go: CheckedContinuation<Void, Never>) in
                release.withLock { $0 = go }
                started.withLock { $0.take() }?.resume()
            }
            return .ok
        })
        try await withTemporaryDirectory { path in
            let directory = DataDirectory(path: path)
            let herald = try Herald.open(directory: directory, options: HeraldOptions(durability: .none, executor: executor))
            try herald.append(oneTriggerSetup(admin: admin, app: app, script: script, trigger: trigger))
            let source = try herald.append(.kv(KVMutation(op: .insert, appID: app, collection: "c", key: "k", value: "1")))
            async let round = herald.runDue()
            // Wait until the attempt is running, then cancel it.
            await withCheckedContinuation { (running: CheckedContinuation<Void, Never>) in
                let already = release.withLock { $0 != nil }
                if already { running.resume() } else { started.withLock { $0 = running } }
            }
            let cancelled = try herald.cancel(DeliverySelection(trigger: trigger), by: admin, reason: "not needed")
            #expect(cancelled.deliveries == [DeliveryID(sourcePosition: source, triggerID: trigger)])
            release.withLock { $0.take() }?.resume()
            #expect(try await round.isEmpty, "the outcome of a cancelled delivery is not recorded")
            #expect(try await herald.runDue().isEmpty)
            let delivery = try herald.deliveries().first
            #expect(delivery?.status == .cancelled && delivery?.attempts == 0)
            #expect(runs.withLock { $0 } == 1)
            try herald.close()
        }
    }
}
