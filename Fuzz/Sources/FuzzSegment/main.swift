// Fuzz target: the block/segment reader and the writer's recovery.
//
// The input is the whole of segment `00000000000000000001.log` (no index, no watermark) of a
// log on a `SimulatedFileSystem`. Then:
// 1. a `LogReader` opens it and reads every record it publishes: positions from 1 without a
//    gap, as many as `lastPosition` (a published position that cannot be read is a failure);
//    a cursor started half-way yields the same suffix;
// 2. a `LogWriter` opens the log, and its recovery must give the reader's verdict (issue 13:
//    readers and the writer apply one recovery procedure): a log the reader refuses, the
//    writer refuses; a log the reader reads to position n, the writer opens at n (cutting the
//    damaged tail the reader stopped before);
// 3. if it opened, it appends one record and closes, and a new reader must read the records
//    the writer kept, unchanged, and the new one.
// Errors are fine; a trap, a leak, a hang or a broken property is not.
import FuzzSupport
import HeraldLog

let directory = "/log"
let segmentPath = directory + "/00000000000000000001.log"
let configuration = LogConfiguration(segmentBytesMax: 1 << 20, blockRawBytesMax: 4_096, durability: .none,
                                     lockWaitMilliseconds: 0, preallocationBytesMax: 0)

struct Read: Equatable {
    var position: UInt64
    var ts: Int64
    var payload: [UInt8]
}

/// What a fresh reader makes of the log: the error that made it refuse the log, or the records
/// it publishes (from `position` on) and its `lastPosition`.
func readAll(_ fs: SimulatedFileSystem, from position: UInt64 = 1) -> Result<(records: [Read], lastPosition: UInt64), LogError> {
    let reader: LogReader
    do {
        reader = try LogReader(directory: directory, fileSystem: fs)
    } catch let error as LogError {
        return .failure(error)
    } catch {
        expect(false, "LogReader throws a non-LogError: \(error)")
        return .failure(.invalidPosition(position: 0))
    }
    var records: [Read] = []
    do {
        try reader.forEach(from: position) { records.append(Read(position: $0.position, ts: $0.ts, payload: Array($0.payload))) }
    } catch {
        expect(false, "a reader that published position \(reader.lastPosition) fails to read it: \(error)")
    }
    return .success((records, reader.lastPosition))
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSegment(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let fs = SimulatedFileSystem()
    try? fs.createDirectory(directory)
    fs.setDurableContents(of: segmentPath, Array(fuzzInput(data, size)))

    // 1. Readers.
    let read = readAll(fs)
    if case .success(let read) = read {
        for (offset, record) in read.records.enumerated() {
            expect(record.position == UInt64(offset + 1), "record \(offset) read at position \(record.position)")
        }
        expect(UInt64(read.records.count) == read.lastPosition, "read \(read.records.count) records, lastPosition \(read.lastPosition)")
        if read.lastPosition >= 2 {
            let middle = read.lastPosition / 2 + 1
            if case .success(let suffix) = readAll(fs, from: middle) {
                expect(suffix.records == Array(read.records[Int(middle - 1)...]), "a cursor from \(middle) reads another suffix")
            } else {
                expect(false, "a second reader refuses the log the first one read")
            }
        }
    }

    // 2. The writer's recovery gives the reader's verdict.
    let writer: LogWriter
    do {
        writer = try LogWriter(directory: directory, configuration: configuration, fileSystem: fs)
    } catch {
        if case .success(let read) = read {
            expect(false, "the writer refuses a log a reader reads to position \(read.lastPosition): \(error)")
        }
        return 0
    }
    let kept = writer.recoveryReport.lastPosition
    switch read {
    case .success(let read):
        expect(kept == read.lastPosition, "the writer recovers the log to position \(kept), a reader to \(read.lastPosition)")
    case .failure(let error):
        expect(false, "the writer opens (at position \(kept)) a log a reader refuses: \(error)")
    }

    // 3. What recovery kept, a reader reads.
    var added = LogEntry(ts: 0, payload: Array("appended after recovery".utf8))
    do {
        let position: UInt64
        do {
            position = try writer.append(added)
        } catch LogError.timestampDecreased(_, let previousTs, _) {
            // The recovered log ends at a later ts: append at that one.
            added.ts = previousTs
            position = try writer.append(added)
        }
        expect(position == kept + 1, "the append after recovery got position \(position), expected \(kept + 1)")
        try writer.close()
    } catch {
        expect(false, "appending to a recovered log fails: \(error)")
    }
    guard case .success(let after) = readAll(fs) else {
        expect(false, "a reader refuses the log the writer recovered and appended to")
        return 0
    }
    expect(after.lastPosition == kept + 1, "after recovery and one append the reader ends at \(after.lastPosition), expected \(kept + 1)")
    expect(after.records.last == Read(position: kept + 1, ts: added.ts, payload: added.payload), "the appended record reads back changed")
    if case .success(let read) = read {
        expect(Array(after.records.prefix(Int(kept))) == read.records, "records recovery kept read back changed")
    }
    return 0
}

runFuzzer(fuzzSegment)
