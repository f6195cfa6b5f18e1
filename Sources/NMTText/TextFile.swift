import Foundation
import NMTTensor

/// A UTF-8 text file read into memory and split into lines.
///
/// Lines end at `\n`; a final line without `\n` counts as a line, an empty file has no lines.
/// A trailing `\r` on a line and a UTF-8 byte-order mark at the start of the file are dropped.
/// Every line is validated as UTF-8; the first invalid byte is reported with its line number.
struct TextFile: Sendable {
    /// The path read (for `.gz` inputs, the compressed file).
    let path: String
    /// True when the file was decompressed with `gzip -dc`.
    let compressed: Bool
    /// Size of the file on disk.
    let fileBytes: Int
    /// The (decompressed) contents.
    let bytes: [UInt8]
    /// Byte range of each line in `bytes` (without the line terminator).
    let lines: [Range<Int>]
    /// FNV-1a 64-bit hash of the (decompressed) contents, as 16 hex digits.
    let checksum: String

    var lineCount: Int { lines.count }

    /// Line `i` as a String.
    func line(_ i: Int) -> String {
        bytes.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[lines[i]]), as: UTF8.self) }
    }

    /// Reads `path`; when it does not exist and `path.gz` does, decompresses that instead.
    static func read(resolving path: String) throws -> TextFile {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDir) {
            if isDir.boolValue { throw PreprocessError("input '\(path)' is a directory, not a text file") }
            return try read(path: path)
        }
        if fm.fileExists(atPath: path + ".gz") { return try read(path: path + ".gz") }
        throw PreprocessError("missing input file '\(path)' (also looked for '\(path).gz')")
    }

    /// Reads `path` (decompressing when it ends in `.gz`).
    static func read(path: String) throws -> TextFile {
        let url = URL(fileURLWithPath: path)
        let compressed = path.hasSuffix(".gz")
        let fileBytes: Int
        var bytes: [UInt8]
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            fileBytes = (attributes[.size] as? NSNumber)?.intValue ?? 0
            bytes = compressed ? try gunzip(path) : [UInt8](try Data(contentsOf: url))
        } catch let e as PreprocessError {
            throw e
        } catch {
            throw PreprocessError("cannot read '\(path)': \(error.localizedDescription)")
        }
        return try TextFile(path: path, compressed: compressed, fileBytes: fileBytes, contents: bytes)
    }

    /// Splits and validates `contents` (which came from `path`).
    init(path: String, compressed: Bool = false, fileBytes: Int? = nil, contents: [UInt8]) throws {
        self.path = path
        self.compressed = compressed
        self.fileBytes = fileBytes ?? contents.count
        self.bytes = contents
        self.checksum = String(format: "%016llx", TextFile.fnv1a64(contents))
        var lines: [Range<Int>] = []
        try contents.withUnsafeBufferPointer { b in
            let n = b.count
            var start = 0
            if n >= 3, b[0] == 0xEF, b[1] == 0xBB, b[2] == 0xBF { start = 3 }
            lines.reserveCapacity(n / 40 + 1)
            while start < n {
                var end = start
                // memchr is much faster than a byte loop on long files.
                if let p = memchr(b.baseAddress! + start, 0x0A, n - start) {
                    end = b.baseAddress!.distance(to: p.assumingMemoryBound(to: UInt8.self))
                } else {
                    end = n
                }
                var stop = end
                if stop > start, b[stop - 1] == 0x0D { stop -= 1 }
                if let bad = TextFile.firstInvalidUTF8(UnsafeBufferPointer(rebasing: b[start..<stop])) {
                    throw PreprocessError("invalid UTF-8 in '\(path)' line \(lines.count + 1), byte \(bad + 1) of the line (0x\(String(b[start + bad], radix: 16, uppercase: true)))")
                }
                lines.append(start..<stop)
                start = end + 1
            }
        }
        self.lines = lines
    }

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

    static func fnv1a64(_ bytes: [UInt8]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01b3
        }
        return h
    }

    /// Decompresses with `gzip -dc`.
    static func gunzip(_ path: String) throws -> [UInt8] {
        let candidates = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
            .split(separator: ":").map { "\($0)/gzip" } + ["/usr/bin/gzip", "/bin/gzip"]
        guard let gzip = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw PreprocessError("cannot decompress '\(path)': gzip not found in PATH")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: gzip)
        process.arguments = ["-dc", "--", path]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        // Drain stderr concurrently so that a chatty gzip cannot block on a full pipe.
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box()
        let group = DispatchGroup()
        let errHandle = err.fileHandleForReading
        DispatchQueue.global().async(group: group) { errBox.data = errHandle.readDataToEndOfFile() }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let errData = errBox.data
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw PreprocessError("cannot decompress '\(path)': gzip exited with status \(process.terminationStatus)\(message.isEmpty ? "" : ": " + message)")
        }
        return [UInt8](data)
    }
}
