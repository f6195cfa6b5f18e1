import Foundation

/// Lines from a file descriptor, read on a background thread so that a consumer can take whatever
/// has arrived: everything waiting when input comes in bulk (big batches), a single line as soon
/// as it is complete when a person types (immediate answers).
///
/// Lines are split at "\n" only. Each line is repaired so it can never break the line structure
/// of the output: invalid UTF-8 becomes U+FFFD, and NUL, tab and carriage return become spaces.
///
/// A read error (a closed descriptor, a directory) is an error, never a silent end of input.
public final class LineStream: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [String] = []
    private var finished = false
    /// Why reading stopped before the end of input; `next` throws it once the lines before it are taken.
    private var failure: ReadError?
    private let descriptor: Int32
    private let name: String
    /// Tabs stay tabs (mt-score's lines are source TAB target); otherwise they become spaces.
    private let keepsTabs: Bool

    /// A failed read of the stream: "cannot read standard input: Is a directory".
    public struct ReadError: Error, CustomStringConvertible {
        let name: String, code: Int32
        public var description: String { "cannot read \(name): \(String(cString: strerror(code)))" }
    }

    /// Throws at once when the descriptor is closed or a directory, so a program fails before its work.
    public init(fileDescriptor: Int32 = 0, name: String = "standard input", keepingTabs: Bool = false) throws {
        descriptor = fileDescriptor
        self.name = name
        keepsTabs = keepingTabs
        var status = stat()
        if fstat(descriptor, &status) != 0 { throw ReadError(name: name, code: errno) }
        if status.st_mode & S_IFMT == S_IFDIR { throw ReadError(name: name, code: EISDIR) }
        let thread = Thread { [weak self] in self?.readAll() }
        thread.stackSize = 1 << 20
        thread.start()
    }

    /// The lines of a text given whole (a server's request), each repaired as mt-translate repairs a line
    /// of its input, so that they translate as the same lines given to mt-translate do.
    public static func lines(of text: String) -> [String] {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { clean(ArraySlice($0.utf8)) }
    }

    /// Repairs one raw line (without its "\n").
    static func clean(_ bytes: ArraySlice<UInt8>, keepingTabs: Bool = false) -> String {
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.utf8.contains(where: { $0 == 0 || ($0 == 9 && !keepingTabs) || $0 == 13 }) else { return text }
        return String(String.UnicodeScalarView(text.unicodeScalars.map {
            ($0 == "\0" || ($0 == "\t" && !keepingTabs) || $0 == "\r") ? " " : $0
        }))
    }

    private func readAll() {
        var splitter = LineSplitter()
        splitter.keepsTabs = keepsTabs
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { failure = ReadError(name: name, code: errno) }
            if n <= 0 { break }
            let lines = splitter.lines(in: buffer[0..<n])
            if !lines.isEmpty {
                condition.lock()
                pending.append(contentsOf: lines)
                condition.signal()
                condition.unlock()
            }
        }
        condition.lock()
        if let last = splitter.finish() { pending.append(last) }
        finished = true
        condition.signal()
        condition.unlock()
    }

    /// Waits for at least one line and returns up to `maximum` of those waiting; nil at end of input.
    /// Throws the read error that ended the input once every line read before it has been returned.
    public func next(maximum: Int) throws -> [String]? {
        condition.lock()
        defer { condition.unlock() }
        while pending.isEmpty && !finished { condition.wait() }
        if pending.isEmpty, let failure { throw failure }
        if pending.isEmpty { return nil }
        let taken = Array(pending.prefix(maximum))
        pending.removeFirst(taken.count)
        return taken
    }
}

/// Cuts bytes that arrive in chunks of any size (as `read` returns them) into repaired lines
/// (`LineStream.clean`). A line may span chunks: the bytes after a chunk's last "\n" wait for the next.
/// Separate from the reading thread so that the fuzz target (Fuzz/line-stream) can feed it chunks.
struct LineSplitter {
    /// The start of a line whose "\n" has not arrived yet.
    private var carry: [UInt8] = []
    var keepsTabs = false

    /// The lines completed by `chunk`, the first one prefixed with the bytes carried from before.
    mutating func lines(in chunk: ArraySlice<UInt8>) -> [String] {
        var lines: [String] = []
        var start = chunk.startIndex
        for i in chunk.indices where chunk[i] == 10 {
            if carry.isEmpty {
                lines.append(LineStream.clean(chunk[start..<i], keepingTabs: keepsTabs))
            } else {
                carry.append(contentsOf: chunk[start..<i])
                lines.append(LineStream.clean(carry[...], keepingTabs: keepsTabs))
                carry.removeAll(keepingCapacity: true)
            }
            start = i + 1
        }
        carry.append(contentsOf: chunk[start...])
        return lines
    }

    /// The last line when the input ended without "\n"; nil when nothing is left.
    mutating func finish() -> String? {
        defer { carry.removeAll() }
        return carry.isEmpty ? nil : LineStream.clean(carry[...], keepingTabs: keepsTabs)
    }
}
