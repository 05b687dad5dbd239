/// The preallocated, unused end of the active segment.
///
/// The writer extends the active segment with zero bytes ahead of its blocks, so that a sync
/// after an append changes no file metadata (`fdatasync` then flushes only the block, without a
/// journal commit that other writers on the file system can slow down). The unused end starts
/// with a filler header: an LZ4 skippable frame whose size runs exactly to the end of the file,
/// so `lz4 -dc` still decodes the segment and readers see a clean end. Closed segments hold no
/// filler: a segment is cut to its last block when it is closed. Layout in Schema/log-format.md.
enum SegmentFiller {
    /// Skippable-frame magic of the filler (Herald blocks use 0x184D2A5B).
    static let frameMagic: UInt32 = 0x184D_2A5E
    /// Magic and size.
    static let headerBytes = 8
    /// Largest filler: its size field is a `UInt32` counting the bytes after the header.
    static let maxBytes = UInt64(UInt32.max) + UInt64(headerBytes)

    /// Writes the header of a filler `totalBytes` long (8 ... ``maxBytes``) into `out[0..<8]`.
    static func encodeHeader(totalBytes: UInt64, into out: UnsafeMutableRawBufferPointer) {
        precondition(totalBytes >= UInt64(headerBytes) && totalBytes <= maxBytes && out.count >= headerBytes)
        out.put(frameMagic, at: 0)
        out.put(UInt32(truncatingIfNeeded: totalBytes - UInt64(headerBytes)), at: 4)
    }

    /// True when `bytes` (at least 8) start a filler that ends exactly `left` bytes after its start.
    static func isFiller(_ bytes: UnsafeRawBufferPointer, left: UInt64) -> Bool {
        bytes.count >= headerBytes && bytes.u32(0) == frameMagic && UInt64(bytes.u32(4)) + UInt64(headerBytes) == left
    }
}
