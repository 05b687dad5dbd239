@testable import Herald
import Synchronization
import Testing

/// The engine's deadlines: alarms run once, in deadline order, never before their time, and a
/// cancelled alarm or sleep leaves nothing behind.
@Suite struct AlarmTests {
    @Test func alarmsRunOnceInDeadlineOrderNotBeforeTheirTime() async throws {
        let alarm = Alarm()
        let fired = Mutex<[(name: Int, at: UInt64, deadline: UInt64)]>([])
        let start = Alarm.nowNs()
        // Scheduled out of order: 30, 10, 20 ms.
        for (name, ms) in [(3, 30), (1, 10), (2, 20)] {
            let deadline = start + UInt64(ms) * 1_000_000
            alarm.schedule(atNs: deadline) { fired.withLock { $0.append((name, Alarm.nowNs(), deadline)) } }
        }
        try await waitUntil { fired.withLock { $0.count } == 3 }
        try await Task.sleep(for: .milliseconds(20))
        let runs = fired.withLock { $0 }
        #expect(runs.map(\.name) == [1, 2, 3])
        for run in runs { #expect(run.at >= run.deadline) }
    }

    @Test func aCancelledAlarmNeverRuns() async throws {
        let alarm = Alarm()
        let fired = Mutex(0)
        let token = alarm.schedule(atNs: Alarm.deadline(afterMs: 20)) { fired.withLock { $0 += 1 } }
        let kept = alarm.schedule(atNs: Alarm.deadline(afterMs: 40)) { fired.withLock { $0 += 10 } }
        #expect(alarm.cancel(token))
        #expect(!alarm.cancel(token))  // already removed
        try await waitUntil { fired.withLock { $0 } != 0 }
        try await Task.sleep(for: .milliseconds(30))
        #expect(fired.withLock { $0 } == 10)
        #expect(!alarm.cancel(kept))  // it ran
    }

    @Test func anEarlierAlarmWakesTheThreadThatSleepsUntilALaterOne() async throws {
        let alarm = Alarm()
        let fired = Mutex<[Int]>([])
        alarm.schedule(atNs: Alarm.deadline(afterMs: 600_000)) { fired.withLock { $0.append(600_000) } }
        try await Task.sleep(for: .milliseconds(5))  // the thread now sleeps for ten minutes
        let start = Alarm.nowNs()
        alarm.schedule(atNs: Alarm.deadline(afterMs: 5)) { fired.withLock { $0.append(5) } }
        try await waitUntil { !fired.withLock { $0.isEmpty } }
        #expect(fired.withLock { $0 } == [5])
        // Far below the ten minutes (a stalled machine must not fail it).
        #expect(Alarm.nowNs() - start < 300_000_000_000)
    }

    @Test func sleepEndsAtItsDeadlineOrAtOnceWhenCancelled() async throws {
        let alarm = Alarm()
        let start = Alarm.nowNs()
        await alarm.sleep(untilNs: Alarm.deadline(afterMs: 15))
        #expect(Alarm.nowNs() - start >= 15_000_000)

        // A sleep of ten minutes, cancelled after 10 ms, returns well before.
        let sleeper = Task { await alarm.sleep(untilNs: Alarm.deadline(afterMs: 600_000)) }
        try await Task.sleep(for: .milliseconds(10))
        let cancelledAt = Alarm.nowNs()
        sleeper.cancel()
        await sleeper.value
        #expect(Alarm.nowNs() - cancelledAt < 300_000_000_000)

        // Cancelled before it begins: returns at once.
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await alarm.sleep(untilNs: Alarm.deadline(afterMs: 60_000))
        }
        await early.value
    }

    @Test func deadlinesSaturateInsteadOfOverflowing() {
        #expect(Alarm.deadline(afterMs: .max) == .max)
        let now = Alarm.nowNs()
        #expect(Alarm.deadline(afterMs: -5) >= now)
        #expect(Alarm.deadline(afterMs: -5) < now + 1_000_000_000)
    }

    /// Polls `condition` every millisecond for up to 10 s.
    private func waitUntil(_ condition: () -> Bool) async throws {
        let limit = Alarm.nowNs() + 10_000_000_000
        while !condition() {
            guard Alarm.nowNs() < limit else { Issue.record("timed out"); return }
            try await Task.sleep(for: .milliseconds(1))
        }
    }
}

/// The durability watch wakes the run loop once the awaited records are durable: from the
/// writer's acknowledgement, or at once when they already were when the watch was set (an
/// acknowledgement that came first must not be lost), and not before.
@Suite struct DurabilityWatchTests {
    /// Whether `notifier` was notified since the last look (nobody waits on it here, so a
    /// notification is kept): no time is measured.
    private func wasNotified(_ notifier: Notifier) -> Bool {
        notifier.takeNotification()
    }

    @Test func wakesOnceTheAwaitedPositionIsDurable() {
        let notifier = Notifier(alarm: Alarm())
        let watch = DurabilityWatch(wakeup: notifier)
        watch.watch(through: 20, durable: 10)
        watch.acknowledged(15)
        #expect(!wasNotified(notifier), "position 20 is not durable at 15")
        watch.acknowledged(25)
        #expect(wasNotified(notifier))
        watch.acknowledged(30)
        #expect(!wasNotified(notifier), "nothing is awaited any more")
    }

    /// Records appended, then outcomes awaited past them: the sync that covers the first wakes
    /// the loop, and the next one the second.
    @Test func aLaterPositionDoesNotHideAnEarlierOnesWake() {
        let notifier = Notifier(alarm: Alarm())
        let watch = DurabilityWatch(wakeup: notifier)
        watch.watch(through: 100, durable: 90)
        watch.watch(through: 102, durable: 90)
        watch.acknowledged(101)
        #expect(wasNotified(notifier), "position 100 is durable")
        watch.acknowledged(102)
        #expect(wasNotified(notifier), "position 102 is durable")
        watch.acknowledged(103)
        #expect(!wasNotified(notifier))
    }

    @Test func anAcknowledgementBeforeTheWatchIsNotLost() {
        let notifier = Notifier(alarm: Alarm())
        let watch = DurabilityWatch(wakeup: notifier)
        watch.watch(through: 5, durable: 7)
        #expect(wasNotified(notifier))
    }
}
