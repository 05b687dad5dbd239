import Synchronization
import Testing
@testable import HeraldLog

/// Wraps the real file system and counts bytes read per file name.
final class CountingFileSystem: LogFileSystem {
    let base = PosixFileSystem()
    let counts = Mutex<[String: UInt64]>([:])

    func bytesRead(suffix: String) -> [String: UInt64] {
        counts.withLock { $0.filter { $0.key.hasSuffix(suffix) } }
    }
    func reset() { counts.withLock { $0 = [:] } }

    func open(_ path: String, mode: LogFileOpenMode) throws -> any LogFile {
        CountingFile(inner: try base.open(path, mode: mode), owner: self)
    }
    func contentsOfDirectory(_ path: String) throws -> [String] { try base.contentsOfDirectory(path) }
    func createDirectory(_ path: String) throws { try base.createDirectory(path) }
    func syncDirectory(_ path: String) throws { try base.syncDirectory(path) }
    func remove(_ path: String) throws { try base.remove(path) }
    func rename(_ from: String, to: String) throws { try base.rename(from, to: to) }
    func lockExclusive(_ path: String) throws -> any LogFileLock { try base.lockExclusive(path) }
    func isLocked(_ path: String) throws -> Bool { try base.isLocked(path) }
}

final class CountingFile: LogFile {
    let inner: any LogFile
    let owner: CountingFileSystem
    init(inner: any LogFile, owner: CountingFileSystem) {
        self.inner = inner
        self.owner = owner
    }
    var path: String { inner.path }
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        let n = try inner.read(into: buffer, at: offset)
        let name = String(path.split(separator: "/").last ?? "")
        owner.counts.withLock { $0[name, default: 0] += UInt64(n) }
        return n
    }
    func write(_ bytes: UnsafeRawBufferPointer, at offset: UInt64) throws { try inner.write(bytes, at: offset) }
    func sync() throws { try inner.sync() }
    func truncate(to size: UInt64) throws { try inner.truncate(to: size) }
    func size() throws -> UInt64 { try inner.size() }
    func close() { inner.close() }
}

@Suite struct ReadCostTests {
    @Test func readingFromAPositionTouchesOnlyBlocksFromThereOn() throws {
        try withTemporaryDirectory { dir in
            let writer = try LogWriter(directory: dir, configuration: LogConfiguration(segmentBytesMax: 4_000, blockRawBytesMax: 400))
            for i in 0..<60 { try writer.append(entries((i * 8)..<(i * 8 + 8))) }
            try writer.close()
            let segments = try segmentFiles(dir)
            #expect(segments.count >= 4)
            // Pick a position in the middle of the third segment.
            let name = segments[2]
            let bytes = try readFile(dir + "/" + name)
            let offsets = blockOffsets(bytes)
            let middle = offsets[offsets.count / 2]
            let blockBase = bytes[(middle + 16)..<(middle + 24)].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let target = blockBase + 2

            let fs = CountingFileSystem()
            let reader = try LogReader(directory: dir, fileSystem: fs)
            fs.reset()
            let records = try readAll(reader, from: target)
            #expect(records.first?.position == target)
            #expect(records.last?.position == 480)
            let read = fs.bytesRead(suffix: ".log")
            for earlier in segments[0..<2] { #expect(read[earlier] == nil, "\(earlier) was read") }
            // In the target segment, nothing before the block holding the target is read.
            #expect(read[name] == UInt64(bytes.count - middle), "read \(read[name] ?? 0) of \(bytes.count - middle) bytes from \(name)")
            for later in segments[3...] {
                #expect(read[later] == UInt64(try readFile(dir + "/" + later).count))
            }
        }
    }
}
