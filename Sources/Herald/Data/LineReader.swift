import Glibc

/// Reads a file (or standard input) as lines of bytes, in large chunks, without loading it whole.
/// A final line without a newline counts; a trailing newline does not add an empty line.
final class LineReader {
    private let fd: Int32
    private let ownsFD: Bool
    /// For messages: the file name or "standard input".
    let source: String
    private var buffer: [UInt8] = []
    private var start = 0
    private var end = 0
    private var eof = false
    /// Lines handed out so far (1-based number of the last one).
    private(set) var lineNumber = 0

    static let chunkBytes = 1 << 20

    /// Opens `path`, or standard input for `-`.
    init(path: String) throws {
        if path == "-" {
            fd = 0
            ownsFD = false
            source = "standard input"
        } else {
            fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                throw HeraldError.unreadable(source: path, reason: String(cString: strerror(errno)))
            }
            ownsFD = true
            source = path
        }
        buffer = [UInt8](repeating: 0, count: LineReader.chunkBytes)
    }

    deinit {
        if ownsFD { close(fd) }
    }

    /// Calls `body` with each line (without its `\n`) and its 1-based number.
    func forEachLine(_ body: (UnsafeBufferPointer<UInt8>, Int) throws -> Void) throws {
        while true {
            // Find a newline in the buffered bytes.
            let found: Int? = buffer.withUnsafeBufferPointer { bytes in
                guard let base = bytes.baseAddress, start < end else { return nil }
                guard let hit = memchr(base + start, 0x0A, end - start) else { return nil }
                return base.distance(to: hit.assumingMemoryBound(to: UInt8.self))
            }
            if let newline = found {
                lineNumber += 1
                try buffer.withUnsafeBufferPointer { bytes in
                    try body(UnsafeBufferPointer(rebasing: bytes[start..<newline]), lineNumber)
                }
                start = newline + 1
                continue
            }
            if eof {
                if start < end {
                    lineNumber += 1
                    try buffer.withUnsafeBufferPointer { bytes in
                        try body(UnsafeBufferPointer(rebasing: bytes[start..<end]), lineNumber)
                    }
                }
                return
            }
            try refill()
        }
    }

    private func refill() throws {
        // Keep the partial line, grow when one line is longer than the buffer.
        let partial = end - start
        if start > 0 {
            buffer.withUnsafeMutableBufferPointer { bytes in
                if let base = bytes.baseAddress, partial > 0 { memmove(base, base + start, partial) }
            }
            start = 0
            end = partial
        }
        if end == buffer.count {
            // A contiguous array appends with one copy; `repeatElement` goes byte by byte
            // (a 16 MiB line took seconds to read in a debug build).
            buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count))
        }
        let count = buffer.withUnsafeMutableBufferPointer { bytes -> Int in
            guard let base = bytes.baseAddress else { return 0 }
            while true {
                let n = read(fd, base + end, bytes.count - end)
                if n < 0 && errno == EINTR { continue }
                return n
            }
        }
        if count < 0 {
            throw HeraldError.unreadable(source: source, reason: String(cString: strerror(errno)))
        }
        if count == 0 { eof = true }
        end += count
    }
}
