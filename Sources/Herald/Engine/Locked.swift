#if canImport(Glibc)
import Glibc
#endif

/// A value behind a plain pthread mutex (glibc's adaptive kind: a short spin before sleeping).
///
/// The engine's state lock is taken by the appending threads, the run loop and the attempt
/// tasks many times per event. On Linux, Synchronization's `Mutex` is a priority-inheritance
/// futex: every contended acquisition goes through the kernel's rt-mutex (5 % of a live run's
/// CPU in `rt_mutex_slowlock_block` and `_MutexHandle._lockSlow`). A critical section here
/// lasts microseconds, which a brief spin usually waits out without sleeping.
///
/// `@unchecked Sendable`: `value` is only touched inside `withLock`, under the mutex.
final class Locked<Value>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var value: Value

    init(_ value: Value) {
        self.value = value
        mutex.initialize(to: pthread_mutex_t())
        var attributes = pthread_mutexattr_t()
        precondition(pthread_mutexattr_init(&attributes) == 0)
        precondition(pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ADAPTIVE_NP)) == 0)
        precondition(pthread_mutex_init(mutex, &attributes) == 0)
        pthread_mutexattr_destroy(&attributes)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    /// Runs `body` with the value, under the lock.
    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value)
    }
}
