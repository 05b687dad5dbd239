/// The 64-byte header that starts every block: an LZ4 skippable frame (so `lz4 -dc` skips it)
/// whose 56-byte payload describes the LZ4 frame that follows. Layout in Schema/log-format.md.
struct BlockHeader: Equatable, Sendable {
    /// Skippable-frame magic chosen for Herald blocks (valid range 0x184D2A50...0x184D2A5F).
    static let frameMagic: UInt32 = 0x184D_2A5B
    /// Size of the skippable frame's payload.
    static let framePayloadBytes: UInt32 = 56
    /// "HLGB" read as a little-endian u32.
    static let headerMagic: UInt32 = 0x4247_4C48
    static let formatVersion: UInt16 = 1
    static let codecLZ4Frame: UInt8 = 1
    /// Bytes of the header on disk, skippable-frame prefix included.
    static let size = 64
    /// Sanity bound on a block's uncompressed size; larger values are treated as damage.
    static let rawBytesLimit: UInt32 = 512 << 20
    /// The smallest possible LZ4 frame (magic + descriptor + end mark) is 7 bytes.
    static let compressedBytesMin: UInt32 = 7
    /// Flags bit 0: the block ends inside an append (a transaction) that goes on in the next
    /// block. Such a block counts only once a later block without the flag closes it.
    static let flagContinues: UInt8 = 1

    var basePosition: UInt64
    var count: UInt32
    var rawBytes: UInt32
    var compressedBytes: UInt32
    var previousCRC: UInt32
    var firstTs: Int64
    var lastTs: Int64
    /// CRC-32C of header bytes 0..<56 followed by the compressed bytes.
    var blockCRC: UInt32
    /// The append this block's last record belongs to goes on in the next block: the block is
    /// part of an open transaction until a block without the flag follows (flags bit 0).
    var continues: Bool = false

    /// Header plus LZ4 frame.
    var blockBytes: UInt64 { UInt64(BlockHeader.size) + UInt64(compressedBytes) }
    /// Position after the block's last record.
    var endPosition: UInt64 { basePosition + UInt64(count) }
    var lastPosition: UInt64 { basePosition + UInt64(count) - 1 }

    /// Writes bytes 0..<56 (everything before the block CRC) into `out`.
    func encodePrefix(into out: UnsafeMutableRawBufferPointer) {
        precondition(out.count >= BlockHeader.size)
        out.put(BlockHeader.frameMagic, at: 0)
        out.put(BlockHeader.framePayloadBytes, at: 4)
        out.put(BlockHeader.headerMagic, at: 8)
        out.put(BlockHeader.formatVersion, at: 12)
        out[14] = BlockHeader.codecLZ4Frame
        out[15] = continues ? BlockHeader.flagContinues : 0
        out.put(basePosition, at: 16)
        out.put(count, at: 24)
        out.put(rawBytes, at: 28)
        out.put(compressedBytes, at: 32)
        out.put(previousCRC, at: 36)
        out.put(UInt64(bitPattern: firstTs), at: 40)
        out.put(UInt64(bitPattern: lastTs), at: 48)
    }

    /// Writes the block CRC and the header CRC (bytes 56..<64); call after `encodePrefix`.
    static func seal(_ out: UnsafeMutableRawBufferPointer, blockCRC: UInt32) {
        out.put(blockCRC, at: 56)
        let headerCRC = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: out[0..<60]))
        out.put(headerCRC, at: 60)
    }

    /// Parses and validates a header (magic, version, codec, header CRC, field ranges).
    /// Returns the reason on failure; never traps on hostile bytes.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> Result<BlockHeader, HeaderProblem> {
        guard bytes.count >= size else { return .failure(.init("incomplete header (\(bytes.count) of \(size) bytes)")) }
        guard bytes.u32(0) == frameMagic else { return .failure(.init("bad skippable-frame magic 0x\(String(bytes.u32(0), radix: 16))")) }
        guard bytes.u32(4) == framePayloadBytes else { return .failure(.init("bad skippable-frame size \(bytes.u32(4))")) }
        let headerCRC = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<60]))
        guard bytes.u32(60) == headerCRC else { return .failure(.init("header checksum mismatch")) }
        guard bytes.u32(8) == headerMagic else { return .failure(.init("bad header magic")) }
        guard bytes.u16(12) == formatVersion else { return .failure(.init("unsupported format version \(bytes.u16(12))")) }
        guard bytes[14] == codecLZ4Frame else { return .failure(.init("unknown codec \(bytes[14])")) }
        guard bytes[15] & ~flagContinues == 0 else { return .failure(.init("unknown flags \(bytes[15])")) }
        let header = BlockHeader(
            basePosition: bytes.u64(16), count: bytes.u32(24), rawBytes: bytes.u32(28),
            compressedBytes: bytes.u32(32), previousCRC: bytes.u32(36),
            firstTs: Int64(bitPattern: bytes.u64(40)), lastTs: Int64(bitPattern: bytes.u64(48)),
            blockCRC: bytes.u32(56), continues: bytes[15] & flagContinues != 0)
        guard header.basePosition >= 1, header.count >= 1,
              header.basePosition <= UInt64.max / 2 else { return .failure(.init("bad position range")) }
        guard header.firstTs >= 0, header.lastTs >= header.firstTs else { return .failure(.init("bad timestamp range \(header.firstTs)...\(header.lastTs)")) }
        guard header.rawBytes <= rawBytesLimit, header.rawBytes >= 2 * header.count else { return .failure(.init("bad raw size \(header.rawBytes) for \(header.count) records")) }
        // An LZ4 frame never exceeds its input by more than ~0.4 % plus small overheads.
        guard header.compressedBytes >= compressedBytesMin,
              UInt64(header.compressedBytes) <= UInt64(header.rawBytes) + UInt64(header.rawBytes / 128) + 4_096 else { return .failure(.init("bad compressed size \(header.compressedBytes)")) }
        return .success(header)
    }

    /// Verifies the block CRC over the header bytes `header[0..<56]` and `body`.
    static func verify(header: UnsafeRawBufferPointer, body: UnsafeRawBufferPointer, expected: UInt32) -> Bool {
        let state = CRC32C.update(CRC32C.update(CRC32C.start, UnsafeRawBufferPointer(rebasing: header[0..<56])), body)
        return CRC32C.finish(state) == expected
    }
}

/// Why bytes are not a valid block header.
struct HeaderProblem: Error, Sendable {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}
