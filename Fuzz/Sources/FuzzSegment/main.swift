// Fuzz target: the block/segment reader and the writer's recovery.
//
// The input is the whole of segment `00000000000000000001.log` (no index file) of a log on a
// `SimulatedFileSystem`. Then:
// 1. a `LogReader` reads every record it publishes: positions from 1 without a gap, as many as
//    `lastPosition`; a cursor started half-way yields the same suffix;
// 2. a `LogWriter` opens the log (recovery verifies it and cuts a torn tail, or refuses);
// 3. if it opened, it appends one record and closes, and a new reader must read every record
//    the writer kept plus the new one, without error: what recovery accepts, readers read.
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

/// Every record a fresh reader publishes, or nil if reading throws.
func readAll(_ fs: SimulatedFileSystem, from position: UInt64 = 1) -> (records: [Read], lastPosition: UInt64)? {
    do {
        let reader = try LogReader(directory: directory, fileSystem: fs)
        var records: [Read] = []
        try reader.forEach(from: position) { records.append(Read(position: $0.position, ts: $0.ts, payload: Array($0.payload))) }
        return (records, reader.lastPosition)
    } catch {
        return nil
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSegment(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let fs = SimulatedFileSystem()
    try? fs.createDirectory(directory)
    fs.setDurableContents(of: segmentPath, Array(fuzzInput(data, size)))

    // 1. Readers.
    let read = readAll(fs)
    if let read {
        for (offset, record) in read.records.enumerated() {
            expect(record.position == UInt64(offset + 1), "record \(offset) read at position \(record.position)")
        }
        expect(UInt64(read.records.count) == read.lastPosition, "read \(read.records.count) records, lastPosition \(read.lastPosition)")
        if read.lastPosition >= 2 {
            let middle = read.lastPosition / 2 + 1
            let suffix = readAll(fs, from: middle)
            expect(suffix.map { $0.records } == Array(read.records[Int(middle - 1)...]), "a cursor from \(middle) reads another suffix")
        }
    }

    // 2. The writer's recovery.
    let writer: LogWriter
    do {
        writer = try LogWriter(directory: directory, configuration: configuration, fileSystem: fs)
    } catch {
        return 0
    }
    let kept = writer.recoveryReport.lastPosition
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

    // 3. What recovery kept, a reader reads.
    guard let after = readAll(fs) else {
        expect(false, "a reader fails on the log the writer recovered and appended to")
        return 0
    }
    expect(after.lastPosition == kept + 1, "after recovery and one append the reader ends at \(after.lastPosition), expected \(kept + 1)")
    expect(after.records.last == Read(position: kept + 1, ts: added.ts, payload: added.payload), "the appended record reads back changed")
    if let read {
        let common = min(Int(kept), read.records.count)
        expect(Array(after.records.prefix(common)) == Array(read.records.prefix(common)), "records recovery kept read back changed")
    }
    return 0
}

runFuzzer(fuzzSegment)
