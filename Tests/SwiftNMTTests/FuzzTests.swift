import XCTest
@testable import NMTSearch
@testable import NMTTensor
@testable import NMTText

/// The fuzz targets of Fuzz/ (docs/fuzzing.md): their seeds and the inputs that once broke a parser
/// replayed through the parsers of this build, and a short fuzzing run of each target.
final class FuzzTests: XCTestCase {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let targets = ["safetensors", "token-dataset", "manifest", "line-stream"]

    /// The files of Fuzz/TARGET/seeds and Fuzz/TARGET/regressions, by path.
    static func inputs(_ target: String) throws -> [String] {
        try ["seeds", "regressions"].flatMap { folder -> [String] in
            let directory = root.appendingPathComponent("Fuzz/\(target)/\(folder)").path
            guard FileManager.default.fileExists(atPath: directory) else { return [] }
            return try FileManager.default.contentsOfDirectory(atPath: directory).sorted().map { "\(directory)/\($0)" }
        }
    }

    /// Whether the parser of `target` accepts the file at `path`; an input it cannot answer with an
    /// error or a result crashes the test run, as it crashed the fuzzer.
    static func accepts(_ target: String, _ path: String) throws -> Bool {
        switch target {
        case "safetensors":
            return (try? SafeTensors.read(path: path)) != nil
        case "token-dataset":
            return (try? TokenDataset(path: path)) != nil
        case "manifest":
            let directory = try TestCorpus.makeTempDir("fuzz-manifest")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            try FileManager.default.copyItem(atPath: path, toPath: directory + "/manifest.json")
            return (try? PreprocessManifest.load(directory: directory)) != nil
        case "line-stream":
            // The whole file through the reading thread (the fuzz target's first byte, its chunk size, included).
            let descriptor = open(path, O_RDONLY)
            defer { close(descriptor) }
            let stream = try LineStream(fileDescriptor: descriptor, name: path)
            while let lines = try stream.next(maximum: 100) {
                for line in lines where line.utf8.contains(where: { [0, 9, 10, 13].contains($0) }) {
                    XCTFail("\(path): a line keeps a control character: \(line.debugDescription)")
                }
            }
            return true
        default:
            fatalError("no fuzz target \(target)")
        }
    }

    func temporaryDirectory() throws -> String {
        let path = try TestCorpus.makeTempDir("fuzz-seed")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// Seeds named valid-* are accepted, broken-* refused; regressions must only not crash.
    func testSeedsAndRegressionsReplayThroughTheParsers() throws {
        for target in Self.targets {
            let inputs = try Self.inputs(target)
            XCTAssertFalse(inputs.isEmpty, "no seeds for \(target)")
            for path in inputs {
                let accepted = try Self.accepts(target, path)
                let name = URL(fileURLWithPath: path).lastPathComponent
                if name.hasPrefix("valid") { XCTAssertTrue(accepted, "\(target) refuses \(path)") }
                if name.hasPrefix("broken") { XCTAssertFalse(accepted, "\(target) accepts \(path)") }
            }
        }
    }

    /// The valid seeds are exactly what the writers write: the fuzzers start from real files.
    /// SWIFTNMT_WRITE_SEEDS=1 rewrites them (after a format change).
    func testValidSeedsAreWhatTheWritersWrite() throws {
        let rewrite = ProcessInfo.processInfo.environment["SWIFTNMT_WRITE_SEEDS"] == "1"
        func compare(_ path: String, _ written: Data) throws {
            let url = Self.root.appendingPathComponent("Fuzz/" + path)
            if rewrite { try written.write(to: url) }
            XCTAssertEqual(try Data(contentsOf: url), written, "\(path) is not what the writer writes (SWIFTNMT_WRITE_SEEDS=1 rewrites it)")
        }
        for (name, dtype) in [("valid-f32", SafeTensors.DType.f32), ("valid-f16", .f16), ("valid-empty", .f32),
                              ("valid-scalar-and-empty-tensor", .f32)] {
            let path = "safetensors/seeds/\(name).safetensors"
            let read = try SafeTensors.read(path: Self.root.appendingPathComponent("Fuzz/" + path).path)
            try compare(path, try SafeTensors.encode(read.tensors.values.sorted { $0.name < $1.name }, dtype: dtype, metadata: read.metadata))
        }
        for name in ["valid", "valid-unknown-vocabulary", "valid-empty"] {
            let path = "token-dataset/seeds/\(name).bin"
            let read = try TokenDataset(path: Self.root.appendingPathComponent("Fuzz/" + path).path)
            let copy = try temporaryDirectory() + "/copy.bin"
            try TokenDatasetWriter.write(path: copy, sentences: (0..<read.count).map { Array(read.tokens($0)) }, vocabSize: read.vocabSize)
            try compare(path, try Data(contentsOf: URL(fileURLWithPath: copy)))
        }
        for name in ["valid", "valid-joint-train-only"] {
            let path = "manifest/seeds/\(name).json"
            let directory = try temporaryDirectory()
            try FileManager.default.copyItem(atPath: Self.root.appendingPathComponent("Fuzz/" + path).path, toPath: directory + "/manifest.json")
            try compare(path, try PreprocessManifest.load(directory: directory).encoded())
        }
    }

    /// Found while writing the token-dataset fuzz target, which traps on it (docs/fuzzing.md): sentence and
    /// token counts just under the old bounds made the computed file size overflow, a trap wherever
    /// overflow is checked (debug builds); the release build wrapped around and refused the file for
    /// the wrong reason.
    func testTokenDatasetRefusesCountsThatOverflowTheSize() throws {
        let path = Self.root.appendingPathComponent("Fuzz/token-dataset/regressions/counts-overflow-the-expected-size.bin").path
        XCTAssertThrowsError(try TokenDataset(path: path)) { error in
            XCTAssertTrue("\(error)".contains("corrupt header"), "\(error)")
        }
    }

    /// Chunk boundaries (where `read` happens to stop) never change the lines.
    func testLineSplitterGivesTheSameLinesWhateverTheChunks() {
        let text = Array("a\r\tb\n\u{0}\nü€😀\n\nlast".utf8) + [0xFF, 0xC3]
        var whole = LineSplitter()
        let expected = whole.lines(in: text[...]) + [whole.finish()].compactMap { $0 }
        XCTAssertEqual(expected, ["a  b", " ", "ü€😀", "", "last\u{FFFD}\u{FFFD}"])
        for size in 1...text.count {
            var splitter = LineSplitter()
            var lines: [String] = []
            for start in stride(from: 0, to: text.count, by: size) {
                lines += splitter.lines(in: text[start..<min(start + size, text.count)])
            }
            lines += [splitter.finish()].compactMap { $0 }
            XCTAssertEqual(lines, expected, "chunks of \(size) bytes")
        }
    }

    /// Each fuzz target, built with libFuzzer and AddressSanitizer, survives a few seconds of fuzzing
    /// (scripts/fuzz.sh). Skipped where the toolchain has no libFuzzer or SWIFTNMT_SKIP_FUZZ=1.
    func testEachFuzzTargetRunsBrieflyWithoutACrash() throws {
        if ProcessInfo.processInfo.environment["SWIFTNMT_SKIP_FUZZ"] == "1" { throw XCTSkip("SWIFTNMT_SKIP_FUZZ=1") }
        for target in Self.targets {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [Self.root.appendingPathComponent("scripts/fuzz.sh").path, target, "3"]
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let report = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            // fuzz.sh exits 3 when the toolchain cannot fuzz (no libclang_rt.fuzzer).
            if process.terminationStatus == 3 { throw XCTSkip("no libFuzzer: \(report)") }
            XCTAssertEqual(process.terminationStatus, 0, "fuzz target \(target):\n\(report)")
        }
    }
}
