/// Herald blocks as byte strings of their own, for a log kept outside segment files (one block
/// per NATS JetStream message): the same 64-byte header and LZ4 frame as in a segment
/// (Schema/log-format.md), the same checksum chain (`previousCRC` is the block CRC of the block
/// before) and the same `continues` flag for an append that spans several blocks.
public struct StandaloneBlock: Sendable, Equatable {
    /// Position of the block's first record.
    public var basePosition: UInt64
    public var count: Int
    /// Block CRC of the block before it in the log (0 for the first).
    public var previousCRC: UInt32
    /// This block's CRC (over its header's first 56 bytes and its frame).
    public var blockCRC: UInt32
    /// The append goes on in the next block: the records count once a block without it closes it.
    public var continues: Bool
    public var lastTs: Int64
    /// Header and frame, as written.
    public var bytes: [UInt8]

    /// Position after the block's last record.
    public var endPosition: UInt64 { basePosition + UInt64(count) }

    /// The blocks of `prepared`, positioned from `base` and chained from `previousCRC`; every
    /// block but the last says `continues`, so a reader counts the records only once all are there.
    public static func seal(_ prepared: PreparedBlocks, base: UInt64, previousCRC: UInt32) -> [StandaloneBlock] {
        var out: [StandaloneBlock] = []
        var position = base
        var chain = previousCRC
        for (index, block) in prepared.blocks.enumerated() {
            var header = block.header
            header.basePosition = position
            header.previousCRC = chain
            header.continues = index < prepared.blocks.count - 1
            var bytes = [UInt8](repeating: 0, count: BlockHeader.size + block.frame.count)
            bytes.withUnsafeMutableBytes { buffer in
                UnsafeMutableRawBufferPointer(rebasing: buffer[BlockHeader.size...]).copyBytes(from: block.frame)
                header.encodePrefix(into: buffer)
                let crc = BlockHeader.verifyingCRC(buffer, compressed: block.frame.count)
                header.blockCRC = crc
                BlockHeader.seal(buffer, blockCRC: crc)
            }
            out.append(StandaloneBlock(basePosition: position, count: Int(header.count), previousCRC: chain,
                                       blockCRC: header.blockCRC, continues: header.continues, lastTs: header.lastTs, bytes: bytes))
            position += UInt64(header.count)
            chain = header.blockCRC
        }
        return out
    }

    /// Reads a block's header only (checked: magic, version, header checksum, ranges); the frame
    /// is not decompressed. The reason on failure.
    public static func header(of bytes: [UInt8]) -> Result<StandaloneBlock, StandaloneBlockError> {
        bytes.withUnsafeBytes { raw in
            switch BlockHeader.parse(raw) {
            case .failure(let problem):
                return .failure(StandaloneBlockError(reason: problem.reason))
            case .success(let header):
                guard bytes.count == BlockHeader.size + Int(header.compressedBytes) else {
                    return .failure(StandaloneBlockError(reason: "\(bytes.count) bytes for a block of \(BlockHeader.size + Int(header.compressedBytes))"))
                }
                return .success(StandaloneBlock(basePosition: header.basePosition, count: Int(header.count),
                                                previousCRC: header.previousCRC, blockCRC: header.blockCRC,
                                                continues: header.continues, lastTs: header.lastTs, bytes: bytes))
            }
        }
    }

    /// Checks the block's checksum, decompresses its frame and checks the records' framing, as
    /// a segment's cursor does; returns its records.
    public static func open(_ bytes: [UInt8]) -> Result<LogBlock, StandaloneBlockError> {
        let parsed = bytes.withUnsafeBytes { raw in BlockHeader.parse(raw) }
        guard case .success(let header) = parsed else {
            if case .failure(let problem) = parsed { return .failure(StandaloneBlockError(reason: problem.reason)) }
            return .failure(StandaloneBlockError(reason: "unreadable header"))
        }
        let compressed = Int(header.compressedBytes)
        guard bytes.count == BlockHeader.size + compressed else {
            return .failure(StandaloneBlockError(reason: "\(bytes.count) bytes for a block of \(BlockHeader.size + compressed)"))
        }
        let crc = bytes.withUnsafeBytes { all in
            CRC32C.finish(CRC32C.update(CRC32C.update(CRC32C.start, UnsafeRawBufferPointer(rebasing: all[0..<56])),
                                        UnsafeRawBufferPointer(rebasing: all[BlockHeader.size...])))
        }
        guard crc == header.blockCRC else { return .failure(StandaloneBlockError(reason: "block checksum mismatch")) }
        let rawBytes = Int(header.rawBytes)
        var raw = [UInt8](repeating: 0, count: LZ4Decompressor.outputCapacity(forRawBytes: rawBytes))
        let problem = bytes.withUnsafeBytes { all in
            raw.withUnsafeMutableBytes { LZ4Decompressor().decompress(UnsafeRawBufferPointer(rebasing: all[BlockHeader.size...]), into: $0, expected: rawBytes) }
        } ?? raw.withUnsafeBytes { all in
            let checked = RecordFraming.validate(UnsafeRawBufferPointer(rebasing: all[0..<rawBytes]), count: header.count,
                                                 firstTs: header.firstTs, lastTs: header.lastTs, skip: 0)
            if case let .failure(bad) = checked { return bad.reason }
            return nil
        }
        if let problem { return .failure(StandaloneBlockError(reason: problem)) }
        return .success(LogBlock(basePosition: header.basePosition, count: Int(header.count), lastTs: header.lastTs, bytes: raw,
                                 rawBytes: rawBytes, startOffset: 0, startTs: header.firstTs))
    }
}

/// Why a standalone block does not read.
public struct StandaloneBlockError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { reason }
}
