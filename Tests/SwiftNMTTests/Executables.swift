import XCTest

/// The package's command-line programs, built next to the test bundle by `swift test`.
enum Executables {
    static func path(_ name: String) throws -> String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path
        let inBundle = Bundle.main.bundleURL.appendingPathComponent(name).path
        if let found = [beside, inBundle].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return found }
        if ProcessInfo.processInfo.environment["CI"] != nil {
            XCTFail("\(name) was not built next to the tests")
            return "/nonexistent/\(name)"
        }
        throw XCTSkip("\(name) binary not found next to the test bundle")
    }

    /// Runs a program to completion; returns its exit status, standard output and standard error.
    /// `redirections` are the shell's, applied to the program alone: "<&-" closes its standard input,
    /// "< DIR" makes it a directory, "> /dev/full" makes every write to standard output fail. `environment`
    /// adds to (or replaces in) the test's own environment.
    @discardableResult
    static func run(_ name: String, _ arguments: [String], input: Data = Data(), redirections: String? = nil,
                    environment: [String: String] = [:]) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        if !environment.isEmpty { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        if let redirections {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", "exec \"$0\" \"$@\" " + redirections, try path(name)] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: try path(name))
            process.arguments = arguments
        }
        let stdin = Pipe(), stdout = Pipe(), stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // Drain stderr concurrently so a chatty program cannot block on a full pipe.
        let errors = CollectedData()
        let errorReader = Thread { errors.data = stderr.fileHandleForReading.readDataToEndOfFile() }
        errorReader.start()
        stdin.fileHandleForWriting.write(input)
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while !errorReader.isFinished { usleep(1000) }
        return (process.terminationStatus, String(decoding: output, as: UTF8.self), String(decoding: errors.data, as: UTF8.self))
    }

    /// Written by the reader thread, read after it has finished.
    final class CollectedData: @unchecked Sendable { var data = Data() }
}
