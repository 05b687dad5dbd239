// Fuzz target: the block index file reader (`BlockIndexFile.load`), the "checkpoint reader"
// slot of issue 13's fuzzing list.
//
// The input's first byte picks a segment of `SampleLog` (a real two-segment log: the first
// closed, the second active); the rest replaces that segment's `.index` file. Then:
// 1. `BlockIndexFile.load` returns a structurally consistent prefix of entries (contiguous
//    positions from the base and offsets from 0, each block inside the segment);
// 2. the index is an accelerator, never a correctness input: readers starting at every
//    position read exactly the log's records, and a `LogWriter` opens it (rebuilding the
//    index), appends one record and closes, after which a reader reads all of them.
//
// The durable watermark (issue 13, "acknowledged loss is never automatic") is the other small
// checksummed file a reader trusts only after checking; when it exists, fuzz its loader here
// too: give it a selector value of its own and check that a damaged watermark is an error.
import FuzzSupport
@testable import HeraldLog

let sample: SampleLog = {
    do { return try SampleLog() } catch { fatalError("cannot write the sample log: \(error)") }
}()
let configuration = LogConfiguration(segmentBytesMax: 1_200, blockRawBytesMax: 160, durability: .none,
                                     lockWaitMilliseconds: 0, preallocationBytesMax: 0)
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
    let chosen = Int(selector) % sample.segments.count
    let segment = sample.segments[chosen]
    let index = Array(input.dropFirst())
    let fs = sample.fileSystem(replacingIndexOf: chosen, with: index)
    let indexPath = SampleLog.directory + "/" + segment.indexName

    // 1. The loader.
    let fileSize = UInt64(segment.segment.count)
    let loaded = BlockIndexFile.load(fs, path: indexPath, base: segment.base, fileSize: fileSize)
    var position = segment.base
    var offset: UInt64 = 0
    for entry in loaded.entries {
        expect(entry.basePosition == position && entry.offset == offset && entry.count >= 1, "entry \(entry) breaks the prefix")
        expect(entry.endOffset <= fileSize, "entry \(entry) ends past the segment (\(fileSize) bytes)")
        position = entry.endPosition
        offset = entry.endOffset
    }
    if loaded.complete {
        expect(index.count == BlockIndexFile.headerBytes + loaded.entries.count * BlockIndexFile.entryBytes,
               "a complete index of \(loaded.entries.count) entries has \(index.count) bytes")
    }

    // 2. Readers and the writer see the log, whatever the index says.
    let expected = sample.entries
    do {
        let reader = try LogReader(directory: SampleLog.directory, fileSystem: fs)
        expect(reader.lastPosition == UInt64(expected.count), "the reader ends at \(reader.lastPosition), expected \(expected.count)")
        for start in starts {
            var next = start
            try reader.forEach(from: start) { record in
                let want = expected[Int(next - 1)]
                expect(record.position == next && record.ts == want.ts && Array(record.payload) == want.payload,
                       "from \(start): record \(record.position) differs from the log's")
                next += 1
            }
            expect(next == UInt64(expected.count) + 1, "from \(start): the reader stopped at \(next)")
        }
    } catch {
        expect(false, "a reader fails on a sound log with a damaged index: \(error)")
    }
    do {
        let writer = try LogWriter(directory: SampleLog.directory, configuration: configuration, fileSystem: fs)
        expect(writer.recoveryReport.lastPosition == UInt64(expected.count), "recovery ends the log at \(writer.recoveryReport.lastPosition)")
        let added = LogEntry(ts: expected.last?.ts ?? 0, payload: Array("after".utf8))
        try writer.append(added)
        try writer.close()
        let reader = try LogReader(directory: SampleLog.directory, fileSystem: fs)
        var count = 0
        try reader.forEach { record in
            count += 1
            expect(record.position == UInt64(count), "after recovery: record \(count) read at \(record.position)")
        }
        expect(count == expected.count + 1, "after recovery and one append a reader reads \(count) records")
    } catch {
        expect(false, "the writer fails on a sound log with a damaged index: \(error)")
    }
    return 0
}

runFuzzer(fuzzBlockIndex)
