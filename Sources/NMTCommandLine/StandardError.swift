import Foundation

/// Progress and messages on standard error that never stop a program: when stderr is closed (a
/// closed terminal, `2>&1 | head -2`), the text is dropped. FileHandle's `write` would trap there,
/// and with SIGPIPE at its default the process would die.
public enum StandardError {
    /// From now on a write to a closed pipe fails with EPIPE instead of killing the process.
    public static func surviveClosedPipes() { signal(SIGPIPE, SIG_IGN) }

    public static func write(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { Foundation.write(2, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            if written <= 0 { return }
            bytes = bytes.dropFirst(written)
        }
    }
}

/// Progress of long work on stderr, as a user watching or a log file wants it: on a terminal, one
/// line rewritten in place; otherwise (a log, a pipe) a plain line at most every `plainInterval` seconds.
/// Notes (finished steps) always get a line of their own.
public final class ProgressLine {
    let terminal = isatty(2) != 0
    let plainInterval: Double
    private var lastPlain: Date?
    private var showing = false

    public init(plainInterval: Double = 10) {
        self.plainInterval = plainInterval
    }

    /// Replaces the progress line (on a terminal) or prints it when the last one is old enough.
    public func update(_ text: String) {
        if terminal {
            StandardError.write("\r\u{1B}[K" + text)
            showing = true
        } else if lastPlain.map({ Date().timeIntervalSince($0) >= plainInterval }) ?? true {
            StandardError.write(text + "\n")
            lastPlain = Date()
        }
    }

    /// A line of its own, after clearing the progress line.
    public func note(_ text: String) {
        StandardError.write((showing ? "\r\u{1B}[K" : "") + text + "\n")
        showing = false
    }
}
