#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The durable watermark: the last position the writer knows to be on stable storage (a
/// completed `fdatasync` covered it), kept in the small file `DURABLE` beside the segments.
///
/// Recovery refuses to open a log that ends before its watermark: those records were
/// acknowledged, so losing them is never automatic (`herald repair --accept-loss` cuts them
/// explicitly). Readers apply the same rule.
///
/// The file holds two 32-byte slots written alternately, so a torn write of one slot leaves
/// the other intact; the valid slot with the higher sequence number wins:
///
/// | offset | size | field |
/// |-------:|-----:|-------|
/// | 0  | 4 | magic `0x57474C48` ("HLGW") |
/// | 4  | 2 | version 1 |
/// | 6  | 2 | reserved 0 |
/// | 8  | 8 | sequence (the slot is `sequence % 2`) |
/// | 16 | 8 | position |
/// | 24 | 4 | CRC32C of bytes 0..<24 |
/// | 28 | 4 | reserved 0 |
struct DurableWatermark: Equatable, Sendable {
    static let fileName = "DURABLE"
    static let magic: UInt32 = 0x5747_4C48
    static let version: UInt16 = 1
    static let slotBytes = 32

    var sequence: UInt64
    var position: UInt64

    /// The encoded slot.
    func encode() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.slotBytes)
        out.appendLE(Self.magic)
        out.appendLE(Self.version)
        out.appendLE(UInt16(0))
        out.appendLE(sequence)
        out.appendLE(position)
        let crc = out.withUnsafeBytes { CRC32C.checksum($0) }
        out.appendLE(crc)
        out.appendLE(UInt32(0))
        return out
    }

    /// A slot's watermark, or nil when the slot is not a valid one (never written, torn, damaged).
    static func decode(_ bytes: UnsafeRawBufferPointer) -> DurableWatermark? {
        guard bytes.count >= slotBytes, bytes.u32(0) == magic, bytes.u16(4) == version, bytes.u16(6) == 0,
              bytes.u32(24) == CRC32C.checksum(UnsafeRawBufferPointer(rebasing: bytes[0..<24])) else { return nil }
        // A writer counts from 0 by one per store; a sequence near the top is not one it wrote
        // (and `sequence + 1` must never overflow).
        guard bytes.u64(8) <= UInt64.max / 2 else { return nil }
        return DurableWatermark(sequence: bytes.u64(8), position: bytes.u64(16))
    }

    /// Reads the watermark of `directory`: nil when the file does not exist (a log written
    /// before watermarks, or one that was never synced).
    ///
    /// - Throws: `LogError.damagedWatermark` when the file exists but neither slot is valid.
    static func load(_ fs: any LogFileSystem, directory: String) throws -> DurableWatermark? {
        let path = SegmentFiles.join(directory, fileName)
        let file: any LogFile
        do {
            file = try fs.open(path, mode: .readOnly)
        } catch LogError.io(_, _, _, let code) where code == ENOENT {
            return nil
        }
        defer { file.close() }
        var bytes = [UInt8](repeating: 0, count: 2 * slotBytes)
        let got = try bytes.withUnsafeMutableBytes { try file.read(into: $0, at: 0) }
        if got == 0 { return nil }  // created, never written: a crash right after creation
        let slots = bytes.withUnsafeBytes { raw in
            [decode(UnsafeRawBufferPointer(rebasing: raw[0..<min(got, slotBytes)])),
             got > slotBytes ? decode(UnsafeRawBufferPointer(rebasing: raw[slotBytes..<got])) : nil]
        }
        let valid = slots.compactMap { $0 }
        guard let best = valid.max(by: { $0.sequence < $1.sequence }) else {
            // Shorter than its two slots, or zeros: its creation was cut short by a power loss
            // (a writer creates it with both slots in one write, synced later).
            if got < 2 * slotBytes || bytes[0..<got].allSatisfy({ $0 == 0 }) { return nil }
            throw LogError.damagedWatermark(path: path, reason: "neither of its two slots holds a valid watermark (\(got) bytes)")
        }
        return best
    }
}

/// The writer's open watermark file. `store` writes the next slot without a sync; the file
/// is synced with `sync()` (on close and segment roll), by a store at least `lazySync` after
/// the last sync, and by the writer's syncer once it has been idle that long (`syncIfDue`),
/// so keeping it costs one small `pwrite` per commit, not a second `fdatasync`. The first sync
/// of a file this writer created also syncs the directory, so the file's name is durable too.
final class WatermarkFile: Sendable {
    private struct State: Sendable {
        var current: DurableWatermark
        var dirty = false
        var lastSync = ContinuousClock.now
        /// The file was created by this writer: its directory entry is not synced yet.
        var created = false
    }
    let file: any LogFile
    let fileSystem: any LogFileSystem
    let directory: String
    private let state: Mutex<State>
    /// How long a stored watermark may stay unsynced (1 s).
    static let lazySync: Duration = .seconds(1)

    private init(file: any LogFile, current: DurableWatermark, fileSystem: any LogFileSystem, directory: String) {
        self.file = file
        self.fileSystem = fileSystem
        self.directory = directory
        self.state = Mutex(State(current: current))
    }

    /// Opens the watermark file of `directory`, starting from `loaded`. A missing (or never
    /// fully written) file gets both slots written at once, not synced: it is synced with the
    /// first store that needs it (a power loss before then leaves no file, an empty one or
    /// zeros, all of which read as no watermark).
    static func open(_ fs: any LogFileSystem, directory: String, loaded: DurableWatermark?) throws -> WatermarkFile {
        let path = SegmentFiles.join(directory, DurableWatermark.fileName)
        let file = try fs.open(path, mode: .create)
        do {
            if let loaded, try file.size() >= UInt64(2 * DurableWatermark.slotBytes) {
                return WatermarkFile(file: file, current: loaded, fileSystem: fs, directory: directory)
            }
            let position = loaded?.position ?? 0
            let bytes = DurableWatermark(sequence: 0, position: position).encode() + DurableWatermark(sequence: 1, position: position).encode()
            try file.truncate(to: 0)
            try bytes.withUnsafeBytes { try file.write($0, at: 0) }
            let opened = WatermarkFile(file: file, current: DurableWatermark(sequence: 1, position: position), fileSystem: fs, directory: directory)
            opened.state.withLock { $0.dirty = true; $0.created = true }
            return opened
        } catch {
            file.close()
            throw error
        }
    }

    /// The last stored position.
    var position: UInt64 { state.withLock { $0.current.position } }

    /// Writes `position` into the next slot (no sync) when it is past the stored one; syncs the
    /// file when the last sync is older than ``lazySync``.
    func store(_ position: UInt64) throws {
        try state.withLock { s in
            guard position > s.current.position else { return }
            try Self.write(&s, file: file, position: position)
            if ContinuousClock.now - s.lastSync >= Self.lazySync { try Self.sync(&s, file: file, fileSystem: fileSystem, directory: directory) }
        }
    }

    /// Writes `position` into the next slot even when it is lower (after an accepted loss).
    func write(_ position: UInt64) throws {
        try state.withLock { try Self.write(&$0, file: file, position: position) }
    }

    /// A store is not yet synced.
    var isDirty: Bool { state.withLock { $0.dirty } }

    /// `fdatasync`s the file when a store is not yet synced and the last sync is at least
    /// ``lazySync`` old (the writer's syncer calls it when it has been idle that long).
    func syncIfDue() throws {
        try state.withLock { s in
            if s.dirty, ContinuousClock.now - s.lastSync >= Self.lazySync { try Self.sync(&s, file: file, fileSystem: fileSystem, directory: directory) }
        }
    }

    /// `fdatasync`s the file if a store is not yet synced.
    func sync() throws {
        try state.withLock { try Self.sync(&$0, file: file, fileSystem: fileSystem, directory: directory) }
    }

    private static func write(_ s: inout State, file: any LogFile, position: UInt64) throws {
        let next = DurableWatermark(sequence: s.current.sequence + 1, position: position)
        let bytes = next.encode()
        try bytes.withUnsafeBytes { try file.write($0, at: (next.sequence % 2) * UInt64(DurableWatermark.slotBytes)) }
        s.current = next
        s.dirty = true
    }

    private static func sync(_ s: inout State, file: any LogFile, fileSystem: any LogFileSystem, directory: String) throws {
        guard s.dirty else { return }
        try file.sync()
        if s.created {
            try fileSystem.syncDirectory(directory)
            s.created = false
        }
        s.dirty = false
        s.lastSync = .now
    }

    func close() { file.close() }
}
