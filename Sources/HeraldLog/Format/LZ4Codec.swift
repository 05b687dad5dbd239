import CLZ4
import Synchronization

/// LZ4 frame compression of a block's record bytes. Only this file sees LZ4 types.
enum LZ4Codec {
    /// Upper bound of the compressed frame for `rawBytes` input.
    static func bound(rawBytes: Int, level: Int32) -> Int {
        var prefs = preferences(rawBytes: rawBytes, level: level)
        return LZ4F_compressFrameBound(rawBytes, &prefs)
    }

    static func preferences(rawBytes: Int, level: Int32) -> LZ4F_preferences_t {
        var prefs = LZ4F_preferences_t()
        prefs.frameInfo.blockSizeID = LZ4F_max1MB
        prefs.frameInfo.blockMode = LZ4F_blockLinked
        prefs.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum
        prefs.frameInfo.contentSize = UInt64(rawBytes)
        prefs.compressionLevel = level
        return prefs
    }

    /// Compresses `src` into one LZ4 frame at `dst`; returns the frame size, or nil on failure.
    static func compress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer, level: Int32) -> Int? {
        var prefs = preferences(rawBytes: src.count, level: level)
        let result = LZ4F_compressFrame(dst.baseAddress, dst.count, src.baseAddress, src.count, &prefs)
        if LZ4F_isError(result) != 0 { return nil }
        return result
    }
}

/// A reusable LZ4 frame decompression context (one per cursor or scanner).
///
/// Not Sendable: used by one thread at a time.
///
/// Contexts are reused: LZ4F gives each one about 2 MiB of buffers for our frames (1 MiB max
/// block size) the first time it decodes, so a short read — `explain`, a log's tail, a
/// server request — would pay for allocating and faulting in those buffers with every cursor.
/// A freed context goes to a small process-wide spare list instead (at most
/// `spareContextsMax`), and the next decompressor takes it from there. A context is reset
/// before each frame, so nothing carries over from its earlier owner.
final class LZ4Decompressor {
    private let context: OpaquePointer

    /// A context kept for reuse (one owner at a time: taken under the lock, given back in deinit).
    private struct SpareContext: @unchecked Sendable { let pointer: OpaquePointer }
    private static let spareContexts = Mutex<[SpareContext]>([])
    static let spareContextsMax = 8

    init() {
        if let spare = Self.spareContexts.withLock({ $0.popLast() }) {
            context = spare.pointer
            return
        }
        var ctx: OpaquePointer?
        let result = LZ4F_createDecompressionContext(&ctx, UInt32(LZ4F_VERSION))
        guard LZ4F_isError(result) == 0, let ctx else { fatalError("LZ4F_createDecompressionContext failed (out of memory)") }
        context = ctx
    }

    deinit {
        let kept = Self.spareContexts.withLock { spare in
            guard spare.count < Self.spareContextsMax else { return false }
            spare.append(SpareContext(pointer: context))
            return true
        }
        if !kept { LZ4F_freeDecompressionContext(context) }
    }

    /// Output capacity that lets LZ4F decode our frames (1 MiB max block size) straight into
    /// the destination: with less room it decodes each block into its own buffer and copies.
    static let directDecodeCapacity = 1 << 20

    /// The output buffer for a block of `rawBytes`: room to decode directly for a large block;
    /// just the block for a small one (under 64 KiB: LZ4F's own copy of it costs less than
    /// clearing a 1 MiB buffer, which a read of a few small blocks — a log's tail, `explain` —
    /// would otherwise pay for each cursor).
    static func outputCapacity(forRawBytes rawBytes: Int) -> Int {
        rawBytes < 64 << 10 ? rawBytes : max(rawBytes, directDecodeCapacity)
    }

    /// Decompresses exactly one frame `src` into exactly `dst.count` bytes. Returns a reason on
    /// any mismatch (bad frame, short or long output, trailing input).
    func decompress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer) -> String? {
        decompress(src, into: dst, expected: dst.count)
    }

    /// Decompresses exactly one frame `src` that must decode to exactly `expected` bytes, into
    /// the start of `dst` (`dst.count >= expected`; spare room past `expected` is scratch that
    /// lets LZ4F skip its internal copy, see `directDecodeCapacity`). Returns a reason on any
    /// mismatch (bad frame, short or long output, trailing input).
    func decompress(_ src: UnsafeRawBufferPointer, into dst: UnsafeMutableRawBufferPointer, expected: Int) -> String? {
        precondition(expected >= 0 && expected <= dst.count)
        LZ4F_resetDecompressionContext(context)
        var options = LZ4F_decompressOptions_t()
        // The output of earlier blocks stays in place until this call returns.
        options.stableDst = 1
        var srcOffset = 0
        var dstOffset = 0
        // Bound: each round consumes input or produces output; a frame needs few rounds.
        for _ in 0..<1_000_000 {
            var srcSize = src.count - srcOffset
            var dstSize = dst.count - dstOffset
            let result = LZ4F_decompress(
                context, dst.baseAddress.map { $0 + dstOffset }, &dstSize,
                src.baseAddress.map { $0 + srcOffset }, &srcSize, &options)
            if LZ4F_isError(result) != 0 {
                let name = LZ4F_getErrorName(result).map { String(cString: $0) } ?? "unknown"
                return "LZ4 frame error: \(name)"
            }
            srcOffset += srcSize
            dstOffset += dstSize
            if dstOffset > expected { return "LZ4 frame decodes to more than \(expected) bytes" }
            if result == 0 {
                guard srcOffset == src.count else { return "\(src.count - srcOffset) bytes after the LZ4 frame" }
                guard dstOffset == expected else { return "LZ4 frame decoded to \(dstOffset) bytes, header says \(expected)" }
                return nil
            }
            if srcSize == 0 && dstSize == 0 {
                return srcOffset == src.count ? "LZ4 frame is truncated" : "LZ4 frame decodes to more than \(dst.count) bytes"
            }
        }
        return "LZ4 frame did not terminate"
    }
}
