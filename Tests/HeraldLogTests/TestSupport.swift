import Foundation
import Testing
@testable import HeraldLog

/// Runs `body` with a fresh temporary directory that is removed afterwards, even on failure.
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    var template = Array((NSTemporaryDirectory() + "herald-log-XXXXXX").utf8CString)
    let path = try template.withUnsafeMutableBufferPointer { buffer -> String in
        guard let base = buffer.baseAddress, let made = mkdtemp(base) else { throw CocoaError(.fileWriteUnknown) }
        return String(cString: made)
    }
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// A deterministic payload for position-independent entry number `n`.
func payload(_ n: Int, bytes: Int = 40) -> [UInt8] {
    // Shaped like the engine's records: a little binary framing, then JSON text for KV values.
    var out: [UInt8] = [1, UInt8(truncatingIfNeeded: n), UInt8(truncatingIfNeeded: n >> 8)]
    out += Array("{\"n\":\(n),\"key\":\"users/\(n % 97)\",\"value\":{\"name\":\"user\(n % 13)\"".utf8)
    let plans = ["free", "pro", "team", "enterprise"]
    var item = 0
    while out.count < bytes {
        out += Array(",\"item\(item)\":{\"sku\":\"SKU-\((n * 31 + item) % 1000)\",\"qty\":\(n % 5 + item),\"plan\":\"\(plans[(n + item) % 4])\",\"updated_at\":\"2024-05-\(10 + n % 18)T12:\(10 + n % 50):00Z\"}".utf8)
        item += 1
    }
    return Array(out.prefix(max(bytes, 1)))
}

func entries(_ range: Range<Int>, bytes: Int = 40) -> [LogEntry] {
    range.map { LogEntry(ts: Int64($0 / 3), payload: payload($0, bytes: bytes)) }
}

struct ReadRecord: Equatable {
    var position: UInt64
    var ts: Int64
    var payload: [UInt8]
}

func readAll(_ reader: LogReader, from: UInt64 = 1) throws -> [ReadRecord] {
    var out: [ReadRecord] = []
    try reader.forEach(from: from) { out.append(ReadRecord(position: $0.position, ts: $0.ts, payload: Array($0.payload))) }
    return out
}

func readAll(directory: String, fileSystem: any LogFileSystem = PosixFileSystem()) throws -> [ReadRecord] {
    try readAll(LogReader(directory: directory, fileSystem: fileSystem))
}

func segmentFiles(_ directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".log") }.sorted()
}

func readFile(_ path: String) throws -> [UInt8] {
    Array(try Data(contentsOf: URL(fileURLWithPath: path)))
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Offsets of the blocks in a segment file, by walking headers.
func blockOffsets(_ bytes: [UInt8]) -> [Int] {
    var offsets: [Int] = []
    var at = 0
    while at + 64 <= bytes.count {
        offsets.append(at)
        let compressed = Int(bytes[at + 32]) | Int(bytes[at + 33]) << 8 | Int(bytes[at + 34]) << 16 | Int(bytes[at + 35]) << 24
        at += 64 + compressed
    }
    return offsets
}

/// Damages the LZ4 frame of block `index` of the segment at `path` and seals the block's
/// checksums again: the block reads, passes its checks, and fails only when decompressed.
func damageFrameKeepingChecksums(_ path: String, block index: Int) throws {
    var bytes = try readFile(path)
    let at = blockOffsets(bytes)[index]
    let compressed = Int(bytes[at + 32]) | Int(bytes[at + 33]) << 8 | Int(bytes[at + 34]) << 16 | Int(bytes[at + 35]) << 24
    bytes[at + 64] ^= 0xFF  // the frame's magic number
    func put(_ value: UInt32, at offset: Int) {
        for i in 0..<4 { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }
    put(CRC32C.checksum(Array(bytes[at..<at + 56]) + Array(bytes[(at + 64)..<(at + 64 + compressed)])), at: at + 56)
    put(CRC32C.checksum(Array(bytes[at..<at + 60])), at: at + 60)
    try writeFile(path, bytes)
}

/// Closes both writers, then checks that the second log reads back `all` (from position 1)
/// and that both directories hold the same segment files, byte for byte.
func closeAndExpectSameLog(_ a: LogWriter, _ b: LogWriter, holding all: [LogEntry]) throws {
    try a.close()
    try b.close()
    let expected = all.enumerated().map { ReadRecord(position: UInt64($0.offset + 1), ts: $0.element.ts, payload: $0.element.payload) }
    #expect(try readAll(directory: b.directory) == expected)
    #expect(try segmentFiles(a.directory) == segmentFiles(b.directory))
    for name in try segmentFiles(a.directory) {
        #expect(try readFile(a.directory + "/" + name) == readFile(b.directory + "/" + name), "\(name)")
    }
}

/// `lz4 -dc PATH`: its exit status and output, or nil when the lz4 tool is not installed.
func lz4Decode(_ path: String) throws -> (status: Int32, output: [UInt8])? {
    guard let lz4 = ["/usr/bin/lz4", "/usr/local/bin/lz4", "/bin/lz4"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        return nil
    }
    let process = Process()
    process.executableURL = URL(fileURLWithPath: lz4)
    process.arguments = ["-dc", path]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    try process.run()
    let output = Array(pipe.fileHandleForReading.readDataToEndOfFile())
    process.waitUntilExit()
    return (process.terminationStatus, output)
}

/// Size of a file on disk.
func fileSize(_ path: String) throws -> UInt64 {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.size] as? NSNumber)?.uint64Value ?? 0
}

/// Rewrites the durable watermark as if only positions up to `position` had been synced when
/// the writer stopped (a crash before the sync of what follows).
func setWatermark(_ directory: String, _ position: UInt64) throws {
    let bytes = DurableWatermark(sequence: 0, position: position).encode() + DurableWatermark(sequence: 1, position: position).encode()
    try writeFile(directory + "/" + DurableWatermark.fileName, bytes)
}

/// The blocks of a segment file: each block's header (flags included), in order.
func blockHeaders(_ path: String) throws -> [BlockHeader] {
    let bytes = try readFile(path)
    return blockOffsets(bytes).compactMap { offset in
        bytes.withUnsafeBytes { try? BlockHeader.parse(UnsafeRawBufferPointer(rebasing: $0[offset..<min(bytes.count, offset + BlockHeader.size)])).get() }
    }
}
