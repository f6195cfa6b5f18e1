import Foundation

/// A file operation that failed, in plain words: "cannot OPERATION PATH: why".
public struct FileError: Error, CustomStringConvertible, Equatable {
    let operation: String
    let path: String
    let reason: String

    /// `operation` is a verb: "read", "write", "create", "copy" …
    public init(_ operation: String, _ path: String, _ reason: String) {
        self.operation = operation
        self.path = path
        self.reason = reason
    }

    /// The reason the last system call failed (strerror of errno).
    package static func systemReason() -> String { String(cString: strerror(errno)) }

    public var description: String { "cannot \(operation) \(path): \(reason)" }
}

/// Atomic file replacement: write a temporary file beside the target, fsync it, rename it over the
/// target, fsync the directory. A crash at any moment leaves either the old or the new file.
package enum AtomicFile {
    package static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = directory + "/." + url.lastPathComponent + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw FileError("write", path, FileError.systemReason()) }
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
            throw FileError("write", path, failure)
        }
        let dirfd = open(directory, O_RDONLY)
        if dirfd >= 0 { fsync(dirfd); close(dirfd) }
    }
}
