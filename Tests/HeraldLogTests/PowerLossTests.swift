#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import HeraldLog

@Suite struct PowerLossTests {
    static let directory = "/sim/log"
    static let config = LogConfiguration(segmentBytesMax: 700, blockRawBytesMax: 300)

    /// The scripted workload: 24 appends of 1...5 entries, in order.
    static let batches: [[LogEntry]] = {
        var out: [[LogEntry]] = []
        var n = 0
        for i in 0..<24 {
            let k = 1 + (i * 7) % 5
            out.append(entries(n..<(n + k), bytes: 30))
            n += k
        }
        return out
    }()
    static let all: [LogEntry] = batches.flatMap { $0 }

    /// Runs the workload until the first error; returns the last acknowledged position.
    static func run(_ fs: SimulatedFileSystem) -> (acknowledged: UInt64, error: LogError?) {
        var acknowledged: UInt64 = 0
        let writer: LogWriter
        do {
            writer = try LogWriter(directory: directory, configuration: config, fileSystem: fs)
        } catch {
            return (0, error as? LogError)
        }
        for batch in batches {
            do {
                let range = try writer.append(batch)
                acknowledged = range.upperBound - 1
            } catch {
                return (acknowledged, error as? LogError)
            }
        }
        do { try writer.close() } catch { return (acknowledged, error as? LogError) }
        return (acknowledged, nil)
    }

    /// Reopens the log and checks it holds a dense prefix of the workload covering every
    /// acknowledged record; then checks the recovered log accepts and keeps a new append.
    @discardableResult
    static func verify(_ fs: SimulatedFileSystem, acknowledged: UInt64, context: String) throws -> RecoveryReport {
        let writer = try LogWriter(directory: directory, configuration: config, fileSystem: fs)
        let report = writer.recoveryReport
        let records = try readAll(writer.makeReader())
        #expect(records.count >= Int(acknowledged), "\(context): lost acknowledged records (have \(records.count), acknowledged \(acknowledged))")
        #expect(records.count <= all.count, "\(context)")
        for (i, record) in records.enumerated() where i < all.count {
            if record.position != UInt64(i + 1) || record.payload != all[i].payload || record.ts != all[i].ts {
                Issue.record("\(context): record \(i + 1) is not what was written")
                break
            }
        }
        let next = try writer.append(LogEntry(ts: 1_000, payload: [42]))
        #expect(next == UInt64(records.count + 1), "\(context)")
        try writer.close()
        let reread = try readAll(directory: directory, fileSystem: fs)
        #expect(reread.count == records.count + 1, "\(context)")
        #expect(reread.last?.payload == [42], "\(context)")
        return report
    }

    @Test func crashAtEveryIOPointKeepsEveryAcknowledgedRecord() throws {
        let counting = SimulatedFileSystem()
        let clean = Self.run(counting)
        #expect(clean.error == nil)
        #expect(clean.acknowledged == UInt64(Self.all.count))
        let points = counting.ioPointCount
        #expect(points > 60)
        var truncations = 0
        var lostUnacknowledged = 0
        for k in 1...points {
            for mode in [SimulatedFileSystem.PowerLossMode.dropUnsynced, .tornPrefix(seed: UInt64(k))] {
                let fs = SimulatedFileSystem()
                fs.inject(.crash(atIOPoint: k))
                let result = Self.run(fs)
                #expect(result.error != nil, "crash point \(k) must interrupt the workload")
                fs.powerLoss(mode)
                let report = try Self.verify(fs, acknowledged: result.acknowledged, context: "crash at I/O point \(k) of \(points), \(mode)")
                if report.truncation != nil { truncations += 1 }
                if report.lastPosition < result.acknowledged { lostUnacknowledged += 1 }
            }
        }
        // The model really tore blocks (so recovery was exercised), and never lost an ack.
        #expect(truncations > 10, "only \(truncations) torn tails in \(points) crash points")
        #expect(lostUnacknowledged == 0)
    }

    @Test(arguments: [
        SimulatedFileSystem.Fault.failWrite(n: 9, errno: ENOSPC),
        .failWrite(n: 14, errno: EIO),
        .failSync(n: 6, errno: EIO),
        .failSync(n: 11, errno: ENOSPC),
    ])
    func ioErrorsFailTheWriterClosed(fault: SimulatedFileSystem.Fault) throws {
        for loseUnsynced in [false, true] {
            let fs = SimulatedFileSystem()
            fs.inject(fault)
            let writer = try LogWriter(directory: Self.directory, configuration: Self.config, fileSystem: fs)
            var acknowledged: UInt64 = 0
            var failedAt: Int?
            for (i, batch) in Self.batches.enumerated() {
                do {
                    acknowledged = try writer.append(batch).upperBound - 1
                } catch {
                    failedAt = i
                    break
                }
            }
            #expect(failedAt != nil, "\(fault) must make an append throw")
            // Fail closed: every later append throws, even though the disk works again.
            #expect {
                try writer.append(LogEntry(ts: 1_000, payload: [1]))
            } throws: { error in
                guard case let .writerFailed(_, cause) = error as? LogError, case .io = cause else { return false }
                return true
            }
            #expect(throws: LogError.self) { try writer.sync() }
            if loseUnsynced { fs.powerLoss(.dropUnsynced) } else { fs.restart() }
            try Self.verify(fs, acknowledged: acknowledged, context: "\(fault), power loss: \(loseUnsynced)")
        }
    }

    /// Appends that span several blocks (batches and prepared blocks, as `herald import`
    /// writes), cut at every write and sync point, then a power loss of either kind: a reader
    /// and the next writer agree on the log, which holds every acknowledged append and, of the
    /// others, each one whole or not at all; the durable watermark never claims more than the
    /// disk kept (the writer never refuses the log).
    @Test func crashAtEveryIOPointKeepsEachMultiBlockAppendWholeOrAbsent() throws {
        let config = LogConfiguration(segmentBytesMax: 1_500, blockRawBytesMax: 300)
        let sizes = [2, 20, 1, 35, 3, 15, 1, 24]
        var appends: [[LogEntry]] = []
        var n = 0
        for size in sizes {
            appends.append(entries(n..<(n + size), bytes: 30))
            n += size
        }
        let everything = appends.flatMap { $0 }
        let boundaries = Set(sizes.indices.map { i in UInt64(sizes[0...i].reduce(0, +)) } + [0])
        func run(_ fs: SimulatedFileSystem) -> UInt64 {
            var acknowledged: UInt64 = 0
            guard let writer = try? LogWriter(directory: Self.directory, configuration: config, fileSystem: fs) else { return 0 }
            for (i, append) in appends.enumerated() {
                do {
                    if i % 2 == 1 {
                        var prepared = PreparedBlocks(configuration: config)
                        var batch = LogBatch()
                        for entry in append { batch.append(ts: entry.ts, payload: entry.payload) }
                        try prepared.append(batch)
                        let range = try writer.enqueue(prepared)
                        try writer.waitUntilAcknowledged(through: range.upperBound - 1)
                        acknowledged = range.upperBound - 1
                    } else {
                        acknowledged = try writer.append(append).upperBound - 1
                    }
                } catch {
                    return acknowledged
                }
            }
            try? writer.close()
            return acknowledged
        }
        let counting = SimulatedFileSystem()
        #expect(run(counting) == UInt64(everything.count))
        let points = counting.ioPointCount
        var partialCut = 0
        for k in 1...points {
            for mode in [SimulatedFileSystem.PowerLossMode.dropUnsynced, .tornPrefix(seed: UInt64(k) &* 31)] {
                let fs = SimulatedFileSystem()
                fs.inject(.crash(atIOPoint: k))
                let acknowledged = run(fs)
                fs.powerLoss(mode)
                let context = "crash at I/O point \(k) of \(points), \(mode)"
                let reader = try LogReader(directory: Self.directory, fileSystem: fs)
                let seen = reader.lastPosition
                let writer = try LogWriter(directory: Self.directory, configuration: config, fileSystem: fs)
                #expect(writer.lastPosition == seen, "\(context): the reader saw \(seen), the writer kept \(writer.lastPosition)")
                #expect(seen >= acknowledged, "\(context): lost acknowledged records")
                #expect(boundaries.contains(seen), "\(context): \(seen) records is not a whole number of appends")
                if let cut = writer.recoveryReport.truncation,
                   cut.kind == .uncommittedAppend || cut.reason.contains("after blocks of an append that never completed") {
                    partialCut += 1
                }
                let records = try readAll(writer.makeReader())
                #expect(records.map(\.payload) == everything.prefix(records.count).map(\.payload), "\(context)")
                try writer.close()
            }
        }
        #expect(partialCut > 5, "only \(partialCut) crashes left an append's first blocks without its last")
    }

    /// A writer that goes idle right after an append still syncs the watermark (and, for a
    /// file it created, its directory entry) about a second later: after a power loss then,
    /// damage to that append is refused as acknowledged, not cut as a torn tail.
    @Test func anIdleWriterSyncsTheWatermark() throws {
        let fs = SimulatedFileSystem()
        let writer = try LogWriter(directory: Self.directory, configuration: LogConfiguration(), fileSystem: fs)
        try writer.append(entries(0..<3))
        // Bound: up to 10 s for the syncer's lazy sync (due 1 s after the last one).
        var synced = false
        for _ in 0..<200 where !synced {
            usleep(50_000)
            let probe = SimulatedFileSystem()
            try probe.createDirectory(Self.directory)
            synced = fs.durableContents(of: Self.directory + "/" + DurableWatermark.fileName).flatMap { bytes -> DurableWatermark? in
                probe.setDurableContents(of: Self.directory + "/" + DurableWatermark.fileName, bytes)
                return try? DurableWatermark.load(probe, directory: Self.directory)
            }?.position == 3
        }
        #expect(synced, "the watermark of an idle writer was never synced")
        fs.powerLoss(.dropUnsynced)
        #expect(try DurableWatermark.load(fs, directory: Self.directory)?.position == 3)
        withExtendedLifetime(writer) {}
    }

    @Test func simulatedDiskKeepsOnlySyncedDataOnPowerLoss() throws {
        let fs = SimulatedFileSystem()
        try fs.createDirectory("/d")
        let file = try fs.open("/d/a", mode: .create)
        try [UInt8]([1, 2, 3]).withUnsafeBytes { try file.write($0, at: 0) }
        try file.sync()
        try fs.syncDirectory("/d")
        try [UInt8](repeating: 9, count: 100).withUnsafeBytes { try file.write($0, at: 3) }
        #expect(fs.contents(of: "/d/a")?.count == 103)
        fs.powerLoss(.dropUnsynced)
        #expect(fs.contents(of: "/d/a") == [1, 2, 3])
        // A file whose directory entry was never synced disappears.
        let b = try fs.open("/d/b", mode: .create)
        try b.sync()
        fs.powerLoss(.dropUnsynced)
        #expect(fs.contents(of: "/d/b") == nil)
        // Old handles are dead after a reboot.
        #expect(throws: LogError.self) { try file.sync() }
    }
}
