import CoreMetrics
import Foundation
import HeraldCore
import HeraldLog
import HeraldThreads
import Synchronization

/// The live engine's storage thread (``StoragePolicy``): every `intervalMs`, compacts what the
/// retention policy no longer needs, then rewrites closed segments with LZ4-HC, and reports
/// the log's size. A joinable thread at nice 10; ``stop()`` waits for it, so no file of the
/// log changes once the engine closes (a recompression stops between blocks, a compaction in
/// progress finishes first).
final class BackgroundStorage: Sendable {
    private let engine: Herald
    private let writer: RecordWriter
    private let policy: StoragePolicy
    private let stopped = Mutex(false)
    private let thread = Mutex<JoinableThread?>(nil)
    private let metrics = StorageMetrics()

    init(engine: Herald, writer: RecordWriter, policy: StoragePolicy) {
        self.engine = engine
        self.writer = writer
        self.policy = policy
    }

    func start() {
        guard policy.recompressionLevel != nil || policy.retains else { return }
        let started = JoinableThread { [self] in
            setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, 10)
            while !isStopped {
                var waited: Int64 = 0
                while waited < policy.intervalMs, !isStopped {
                    let step = min(100, policy.intervalMs - waited)
                    Thread.sleep(forTimeInterval: Double(step) / 1000)
                    waited += step
                }
                guard !isStopped else { return }
                do {
                    try pass()
                } catch {
                    if !isStopped {
                        engine.options.logger.error("the storage pass failed", metadata: ["error": "\(error)"])
                    }
                }
            }
        }
        thread.withLock { $0 = started }
    }

    /// Stops the thread and waits for it.
    func stop() {
        stopped.withLock { $0 = true }
        thread.withLock { $0.take() }?.join()
    }

    private var isStopped: Bool { stopped.withLock { $0 } }

    /// One pass: retention, then recompression, then the gauges.
    func pass() throws {
        let reader = writer.writer.makeReader()
        if policy.retains, let point = try compactionPoint(reader) {
            let result = try writer.compact(before: point, archiveDirectory: policy.archiveDirectory)
            if let state = try writer.makeReader().compactedStart() { try engine.pruneProjection(to: state) }
            metrics.compactions.increment()
            metrics.segmentsRemoved.increment(by: result.removedSegments.count)
            engine.options.logger.info("compacted the log", metadata: [
                "first_position": "\(result.start)", "removed_segments": "\(result.removedSegments.count)",
                "removed_bytes": "\(result.removedBytes)", "archive": "\(result.archiveDirectory ?? "-")",
            ])
        }
        if let level = policy.recompressionLevel {
            let report = try writer.recompressClosedSegments(level: level) { !isStopped }
            if report.rewritten > 0 {
                metrics.segmentsRecompressed.increment(by: report.rewritten)
                metrics.bytesSaved.increment(by: Int64(clamping: report.bytesBefore - min(report.bytesBefore, report.bytesAfter)))
            }
        }
        let stats = try reader.stats()
        metrics.storedBytes.record(Int64(clamping: stats.storedBytes))
        metrics.ratio.record(stats.storedBytes == 0 ? 0 : Double(stats.rawBytes) / Double(stats.storedBytes))
        metrics.segments.record(stats.segments)
        metrics.firstPosition.record(Int64(clamping: try reader.firstPosition()))
    }

    private func compactionPoint(_ reader: LogReader) throws -> UInt64? {
        let closed = try reader.closedSegments()
        guard let lastClosed = closed.last else { return nil }
        let last = reader.lastPosition
        guard last > 0, let lastTs = try writer.makeReader().record(at: last)?.ts else { return nil }
        return policy.compactionPoint(closed: closed, activeBase: lastClosed.lastPosition + 1, last: last, lastTs: lastTs,
                                      start: try reader.firstPosition(), limit: engine.compactionLimit())
    }
}

/// What the storage thread reports (names in docs/EMBEDDING.md).
struct StorageMetrics: Sendable {
    /// Bytes of the log's blocks on disk.
    let storedBytes = Gauge(label: "herald_log_stored_bytes")
    /// Raw record bytes per stored byte.
    let ratio = Gauge(label: "herald_log_compression_ratio")
    /// Segment files.
    let segments = Gauge(label: "herald_log_segments")
    /// The log's first position (1, or where its last compaction left it): with
    /// `herald_log_position`, the retained range.
    let firstPosition = Gauge(label: "herald_log_first_position")
    let compactions = Counter(label: "herald_log_compactions_total")
    let segmentsRemoved = Counter(label: "herald_log_segments_removed_total")
    let segmentsRecompressed = Counter(label: "herald_log_segments_recompressed_total")
    let bytesSaved = Counter(label: "herald_log_recompression_saved_bytes_total")
}
