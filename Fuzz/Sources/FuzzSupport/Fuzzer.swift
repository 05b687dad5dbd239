#if canImport(Glibc)
import Glibc
#endif
import CLibFuzzer

/// The signature libFuzzer calls for each input: its bytes and their count. Return 0.
public typealias FuzzTest = @convention(c) (_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt

/// Runs libFuzzer with this process's command line (`-runs=`, `-max_total_time=`, corpus
/// directories…) and `test`, then exits with libFuzzer's status.
///
/// SwiftPM links an executable target with `main` defined as the target's top-level code, so
/// libFuzzer's own `main` never runs: each fuzz target's `main.swift` calls this, which hands
/// the command line to libFuzzer's `LLVMFuzzerRunDriver`.
public func runFuzzer(_ test: FuzzTest) -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, test))
}

/// The input as a buffer (libFuzzer passes a null pointer for the empty input).
public func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeBufferPointer<UInt8> {
    guard let data, size > 0 else { return UnsafeBufferPointer(start: nil, count: 0) }
    return UnsafeBufferPointer(start: data, count: size)
}

/// A property every input must keep. A failure stops the process with `message` (always
/// printed, unlike `precondition` in an optimized build), which libFuzzer reports as a crash
/// and saves the input for.
public func expect(_ condition: Bool, _ message: @autoclosure () -> String,
                   file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError("fuzz property violated: \(message())", file: file, line: line) }
}
