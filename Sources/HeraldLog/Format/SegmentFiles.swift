/// Naming of segment and index files: the first position in 20 decimal digits.
enum SegmentFiles {
    static let segmentExtension = ".log"
    static let indexExtension = ".index"
    static let lockName = "LOCK"

    /// `00000000000000000001.log` for base 1.
    static func segmentName(base: UInt64) -> String { digits(base) + segmentExtension }
    /// `00000000000000000001.index` for base 1.
    static func indexName(base: UInt64) -> String { digits(base) + indexExtension }

    static func digits(_ value: UInt64) -> String {
        let text = String(value)
        return String(repeating: "0", count: max(0, 20 - text.count)) + text
    }

    /// The base position of a segment file name, or nil if `name` is not one.
    static func base(ofSegment name: String) -> UInt64? {
        position(named: name, suffix: segmentExtension).flatMap { $0 >= 1 ? $0 : nil }
    }

    /// The number of a file named by 20 decimal digits and `suffix`, or nil.
    static func position(named name: String, suffix: String) -> UInt64? {
        guard name.hasSuffix(suffix) else { return nil }
        let stem = name.utf8.prefix(name.utf8.count - suffix.utf8.count)
        guard stem.count == 20, stem.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return UInt64(String(decoding: stem, as: UTF8.self))
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}

/// One entry of a block index: where a block starts and what it holds.
struct IndexEntry: Equatable, Sendable {
    var basePosition: UInt64
    var offset: UInt64
    var count: UInt32
    var blockBytes: UInt32
    var firstTs: Int64

    var endPosition: UInt64 { basePosition + UInt64(count) }
    var endOffset: UInt64 { offset + UInt64(blockBytes) }

    init(basePosition: UInt64, offset: UInt64, count: UInt32, blockBytes: UInt32, firstTs: Int64) {
        self.basePosition = basePosition
        self.offset = offset
        self.count = count
        self.blockBytes = blockBytes
        self.firstTs = firstTs
    }

    init(header: BlockHeader, offset: UInt64) {
        self.init(basePosition: header.basePosition, offset: offset, count: header.count,
                  blockBytes: UInt32(truncatingIfNeeded: header.blockBytes), firstTs: header.firstTs)
    }
}

/// The per-segment index file: a 16-byte header then 32-byte entries. Derived data, never
/// trusted over the segment: readers check every entry against the block header it points at.
enum BlockIndexFile {
    static let magic: UInt32 = 0x4947_4C48 // "HLGI"
    static let version: UInt16 = 1
    static let headerBytes = 16
    static let entryBytes = 32

    /// `rewrittenLevel`: the compression level the segment's blocks were rewritten with by
    /// ``SegmentRecompressor`` (header bytes 6..<8), 0 for a segment as the writer appended it.
    static func encodeHeader(base: UInt64, rewrittenLevel: UInt16 = 0) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(headerBytes)
        out.appendLE(magic)
        out.appendLE(version)
        out.appendLE(rewrittenLevel)
        out.appendLE(base)
        return out
    }

    /// The level a segment was rewritten with, as its index file says (0: not rewritten, or
    /// no usable index). A hint only: the segment's blocks are what counts.
    static func rewrittenLevel(_ fs: any LogFileSystem, path: String, base: UInt64) -> UInt16 {
        guard let file = try? fs.open(path, mode: .readOnly) else { return 0 }
        defer { file.close() }
        var header = [UInt8](repeating: 0, count: headerBytes)
        guard (try? header.withUnsafeMutableBytes({ try file.read(into: $0, at: 0) })) == headerBytes else { return 0 }
        return header.withUnsafeBytes { raw in
            raw.u32(0) == magic && raw.u16(4) == version && raw.u64(8) == base ? raw.u16(6) : 0
        }
    }

    static func encode(_ entry: IndexEntry, into out: inout [UInt8]) {
        out.appendLE(entry.basePosition)
        out.appendLE(entry.offset)
        out.appendLE(entry.count)
        out.appendLE(entry.blockBytes)
        out.appendLE(UInt64(bitPattern: entry.firstTs))
    }

    static func encodeAll(base: UInt64, _ entries: [IndexEntry], rewrittenLevel: UInt16 = 0) -> [UInt8] {
        var out = encodeHeader(base: base, rewrittenLevel: rewrittenLevel)
        out.reserveCapacity(headerBytes + entries.count * entryBytes)
        for entry in entries { encode(entry, into: &out) }
        return out
    }

    /// Decodes the longest structurally consistent prefix of entries: contiguous positions from
    /// `base`, contiguous offsets from 0, each block inside `fileSize`. `complete` is false if
    /// anything after that prefix was present (damage, a torn entry or a stale tail).
    static func decode(_ bytes: [UInt8], base: UInt64, fileSize: UInt64) -> (entries: [IndexEntry], complete: Bool) {
        bytes.withUnsafeBytes { raw in
            guard raw.count >= headerBytes, raw.u32(0) == magic, raw.u16(4) == version, raw.u64(8) == base else {
                return ([], false)
            }
            var entries: [IndexEntry] = []
            entries.reserveCapacity((raw.count - headerBytes) / entryBytes)
            var position = base
            var offset: UInt64 = 0
            var at = headerBytes
            while at + entryBytes <= raw.count {
                let entry = IndexEntry(basePosition: raw.u64(at), offset: raw.u64(at + 8), count: raw.u32(at + 16),
                                       blockBytes: raw.u32(at + 20), firstTs: Int64(bitPattern: raw.u64(at + 24)))
                guard entry.basePosition == position, entry.offset == offset, entry.count >= 1,
                      entry.blockBytes >= UInt32(BlockHeader.size) + BlockHeader.compressedBytesMin,
                      UInt64(entry.blockBytes) <= fileSize, offset <= fileSize - UInt64(entry.blockBytes),
                      position <= UInt64.max / 2 else {
                    return (entries, false)
                }
                entries.append(entry)
                position = entry.endPosition
                offset = entry.endOffset
                at += entryBytes
            }
            return (entries, at == raw.count)
        }
    }

    /// Reads and decodes an index file; a missing or unreadable file decodes as empty.
    static func load(_ fs: any LogFileSystem, path: String, base: UInt64, fileSize: UInt64) -> (entries: [IndexEntry], complete: Bool) {
        guard let file = try? fs.open(path, mode: .readOnly) else { return ([], false) }
        defer { file.close() }
        guard let size = try? file.size(), size <= 1 << 31 else { return ([], false) }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        guard let n = try? bytes.withUnsafeMutableBytes({ try file.read(into: $0, at: 0) }), n == bytes.count else { return ([], false) }
        return decode(bytes, base: base, fileSize: fileSize)
    }
}
