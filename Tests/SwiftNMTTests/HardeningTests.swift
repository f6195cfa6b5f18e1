import XCTest
@testable import NMTCommandLine
@testable import NMTSearch
@testable import NMTTensor
@testable import NMTTraining

/// Options that cannot crash a run, and bad streams and files: each defect of the hardening issue as it
/// was reproduced (the number is the issue's), now a usage error (exit 64) or a plain run-time error (exit 1).
final class HardeningTests: XCTestCase {
    static var model: String { TranslateCommandTests.modelDirectory }

    /// Asserts a usage error: exit status 64, the message naming `option`.
    func assertUsageError(_ program: String, _ arguments: [String], naming option: String, line: UInt = #line) throws {
        let result = try Executables.run(program, arguments)
        XCTAssertEqual(result.status, 64, result.errors, line: line)
        XCTAssertTrue(result.errors.contains(option), result.errors, line: line)
    }

    /// Asserts a run-time error: exit status 1 and `PROGRAM: error: MESSAGE…`.
    func assertFailure(_ result: (status: Int32, output: String, errors: String), _ program: String, _ message: String,
                       line: UInt = #line) {
        XCTAssertEqual(result.status, 1, result.errors, line: line)
        XCTAssertTrue(result.errors.hasPrefix("\(program): error: \(message)"), result.errors, line: line)
    }

    // MARK: mt-train's option table

    /// 9: `--log-every 0` divided by zero at the first update.
    func testLogEveryZeroIsAUsageError() throws {
        var options = TrainingOptions()
        XCTAssertThrowsError(try options.overlay(flags: ["--log-every", "0"])) { error in
            XCTAssertEqual("\(error)", "--log-every: '0' is not an integer from 1 to 1000000000")
        }
        try assertUsageError("mt-train", ["--data", "/nonexistent", "--model-dir", "/nonexistent/m", "--log-every", "0"],
                             naming: "--log-every")
    }

    /// 11: `--decay-factor nan` failed at the first checkpoint, `--learning-rate inf` diverged.
    func testNonFiniteRatesAreRefused() throws {
        for (key, value) in [("decay-factor", "nan"), ("learning-rate", "inf"), ("dropout", "1"), ("label-smoothing", "-0.1")] {
            var options = TrainingOptions()
            XCTAssertThrowsError(try options.overlay(flags: ["--\(key)", value]), key)
            try assertUsageError("mt-train", ["--data", "/nonexistent", "--model-dir", "/nonexistent/m", "--\(key)=\(value)"],
                                 naming: "--\(key)")
        }
    }

    /// A bad value in a YAML file is a run-time error naming the file and the option.
    func testOutOfRangeYAMLValueNamesTheFile() throws {
        let dir = try TestCorpus.makeTempDir("hardening-yaml")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/bad.yaml"
        try "decay-factor: nan\n".write(toFile: config, atomically: true, encoding: .utf8)
        let result = try Executables.run("mt-train", ["--data", dir, "--model-dir", dir + "/m", "--config", config])
        assertFailure(result, "mt-train", "configuration: \(config): decay-factor: 'nan' is not a number above 0.0, up to 1.0")
    }

    /// Every bounded option refuses NaN, infinities, negative numbers and a number beyond every bound,
    /// from a flag and from YAML alike (both go through `read`); every default is allowed, and `--help` says the range.
    func testEveryNumberOptionIsBounded() {
        for option in TrainingOptions.table {
            var options = TrainingOptions()
            if let defaultValue = option.defaultValue { XCTAssertTrue(option.read(&options, defaultValue), option.key) }
            guard let allowed = option.allowed else { continue }
            for value in ["nan", "inf", "-inf", "-1", "100000000000", "1e30"] {
                XCTAssertFalse(option.read(&options, value), "\(option.key): \(value)")
            }
            XCTAssertTrue(option.helpEntry.replacingOccurrences(of: "\n", with: " ").split(separator: " ").joined(separator: " ")
                .contains(allowed), option.helpEntry)
        }
    }

    // MARK: threads

    /// 10: `--threads 100000` started 64 BLAS threads on 2 cores and took minutes per update.
    func testThreadsAreCappedAtTheCores() throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        XCTAssertEqual(try ThreadsOption.parse(["--threads", "100000"]).count, cores)
        XCTAssertEqual(try ThreadsOption.parse(["--threads", "1"]).count, 1)
        // A usage error after the threads, so that nothing runs: the warning comes first.
        let bench = try Executables.run("mt-bench", ["--threads", "100000", "--batches", "0"])
        XCTAssertTrue(bench.errors.hasPrefix("mt-bench: warning: --threads 100000 is more than the \(cores) cores"), bench.errors)
    }

    // MARK: mt-translate, mt-preprocess, mt-bench

    /// 11 and the sibling issue: `--length-penalty nan` made every score NaN, `--max-length-ratio 1e9`
    /// and `--beam-size 10000` exhausted the memory.
    func testTranslateOptionsAreBounded() throws {
        for (option, value) in [("--length-penalty", "nan"), ("--max-length-ratio", "1e9"), ("--max-length-ratio", "nan"),
                                ("--beam-size", "10000"), ("--batch-size", "1000000"), ("--max-source-length", "100000000")] {
            try assertUsageError("mt-translate", ["--model", "/nonexistent", option, value], naming: option)
        }
        try assertUsageError("mt-translate", ["--model", "/nonexistent", "--beam-size", "100", "--batch-size", "1000"],
                             naming: "--batch-size times --beam-size")
    }

    /// 12: `--length-ratio inf` did all the work, then could not write manifest.json.
    func testPreprocessOptionsAreBounded() throws {
        for (option, value) in [("--length-ratio", "inf"), ("--length-ratio", "nan"), ("--length-ratio", "1e9"),
                                ("--vocab-size", "100000000"), ("--max-length", "100000000"), ("--input-sentence-size", "1000000000000")] {
            try assertUsageError("mt-preprocess", ["-s", "en", "-t", "de", "--trainpref", "/nonexistent/train",
                                                   "--destdir", "/nonexistent/out", option, value], naming: option)
        }
    }

    /// 13: `--sgemm-size 100000` aborted on 40 GB, -1 reported negative GFLOP/s, 0 printed `inf%`.
    func testBenchSizesAreBounded() throws {
        for value in ["100000", "-1", "0"] {
            try assertUsageError("mt-bench", ["--sgemm-size", value], naming: "--sgemm-size")
        }
        try assertUsageError("mt-bench", ["--batches", "100000000"], naming: "--batches")
    }

    // MARK: streams and files

    /// 14: `mt-bleu REF <&-` and `< DIR` trapped in a `try!`; `mt-translate` ended quietly with no output.
    func testClosedOrDirectoryStandardInputIsAnError() throws {
        let dir = try TestCorpus.makeTempDir("hardening-stdin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let reference = dir + "/ref.de"
        try TestCorpus.writeLines(["ein Haus ."], to: reference)
        for (redirection, reason) in [("<&-", "Bad file descriptor"), ("< \(dir)", "Is a directory")] {
            let bleu = try Executables.run("mt-bleu", [reference], redirections: redirection)
            assertFailure(bleu, "mt-bleu", "cannot read 'standard input': \(reason)")
            let translate = try Executables.run("mt-translate", ["--model", Self.model], redirections: redirection)
            assertFailure(translate, "mt-translate", "cannot read standard input: \(reason)")
        }
    }

    func testLineStreamRefusesAClosedDescriptorOrADirectory() throws {
        XCTAssertThrowsError(try LineStream(fileDescriptor: 1_000_000)) { error in
            XCTAssertEqual("\(error)", "cannot read standard input: Bad file descriptor")
        }
        let directory = open(NSTemporaryDirectory(), O_RDONLY)
        defer { close(directory) }
        XCTAssertThrowsError(try LineStream(fileDescriptor: directory, name: "the directory")) { error in
            XCTAssertEqual("\(error)", "cannot read the directory: Is a directory")
        }
    }

    /// Found by the safetensors fuzz target (docs/fuzzing.md): the header was cut out of the bytes by
    /// absolute indices, so a Data slice (indices not from 0) read the wrong bytes.
    func testSafeTensorsDecodesASliceOfData() throws {
        let tensors = [SafeTensors.Tensor(name: "w", shape: [2], values: [1, -2])]
        let file = try SafeTensors.encode(tensors, metadata: ["k": "v"])
        let slice = (Data([0xFF, 0xFF, 0xFF]) + file).dropFirst(3)
        let decoded = try SafeTensors.decode(slice, path: "slice")
        XCTAssertEqual(decoded.tensors["w"]?.values, [1, -2])
        XCTAssertEqual(decoded.metadata, ["k": "v"])
    }

    /// Found by the safetensors fuzz target (docs/fuzzing.md): an empty F16 tensor of shape [2^62 - 1436, 0]
    /// was read, but its size counted in F32 overflowed, so the same tensor written back as F32 was refused.
    func testAnEmptyTensorWithAHugeDimensionReadsInEveryDType() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/safetensors/regressions/empty-f16-tensor-with-a-huge-dimension.safetensors").path
        let read = try SafeTensors.read(path: path)
        XCTAssertEqual(read.tensors["a"]?.shape, [4_611_686_018_427_386_468, 0])
        let again = try SafeTensors.decode(try SafeTensors.encode(Array(read.tensors.values), dtype: .f32), path: "as F32")
        XCTAssertEqual(again.tensors["a"]?.shape, [4_611_686_018_427_386_468, 0])
        XCTAssertEqual(again.tensors["a"]?.values, [])
    }

    /// 15: a file whose tensors share bytes was accepted; so must not be a range outside the data.
    func testSafeTensorsRangesMustBeDisjointAndInside() throws {
        func file(_ offsets: [[Int]], dataBytes: Int = 16) -> Data {
            let entries = offsets.enumerated().map { i, range in
                "\"t\(i)\": {\"dtype\": \"F32\", \"shape\": [\((range[1] - range[0]) / 4)], \"data_offsets\": [\(range[0]), \(range[1])]}"
            }
            let header = Data("{\(entries.joined(separator: ", "))}".utf8)
            var data = Data()
            withUnsafeBytes(of: UInt64(header.count).littleEndian) { data.append(contentsOf: $0) }
            return data + header + Data(count: dataBytes)
        }
        XCTAssertNoThrow(try SafeTensors.decode(file([[0, 8], [8, 16]]), path: "good"))
        XCTAssertThrowsError(try SafeTensors.decode(file([[0, 8], [4, 12]]), path: "m.safetensors")) { error in
            XCTAssertTrue("\(error)".hasPrefix("m.safetensors is not a valid safetensors file: the byte ranges of t0"), "\(error)")
        }
        XCTAssertThrowsError(try SafeTensors.decode(file([[0, 16], [0, 16]]), path: "same"))
        XCTAssertThrowsError(try SafeTensors.decode(file([[8, 24]]), path: "beyond"))
        XCTAssertThrowsError(try SafeTensors.decode(file([[-8, 0]]), path: "negative"))
        XCTAssertThrowsError(try SafeTensors.decode(file([[12, 4]]), path: "reversed"))
    }

    /// 16: `--heatmap-line 99` on 2 lines exited 0 and wrote nothing; `--heatmap DIR` failed after translating.
    func testHeatmapFailuresKeepTheTranslations() throws {
        let dir = try TestCorpus.makeTempDir("hardening-heatmap")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let input = Data("a man .\na dog .\n".utf8)
        let pastTheEnd = try Executables.run("mt-translate", ["--model", Self.model, "--heatmap", dir + "/h.svg", "--heatmap-line", "99"],
                                             input: input)
        assertFailure(pastTheEnd, "mt-translate", "--heatmap-line 99: the input has only 2 lines")
        XCTAssertEqual(pastTheEnd.output.split(separator: "\n", omittingEmptySubsequences: false).count, 3, "both translations")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/h.svg"))

        let directory = try Executables.run("mt-translate", ["--model", Self.model, "--heatmap", dir], input: input)
        assertFailure(directory, "mt-translate", "cannot write \(dir): Is a directory")
        let missing = try Executables.run("mt-translate", ["--model", Self.model, "--heatmap", dir + "/none/h.svg"], input: input)
        assertFailure(missing, "mt-translate", "cannot write \(dir)/none/h.svg: No such file or directory")

        let written = try Executables.run("mt-translate", ["--model", Self.model, "--heatmap", dir + "/h.svg", "--heatmap-line", "2"],
                                          input: input)
        XCTAssertEqual(written.status, 0, written.errors)
        XCTAssertTrue(try String(contentsOfFile: dir + "/h.svg", encoding: .utf8).contains("<svg"))
    }

    /// The sibling issue: `mt-translate > /dev/full` exited 0 with every translation lost.
    func testFailedWritesToStandardOutputAreErrors() throws {
        let input = Data(String(repeating: "a man rides a bike .\n", count: 20).utf8)
        let translate = try Executables.run("mt-translate", ["--model", Self.model], input: input, redirections: "> /dev/full")
        assertFailure(translate, "mt-translate", "cannot write standard output: No space left on device")
    }
}
