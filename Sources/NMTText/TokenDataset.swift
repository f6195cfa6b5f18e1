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
        defer { close(fd) }
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
        for i in 0..<n where offsets[i + 1] < offsets[i] {
            throw fail("corrupt offsets table: sentence \(i) ends before it starts")
        }
        let vocab = Int(u32(32))
        if vocab > 0, let bad = Self.firstId(in: UnsafeBufferPointer(start: ids, count: t), outside: vocab) {
            throw fail("token \(bad) has id \(ids[bad]) outside the vocabulary of size \(vocab)")
        }
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

    deinit { munmap(mapping, mappingSize) }

    /// Checks every id against the vocabulary of the model that reads the dataset, whatever the header says
    /// (its size may be 0, unknown, or another): the ids index the model's embedding tables.
    package func checkIds(vocabularySize: Int) throws {
        guard vocabSize == 0 || vocabSize > vocabularySize else { return }  // else checked on load
        if let bad = Self.firstId(in: UnsafeBufferPointer(start: ids, count: tokenCount), outside: vocabularySize) {
            throw TokenDatasetError("'\(path)': token \(bad) has id \(ids[bad]) outside the model's vocabulary of size \(vocabularySize)")
        }
    }

    /// The index of the first id outside `0 ..< vocabularySize`, nil when there is none. The common case, a
    /// dataset without one, is a single pass for the smallest and largest id, which the compiler vectorizes.
    private static func firstId(in ids: UnsafeBufferPointer<Int32>, outside vocabularySize: Int) -> Int? {
        var smallest = Int32.max, largest = Int32.min
        for id in ids {
            smallest = min(smallest, id)
            largest = max(largest, id)
        }
        guard !ids.isEmpty, smallest < 0 || Int(largest) >= vocabularySize else { return nil }
        return ids.firstIndex { $0 < 0 || Int($0) >= vocabularySize }
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

/// Builds a token dataset in memory and writes it with `finish()` (atomically: a temporary
/// file in the same directory is renamed over `path`).
final class TokenDatasetWriter {
    let path: String
    /// Vocabulary size written to the header (0 = unknown). When positive, appended ids must be below it.
    let vocabSize: Int
    private var offsets: [UInt64] = [0]
    private var ids: [Int32] = []
    private var finished = false

    init(path: String, vocabSize: Int = 0) throws {
        guard vocabSize >= 0, vocabSize <= Int(UInt32.max) else {
            throw TokenDatasetError("\(path): vocabulary size \(vocabSize) out of range")
        }
        self.path = path
        self.vocabSize = vocabSize
    }

    /// Number of sentences appended so far.
    var count: Int { offsets.count - 1 }
    /// Number of tokens appended so far.
    var tokenCount: Int { ids.count }

    /// Appends one sentence (ids without bos/eos).
    func append(_ sentence: UnsafeBufferPointer<Int32>) throws {
        precondition(!finished, "TokenDatasetWriter used after finish()")
        if vocabSize > 0 {
            let limit = Int32(truncatingIfNeeded: vocabSize)
            if let bad = sentence.first(where: { $0 < 0 || $0 >= limit }) {
                throw TokenDatasetError("\(path): sentence \(count) has id \(bad) outside the vocabulary of size \(vocabSize)")
            }
        }
        ids.append(contentsOf: sentence)
        offsets.append(UInt64(ids.count))
    }

    func append(_ sentence: [Int32]) throws {
        try sentence.withUnsafeBufferPointer { try append($0) }
    }

    /// Writes the file.
    func finish() throws {
        precondition(!finished, "TokenDatasetWriter.finish() called twice")
        finished = true
        let h = TokenDatasetFormat.headerSize
        var data = Data(count: h + 8 * offsets.count + 4 * ids.count)
        data.withUnsafeMutableBytes { (b: UnsafeMutableRawBufferPointer) in
            let p = b.baseAddress!
            for (i, m) in TokenDatasetFormat.magic.enumerated() { p.storeBytes(of: m, toByteOffset: i, as: UInt8.self) }
            p.storeBytes(of: TokenDatasetFormat.version.littleEndian, toByteOffset: 8, as: UInt32.self)
            p.storeBytes(of: UInt32(h).littleEndian, toByteOffset: 12, as: UInt32.self)
            p.storeBytes(of: UInt64(count).littleEndian, toByteOffset: 16, as: UInt64.self)
            p.storeBytes(of: UInt64(ids.count).littleEndian, toByteOffset: 24, as: UInt64.self)
            p.storeBytes(of: UInt32(vocabSize).littleEndian, toByteOffset: 32, as: UInt32.self)
            p.storeBytes(of: UInt32(TokenDatasetFormat.bytesPerToken).littleEndian, toByteOffset: 36, as: UInt32.self)
            let o = (p + h).bindMemory(to: UInt64.self, capacity: offsets.count)
            for i in 0..<offsets.count { o[i] = offsets[i].littleEndian }
            let t = (p + h + 8 * offsets.count).bindMemory(to: Int32.self, capacity: ids.count)
            for i in 0..<ids.count { t[i] = ids[i].littleEndian }
        }
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw TokenDatasetError("cannot write token dataset '\(path)': \(error.localizedDescription)")
        }
        offsets = []
        ids = []
    }

    /// Writes `sentences` to `path` in one go.
    static func write(path: String, sentences: [[Int32]], vocabSize: Int = 0) throws {
        let w = try TokenDatasetWriter(path: path, vocabSize: vocabSize)
        for s in sentences { try w.append(s) }
        try w.finish()
    }
}
