#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization

/// Runs actions at deadlines of the monotonic clock, from one thread of its own.
///
/// The engine sets a deadline for every round (its attempts' timeout) and for every idle
/// wait of the run loop: thousands a second under load. `Task.sleep` arms a timer that stays
/// armed until its deadline even when the sleeping task is cancelled, so a busy engine held
/// tens of thousands of stale timers (a round's lasts `attemptTimeoutMs`, 30 s by default)
/// that each woke a thread for nothing when it expired. Here a cancelled alarm is removed at
/// once, and the thread sleeps until the earliest deadline left.
///
/// ```swift
/// let alarm = Alarm()
/// let token = alarm.schedule(atNs: Alarm.nowNs() + 5_000_000) { print("5 ms later") }
/// alarm.cancel(token)                                      // it will not run
/// await alarm.sleep(untilNs: Alarm.nowNs() + 1_000_000)    // returns early if the task is cancelled
/// ```
final class Alarm: Sendable {
    private let core = Core()

    /// Starts the alarm's thread; it ends when the alarm is released.
    init() {
        let core = self.core
        let thread = Thread { core.run() }
        thread.name = "herald-alarm"
        thread.start()
    }

    deinit {
        core.close()
    }

    /// The monotonic clock, in nanoseconds.
    static func nowNs() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
    }

    /// The deadline `ms` milliseconds from now (negative counts as 0; saturates instead of
    /// overflowing).
    static func deadline(afterMs ms: Int64) -> UInt64 {
        let (nanoseconds, overflow) = UInt64(max(0, ms)).multipliedReportingOverflow(by: 1_000_000)
        let (deadline, late) = nowNs().addingReportingOverflow(overflow ? .max : nanoseconds)
        return late ? .max : deadline
    }

    /// Runs `action` on the alarm's thread once `deadline` (``nowNs()``) has passed, unless
    /// ``cancel(_:)`` removes it first. Returns the token that names it.
    @discardableResult
    func schedule(atNs deadline: UInt64, _ action: @escaping @Sendable () -> Void) -> UInt64 {
        core.add(deadline: deadline, action: action)
    }

    /// Removes a scheduled action; false if it already ran (or is running) or was removed.
    @discardableResult
    func cancel(_ token: UInt64) -> Bool {
        core.remove(token)
    }

    /// Suspends until `deadline` (``nowNs()``), or until the task is cancelled: then it
    /// returns at once and the alarm is removed (no timer is left behind).
    func sleep(untilNs deadline: UInt64) async {
        let sleeper = Sleeper()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                guard sleeper.register(continuation) else {
                    continuation.resume()  // cancelled before it began
                    return
                }
                let token = schedule(atNs: deadline) { _ = sleeper.finish() }
                // Cancelled while the alarm was being set: remove it now.
                if !sleeper.setToken(token) { cancel(token) }
            }
        } onCancel: {
            if let token = sleeper.finish() { cancel(token) }
        }
    }
}

/// One `sleep`'s state, shared by the sleeping task, its alarm and its cancellation handler;
/// whichever comes first finishes it, once.
private final class Sleeper: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Void, Never>?
        var token: UInt64?
        var done = false
    }

    private let state = Mutex(State())

    /// Keeps the continuation; false when the sleep is already over (cancelled).
    func register(_ continuation: CheckedContinuation<Void, Never>) -> Bool {
        state.withLock { s in
            guard !s.done else { return false }
            s.continuation = continuation
            return true
        }
    }

    /// Records the alarm's token; false when the sleep ended meanwhile.
    func setToken(_ token: UInt64) -> Bool {
        state.withLock { s in
            s.token = token
            return !s.done
        }
    }

    /// Ends the sleep (resumes the task) if it was not over; returns the alarm's token, if
    /// set, so a cancellation can remove it.
    func finish() -> UInt64? {
        let (continuation, token): (CheckedContinuation<Void, Never>?, UInt64?) = state.withLock { s in
            if s.done { return (nil, nil) }
            s.done = true
            defer { s.continuation = nil }
            return (s.continuation, s.token)
        }
        continuation?.resume()
        return token
    }
}

extension Alarm {
    /// The alarms and the thread that runs them.
    ///
    /// `@unchecked Sendable`: every stored property is read and written only with `mutex`
    /// held; the pthread objects live at stable heap addresses until `deinit`.
    fileprivate final class Core: @unchecked Sendable {
        private struct Entry {
            var token: UInt64
            var deadline: UInt64
            var action: @Sendable () -> Void
        }

        private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        /// Pending alarms, unordered: there are a few at a time (one per round in progress and
        /// the run loop's wait), so a scan beats a heap.
        private var entries: [Entry] = []
        private var nextToken: UInt64 = 0
        /// The deadline the thread sleeps until (`.max`: until signalled).
        private var sleepingUntil: UInt64 = .max
        private var closed = false

        init() {
            mutex.initialize(to: pthread_mutex_t())
            condition.initialize(to: pthread_cond_t())
            precondition(pthread_mutex_init(mutex, nil) == 0)
            var attributes = pthread_condattr_t()
            precondition(pthread_condattr_init(&attributes) == 0)
            // Deadlines are on the monotonic clock: a change of the wall clock moves none.
            precondition(pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC) == 0)
            precondition(pthread_cond_init(condition, &attributes) == 0)
            pthread_condattr_destroy(&attributes)
        }

        deinit {
            pthread_cond_destroy(condition)
            pthread_mutex_destroy(mutex)
            condition.deallocate()
            mutex.deallocate()
        }

        func add(deadline: UInt64, action: @escaping @Sendable () -> Void) -> UInt64 {
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            nextToken &+= 1
            entries.append(Entry(token: nextToken, deadline: deadline, action: action))
            // Only an alarm earlier than the thread's wake-up needs to wake it.
            if deadline < sleepingUntil { pthread_cond_signal(condition) }
            return nextToken
        }

        func remove(_ token: UInt64) -> Bool {
            pthread_mutex_lock(mutex)
            defer { pthread_mutex_unlock(mutex) }
            guard let index = entries.firstIndex(where: { $0.token == token }) else { return false }
            entries.swapAt(index, entries.count - 1)
            entries.removeLast()
            return true
        }

        func close() {
            pthread_mutex_lock(mutex)
            closed = true
            pthread_cond_signal(condition)
            pthread_mutex_unlock(mutex)
        }

        /// The thread: runs due alarms (outside the lock), then sleeps until the next one.
        func run() {
            pthread_mutex_lock(mutex)
            // Bound: each round runs the due alarms or sleeps; `close` ends it.
            while !closed {
                let now = Alarm.nowNs()
                var due: [Entry] = []
                var earliest = UInt64.max
                var index = 0
                while index < entries.count {
                    if entries[index].deadline <= now {
                        due.append(entries[index])
                        entries.swapAt(index, entries.count - 1)
                        entries.removeLast()
                    } else {
                        earliest = min(earliest, entries[index].deadline)
                        index += 1
                    }
                }
                if !due.isEmpty {
                    pthread_mutex_unlock(mutex)
                    // In deadline order (then in order of scheduling) when several are due at once.
                    due.sort { ($0.deadline, $0.token) < ($1.deadline, $1.token) }
                    for entry in due { entry.action() }
                    // Released before the lock is taken again: an action may hold the last
                    // reference to the alarm's owner, whose release closes the alarm (and
                    // takes this lock).
                    due = []
                    pthread_mutex_lock(mutex)
                    continue
                }
                sleepingUntil = earliest
                if earliest == .max {
                    pthread_cond_wait(condition, mutex)
                } else {
                    var until = timespec(tv_sec: Int(earliest / 1_000_000_000), tv_nsec: Int(earliest % 1_000_000_000))
                    pthread_cond_timedwait(condition, mutex, &until)
                }
                sleepingUntil = 0
            }
            pthread_mutex_unlock(mutex)
        }
    }
}
