import Glibc

/// Small POSIX helpers for the shell (the log has its own file layer).
enum FileSystemPaths {
    /// Creates a directory unless it exists.
    static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw HeraldError.unreadable(source: path, reason: "cannot create directory: \(String(cString: strerror(errno)))")
        }
    }

    /// True when `path` is a directory (or a link to one).
    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// True when this process may write in the directory `path` (`access(W_OK)`: a read-only
    /// mount answers EROFS, a directory without write permission EACCES).
    static func isWritable(_ path: String) -> Bool {
        access(path, W_OK) == 0
    }

    /// `$TMPDIR`, else /tmp.
    static var temporaryDirectory: String {
        if let value = getenv("TMPDIR"), let text = String(validatingCString: value), !text.isEmpty { return text }
        return "/tmp"
    }

    /// The size of the file at `path`, or nil when it does not exist.
    static func size(_ path: String) -> UInt64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return UInt64(info.st_size)
    }

    /// True when `path` exists.
    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    /// Removes a file if it exists.
    static func remove(_ path: String) {
        unlink(path)
    }
}
