import HeraldCore

/// Runs scripts. An executor never throws: a failure is an ``ExecutionResult`` with an error,
/// so an executor's problem never stops the engine.
///
/// `execute` is called on the engine's run loop, and runs there until it first suspends:
/// the attempts of a round start one after another, each as far as its first `await`. An
/// executor that computes for long or blocks (file or network I/O without `await`, `sleep`)
/// should move that work off the caller, as ``ProcessExecutor`` does (each child has a thread
/// of its own), or it delays the round's other attempts and the engine. Not onto Dispatch's
/// global queues or the cooperative pool either: they have about one thread per core, and
/// work that blocks them starves everything else scheduled there.
public protocol ScriptExecutor: Sendable {
    /// Runs one attempt. Cancellation means the attempt timed out or the engine is stopping.
    func execute(_ invocation: Invocation) async -> ExecutionResult
}
