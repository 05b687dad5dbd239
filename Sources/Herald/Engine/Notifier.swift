import Synchronization

/// Wakes the dispatcher loop: `notify()` from any thread; `wait(upToMs:)` returns at the
/// first notification or when the time is up. A notification with nobody waiting is kept
/// for the next wait, so none is lost. The time limit is an ``Alarm``, removed as soon as a
/// notification ends the wait (the loop waits thousands of times a second under load).
final class Notifier: Sendable {
    private struct State {
        var waiter: CheckedContinuation<Void, Never>?
        var waiterID: UInt64 = 0
        /// The alarm that ends the current wait, once set.
        var alarm: UInt64?
        var pending = false
    }

    private let state = Mutex(State())
    private let alarm: Alarm

    init(alarm: Alarm) {
        self.alarm = alarm
    }

    func notify() {
        let (waiter, token): (CheckedContinuation<Void, Never>?, UInt64?) = state.withLock { s in
            if let w = s.waiter {
                s.waiter = nil
                defer { s.alarm = nil }
                return (w, s.alarm)
            }
            s.pending = true
            return (nil, nil)
        }
        if let token { alarm.cancel(token) }
        waiter?.resume()
    }

    func wait(upToMs ms: Int64) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let registered: UInt64? = state.withLock { s in
                if s.pending {
                    s.pending = false
                    return nil
                }
                s.waiterID &+= 1
                s.waiter = continuation
                s.alarm = nil
                return s.waiterID
            }
            guard let registered else {
                continuation.resume()
                return
            }
            let token = alarm.schedule(atNs: Alarm.deadline(afterMs: ms)) { [weak self] in self?.expire(registered) }
            let current = state.withLock { s in
                guard s.waiterID == registered, s.waiter != nil else { return false }
                s.alarm = token
                return true
            }
            // A notification ended the wait while the alarm was being set.
            if !current { alarm.cancel(token) }
        }
    }

    /// Whether a notification is kept for the next wait (none was waiting); clears it. For
    /// tests: tells whether `notify()` happened without waiting for anything.
    func takeNotification() -> Bool {
        state.withLock { s in
            defer { s.pending = false }
            return s.pending
        }
    }

    /// The time is up for wait `registered`: resumes it if it is still waiting.
    private func expire(_ registered: UInt64) {
        let expired: CheckedContinuation<Void, Never>? = state.withLock { s in
            guard s.waiterID == registered, let w = s.waiter else { return nil }
            s.waiter = nil
            s.alarm = nil
            return w
        }
        expired?.resume()
    }
}
