#if canImport(Glibc)
import Glibc
#endif

/// The snapshot that starts a compacted log (Schema/log-format.md, "Compaction"): the state
/// through `start - 1`, standing in for the records before `start`, which the log no longer
/// serves. Positions never change: the first record after it is at `start`.
public struct LogSnapshot: Sendable, Equatable {
    /// The log's first position.
    public var start: UInt64
    /// The timestamp of the last record it stands for (later records are not older).
    public var lastTs: Int64
    /// The state through `start - 1`, in the format of whoever compacted the log (Herald's
    /// compaction snapshot); opaque to the log, which only checks its checksum.
    public var payload: [UInt8]

    public init(start: UInt64, lastTs: Int64, payload: [UInt8]) {
        self.start = start
        self.lastTs = lastTs
        self.payload = payload
    }
}

/// `<20 digits of start>.snapshot`: a 32-byte header, the payload, and a CRC32C of all of it.
///
/// | offset | size | field |
/// |---:|---:|---|
/// | 0 | 4 | magic `0x53474C48` ("HLGS") |
/// | 4 | 2 | version 1 |
/// | 6 | 2 | reserved 0 |
/// | 8 | 8 | start |
/// | 16 | 8 | lastTs |
/// | 24 | 8 | payload bytes |
/// | 32 | n | payload |
/// | 32 + n | 4 | CRC32C of bytes 0..<32 + n |
enum LogSnapshotFile {
    static let suffix = ".snapshot"
    static let temporarySuffix = ".snapshot.tmp"
    static let magic: UInt32 = 0x5347_4C48
    static let version: UInt16 = 1
    static let headerBytes = 32
    /// Sanity bound on a payload read from disk.
    static let payloadBytesMax: UInt64 = 1 << 36

    static func name(start: UInt64) -> String { SegmentFiles.digits(start) + suffix }

    /// The start a snapshot file name stands for, or nil if `name` is not one.
    static func start(ofName name: String) -> UInt64? {
        SegmentFiles.position(named: name, suffix: suffix).flatMap { $0 >= 2 ? $0 : nil }
    }

    static func encode(_ snapshot: LogSnapshot) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(headerBytes + snapshot.payload.count + 4)
        out.appendLE(magic)
        out.appendLE(version)
        out.appendLE(UInt16(0))
        out.appendLE(snapshot.start)
        out.appendLE(UInt64(bitPattern: snapshot.lastTs))
        out.appendLE(UInt64(snapshot.payload.count))
        out.append(contentsOf: snapshot.payload)
        out.appendLE(CRC32C.checksum(out))
        return out
    }

    /// Reads and checks the snapshot file of `start`.
    ///
    /// - Throws: `LogError.damagedSnapshot` naming the file and what is wrong, `.io`.
    static func load(_ fs: any LogFileSystem, directory: String, start: UInt64) throws -> LogSnapshot {
        let path = SegmentFiles.join(directory, name(start: start))
        let file = try fs.open(path, mode: .readOnly)
        defer { file.close() }
        let size = try file.size()
        func damaged(_ reason: String) -> LogError { .damagedSnapshot(path: path, reason: reason) }
        guard size >= UInt64(headerBytes + 4) else { throw damaged("the file is \(size) bytes, shorter than a snapshot's header") }
        guard size - UInt64(headerBytes + 4) <= payloadBytesMax else { throw damaged("the file is \(size) bytes, more than a snapshot may hold") }
        var bytes = [UInt8](repeating: 0, count: Int(size))
        let got = try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
        guard got == bytes.count else { throw damaged("read \(got) of \(size) bytes") }
        return try bytes.withUnsafeBytes { raw -> LogSnapshot in
            guard raw.u32(0) == magic else { throw damaged("bad magic 0x\(String(raw.u32(0), radix: 16)) at byte offset 0") }
            guard raw.u16(4) == version else { throw damaged("unsupported version \(raw.u16(4)) at byte offset 4") }
            let payloadBytes = raw.u64(24)
            guard payloadBytes == size - UInt64(headerBytes + 4) else {
                throw damaged("the header at byte offset 24 says \(payloadBytes) payload bytes, the file holds \(size - UInt64(headerBytes + 4))")
            }
            let end = raw.count - 4
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<end])) == raw.u32(end) else {
                throw damaged("checksum mismatch (the CRC32C at byte offset \(end))")
            }
            guard raw.u64(8) == start else { throw damaged("it names start \(raw.u64(8)) at byte offset 8, its file name \(start)") }
            let lastTs = Int64(bitPattern: raw.u64(16))
            guard lastTs >= 0 else { throw damaged("negative last timestamp \(lastTs) at byte offset 16") }
            return LogSnapshot(start: start, lastTs: lastTs, payload: Array(raw[headerBytes..<end]))
        }
    }

    /// Writes `snapshot` crash-safely: a temporary file, synced, renamed to its name, the
    /// directory synced. Until the rename is durable the log starts where it did.
    static func write(_ fs: any LogFileSystem, directory: String, _ snapshot: LogSnapshot) throws {
        let path = SegmentFiles.join(directory, name(start: snapshot.start))
        let temporary = SegmentFiles.join(directory, SegmentFiles.digits(snapshot.start) + temporarySuffix)
        let bytes = encode(snapshot)
        let file = try fs.open(temporary, mode: .create)
        do {
            try file.truncate(to: 0)
            try bytes.withUnsafeBytes { try file.write($0, at: 0) }
            try file.sync()
            file.close()
        } catch {
            file.close()
            try? fs.remove(temporary)
            throw error
        }
        try fs.rename(temporary, to: path)
        try fs.syncDirectory(directory)
    }
}

/// The files of a log directory that make up the log: the segments from the one holding the
/// log's first position on, and the snapshot that starts a compacted log.
struct SegmentListing: Sendable {
    /// Bases of the segments that hold the log, ascending (the first holds `start`).
    var bases: [UInt64] = []
    /// The log's first position: 1, or the start of its newest snapshot.
    var start: UInt64 = 1
    /// Segments wholly before `start` (left by a compaction that was cut short).
    var stale: [UInt64] = []
    /// Snapshot files older than the newest (left likewise).
    var staleSnapshots: [UInt64] = []

    /// Lists `directory` (an empty listing when it does not exist).
    static func read(_ fs: any LogFileSystem, _ directory: String) throws -> SegmentListing {
        let names: [String]
        do {
            names = try fs.contentsOfDirectory(directory)
        } catch LogError.io(_, _, _, let code) where code == ENOENT {
            return SegmentListing()
        }
        var listing = SegmentListing()
        let all = names.compactMap(SegmentFiles.base(ofSegment:)).sorted()
        let snapshots = names.compactMap(LogSnapshotFile.start(ofName:)).sorted()
        if let newest = snapshots.last {
            listing.start = newest
            listing.staleSnapshots = Array(snapshots.dropLast())
        }
        // A segment is wholly before the start when the next one begins at or before it.
        for (i, base) in all.enumerated() {
            if i + 1 < all.count && all[i + 1] <= listing.start { listing.stale.append(base) } else { listing.bases.append(base) }
        }
        return listing
    }
}
