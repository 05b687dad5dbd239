#if canImport(Glibc)
import Glibc
#endif

/// A pthread mutex with four condition variables, for the group-commit handoff
/// (Synchronization's `Mutex` has no condition variable), so a change wakes only the threads
/// that wait for it: `waitForWork`/`signalWork` for the committer (an enqueue wakes only it),
/// `waitForWrite`/`wakeAfterWrite` for the syncer (a written commit), `waitForAcknowledged`
/// for appenders waiting for their records (woken only by `wakeAll`), and `wait`/`broadcast`
/// for everything else (room in the queue, `sync()`, `close()`). `wakeAll` wakes all four;
/// every change but those three goes through it.
///
/// `@unchecked Sendable`: the pthread objects live at stable heap addresses for the lifetime
/// of the object and are only touched through pthread calls, which are thread-safe.
package final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let work = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let written = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private let acknowledged = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    package init() {
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0)
        for variable in [condition, work, written, acknowledged] {
            variable.initialize(to: pthread_cond_t())
            precondition(pthread_cond_init(variable, nil) == 0)
        }
    }

    deinit {
        for variable in [condition, work, written, acknowledged] {
            pthread_cond_destroy(variable)
            variable.deallocate()
        }
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    package func lock() { precondition(pthread_mutex_lock(mutex) == 0) }
    package func unlock() { precondition(pthread_mutex_unlock(mutex) == 0) }
    /// Waits for a broadcast; call with the lock held.
    package func wait() { precondition(pthread_cond_wait(condition, mutex) == 0) }
    package func broadcast() { precondition(pthread_cond_broadcast(condition) == 0) }
    /// Runs `change` with the lock held, then wakes the `wait` waiters.
    package func changeAndBroadcast(_ change: () -> Void) {
        lock()
        change()
        broadcast()
        unlock()
    }
    /// Waits for `signalWork` (the committer); call with the lock held.
    package func waitForWork() { precondition(pthread_cond_wait(work, mutex) == 0) }
    package func signalWork() { precondition(pthread_cond_broadcast(work) == 0) }
    /// Waits for `wakeAfterWrite` (the syncer); call with the lock held.
    package func waitForWrite() { precondition(pthread_cond_wait(written, mutex) == 0) }
    /// `waitForWrite` for at most `milliseconds`; false when the time ran out. Call with the
    /// lock held.
    package func waitForWrite(upToMs milliseconds: Int) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        let nanoseconds = Int(now.tv_nsec) + (milliseconds % 1000) * 1_000_000
        var deadline = timespec(tv_sec: now.tv_sec + milliseconds / 1000 + nanoseconds / 1_000_000_000,
                                tv_nsec: nanoseconds % 1_000_000_000)
        let result = pthread_cond_timedwait(written, mutex, &deadline)
        precondition(result == 0 || result == ETIMEDOUT)
        return result == 0
    }
    /// Waits for `wakeAll` (appenders waiting for their records); call with the lock held.
    package func waitForAcknowledged() { precondition(pthread_cond_wait(acknowledged, mutex) == 0) }
    /// A commit was written and nothing was acknowledged: wakes the syncer and `wait` waiters,
    /// not the appenders waiting for acknowledgement (nor the committer, which wrote it).
    package func wakeAfterWrite() {
        broadcast()
        precondition(pthread_cond_broadcast(written) == 0)
    }
    /// Wakes every waiter of every condition.
    package func wakeAll() {
        broadcast()
        signalWork()
        precondition(pthread_cond_broadcast(written) == 0)
        precondition(pthread_cond_broadcast(acknowledged) == 0)
    }
}
