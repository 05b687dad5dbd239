import Glibc

/// Small POSIX file helpers: HeraldTesting avoids Foundation, like the rest of Herald.
enum FileIO {
    static func errnoText() -> String { String(cString: strerror(errno)) }

    /// True when `path` exists.
    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// True when `path` is a directory.
    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0 else { return false }
        return (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// The whole file.
    static func read(_ path: String) throws(FixtureError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FixtureError(path: path, reason: "cannot open: \(errnoText())") }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw FixtureError(path: path, reason: "cannot read: \(errnoText())") }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }

    /// Replaces the file's content (creating parent directories).
    static func write(_ bytes: [UInt8], to path: String) throws(FixtureError) {
        try makeDirectories(parent(of: path))
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FixtureError(path: path, reason: "cannot create: \(errnoText())") }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress.map { $0 + offset }, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw FixtureError(path: path, reason: "cannot write: \(errnoText())") }
            offset += n
        }
    }

    /// The directory part of `path` ("." when there is none).
    static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// The last component of `path`.
    static func baseName(_ path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return String(trimmed) }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    /// `mkdir -p`.
    static func makeDirectories(_ path: String) throws(FixtureError) {
        if path.isEmpty || isDirectory(path) { return }
        let up = parent(of: path)
        if up != path { try makeDirectories(up) }
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw FixtureError(path: path, reason: "cannot create directory: \(errnoText())")
        }
    }

    /// The names in a directory (without `.` and `..`), sorted bytewise so runs are deterministic.
    static func list(_ path: String) throws(FixtureError) -> [String] {
        guard let dir = opendir(path) else {
            throw FixtureError(path: path, reason: "cannot list directory: \(errnoText())")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            names.append(name)
        }
        return names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// Removes a file or a whole tree; missing paths are fine.
    static func removeTree(_ path: String) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFDIR {
            for name in (try? list(path)) ?? [] { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }

    /// A new empty directory under `$TMPDIR` (or /tmp).
    static func makeTemporaryDirectory(prefix: String = "herald-fixture") throws(FixtureError) -> String {
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((base + "/" + prefix + "-XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { buffer -> Bool in
            guard let base = buffer.baseAddress else { return false }
            return mkdtemp(base) != nil
        }
        guard made else { throw FixtureError(path: base, reason: "cannot create a temporary directory: \(errnoText())") }
        return String(decoding: template.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs `body` with a fresh temporary directory that is removed afterwards, whatever happens.
    static func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
        let path = try makeTemporaryDirectory()
        defer { removeTree(path) }
        return try await body(path)
    }

    /// Splits bytes into lines on `\n` (a final line without `\n` counts; no empty line after a final `\n`).
    static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var result: [ArraySlice<UInt8>] = []
        var start = 0
        for (index, byte) in bytes.enumerated() where byte == 0x0A {
            result.append(bytes[start..<index])
            start = index + 1
        }
        if start < bytes.count { result.append(bytes[start..<bytes.count]) }
        return result
    }
}
