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
