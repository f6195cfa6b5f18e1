import Foundation

/// A file that could not be read or written, in plain words: what failed, on which file, why.
public struct FileError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let reason: String

    public init(_ path: String, _ reason: String) {
        self.path = path
        self.reason = reason
    }

    /// The reason the last system call failed (strerror of errno).
    public static func systemReason() -> String { String(cString: strerror(errno)) }

    public var description: String { "\(path): \(reason)" }
}

/// Atomic file replacement: write a temporary file beside the target, fsync it, rename it over the
/// target, fsync the directory. A crash at any moment leaves either the old or the new file.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw FileError(path, "cannot be written: \(FileError.systemReason())") }
        var failure: String?
        data.withUnsafeBytes { raw in
            var written = 0
            while written < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + written, raw.count - written)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { failure = FileError.systemReason(); break }
                written += n
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = FileError.systemReason() }
        close(fd)
        if failure == nil && rename(temporary, path) != 0 { failure = FileError.systemReason() }
        if let failure {
            unlink(temporary)
            throw FileError(path, "cannot be written: \(failure)")
        }
        let dirfd = open(directory, O_RDONLY)
        if dirfd >= 0 { fsync(dirfd); close(dirfd) }
    }
}
