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

    // MARK: Writes inside a directory, never through a symbolic link

    /// Replaces the file at `relative` inside `root` (creating it and missing directories),
    /// refusing a symbolic link at `root`, at any directory on the way or at the file, and a
    /// `relative` that could leave `root` (absolute, empty components, `.` or `..`). Parents of
    /// `root` may be links (`/tmp` often is). Directories are opened with `O_NOFOLLOW` one by
    /// one and the file with `O_NOFOLLOW`, so a link put there meanwhile is refused too.
    static func write(_ bytes: [UInt8], to relative: String, inside root: String) throws(FixtureError) {
        let parts = try components(of: relative, inside: root)
        guard let directory = try openDirectory(root, parts.dropLast(), create: true) else {
            preconditionFailure("openDirectory creates what is missing")
        }
        defer { close(directory) }
        let name = parts[parts.count - 1]
        let path = root + "/" + relative
        try refuseLinkOrSpecial(directory, name, path: path)
        let fd = openat(directory, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            if errno == ELOOP { throw symlinkRefusal(path) }
            throw FixtureError(path: path, reason: "cannot create: \(errnoText())")
        }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress.map { $0 + offset }, $0.count - offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw FixtureError(path: path, reason: "cannot write: \(errnoText())") }
            offset += n
        }
    }

    /// Removes the file (or tree) at `relative` inside `root` if it exists, with the refusals
    /// of ``write(_:to:inside:)``.
    static func remove(_ relative: String, inside root: String) throws(FixtureError) {
        let parts = try components(of: relative, inside: root)
        guard let directory = try openDirectory(root, parts.dropLast(), create: false) else { return }
        defer { close(directory) }
        let path = root + "/" + relative
        var info = stat()
        guard fstatat(directory, parts[parts.count - 1], &info, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        if (info.st_mode & S_IFMT) == S_IFLNK { throw symlinkRefusal(path) }
        removeTree(path)
    }

    /// Throws what ``write(_:to:inside:)`` or ``remove(_:inside:)`` would refuse for
    /// `relative`, creating and writing nothing: lets a caller check every file before it
    /// writes the first.
    static func checkWritable(_ relative: String, inside root: String) throws(FixtureError) {
        let parts = try components(of: relative, inside: root)
        guard let directory = try openDirectory(root, parts.dropLast(), create: false) else { return }
        defer { close(directory) }
        try refuseLinkOrSpecial(directory, parts[parts.count - 1], path: root + "/" + relative)
    }

    /// Refuses `root` itself when it is a symbolic link (nothing is created).
    static func checkNotSymlink(_ root: String) throws(FixtureError) {
        var info = stat()
        if lstat(root, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK { throw symlinkRefusal(root) }
    }

    private static func symlinkRefusal(_ path: String) -> FixtureError {
        FixtureError(path: path, reason: "is a symbolic link; refusing to write through it (replace it with a real file or directory)")
    }

    /// The components of `relative`; refuses one that could lead outside `root`.
    private static func components(of relative: String, inside root: String) throws(FixtureError) -> [String] {
        let parts = relative.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard !relative.hasPrefix("/"), !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." }) else {
            throw FixtureError(path: root + "/" + relative,
                               reason: "is not a plain relative path inside \(root); refusing to write outside that directory")
        }
        return parts
    }

    /// Opens `root`/`parts` as a directory without following a link anywhere from `root` on;
    /// creates what is missing when `create`, else returns nil for a missing one.
    private static func openDirectory(_ root: String, _ parts: ArraySlice<String>, create: Bool) throws(FixtureError) -> Int32? {
        try checkNotSymlink(root)
        if create { try makeDirectories(root) }
        var fd = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT && !create { return nil }
            if errno == ELOOP { throw symlinkRefusal(root) }
            throw FixtureError(path: root, reason: "cannot open directory: \(errnoText())")
        }
        var path = root
        for part in parts {
            path += "/" + part
            var next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT && create {
                if mkdirat(fd, part, 0o755) != 0 && errno != EEXIST {
                    let reason = "cannot create directory: \(errnoText())"
                    close(fd)
                    throw FixtureError(path: path, reason: reason)
                }
                next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            if next < 0 {
                let code = errno
                var info = stat()
                let isLink = fstatat(fd, part, &info, AT_SYMLINK_NOFOLLOW) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
                close(fd)
                if code == ENOENT && !create { return nil }
                if isLink || code == ELOOP { throw symlinkRefusal(path) }
                throw FixtureError(path: path, reason: "cannot open directory: \(String(cString: strerror(code)))")
            }
            close(fd)
            fd = next
        }
        return fd
    }

    /// Refuses `name` in `directory` when it is a symbolic link or exists as anything but a
    /// regular file (a FIFO would block the write; a directory cannot be replaced).
    private static func refuseLinkOrSpecial(_ directory: Int32, _ name: String, path: String) throws(FixtureError) {
        var info = stat()
        guard fstatat(directory, name, &info, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        switch info.st_mode & S_IFMT {
        case S_IFLNK: throw symlinkRefusal(path)
        case S_IFREG: return
        default: throw FixtureError(path: path, reason: "exists and is not a regular file; refusing to replace it")
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
