// Fuzz target: the small checked files beside the segments — the block index (`.index`,
// `BlockIndexFile.load`) and the durable watermark (`DURABLE`, `DurableWatermark.load`):
// the "checkpoint reader" of issue 13's fuzzing list.
//
// The input's first byte picks a file of `SampleLog` (a real three-segment log, the last one
// active): one of the segments' indexes, or the watermark; the rest of the input replaces it.
// Then:
// 1. `BlockIndexFile.load` of an index returns a structurally consistent prefix of entries
//    (contiguous positions from the base and offsets from 0, each block inside the segment);
//    `DurableWatermark.load` of a watermark returns one or refuses it (`damagedWatermark`);
// 2. an index is an accelerator, never a correctness input: readers starting at the first
//    position and at segment edges read exactly the log's records, and a `LogWriter` opens the
//    log (rebuilding the index), appends one record and closes, after which a reader reads
//    all of them;
// 3. a watermark decides: a damaged one is refused by readers and the writer alike, one past
//    the log's end too (`acknowledgedDamaged`) until the writer opens with `acceptLoss`; one
//    at or before the end changes nothing.
import FuzzSupport
@testable import HeraldLog

let sample: SampleLog = {
    do { return try SampleLog() } catch { fatalError("cannot write the sample log: \(error)") }
}()
// `.none`: no syncer thread (a thread per input costs more than the rest of the writer's
// work under AddressSanitizer); recovery reads the watermark the same with every policy.
let configuration = LogConfiguration(segmentBytesMax: 1_200, blockRawBytesMax: 160, durability: .none,
                                     lockWaitMilliseconds: 0, preallocationBytesMax: 0)
/// The files the selector byte picks from: each segment's index, then the watermark.
let choices: [String] = sample.segments.map(\.indexName) + [SampleLog.watermarkName]
/// Where readers start: the first position, the last of the first segment, the first of the
/// last segment (each cursor costs a 1 MiB decompression buffer, so a few well-chosen ones).
let starts: [UInt64] = {
    let count = UInt64(sample.entries.count)
    var out: Set<UInt64> = [1]
    if let second = sample.segments.dropFirst().first { out.insert(second.base - 1) }
    if let last = sample.segments.last { out.insert(last.base) }
    return out.filter { $0 >= 1 && $0 <= count }.sorted()
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzBlockIndex(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    guard let selector = input.first else { return 0 }
    let chosen = choices[Int(selector) % choices.count]
    let bytes = Array(input.dropFirst())
    let fs = sample.fileSystem(replacing: chosen, with: bytes)
    let count = UInt64(sample.entries.count)

    // 1. The loaders.
    /// Whether readers and the writer must refuse the log, and with what.
    enum Verdict { case sound, damagedWatermark, pastTheEnd(UInt64) }
    var verdict = Verdict.sound
    if let segment = sample.segments.first(where: { $0.indexName == chosen }) {
        let fileSize = UInt64(segment.bytes)
        let loaded = BlockIndexFile.load(fs, path: SampleLog.directory + "/" + chosen, base: segment.base, fileSize: fileSize)
        var position = segment.base
        var offset: UInt64 = 0
        for entry in loaded.entries {
            expect(entry.basePosition == position && entry.offset == offset && entry.count >= 1, "entry \(entry) breaks the prefix")
            expect(entry.endOffset <= fileSize, "entry \(entry) ends past the segment (\(fileSize) bytes)")
            position = entry.endPosition
            offset = entry.endOffset
        }
        if loaded.complete {
            expect(bytes.count == BlockIndexFile.headerBytes + loaded.entries.count * BlockIndexFile.entryBytes,
                   "a complete index of \(loaded.entries.count) entries has \(bytes.count) bytes")
        }
    } else {
        do {
            if let watermark = try DurableWatermark.load(fs, directory: SampleLog.directory), watermark.position > count {
                verdict = .pastTheEnd(watermark.position)
            }
        } catch LogError.damagedWatermark {
            verdict = .damagedWatermark
        } catch {
            expect(false, "DurableWatermark.load throws \(error)")
        }
    }

    // 2., 3. Readers and the writer.
    let expected = sample.entries
    do {
        let reader = try LogReader(directory: SampleLog.directory, fileSystem: fs)
        expect(reader.lastPosition == count, "the reader ends at \(reader.lastPosition), expected \(count)")
        if case .sound = verdict {} else { expect(false, "a reader accepts a log whose watermark is \(verdict)") }
        for start in starts {
            var next = start
            try reader.forEach(from: start) { record in
                let want = expected[Int(next - 1)]
                expect(record.position == next && record.ts == want.ts && Array(record.payload) == want.payload,
                       "from \(start): record \(record.position) differs from the log's")
                next += 1
            }
            expect(next == count + 1, "from \(start): the reader stopped at \(next)")
        }
    } catch {
        switch (verdict, error) {
        case (.damagedWatermark, LogError.damagedWatermark), (.pastTheEnd, LogError.acknowledgedDamaged): break
        default: expect(false, "a reader fails on a sound log with \(chosen) damaged (\(verdict)): \(error)")
        }
    }
    // The writer opens without `acceptLoss` first; only a watermark past the log's end may
    // make it refuse, and then it opens with `acceptLoss`.
    var acceptLoss = false
    do {
        let writer: LogWriter
        do {
            writer = try LogWriter(directory: SampleLog.directory, configuration: configuration, fileSystem: fs)
            if case .sound = verdict {} else { expect(false, "the writer opens a log whose watermark is \(verdict)") }
        } catch {
            switch (verdict, error) {
            case (.damagedWatermark, LogError.damagedWatermark): return 0
            case (.pastTheEnd, LogError.acknowledgedDamaged):
                acceptLoss = true
                writer = try LogWriter(directory: SampleLog.directory, configuration: configuration, fileSystem: fs, acceptLoss: true)
            default:
                expect(false, "the writer refuses a sound log with \(chosen) damaged (\(verdict)): \(error)")
                return 0
            }
        }
        expect(writer.recoveryReport.lastPosition == count, "recovery ends the log at \(writer.recoveryReport.lastPosition)")
        let added = LogEntry(ts: expected.last?.ts ?? 0, payload: Array("after".utf8))
        try writer.append(added)
        try writer.close()
        let reader = try LogReader(directory: SampleLog.directory, fileSystem: fs)
        var read: UInt64 = 0
        try reader.forEach { record in
            read += 1
            expect(record.position == read, "after recovery: record \(read) read at \(record.position)")
        }
        expect(read == count + 1, "after recovery and one append a reader reads \(read) records")
    } catch {
        expect(false, "the writer (acceptLoss: \(acceptLoss)) fails on a sound log with \(chosen) damaged (\(verdict)): \(error)")
    }
    return 0
}

runFuzzer(fuzzBlockIndex)
