#if canImport(Glibc)
import Glibc
#endif

/// What ``LogWriter/compact(to:archiveDirectory:)`` did.
public struct CompactionResult: Sendable, Equatable {
    /// The log's first position now.
    public var start: UInt64
    /// Segment files removed from the log directory (wholly before `start`), in order.
    public var removedSegments: [String] = []
    /// Their bytes.
    public var removedBytes: UInt64 = 0
    /// Where they were copied first, when an archive directory was given.
    public var archiveDirectory: String?
}

extension LogWriter {
    /// Makes `snapshot.start` the log's first position (Schema/log-format.md, "Compaction"):
    /// writes the snapshot that stands for the records before it, then removes the segments
    /// wholly before it (after copying them, as they are, into `archiveDirectory` when given).
    /// Positions never change; the segment holding `start` stays whole.
    ///
    /// Each step is durable before the next: the snapshot is written beside, synced, renamed
    /// and the directory synced, so a crash leaves the log starting where it did or at
    /// `snapshot.start`, never neither; a segment is removed only once its archive copy is
    /// synced. Files a crash leaves behind (segments wholly before the start, older
    /// snapshots) are ignored by every reader and removed by the next compaction; one with
    /// the same start finishes the work.
    ///
    /// - Throws: `LogError.invalidCompaction` when `snapshot.start` is before the log's first
    ///   position or after its end + 1 (nothing is changed), `.writerClosed`, `.io`.
    public func compact(to snapshot: LogSnapshot, archiveDirectory: String? = nil) throws -> CompactionResult {
        try requireOpen()
        let before = try SegmentListing.read(fileSystem, directory)
        guard snapshot.start >= before.start else {
            throw LogError.invalidCompaction(directory: directory, reason: "position \(snapshot.start) is before the log's first position \(before.start)")
        }
        guard snapshot.start >= 2, snapshot.start <= lastPosition + 1 else {
            throw LogError.invalidCompaction(directory: directory, reason: "position \(snapshot.start) is outside 2...\(lastPosition + 1) (the log's last position + 1)")
        }
        if snapshot.start > before.start {
            // Every record the snapshot stands for is on disk first (`.interval`/`.none`
            // acknowledge before they sync): a power loss must not leave the log ending before
            // its own start.
            try sync()
            try LogSnapshotFile.write(fileSystem, directory: directory, snapshot)
        }
        let listing = try SegmentListing.read(fileSystem, directory)
        var result = CompactionResult(start: listing.start, archiveDirectory: archiveDirectory)
        for start in listing.staleSnapshots {
            try fileSystem.remove(SegmentFiles.join(directory, LogSnapshotFile.name(start: start)))
        }
        for name in try fileSystem.contentsOfDirectory(directory).sorted() where name.hasSuffix(LogSnapshotFile.temporarySuffix) {
            try fileSystem.remove(SegmentFiles.join(directory, name))
        }
        if let archiveDirectory, !listing.stale.isEmpty {
            try fileSystem.createDirectory(archiveDirectory)
            // The directory's own entry is durable before anything is removed from the log.
            if let slash = archiveDirectory.lastIndex(of: "/"), slash != archiveDirectory.startIndex {
                try fileSystem.syncDirectory(String(archiveDirectory[..<slash]))
            }
            for base in listing.stale {
                try archive(segment: base, to: archiveDirectory)
            }
            try fileSystem.syncDirectory(archiveDirectory)
        }
        for base in listing.stale {
            let name = SegmentFiles.segmentName(base: base)
            let path = SegmentFiles.join(directory, name)
            let file = try fileSystem.open(path, mode: .readOnly)
            result.removedBytes += try file.size()
            file.close()
            try fileSystem.remove(path)
            try fileSystem.remove(SegmentFiles.join(directory, SegmentFiles.indexName(base: base)))
            result.removedSegments.append(name)
        }
        try fileSystem.syncDirectory(directory)
        return result
    }

    /// Copies segment `base`, byte for byte, to `archive/<segment name>` (through a temporary
    /// name, synced, then renamed).
    private func archive(segment base: UInt64, to archive: String) throws {
        let name = SegmentFiles.segmentName(base: base)
        let source = try fileSystem.open(SegmentFiles.join(directory, name), mode: .readOnly)
        defer { source.close() }
        let temporary = SegmentFiles.join(archive, name + ".tmp")
        let target = try fileSystem.open(temporary, mode: .create)
        defer { target.close() }
        try target.truncate(to: 0)
        let size = try source.size()
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        var offset: UInt64 = 0
        // Bound: each round copies up to 4 MiB until the end of the file.
        while offset < size {
            let n = try buffer.withUnsafeMutableBytes { try source.read(into: $0, at: offset) }
            guard n > 0 else {
                throw LogError.io(operation: "read", path: SegmentFiles.join(directory, name), offset: offset, errno: EIO)
            }
            try buffer.withUnsafeBytes { try target.write(UnsafeRawBufferPointer(rebasing: $0[0..<n]), at: offset) }
            offset += UInt64(n)
        }
        try target.sync()
        try fileSystem.rename(temporary, to: SegmentFiles.join(archive, name))
    }
}
