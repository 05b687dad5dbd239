#if canImport(Glibc)
import Glibc
#endif

/// A joinable pthread running one closure (the log writer's committer and syncer, the readers' read-ahead).
///
/// `@unchecked Sendable`: `thread` is written once in `init` and read by `join`, which the
/// owner calls once, after handing the object over under its lock.
package final class JoinableThread: @unchecked Sendable {
    private final class Body {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }

    private var thread = pthread_t()

    /// Starts `body` on a new thread; nil if the system refuses a thread.
    package init?(_ body: @escaping @Sendable () -> Void) {
        let box = Unmanaged.passRetained(Body(body)).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            guard let raw else { return nil }
            Unmanaged<Body>.fromOpaque(raw).takeRetainedValue().run()
            return nil
        }, box)
        if rc != 0 {
            Unmanaged<Body>.fromOpaque(box).release()
            return nil
        }
    }

    /// Waits for the thread to end.
    package func join() { pthread_join(thread, nil) }
}
