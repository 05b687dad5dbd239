import Synchronization

/// Wakes the dispatcher loop: `notify()` from any thread; `wait(upToMs:)` returns at the
/// first notification or when the time is up. A notification with nobody waiting is kept
/// for the next wait, so none is lost.
final class Notifier: Sendable {
    private struct State {
        var waiter: CheckedContinuation<Void, Never>?
        var waiterID: UInt64 = 0
        var pending = false
    }

    private let state = Mutex(State())

    func notify() {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { s in
            if let w = s.waiter {
                s.waiter = nil
                return w
            }
            s.pending = true
            return nil
        }
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
                return s.waiterID
            }
            guard let registered else {
                continuation.resume()
                return
            }
            Task {
                try? await Task.sleep(for: .milliseconds(max(ms, 0)))
                let expired: CheckedContinuation<Void, Never>? = self.state.withLock { s in
                    guard s.waiterID == registered, let w = s.waiter else { return nil }
                    s.waiter = nil
                    return w
                }
                expired?.resume()
            }
        }
    }
}
