import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NMTTensor

/// Binary token dataset file layout, version 1 (all integers little-endian; see docs/data-format.md).
///
///     offset  size  field
///          0     8  magic "SNMTTOK\0"
///          8     4  format version (UInt32) = 1
///         12     4  header size in bytes (UInt32) = 64; the offsets table starts here
///         16     8  sentence count N (UInt64)
///         24     8  token count T (UInt64)
///         32     4  vocabulary size V (UInt32); 0 = unknown (no range check)
///         36     4  bytes per token (UInt32) = 4 (Int32 ids)
///         40    24  reserved, zero
///         64  8(N+1) offsets (UInt64): sentence i is tokens[offsets[i] ..< offsets[i+1]],
///                   offsets[0] = 0, offsets[N] = T, non-decreasing
///    64+8(N+1)  4T  token ids (Int32), without bos/eos
enum TokenDatasetFormat {
    static let magic: [UInt8] = Array("SNMTTOK".utf8) + [0]
    static let version: UInt32 = 1
    static let headerSize = 64
    static let bytesPerToken = 4
}

/// A read-only, memory-mapped token dataset: `count` sentences of Int32 ids (no bos/eos).
///
/// The header, offsets table and (when the header carries a vocabulary size) every id are
/// validated on load, so the accessors below do no checks. Immutable; safe to share
/// between threads.
package final class TokenDataset: @unchecked Sendable {
    package let path: String
    /// Number of sentences.
    package let count: Int
    /// Total number of tokens.
    let tokenCount: Int
    /// Vocabulary size recorded by the writer (0 when unknown). All ids are below it.
    let vocabSize: Int
    /// Format version of the file.
    let version: UInt32

    /// The file stays open for `readTokens`, which reads at these offsets.
    private let file: Int32
    private let offsetsTableStart: Int, idsTableStart: Int
    private let mapping: UnsafeMutableRawPointer
    private let mappingSize: Int
    private let offsets: UnsafePointer<UInt64>
    private let ids: UnsafePointer<Int32>

    /// Maps and validates the file. Throws `TokenDatasetError` with a clear message on a missing
    /// file, wrong magic, unsupported version, truncated or oversized file, or bad offsets/ids.
    package init(path: String) throws {
        #if _endian(big)
        throw TokenDatasetError("\(path): token datasets are little-endian; big-endian hosts are not supported")
        #else
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw TokenDatasetError("cannot open token dataset '\(path)': \(String(cString: strerror(errno)))")
        }
        var keepOpen = false
        defer { if !keepOpen { close(fd) } }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw TokenDatasetError("cannot stat '\(path)': \(String(cString: strerror(errno)))")
        }
        let size = Int(st.st_size)
        let h = TokenDatasetFormat.headerSize
        guard size >= 16 else {
            throw TokenDatasetError("'\(path)' is not a token dataset: truncated header (\(size) bytes, the header has \(h))")
        }
        guard let map = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), map != MAP_FAILED else {
            throw TokenDatasetError("cannot map '\(path)': \(String(cString: strerror(errno)))")
        }
        func fail(_ message: String) -> TokenDatasetError {
            munmap(map, size)
            return TokenDatasetError("'\(path)': \(message)")
        }
        let raw = UnsafeRawPointer(map)
        func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }

        guard Array(UnsafeRawBufferPointer(start: raw, count: 8)) == TokenDatasetFormat.magic else {
            throw fail("not a token dataset (wrong magic; expected \"SNMTTOK\")")
        }
        let version = u32(8)
        guard version == TokenDatasetFormat.version else {
            throw fail("unsupported token dataset format version \(version) (this build reads version \(TokenDatasetFormat.version))")
        }
        let headerSize = Int(u32(12))
        guard size >= h else { throw fail("truncated header (\(size) bytes, the header has \(h))") }
        guard headerSize >= h, headerSize % 8 == 0, headerSize <= size else {
            throw fail("bad header size \(headerSize)")
        }
        guard u32(36) == UInt32(TokenDatasetFormat.bytesPerToken) else {
            throw fail("unsupported token width \(u32(36)) bytes (expected 4)")
        }
        let n64 = u64(16), t64 = u64(24)
        // Bounds before arithmetic so that a corrupt count cannot overflow: 8 * (n + 1) and 4 * t each
        // stay under Int.max / 4, so `expected` below does too (plus the header, at most the file size).
        guard n64 < UInt64(Int.max / 32), t64 < UInt64(Int.max / 16) else {
            throw fail("corrupt header (sentence count \(n64), token count \(t64))")
        }
        let n = Int(n64), t = Int(t64)
        let expected = headerSize + 8 * (n + 1) + 4 * t
        guard size >= expected else {
            throw fail("truncated file: header promises \(n) sentences and \(t) tokens (\(expected) bytes) but the file has \(size) bytes")
        }
        guard size == expected else {
            throw fail("\(size - expected) unexpected trailing bytes after \(n) sentences and \(t) tokens")
        }
        let offsets = (raw + headerSize).assumingMemoryBound(to: UInt64.self)
        let ids = (raw + headerSize + 8 * (n + 1)).assumingMemoryBound(to: Int32.self)
        guard offsets[0] == 0, offsets[n] == t64 else {
            throw fail("corrupt offsets table (first \(offsets[0]), last \(offsets[n]), expected 0 and \(t))")
        }
        // The checks read the whole file; they go piece by piece and give each piece's pages back, so that
        // a dataset of any size costs only the pages that training touches.
        for range in Self.pieces(0..<n, of: 8) {
            for i in range where offsets[i + 1] < offsets[i] {
                throw fail("corrupt offsets table: sentence \(i) ends before it starts")
            }
            Self.releasePages(UnsafeRawPointer(offsets + range.lowerBound), bytes: 8 * range.count)
        }
        let vocab = Int(u32(32))
        if vocab > 0, let bad = Self.firstId(in: UnsafeBufferPointer(start: ids, count: t), outside: vocab) {
            throw fail("token \(bad) has id \(ids[bad]) outside the vocabulary of size \(vocab)")
        }
        keepOpen = true
        self.file = fd
        self.offsetsTableStart = headerSize
        self.idsTableStart = headerSize + 8 * (n + 1)
        self.mapping = map
        self.mappingSize = size
        self.offsets = offsets
        self.ids = ids
        self.count = n
        self.tokenCount = t
        self.vocabSize = vocab
        self.version = version
        #endif
    }

    deinit {
        munmap(mapping, mappingSize)
        close(file)
    }

    /// Checks every id against the vocabulary of the model that reads the dataset, whatever the header says
    /// (its size may be 0, unknown, or another): the ids index the model's embedding tables.
    package func checkIds(vocabularySize: Int) throws {
        guard vocabSize == 0 || vocabSize > vocabularySize else { return }  // else checked on load
        if let bad = Self.firstId(in: UnsafeBufferPointer(start: ids, count: tokenCount), outside: vocabularySize) {
            throw TokenDatasetError("'\(path)': token \(bad) has id \(ids[bad]) outside the model's vocabulary of size \(vocabularySize)")
        }
    }

    /// The index of the first id outside `0 ..< vocabularySize`, nil when there is none. The common case, a
    /// dataset without one, is a pass for the smallest and largest id of each piece, which the compiler
    /// vectorizes; each piece's pages are given back after it.
    private static func firstId(in ids: UnsafeBufferPointer<Int32>, outside vocabularySize: Int) -> Int? {
        for range in pieces(0..<ids.count, of: 4) {
            let piece = UnsafeBufferPointer(rebasing: ids[range])
            var smallest = Int32.max, largest = Int32.min
            for id in piece {
                smallest = min(smallest, id)
                largest = max(largest, id)
            }
            if !piece.isEmpty, smallest < 0 || Int(largest) >= vocabularySize {
                return range.lowerBound + piece.firstIndex { $0 < 0 || Int($0) >= vocabularySize }!
            }
            if let base = piece.baseAddress { releasePages(UnsafeRawPointer(base), bytes: 4 * piece.count) }
        }
        return nil
    }

    /// `range` cut into pieces of 8 MiB of elements of `elementSize` bytes.
    private static func pieces(_ range: Range<Int>, of elementSize: Int) -> [Range<Int>] {
        let step = (8 << 20) / elementSize
        return stride(from: range.lowerBound, to: range.upperBound, by: step).map { $0..<min(range.upperBound, $0 + step) }
    }

    /// Drops the pages of a part of the mapping from this process's resident memory. The mapping is
    /// private and never written, so the pages stay in the page cache and a later read maps them again.
    private static func releasePages(_ start: UnsafeRawPointer, bytes: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let first = Int(bitPattern: start) / page * page
        let last = Int(bitPattern: start) + bytes
        guard last > first else { return }
        _ = madvise(UnsafeMutableRawPointer(bitPattern: first), last - first, MADV_DONTNEED)
    }

    /// Sentence `i`'s ids read with `pread`, not through the mapping. Training reads sentences all over a
    /// corpus, and a kernel that maps a whole large folio of the page cache on each fault (Linux 6.x on
    /// ext4) would make most of the file resident in this process through the mapping: measured, about
    /// 250 MB per side after 4 updates on 8.7 M pairs. Read this way, the file stays in the page cache only.
    package func readTokens(_ i: Int) throws -> [Int32] {
        var ids: [Int32] = []
        try readTokens(i, into: &ids)
        return ids
    }

    /// The same into `ids`, replacing what it held: a caller that keeps `ids` from one sentence to the
    /// next reads without allocating once it has held the longest.
    package func readTokens(_ i: Int, into ids: inout [Int32]) throws {
        precondition(i >= 0 && i < count, "sentence index \(i) out of range 0..<\(count)")
        var bounds: (UInt64, UInt64) = (0, 0)
        try withUnsafeMutableBytes(of: &bounds) { try readFully($0, at: offsetsTableStart + 8 * i) }
        let start = Int(UInt64(littleEndian: bounds.0)), end = Int(UInt64(littleEndian: bounds.1))
        ids.removeAll(keepingCapacity: true)
        ids.append(contentsOf: repeatElement(0, count: end - start))
        try ids.withUnsafeMutableBytes { try readFully($0, at: idsTableStart + 4 * start) }
        #if _endian(big)
        for k in ids.indices { ids[k] = Int32(littleEndian: ids[k]) }
        #endif
    }

    private func readFully(_ buffer: UnsafeMutableRawBufferPointer, at offset: Int) throws {
        var done = 0
        while done < buffer.count {
            let n = pread(file, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw TokenDatasetError("cannot read '\(path)': \(n < 0 ? String(cString: strerror(errno)) : "the file is shorter than when it was opened")")
            }
            done += n
        }
    }

    /// Every sentence's length, compactly (2 bytes each); the offsets table is read piece by piece and its
    /// pages given back. Throws when a sentence has more than 65,535 tokens.
    package func sentenceLengths() throws -> [UInt16] {
        var lengths = [UInt16]()
        lengths.reserveCapacity(count)
        for range in Self.pieces(0..<count, of: 8) {
            for i in range {
                let length = offsets[i + 1] &- offsets[i]
                guard length <= UInt64(UInt16.max) else {
                    throw TokenDatasetError("'\(path)': sentence \(i) has \(length) tokens; training takes at most \(UInt16.max)")
                }
                lengths.append(UInt16(length))
            }
            Self.releasePages(UnsafeRawPointer(offsets + range.lowerBound), bytes: 8 * (range.count + 1))
        }
        return lengths
    }

    /// Number of tokens of sentence `i` (0 ..< count).
    @inline(__always)
    func length(_ i: Int) -> Int {
        precondition(i >= 0 && i < count, "sentence index \(i) out of range 0..<\(count)")
        return Int(offsets[i + 1] &- offsets[i])
    }

    /// The ids of sentence `i` (0 ..< count), without bos/eos. Valid while the dataset lives.
    @inline(__always)
    package func tokens(_ i: Int) -> UnsafeBufferPointer<Int32> {
        precondition(i >= 0 && i < count, "sentence index \(i) out of range 0..<\(count)")
        let start = Int(offsets[i])
        return UnsafeBufferPointer(start: ids + start, count: Int(offsets[i + 1]) - start)
    }

    /// All sentence lengths.
    package var lengths: [Int] { (0..<count).map { length($0) } }

    /// Length of the longest sentence (0 when empty).
    var maxLength: Int { (0..<count).reduce(0) { max($0, length($1)) } }
}

/// Writes a token dataset sentence by sentence, in memory that does not grow with it: the offsets and
/// ids go through small buffers into two unnamed temporary files beside `path`, and `finish()` writes
/// header, offsets and ids into `path` atomically (a temporary file renamed over it). A writer dropped
/// before `finish()` leaves nothing behind.
final class TokenDatasetWriter {
    let path: String
    /// Vocabulary size written to the header (0 = unknown). When positive, appended ids must be below it.
    let vocabSize: Int
    /// Number of sentences appended so far.
    private(set) var count = 0
    /// Number of tokens appended so far.
    private(set) var tokenCount = 0
    private let offsetsFile: Int32, idsFile: Int32
    private var offsetsBuffer: [UInt64] = [], idsBuffer: [Int32] = []
    private let bufferLength: Int
    private var finished = false

    init(path: String, vocabSize: Int = 0, bufferLength: Int = 1 << 16) throws {
        guard vocabSize >= 0, vocabSize <= Int(UInt32.max) else {
            throw TokenDatasetError("\(path): vocabulary size \(vocabSize) out of range")
        }
        self.path = path
        self.vocabSize = vocabSize
        self.bufferLength = max(1, bufferLength)
        offsetsFile = try Self.unnamedTemporaryFile(beside: path)
        do { idsFile = try Self.unnamedTemporaryFile(beside: path) } catch { close(offsetsFile); throw error }
        offsetsBuffer.reserveCapacity(self.bufferLength)
        idsBuffer.reserveCapacity(self.bufferLength)
        offsetsBuffer.append(0)
    }

    deinit {
        close(offsetsFile)
        close(idsFile)
    }

    /// Appends one sentence (ids without bos/eos).
    func append(_ sentence: UnsafeBufferPointer<Int32>) throws {
        precondition(!finished, "TokenDatasetWriter used after finish()")
        if vocabSize > 0 {
            let limit = Int32(truncatingIfNeeded: vocabSize)
            if let bad = sentence.first(where: { $0 < 0 || $0 >= limit }) {
                throw TokenDatasetError("\(path): sentence \(count) has id \(bad) outside the vocabulary of size \(vocabSize)")
            }
        }
        if idsBuffer.count + sentence.count > bufferLength { try flush() }
        for id in sentence { idsBuffer.append(id.littleEndian) }
        count += 1
        tokenCount += sentence.count
        offsetsBuffer.append(UInt64(tokenCount).littleEndian)
        if offsetsBuffer.count >= bufferLength { try flush() }
    }

    func append(_ sentence: [Int32]) throws {
        try sentence.withUnsafeBufferPointer { try append($0) }
    }

    /// Writes the file.
    func finish() throws {
        precondition(!finished, "TokenDatasetWriter.finish() called twice")
        finished = true
        try flush()
        do {
            let file = try AtomicFileWriter(path: path)
            var header = [UInt8](repeating: 0, count: TokenDatasetFormat.headerSize)
            header.withUnsafeMutableBytes { p in
                for (i, m) in TokenDatasetFormat.magic.enumerated() { p[i] = m }
                p.storeBytes(of: TokenDatasetFormat.version.littleEndian, toByteOffset: 8, as: UInt32.self)
                p.storeBytes(of: UInt32(TokenDatasetFormat.headerSize).littleEndian, toByteOffset: 12, as: UInt32.self)
                p.storeBytes(of: UInt64(count).littleEndian, toByteOffset: 16, as: UInt64.self)
                p.storeBytes(of: UInt64(tokenCount).littleEndian, toByteOffset: 24, as: UInt64.self)
                p.storeBytes(of: UInt32(vocabSize).littleEndian, toByteOffset: 32, as: UInt32.self)
                p.storeBytes(of: UInt32(TokenDatasetFormat.bytesPerToken).littleEndian, toByteOffset: 36, as: UInt32.self)
            }
            try file.write(header)
            try file.append(contentsOf: offsetsFile)
            try file.append(contentsOf: idsFile)
            try file.commit()
        } catch let error as FileError {
            throw TokenDatasetError("cannot write token dataset '\(path)': \(error.reason)")
        }
    }

    private func flush() throws {
        try Self.write(offsetsBuffer, to: offsetsFile, for: path)
        try Self.write(idsBuffer, to: idsFile, for: path)
        offsetsBuffer.removeAll(keepingCapacity: true)
        idsBuffer.removeAll(keepingCapacity: true)
    }

    private static func write<T>(_ values: [T], to file: Int32, for path: String) throws {
        try values.withUnsafeBytes { bytes in
            var written = 0
            while written < bytes.count {
                let n = Glibc.write(file, bytes.baseAddress! + written, bytes.count - written)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { throw TokenDatasetError("cannot write token dataset '\(path)': \(String(cString: strerror(errno)))") }
                written += n
            }
        }
    }

    /// A file in `path`'s directory that has no name (unlinked at once), so that it disappears with the
    /// writer whatever happens.
    private static func unnamedTemporaryFile(beside path: String) throws -> Int32 {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        var template = Array((directory + "/.token-dataset-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw TokenDatasetError("cannot write token dataset '\(path)': cannot create a temporary file in \(directory): \(String(cString: strerror(errno)))")
        }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return fd
    }

    /// Writes `sentences` to `path` in one go.
    static func write(path: String, sentences: [[Int32]], vocabSize: Int = 0) throws {
        let w = try TokenDatasetWriter(path: path, vocabSize: vocabSize)
        for s in sentences { try w.append(s) }
        try w.finish()
    }
}
