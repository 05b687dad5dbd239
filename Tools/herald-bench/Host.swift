import CLZ4
import Foundation
import Glibc
import Synchronization

/// The machine under the benchmarks, measured without Herald: how long `fdatasync` of a small
/// append takes with the cores idle and with every core busy, and how often a busy thread is
/// stopped for 2 ms or more. On this project's VM the two differ: when the guest's cores and the
/// host's I/O work for it exceed the VM's CPU allowance, the host stops the whole VM for several
/// milliseconds at its 100 ms accounting boundaries, and the live engine's p99 follows.
extension Benchmarks {
    func host() throws {
        try makeDirectories(options.workDirectory)
        let path = options.workDirectory + "/host-fsync.bin"
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw BenchError("host: cannot create \(path) (errno \(errno))") }
        defer {
            close(fd)
            unlink(path)
        }
        // Preallocated with written zeros, as the log's segments are: an append changes no size.
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        for index in 0..<64 {
            guard zeros.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, off_t(index << 20)) }) == zeros.count else {
                throw BenchError("host: cannot write \(path) (errno \(errno))")
            }
        }
        fsync(fd)
        let seconds = 3.0
        let idle = try fsyncLatencies(fd: fd, seconds: seconds)
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let spinners = Spinners(count: cores)
        let loaded = try fsyncLatencies(fd: fd, seconds: seconds)
        let stalls = spinners.stop()
        for (label, result) in [("cores idle", idle), ("\(cores) threads spinning", loaded)] {
            reporter.emit(Row(workload: "host", measure: "fdatasync p50 / p99 of a 2 KB append, \(label)", value: result.p99, unit: "ms (p99)",
                              note: "p50 \(format3(result.p50)) ms, max \(format3(result.max)) ms, \(result.count) syncs in \(format3(seconds)) s, \(result.slow) over 3 ms",
                              extra: [("p50_ms", result.p50), ("p99_ms", result.p99), ("max_ms", result.max),
                                      ("syncs", Double(result.count)), ("over_3ms", Double(result.slow))]))
        }
        reporter.emit(Row(workload: "host", measure: "stops of ≥ 2 ms seen by busy threads, while syncing", value: Double(stalls.count) / seconds / Double(cores), unit: "per s per thread",
                          note: "\(stalls.count) stops in \(format3(seconds)) s over \(cores) threads, longest \(format3(stalls.longest)) ms",
                          extra: [("stops", Double(stalls.count)), ("longest_ms", stalls.longest)]))
        try lz4Gauge()
    }

    /// The machine's speed against the reference figures the targets were set by
    /// (docs/BENCHMARKS.md, "Machine": `lz4 -b1` on events.jsonl, one core: compress
    /// ≈ 1,000 MB/s, decompress ≈ 4,300 MB/s):
    /// LZ4 level 1 over the first 64 MiB of events.jsonl in 4 MiB blocks, best of 3 passes.
    private func lz4Gauge() throws {
        // The first 64 MiB only (reading the whole file would only cost time).
        guard let handle = FileHandle(forReadingAtPath: options.workload.eventsPath),
              let data = try? handle.read(upToCount: 64 << 20), !data.isEmpty else {
            throw BenchError("host: cannot read \(options.workload.eventsPath) for the LZ4 gauge")
        }
        try? handle.close()
        let input = [UInt8](data)
        let block = 4 << 20
        let bound = Int(LZ4_compressBound(Int32(block)))
        var compressed = [[UInt8]]()
        var compressTimes: [Double] = [], decompressTimes: [Double] = []
        var output = [UInt8](repeating: 0, count: block)
        for _ in 0..<3 {
            compressed.removeAll(keepingCapacity: true)
            let start = nowNs()
            try input.withUnsafeBytes { source in
                var offset = 0
                // Bound: one block per round, to the end of the input.
                while offset < source.count {
                    let count = min(block, source.count - offset)
                    var out = [UInt8](repeating: 0, count: bound)
                    let written = out.withUnsafeMutableBytes { target in
                        LZ4_compress_default(source.baseAddress!.advanced(by: offset).assumingMemoryBound(to: CChar.self),
                                             target.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(count), Int32(bound))
                    }
                    guard written > 0 else { throw BenchError("host: LZ4 compression failed") }
                    out.removeLast(out.count - Int(written))
                    compressed.append(out)
                    offset += count
                }
            }
            compressTimes.append(seconds(start, nowNs()))
            let decompressStart = nowNs()
            for part in compressed {
                let got = part.withUnsafeBytes { source in
                    output.withUnsafeMutableBytes { target in
                        LZ4_decompress_safe(source.baseAddress!.assumingMemoryBound(to: CChar.self),
                                            target.baseAddress!.assumingMemoryBound(to: CChar.self), Int32(part.count), Int32(block))
                    }
                }
                guard got > 0 else { throw BenchError("host: LZ4 decompression failed") }
            }
            decompressTimes.append(seconds(decompressStart, nowNs()))
        }
        let megabytes = Double(input.count) / 1e6
        let compress = megabytes / (compressTimes.min() ?? .nan)
        let decompress = megabytes / (decompressTimes.min() ?? .nan)
        let ratio = Double(input.count) / Double(compressed.reduce(0) { $0 + $1.count })
        reporter.emit(Row(workload: "host", measure: "LZ4 level 1 on events.jsonl, one core (reference: 1,000 / 4,300 MB/s)", value: compress, unit: "MB/s compress",
                          note: "decompress \(grouped(decompress)) MB/s, ratio \(format3(ratio)); this machine now runs at \(Int((compress / 1000 * 100).rounded())) % / \(Int((decompress / 4300 * 100).rounded())) % of the reference figures",
                          extra: [("compress_mb_s", compress), ("decompress_mb_s", decompress), ("ratio", ratio)]))
    }

    private func fsyncLatencies(fd: Int32, seconds: Double) throws -> (count: Int, p50: Double, p99: Double, max: Double, slow: Int) {
        let record = [UInt8](repeating: 0x78, count: 2048)
        var latencies: [Double] = []
        let start = nowNs()
        var offset = 0
        // Bound: `seconds` of wall time.
        while Double(nowNs() - start) / 1e9 < seconds {
            let began = nowNs()
            guard record.withUnsafeBytes({ pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }) == record.count,
                  fdatasync(fd) == 0 else {
                throw BenchError("host: write or fdatasync failed (errno \(errno))")
            }
            latencies.append(Double(nowNs() - began) / 1e6)
            offset = (offset + record.count) % (60 << 20)
            usleep(300)  // about the live benchmark's pace of syncs
        }
        latencies.sort()
        guard let last = latencies.last else { throw BenchError("host: no sync completed") }
        let at = { (p: Double) in latencies[min(latencies.count - 1, Int(Double(latencies.count) * p))] }
        return (latencies.count, at(0.5), at(0.99), last, latencies.filter { $0 > 3 }.count)
    }
}

/// Threads that spin until stopped, each counting the gaps of 2 ms or more between two reads
/// of the clock (time the thread was not running).
private final class Spinners: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let stalls = Mutex<(count: Int, longest: Double)>((0, 0))
    private let done: DispatchSemaphore
    private let count: Int

    init(count: Int) {
        self.count = count
        done = DispatchSemaphore(value: 0)
        for _ in 0..<count {
            let thread = Thread { [self] in
                var last = nowNs()
                var local = (count: 0, longest: 0.0)
                // Bound: until `stop`.
                while !stopped.load(ordering: .relaxed) {
                    let now = nowNs()
                    let gap = Double(now - last) / 1e6
                    if gap >= 2 {
                        local.count += 1
                        local.longest = max(local.longest, gap)
                    }
                    last = now
                }
                stalls.withLock { $0 = ($0.count + local.count, max($0.longest, local.longest)) }
                done.signal()
            }
            thread.start()
        }
    }

    func stop() -> (count: Int, longest: Double) {
        stopped.store(true, ordering: .relaxed)
        for _ in 0..<count { done.wait() }
        return stalls.withLock { $0 }
    }
}
