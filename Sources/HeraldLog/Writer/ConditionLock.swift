#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A pthread mutex with a condition variable, for the group-commit handoff (Synchronization's
/// `Mutex` has no condition variable).
///
/// `@unchecked Sendable`: the pthread objects live at stable heap addresses for the lifetime
/// of the object and are only touched through pthread calls, which are thread-safe.
final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    init() {
        mutex.initialize(to: pthread_mutex_t())
        condition.initialize(to: pthread_cond_t())
        precondition(pthread_mutex_init(mutex, nil) == 0)
        precondition(pthread_cond_init(condition, nil) == 0)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    func lock() { precondition(pthread_mutex_lock(mutex) == 0) }
    func unlock() { precondition(pthread_mutex_unlock(mutex) == 0) }
    /// Waits for a broadcast; call with the lock held.
    func wait() { precondition(pthread_cond_wait(condition, mutex) == 0) }
    func broadcast() { precondition(pthread_cond_broadcast(condition) == 0) }
}

/// The last position the writer has acknowledged, shared with in-process readers.
final class PublishedPosition: Sendable {
    private let value: Atomic<UInt64>
    init(_ initial: UInt64) { value = Atomic(initial) }
    func load() -> UInt64 { value.load(ordering: .acquiring) }
    func store(_ position: UInt64) { value.store(position, ordering: .releasing) }
}
