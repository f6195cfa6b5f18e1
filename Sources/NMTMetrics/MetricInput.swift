import Foundation

/// Errors from reading metric inputs and from scoring mismatched streams.
public enum MetricError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// A hypothesis stream and a reference stream differ in length.
    case lengthMismatch(hypotheses: Int, references: Int, referenceIndex: Int, hypothesisSource: String?, referenceSource: String?)
    /// No reference stream was given.
    case noReferences
    /// No hypothesis was given where at least one is needed.
    case noHypotheses(source: String?)
    /// A file could not be opened or read.
    case unreadableFile(path: String, reason: String)
    /// A line is not valid UTF-8 (`line` is 1-based; `byteOffset` is from the start of the file).
    case invalidUTF8(source: String, line: Int, byteOffset: Int)
    /// With `--num-refs K`, a line of a reference file did not have K tab-separated fields.
    case fieldCount(source: String, line: Int, expected: Int, found: Int)

    public var description: String {
        switch self {
        case let .lengthMismatch(h, r, i, hs, rs):
            let hname = hs.map { "hypotheses (\($0))" } ?? "hypotheses"
            let rname = rs.map { "reference \(i + 1) (\($0))" } ?? "reference stream \(i + 1)"
            return "\(hname) and \(rname) have different numbers of lines: \(h) vs \(r)"
        case .noReferences:
            return "no references given"
        case let .noHypotheses(source):
            return "no hypotheses" + (source.map { " in \($0)" } ?? "")
        case let .unreadableFile(path, reason):
            return "cannot read '\(path)': \(reason)"
        case let .invalidUTF8(source, line, offset):
            return "\(source): line \(line) is not valid UTF-8 (byte offset \(offset))"
        case let .fieldCount(source, line, expected, found):
            return "\(source): line \(line): expected \(expected) tab-separated fields, but found \(found)"
        }
    }

    public var errorDescription: String? { description }
}

/// Reading text streams the way sacreBLEU's command line does: UTF-8, lines split on `\n` only,
/// trailing whitespace (including `\r`) stripped from every line.
public enum MetricInput {
    /// Reads a file's lines. Throws `MetricError.unreadableFile` or `.invalidUTF8`.
    public static func readLines(path: String) throws -> [String] {
        try lines(from: readFile(path: path), source: path)
    }

    /// Reads a whole file; `.gz` files are decompressed (with the system's `gzip`, as sacreBLEU
    /// reads them transparently). Throws `MetricError.unreadableFile` naming the reason.
    static func readFile(path: String) throws -> Data {
        let raw = try readRawFile(path: path)
        guard path.hasSuffix(".gz") else { return raw }
        return try gunzip(raw, path: path)
    }

    private static func gunzip(_ data: Data, path: String) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["gzip", "-dc"]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        do {
            try process.run()
        } catch {
            throw MetricError.unreadableFile(path: path, reason: "cannot run gzip to decompress it: \(error.localizedDescription)")
        }
        // Feed the input from another thread so a full output pipe cannot deadlock us.
        let writer = Thread {
            input.fileHandleForWriting.write(data)
            try? input.fileHandleForWriting.close()
        }
        writer.start()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: err, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw MetricError.unreadableFile(path: path, reason: "gzip failed" + (message.isEmpty ? "" : ": \(message)"))
        }
        return out
    }

    private static func readRawFile(path: String) throws -> Data {
        let fd = open(path, O_RDONLY)
        if fd < 0 {
            throw MetricError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        return try readAll(fd, name: path)
    }

    /// Reads standard input to its end. A closed or unreadable standard input, or a directory, is
    /// `MetricError.unreadableFile` naming "standard input", never an empty input.
    public static func readStandardInput() throws -> Data {
        try readAll(STDIN_FILENO, name: "standard input")
    }

    private static func readAll(_ fd: Int32, name path: String) throws -> Data {
        var st = stat()
        if fstat(fd, &st) != 0 {
            throw MetricError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw MetricError.unreadableFile(path: path, reason: String(cString: strerror(EISDIR)))
        }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw MetricError.unreadableFile(path: path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return data
    }

    /// Splits UTF-8 bytes into lines (on `\n`; a final newline does not start another line),
    /// validating each and stripping trailing Python whitespace. `source` names the stream in errors.
    public static func lines(from data: Data, source: String) throws -> [String] {
        var out: [String] = []
        try data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
            let bytes = raw.bindMemory(to: UInt8.self)
            let n = bytes.count
            var start = 0
            var lineNo = 0
            while start < n {
                var end = start
                while end < n && bytes[end] != 0x0A { end += 1 }
                lineNo += 1
                var stop = end
                // Fast strip of trailing ASCII whitespace; non-ASCII whitespace is handled below.
                while stop > start, bytes[stop - 1] < 0x80, PythonText.isSpace(UInt32(bytes[stop - 1])) { stop -= 1 }
                let slice = UnsafeBufferPointer(rebasing: bytes[start..<stop])
                guard var line = String(validating: slice, as: UTF8.self) else {
                    throw MetricError.invalidUTF8(source: source, line: lineNo, byteOffset: start + firstInvalidOffset(slice))
                }
                if let last = line.unicodeScalars.last, last.value >= 0x80, PythonText.isSpace(last.value) {
                    line = rstripped(line)
                }
                out.append(line)
                start = end + 1
            }
        }
        return out
    }

    /// Reads a reference file holding `count` tab-separated references per line
    /// (sacreBLEU's `--num-refs`), returning `count` streams.
    public static func splitReferences(_ lines: [String], count: Int, source: String) throws -> [[String]] {
        var streams = [[String]](repeating: [], count: count)
        for (i, line) in lines.enumerated() {
            let fields = line.split(separator: "\t", maxSplits: count - 1, omittingEmptySubsequences: false).map(String.init)
            if fields.count != count {
                throw MetricError.fieldCount(source: source, line: i + 1, expected: count, found: fields.count)
            }
            for k in 0..<count { streams[k].append(fields[k]) }
        }
        return streams
    }

    /// Checks that every reference stream has as many lines as the hypotheses.
    public static func checkLengths(hypotheses: Int, references: [Int], hypothesisSource: String? = nil, referenceSources: [String]? = nil) throws {
        if references.isEmpty { throw MetricError.noReferences }
        for (i, r) in references.enumerated() where r != hypotheses {
            throw MetricError.lengthMismatch(
                hypotheses: hypotheses, references: r, referenceIndex: i,
                hypothesisSource: hypothesisSource,
                referenceSource: referenceSources.flatMap { i < $0.count ? $0[i] : nil })
        }
    }

    /// Calls `body` with each segment's hypothesis and its references (one from each stream), after
    /// checking the stream lengths: the loop every corpus- and segment-level score runs.
    static func forEachSegment(hypotheses: [String], references: [[String]],
                               _ body: (_ hypothesis: String, _ references: [String]) -> Void) throws {
        try checkLengths(hypotheses: hypotheses.count, references: references.map(\.count))
        var segmentReferences: [String] = []
        segmentReferences.reserveCapacity(references.count)
        for i in hypotheses.indices {
            segmentReferences.removeAll(keepingCapacity: true)
            for stream in references { segmentReferences.append(stream[i]) }
            body(hypotheses[i], segmentReferences)
        }
    }

    private static func rstripped(_ s: String) -> String {
        var v = Array(s.unicodeScalars)
        while let last = v.last, PythonText.isSpace(last.value) { v.removeLast() }
        return String(String.UnicodeScalarView(v))
    }

    /// The offset of the first byte where UTF-8 decoding fails.
    private static func firstInvalidOffset(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        var decoder = UTF8()
        var it = bytes.makeIterator()
        var offset = 0
        while true {
            switch decoder.decode(&it) {
            case .scalarValue(let u):
                offset += UTF8.width(u)
            case .emptyInput:
                return offset
            case .error:
                return offset
            }
        }
    }
}
