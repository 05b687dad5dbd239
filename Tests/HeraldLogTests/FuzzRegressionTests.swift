import Testing
@testable import HeraldLog

/// Inputs the libFuzzer targets (Fuzz/, docs/FUZZING.md) found, replayed as tests. The raw
/// inputs are kept under Fuzz/corpus/<target>/ so every fuzz run starts from them.
@Suite struct FuzzRegressionTests {
    /// FuzzBlockIndex, `Fuzz/corpus/block-index/reader-index-hint-block-bytes`: the active
    /// segment's index names its first block at the right offset, position and count but with
    /// a wrong size. A reader resumed its walk at the index's end of that block, inside the
    /// next one, found "bad magic, and a valid block follows" and refused a sound log. The
    /// index is an accelerator, never a correctness input: a hint whose size disagrees with
    /// the block header is ignored.
    @Test func indexEntryWithAWrongBlockSizeDoesNotMakeASoundLogCorrupt() throws {
        let fs = SimulatedFileSystem()
        let directory = "/log"
        let configuration = LogConfiguration(segmentBytesMax: 1_200, blockRawBytesMax: 160, durability: .always,
                                             lockWaitMilliseconds: 0, preallocationBytesMax: 0)
        let writer = try LogWriter(directory: directory, configuration: configuration, fileSystem: fs)
        let written = entries(0..<48, bytes: 40)
        for chunk in stride(from: 0, to: written.count, by: 5) {
            try writer.append(Array(written[chunk..<min(chunk + 5, written.count)]))
        }
        try writer.close()
        let bases = try SegmentListing.read(fs, directory).bases
        let last = try #require(bases.last)
        #expect(bases.count >= 2)
        let segmentSize = UInt64(try #require(fs.contents(of: directory + "/" + SegmentFiles.segmentName(base: last))).count)
        let indexPath = directory + "/" + SegmentFiles.indexName(base: last)
        let index = BlockIndexFile.decode(try #require(fs.contents(of: indexPath)), base: last, fileSize: segmentSize)
        #expect(index.complete && index.entries.count >= 2)
        var first = try #require(index.entries.first)
        first.blockBytes -= 1  // still a plausible size: the entry decodes, the next one no longer follows it
        fs.setDurableContents(of: indexPath, BlockIndexFile.encodeAll(base: last, [first]))

        let reader = try LogReader(directory: directory, fileSystem: fs)
        #expect(reader.lastPosition == 48)
        #expect(try readAll(reader).map(\.payload) == written.map(\.payload))
        let reopened = try LogWriter(directory: directory, configuration: configuration, fileSystem: fs)
        #expect(reopened.recoveryReport.lastPosition == 48)
        try reopened.close()
    }
}
