import Foundation

/// A file operation that failed, in plain words: "cannot OPERATION PATH: why".
public struct FileError: Error, CustomStringConvertible, Equatable {
    package let operation: String
    package let path: String
    package let reason: String

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
        let writer = try AtomicFileWriter(path: path, bufferSize: 0)
        try data.withUnsafeBytes { try writer.write($0) }
        try writer.commit()
    }
}

/// An atomic replacement written piece by piece (a file too large to build in memory first): bytes go
/// through a buffer into a temporary file beside `path`, which `commit()` fsyncs and renames over `path`.
/// A writer dropped without `commit()` (an error on the way) removes its temporary file and leaves
/// `path` as it was.
package final class AtomicFileWriter {
    package let path: String
    private let temporary: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let bufferSize: Int
    private var committed = false

    package init(path: String, bufferSize: Int = 1 << 20) throws {
        let url = URL(fileURLWithPath: path)
        self.path = path
        self.temporary = url.deletingLastPathComponent().path + "/." + url.lastPathComponent + ".tmp-\(getpid())"
        self.bufferSize = bufferSize
        fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw FileError("write", path, FileError.systemReason()) }
        buffer.reserveCapacity(bufferSize)
    }

    deinit {
        if !committed {
            if fd >= 0 { close(fd) }
            unlink(temporary)
        }
    }

    package func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count > bufferSize {
            try flush()
            if bytes.count > bufferSize { return try writeAll(bytes) }
        }
        buffer.append(contentsOf: bytes)
    }

    package func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Writes the value's bytes as they are in memory (callers pass little-endian values).
    package func write<T: FixedWidthInteger>(_ value: T) throws {
        try withUnsafeBytes(of: value) { try write($0) }
    }

    /// Copies the whole of the open file `source` (read from its start) into this one.
    package func append(contentsOf source: Int32) throws {
        try flush()
        guard lseek(source, 0, SEEK_SET) == 0 else { throw FileError("write", path, FileError.systemReason()) }
        var block = [UInt8](repeating: 0, count: 1 << 22)
        while true {
            let n = block.withUnsafeMutableBytes { Foundation.read(source, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw FileError("write", path, FileError.systemReason()) }
            if n == 0 { return }
            try block.withUnsafeBytes { try writeAll(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
    }

    /// Flushes, fsyncs and renames the file over `path`, then fsyncs the directory.
    package func commit() throws {
        precondition(!committed, "AtomicFileWriter.commit() called twice")
        try flush()
        var failure: String?
        if fsync(fd) != 0 { failure = FileError.systemReason() }
        close(fd)
        fd = -1
        if failure == nil && rename(temporary, path) != 0 { failure = FileError.systemReason() }
        if let failure { throw FileError("write", path, failure) }
        committed = true
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        let dirfd = open(directory, O_RDONLY)
        if dirfd >= 0 { fsync(dirfd); close(dirfd) }
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var written = 0
        while written < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + written, bytes.count - written)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { throw FileError("write", path, FileError.systemReason()) }
            written += n
        }
    }
}
