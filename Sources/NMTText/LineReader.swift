import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Lines of a text file, a bounded number at a time: `bytes` holds them back to back and line i
/// is `bytes[lines[i]]` (without its terminator). `firstLine` is the 0-based number of line 0 in the file.
struct LineChunk {
    var bytes: [UInt8] = []
    var lines: [Range<Int>] = []
    var firstLine = 0

    var count: Int { lines.count }

    func withLine<R>(_ i: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try bytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[lines[i]])) }
    }
}

/// Reads a UTF-8 text file, plain or gzipped (`PATH.gz`, through `gzip -dc`), in chunks of whole lines,
/// so that memory holds one chunk and one read block, whatever the file's size.
///
/// Lines end at `\n`; a final line without `\n` counts as a line, an empty file has no lines.
/// A trailing `\r` on a line and a UTF-8 byte-order mark at the start of the file are dropped.
/// Every line is validated as UTF-8; the first invalid byte is reported with its line number.
/// The FNV-1a 64-bit hash of every byte read (the whole file, once it has been read to the end)
/// identifies the input in the manifest.
final class LineReader {
    let path: String
    /// True when the file is decompressed with `gzip -dc`.
    let compressed: Bool
    /// Size of the file on disk (compressed for `.gz`).
    let fileBytes: Int
    /// Lines returned so far.
    private(set) var linesRead = 0
    /// (Decompressed) bytes read so far.
    private(set) var bytesRead = 0

    private var fd: Int32
    private var gzip: Process?
    private var gzipErrors: GzipErrors?
    /// Bytes read but not yet returned: `buffer[start..<end]`.
    private var buffer: [UInt8]
    private var start = 0, end = 0
    private var endOfFile = false
    private var atFileStart = true
    private var hash = LineReader.fnvOffsetBasis

    /// Opens `path`; `blockSize` is how much one read asks for (the buffer grows past it only for a
    /// single line that is longer).
    init(path: String, blockSize: Int = 1 << 20) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw PreprocessError("missing input file '\(path)'")
        }
        if isDirectory.boolValue { throw PreprocessError("input '\(path)' is a directory, not a text file") }
        self.path = path
        self.compressed = path.hasSuffix(".gz")
        self.buffer = [UInt8](repeating: 0, count: max(16, blockSize))
        let file = open(path, O_RDONLY)
        guard file >= 0 else { throw PreprocessError("cannot read '\(path)': \(String(cString: strerror(errno)))") }
        var st = stat()
        fstat(file, &st)
        self.fileBytes = Int(st.st_size)
        if compressed {
            close(file)
            (fd, gzip, gzipErrors) = try LineReader.startGzip(path)
        } else {
            fd = file
        }
    }

    deinit { closeInput() }

    /// The hash of the whole file; valid once `read` has returned false.
    var checksum: String { String(format: "%016llx", hash) }

    /// Share of the file read so far (by bytes; nil for gzipped files, whose decompressed size is unknown).
    var fractionRead: Double? { compressed || fileBytes == 0 ? nil : min(1, Double(bytesRead) / Double(fileBytes)) }

    /// Replaces `chunk`'s contents (keeping its storage) with the next lines of the file, at most
    /// `maxLines` of them. Returns false when the file had no more lines.
    func read(maxLines: Int, into chunk: inout LineChunk) throws -> Bool {
        precondition(maxLines > 0)
        chunk.bytes.removeAll(keepingCapacity: true)
        chunk.lines.removeAll(keepingCapacity: true)
        chunk.firstLine = linesRead
        while chunk.lines.count < maxLines {
            if atFileStart {
                // The byte-order mark needs three bytes (or the end of the file) to be recognized.
                while end - start < 3 && !endOfFile { try refill() }
                if end - start >= 3, buffer[start] == 0xEF, buffer[start + 1] == 0xBB, buffer[start + 2] == 0xBF { start += 3 }
                atFileStart = false
            }
            let newline: Int? = buffer.withUnsafeBufferPointer { b in
                guard start < end, let p = memchr(b.baseAddress! + start, 0x0A, end - start) else { return nil }
                return b.baseAddress!.distance(to: p.assumingMemoryBound(to: UInt8.self))
            }
            let lineEnd: Int
            if let newline {
                lineEnd = newline
            } else if endOfFile {
                if start == end { break }
                lineEnd = end  // a last line without a newline
            } else {
                try refill()
                continue
            }
            try append(start..<lineEnd, to: &chunk)
            start = min(end, lineEnd + 1)
        }
        return !chunk.lines.isEmpty
    }

    /// Validates one line of the buffer and copies it into the chunk.
    private func append(_ range: Range<Int>, to chunk: inout LineChunk) throws {
        var stop = range.upperBound
        if stop > range.lowerBound, buffer[stop - 1] == 0x0D { stop -= 1 }
        let line = range.lowerBound..<stop
        try buffer.withUnsafeBufferPointer { b in
            let bytes = UnsafeBufferPointer(rebasing: b[line])
            if let bad = LineReader.firstInvalidUTF8(bytes) {
                throw PreprocessError("invalid UTF-8 in '\(path)' line \(linesRead + 1), byte \(bad + 1) of the line (0x\(String(bytes[bad], radix: 16, uppercase: true)))")
            }
            let at = chunk.bytes.count
            chunk.bytes.append(contentsOf: bytes)
            chunk.lines.append(at..<chunk.bytes.count)
        }
        linesRead += 1
    }

    /// Moves the unread bytes to the front of the buffer (growing it when a line fills it) and reads more.
    private func refill() throws {
        if start > 0 {
            buffer.withUnsafeMutableBufferPointer { b in
                _ = memmove(b.baseAddress!, b.baseAddress! + start, end - start)
            }
            end -= start
            start = 0
        }
        if end == buffer.count { buffer.append(contentsOf: repeatElement(0, count: buffer.count)) }
        let n: Int = buffer.withUnsafeMutableBufferPointer { b in
            while true {
                let n = Glibc.read(fd, b.baseAddress! + end, b.count - end)
                if n < 0 && errno == EINTR { continue }
                return n
            }
        }
        if n < 0 { throw PreprocessError("cannot read '\(path)': \(String(cString: strerror(errno)))") }
        if n == 0 {
            endOfFile = true
            try finishGzip()
            return
        }
        buffer.withUnsafeBufferPointer { b in
            hash = LineReader.fnv1a64(UnsafeBufferPointer(rebasing: b[end..<end + n]), continuing: hash)
        }
        end += n
        bytesRead += n
    }

    private func closeInput() {
        if fd >= 0 { close(fd); fd = -1 }
        if let gzip, gzip.isRunning { gzip.terminate(); gzip.waitUntilExit() }
        gzip = nil
    }

    // MARK: gzip

    /// gzip's stderr, drained on another thread so that a chatty gzip cannot block on a full pipe.
    private final class GzipErrors: @unchecked Sendable {
        var data = Data()
        let done = DispatchGroup()
    }

    private static func startGzip(_ path: String) throws -> (Int32, Process, GzipErrors) {
        let candidates = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
            .split(separator: ":").map { "\($0)/gzip" } + ["/usr/bin/gzip", "/bin/gzip"]
        guard let gzip = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw PreprocessError("cannot decompress '\(path)': gzip not found in PATH")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: gzip)
        process.arguments = ["-dc", "--", path]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        do { try process.run() } catch {
            throw PreprocessError("cannot decompress '\(path)': \(error.localizedDescription)")
        }
        let collected = GzipErrors()
        let errorHandle = errors.fileHandleForReading
        DispatchQueue.global().async(group: collected.done) { collected.data = errorHandle.readDataToEndOfFile() }
        // Our own descriptor, so that closing it does not depend on the Pipe object's lifetime.
        let fd = dup(output.fileHandleForReading.fileDescriptor)
        try? output.fileHandleForReading.close()
        return (fd, process, collected)
    }

    private func finishGzip() throws {
        guard let gzip, let gzipErrors else { return }
        gzipErrors.done.wait()
        gzip.waitUntilExit()
        self.gzip = nil
        guard gzip.terminationStatus == 0 else {
            let message = String(decoding: gzipErrors.data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw PreprocessError("cannot decompress '\(path)': gzip exited with status \(gzip.terminationStatus)\(message.isEmpty ? "" : ": " + message)")
        }
    }

    // MARK: Checks

    /// Index of the first byte that does not start a well-formed UTF-8 sequence
    /// (no overlong forms, no surrogates, nothing above U+10FFFF); nil when valid.
    static func firstInvalidUTF8(_ b: UnsafeBufferPointer<UInt8>) -> Int? {
        let n = b.count
        var i = 0
        while i < n {
            // ASCII fast path, 8 bytes at a time.
            while i + 8 <= n {
                let w = UnsafeRawPointer(b.baseAddress! + i).loadUnaligned(as: UInt64.self)
                if w & 0x8080_8080_8080_8080 != 0 { break }
                i += 8
            }
            if i >= n { break }
            let c = b[i]
            if c < 0x80 { i += 1; continue }
            var need = 0
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch c {
            case 0xC2...0xDF: need = 1
            case 0xE0: need = 2; lo = 0xA0
            case 0xE1...0xEC, 0xEE, 0xEF: need = 2
            case 0xED: need = 2; hi = 0x9F
            case 0xF0: need = 3; lo = 0x90
            case 0xF1...0xF3: need = 3
            case 0xF4: need = 3; hi = 0x8F
            default: return i
            }
            if i + need >= n { return i }  // sequence cut off by the end of the line
            let c1 = b[i + 1]
            if c1 < lo || c1 > hi { return i }
            var k = 2
            while k <= need {
                if b[i + k] & 0xC0 != 0x80 { return i }
                k += 1
            }
            i += need + 1
        }
        return nil
    }

    static let fnvOffsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325

    /// FNV-1a 64-bit, continued from `hash` over `bytes`.
    static func fnv1a64(_ bytes: UnsafeBufferPointer<UInt8>, continuing hash: UInt64 = fnvOffsetBasis) -> UInt64 {
        var h = hash
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return h
    }
}
