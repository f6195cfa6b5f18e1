import ArgumentParser
import Foundation

/// `--threads N`, with one meaning in every program: how many cores the program may use. A program
/// spends them as its work allows (BLAS threads for training and benchmarks, batches decoded at once
/// for translation, SentencePiece and encoding threads for preprocessing).
///
/// More threads than cores only slow a program down (64 BLAS threads on 2 cores take minutes per
/// training update and so minutes to answer SIGTERM), so a larger count is capped at the cores: a flag
/// with a warning, OPENBLAS_NUM_THREADS (often set once for a whole cluster) quietly.
public struct ThreadsOption: ParsableArguments {
    @Option(help: "Cores to use, at most the machine's (default: OPENBLAS_NUM_THREADS when set, else all cores, shared among the processes mpirun starts on this machine).")
    var threads: Int?

    public init() {}

    public func validate() throws {
        guard let threads else { return }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        if threads > Self.cores {
            Failure.printWarning(ProcessInfo.processInfo.processName, "--threads \(threads) is more than the \(Self.cores) cores; using \(Self.cores)")
        }
    }

    /// The flag, else OPENBLAS_NUM_THREADS, else all cores (divided among the processes of an Open MPI job
    /// on this machine); at most all cores.
    public var count: Int {
        let local = ProcessInfo.processInfo.environment["OMPI_COMM_WORLD_LOCAL_SIZE"].flatMap { Int($0) } ?? 1
        return min(requested ?? max(1, Self.cores / max(1, local)), Self.cores)
    }

    static var cores: Int { ProcessInfo.processInfo.activeProcessorCount }

    private var requested: Int? {
        if let threads { return threads }
        if let text = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"], let n = Int(text), n >= 1 { return n }
        return nil
    }
}

/// How the programs fail. Usage errors (a bad flag or value) keep ArgumentParser's usage text and exit
/// status 64; anything that goes wrong at run time (a file that cannot be read or written, a model that
/// does not load) prints one line `PROGRAM: error: what failed, on which file, why` and exits with 1.
public enum Failure {
    /// Runs `body`, turning any error but ArgumentParser's own into `PROGRAM: error: …` and exit status 1.
    /// What `body` printed is flushed before it returns, so output that cannot be written (a full disk)
    /// is a failure too.
    public static func reported<T>(by program: String, _ body: () throws -> T) throws -> T {
        do {
            let result = try body()
            try StandardOutput.flush()
            return result
        } catch let error as ValidationError {
            throw error
        } catch let error as ExitCode {
            throw error
        } catch let error as CleanExit {
            throw error
        } catch {
            printError(program, plainDescription(of: error))
            throw ExitCode(1)
        }
    }

    /// Runs `body`; an error it throws is reported as `what: ERROR` (e.g. "cannot load the model: …").
    public static func during<T>(_ what: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch { throw During(what: what, error: error) }
    }

    struct During: Error, CustomStringConvertible {
        let what: String, error: Error
        var description: String { "\(what): \(plainDescription(of: error))" }
    }

    /// Writes `PROGRAM: error: message` to standard error.
    public static func printError(_ program: String, _ message: String) {
        StandardError.write("\(program): error: \(message)\n")
    }

    /// Writes `PROGRAM: warning: message` to standard error.
    public static func printWarning(_ program: String, _ message: String) {
        StandardError.write("\(program): warning: \(message)\n")
    }

    /// An error in plain words. Our own errors describe themselves; Foundation's file errors become
    /// "cannot read PATH: REASON" instead of `Error Domain=NSCocoaErrorDomain Code=… UserInfo={…}`.
    public static func plainDescription(of error: Error) -> String {
        let text = String(describing: error)
        guard text.hasPrefix("Error Domain=") else { return text }
        let ns = error as NSError
        let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
        var reason = ns.localizedFailureReason ?? ns.localizedDescription
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? POSIXError {
            reason = String(cString: strerror(underlying.code.rawValue))
        } else if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(underlying.code)))
        } else if ns.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(ns.code)))
        }
        // Cocoa numbers its file-reading errors from 256 and its file-writing errors from 512.
        let failed: String
        switch (ns.domain, ns.code) {
        case (NSCocoaErrorDomain, 256..<512): failed = "cannot read "
        case (NSCocoaErrorDomain, 512..<768): failed = "cannot write "
        default: failed = ""
        }
        return path.map { "\(failed)\($0): \(reason)" } ?? reason
    }
}

/// The checks that keep a program from losing its output silently.
public enum StandardOutput {
    /// Writes out what `print` buffered; a failed write (ENOSPC on a full disk, EIO) is an error, so the
    /// program stops instead of computing more output that is lost. A closed pipe (`| head -1`) ends
    /// the program quietly by SIGPIPE before this returns, as it ends `cat`.
    public static func flush() throws {
        let flushed = fflush(stdout) == 0, code = errno
        // An earlier write may have failed while `print` emptied a full buffer: ferror remembers it.
        if !flushed || ferror(stdout) != 0 { throw OutputError("standard output", flushed ? EIO : code) }
    }

    /// Fails unless a file can be written at `path` (its directory exists and is writable, and it is
    /// not itself a directory), so that a program checks an output path before its work, not after.
    public static func checkWritable(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { throw OutputError(path, EISDIR) }
            if access(path, W_OK) != 0 { throw OutputError(path, errno) }
            return
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        if access(directory, W_OK) != 0 { throw OutputError(path, errno) }
    }

    struct OutputError: Error, CustomStringConvertible {
        let description: String
        init(_ path: String, _ code: Int32) { description = "cannot write \(path): \(String(cString: strerror(code)))" }
    }
}
