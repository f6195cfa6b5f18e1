import XCTest
@testable import NMTModel
@testable import NMTModelFiles
@testable import NMTSearch
@testable import NMTTensor
@testable import NMTText
@testable import NMTTraining

/// Data, model and checkpoint files that cannot crash or exhaust a program, and input that cannot make
/// translation cost without bound: each defect of the hardening issue as it was reproduced (the number is
/// the issue's), now a plain error naming the file (exit status 1), or a bounded cost.
final class DataHardeningTests: XCTestCase {
    /// A preprocessed data directory (mt-preprocess on generated pairs), made once; tests change copies of it.
    static let preprocessed = Result<String, Error> {
        try TestCorpus.preprocessed(in: try TestCorpus.makeTempDir("data-hardening"), seed: 21, train: 200, valid: 8, vocabSize: 100)
    }

    override class func tearDown() {
        if let data = try? preprocessed.get() { try? FileManager.default.removeItem(atPath: (data as NSString).deletingLastPathComponent) }
        super.tearDown()
    }

    /// A copy of `source` (a directory), removed after the test.
    func copy(_ source: String) throws -> String {
        let parent = try TestCorpus.makeTempDir("data-hardening-copy")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: parent) }
        try FileManager.default.copyItem(atPath: source, toPath: parent + "/copy")
        return parent + "/copy"
    }

    func dataCopy() throws -> String { try copy(try Self.preprocessed.get()) }

    /// mt-train on `data` with a tiny model; the defects below fail before the first update.
    func train(_ data: String) throws -> (status: Int32, output: String, errors: String) {
        try Executables.run("mt-train", ["--data", data, "--model-dir", data + "/../model", "--embed-size", "8", "--encoder-hidden-size", "8",
                                         "--decoder-hidden-size", "8", "--attention-size", "8", "--max-updates", "2", "--valid-every", "2",
                                         "--threads", "1"])
    }

    func assertFailure(_ result: (status: Int32, output: String, errors: String), _ program: String, saying parts: [String],
                       line: UInt = #line) {
        XCTAssertEqual(result.status, 1, result.errors, line: line)
        XCTAssertTrue(result.errors.hasPrefix("\(program): error: "), result.errors, line: line)
        for part in parts { XCTAssertTrue(result.errors.contains(part), "\(part) in \(result.errors)", line: line) }
    }

    /// Rewrites a JSON object file with `change` applied.
    func editJSON(_ path: String, _ change: (inout [String: Any]) -> Void) throws {
        var object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
        change(&object)
        try JSONSerialization.data(withJSONObject: object).write(to: URL(fileURLWithPath: path))
    }

    /// Cuts a file to half its length.
    func truncate(_ path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
    }

    // MARK: Token datasets (1, 2)

    /// 1: a dataset whose header gives vocabulary size 0 skipped the id check, and its ids reached the embedding (SIGSEGV).
    func testIdsOutsideTheVocabularyAreRefusedWhateverTheHeaderSays() throws {
        for (file, badId) in [("train.de.bin", Int32.max), ("valid.en.bin", -7)] {
            let data = try dataCopy()
            let dataset = try TokenDataset(path: data + "/" + file)
            var sentences = (0..<dataset.count).map { Array(dataset.tokens($0)) }
            sentences[1][0] = badId
            try TokenDatasetWriter.write(path: data + "/" + file, sentences: sentences, vocabSize: 0)
            let offset = sentences[0].count
            assertFailure(try train(data), "mt-train",
                          saying: ["\(data)/\(file)': token \(offset) has id \(badId) outside the model's vocabulary of size 100"])
        }
    }

    /// 1: the manifest's vocabulary size, which bounds the ids and sizes the model, is the SentencePiece model's.
    func testManifestVocabularySizeIsTheSentencePieceModels() throws {
        for size in [120, 1_000_000_000_000] {
            let data = try dataCopy()
            try editJSON(data + "/manifest.json") { manifest in
                var vocabulary = manifest["sentencepiece"] as! [String: Any]
                vocabulary["vocabSizes"] = ["en": size, "de": size]
                manifest["sentencepiece"] = vocabulary
            }
            assertFailure(try train(data), "mt-train",
                          saying: ["\(data)/manifest.json gives the en vocabulary \(size) pieces, but its model \(data)/spm.model has 100"])
        }
    }

    /// 2: training datasets of different lengths stopped at a precondition (SIGABRT); validation ones were taken silently.
    func testSidesOfDifferentLengthsAreRefused() throws {
        for split in ["train", "valid"] {
            let data = try dataCopy()
            let target = try TokenDataset(path: "\(data)/\(split).de.bin")
            let sentences = (0..<target.count - 1).map { Array(target.tokens($0)) }
            try TokenDatasetWriter.write(path: "\(data)/\(split).de.bin", sentences: sentences, vocabSize: 100)
            assertFailure(try train(data), "mt-train",
                          saying: ["the \(split) datasets are not line-aligned: \(data)/\(split).en.bin has \(target.count) sentences, "
                                   + "\(data)/\(split).de.bin has \(target.count - 1)"])
        }
        let data = try dataCopy()
        let references = try String(contentsOfFile: data + "/valid.de.txt", encoding: .utf8).split(separator: "\n")
        try TestCorpus.writeLines(references.dropLast().map(String.init), to: data + "/valid.de.txt")
        assertFailure(try train(data), "mt-train",
                      saying: ["the validation references are not line-aligned with the datasets: \(data)/valid.de.txt has "
                               + "\(references.count - 1) lines, \(data)/valid.en.bin has \(references.count) sentences"])
    }

    // MARK: model.json (3)

    /// 3: model.json claiming a vocabulary of 10^12 aborted on a petabyte allocation, and one claiming a million
    /// layers grew for minutes; a claim within the bounds but beyond the weights allocated it before looking at them.
    func testModelConfigurationIsCheckedBeforeAnythingIsAllocated() throws {
        for (key, value, message) in [("source-vocab-size", 1_000_000_000_000, "vocabulary sizes must be from 5 to 100000"),
                                      ("decoder-layers", 1_000_000, "decoderLayers must be from 2 (the conditional GRU) to 8")] {
            let model = try copy(TranslateCommandTests.modelDirectory)
            try editJSON(model + "/model.json") { $0[key] = value }
            let result = try Executables.run("mt-translate", ["--model", model], input: Data("a man\n".utf8))
            assertFailure(result, "mt-translate", saying: ["\(model)/model.json: invalid model configuration: \(message)"])
        }
        // The largest configuration the bounds allow takes gigabytes: under a 3 GB address-space limit, only a
        // check that comes before the allocation can answer.
        let model = try copy(TranslateCommandTests.modelDirectory)
        try editJSON(model + "/model.json") { config in
            for key in ["source-vocab-size", "target-vocab-size"] { config[key] = ModelConfig.maxVocabSize }
            for key in ["embed-size", "encoder-hidden-size", "decoder-hidden-size", "attention-size"] { config[key] = ModelConfig.maxLayerSize }
            for key in ["encoder-layers", "decoder-layers"] { config[key] = ModelConfig.maxLayers }
            config["shared-embeddings"] = false
            config["tied-output"] = false
        }
        let result = try runWithAddressSpaceLimit(kilobytes: 3_000_000, "mt-translate", ["--model", model, "--threads", "1"])
        assertFailure(result, "mt-translate",
                      saying: ["encoder.embedding.weight has shape [", "in \(model)/model.safetensors but the configuration needs [100000, 2048]"])
    }

    /// Runs a program with its address space limited (`ulimit -v`) and an empty standard input.
    func runWithAddressSpaceLimit(kilobytes: Int, _ name: String, _ arguments: [String]) throws -> (status: Int32, output: String, errors: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "ulimit -v \(kilobytes) && exec \"$0\" \"$@\" < /dev/null", try Executables.path(name)] + arguments
        let stderr = Pipe()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = stderr
        try process.run()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, "", String(decoding: errors, as: UTF8.self))
    }

    /// 3: the bounds of model.json are mt-train's option bounds.
    func testModelConfigurationBounds() throws {
        var config = ModelConfig.reference()
        XCTAssertNoThrow(try config.validate())
        XCTAssertEqual(TrainingOptions.maxLayers, ModelConfig.maxLayers)
        XCTAssertEqual(TrainingOptions.maxLayerSize, ModelConfig.maxLayerSize)
        let changes: [(inout ModelConfig) -> Void] = [{ $0.encoderLayers = 9 }, { $0.decoderLayers = 9 }, { $0.attentionSize = 2049 },
                                                      { $0.embedSize = 1 << 40 }, { $0.targetVocabSize = 100_001 }]
        for change in changes {
            config = ModelConfig.reference()
            change(&config)
            XCTAssertThrowsError(try config.validate(), "\(config)")
        }
    }

    // MARK: Translation cost per line (5)

    /// 5: lines of noise were each decoded to 2 × their (cut) length + 10 pieces, 410 steps for 200 pieces.
    func testOutputLengthIsCapped() throws {
        let config = ModelConfig(sourceVocabSize: 20, targetVocabSize: 20, embedSize: 4, encoderHiddenSize: 4, decoderHiddenSize: 4,
                                 attentionSize: 4)
        let model = try Seq2Seq(config: config, seed: 3)
        // A model that never ends a sentence, as on noise: every hypothesis runs to the limit.
        model.parameters[try XCTUnwrap(model.layout.view(named: "decoder.output.bias"))][Int(SpecialTokens.eos)] = -1e4
        let source = (0..<200).map { Int32(4 + $0 % 16) }
        let found = BeamSearch(model: model).searchInBatches([source], options: BeamSearchOptions(beamSize: 2))
        XCTAssertEqual(found[0][0].tokens.count, BeamSearchOptions.defaultMaxOutputLength)
        let shorter = BeamSearch(model: model).searchInBatches([source], options: BeamSearchOptions(beamSize: 2, maxOutputLength: 30))
        XCTAssertEqual(shorter[0][0].tokens.count, 30)
        for value in ["0", "2001"] {
            let result = try Executables.run("mt-translate", ["--model", TranslateCommandTests.modelDirectory, "--max-output-length", value])
            XCTAssertEqual(result.status, 64, result.errors)
            XCTAssertTrue(result.errors.contains("--max-output-length must be from 1 to 2000"), result.errors)
        }
    }

    /// 5: a batch of 64 lines of 200 pieces held 64 × 5 hypotheses × 200 positions of annotations and keys (twice).
    func testBatchesOfLongLinesHoldFewerSentences() throws {
        let config = ModelConfig(sourceVocabSize: 20, targetVocabSize: 20, embedSize: 4, encoderHiddenSize: 4, decoderHiddenSize: 4,
                                 attentionSize: 4)
        let model = try Seq2Seq(config: config, seed: 3)
        let options = BeamSearchOptions(beamSize: 5, maxOutputLength: 3)
        for (length, positions) in [(200, 16 * 5 * 200), (50, 64 * 5 * 50)] {
            let recorder = PositionRecorder(IncrementalDecoder(model: model))
            let sources = (0..<100).map { i in (0..<length).map { Int32(4 + (i + $0) % 16) } }
            _ = BeamSearch(decoder: recorder).searchInBatches(sources, options: options)
            XCTAssertEqual(recorder.mostPositions, positions, "sources of \(length) pieces")
        }
    }

    /// Decodes with a real decoder and records the most source positions (hypothesis rows × source steps) a batch held.
    final class PositionRecorder: IncrementalDecoding {
        let decoder: any IncrementalDecoding
        var mostPositions = 0
        init(_ decoder: any IncrementalDecoding) { self.decoder = decoder }

        func append(sources: [[Int32]], beams: [Int]) {
            decoder.append(sources: sources, beams: beams)
            mostPositions = max(mostPositions, rows * sourceSteps)
        }
        var targetVocabSize: Int { decoder.targetVocabSize }
        var columns: Int { decoder.columns }
        var columnIds: UnsafePointer<Int32>? { decoder.columnIds }
        var rows: Int { decoder.rows }
        var sourceSteps: Int { decoder.sourceSteps }
        var logits: UnsafePointer<Float> { decoder.logits }
        var logSumExp: UnsafePointer<Float> { decoder.logSumExp }
        var attention: UnsafePointer<Float> { decoder.attention }
        func step(previous: UnsafePointer<Int32>) { decoder.step(previous: previous) }
        func reorder(parents: UnsafePointer<Int32>) { decoder.reorder(parents: parents) }
        func compact(kept: UnsafePointer<Int32>, count: Int) { decoder.compact(kept: kept, count: count) }
        /// Searches with one worker only, which needs no replica.
        func replica() -> any IncrementalDecoding { fatalError("one worker") }
    }

    // MARK: Garbled JSON files (7)

    /// 7: truncated or garbled manifest.json, model.json, vocabulary.json were reported as raw DecodingErrors.
    func testGarbledJSONFilesAreReportedInPlainWords() throws {
        let data = try dataCopy()
        try truncate(data + "/manifest.json")
        assertFailure(try train(data), "mt-train", saying: ["cannot read \(data)/manifest.json: not valid JSON (truncated?)"])
        try FileManager.default.removeItem(atPath: data + "/manifest.json")
        try FileManager.default.copyItem(atPath: try Self.preprocessed.get() + "/manifest.json", toPath: data + "/manifest.json")
        try editJSON(data + "/manifest.json") { $0["formatVersion"] = "one" }
        assertFailure(try train(data), "mt-train", saying: ["cannot read \(data)/manifest.json: the value of \"formatVersion\" is not an Int"])

        for (file, message) in [("model.json", "not valid JSON (truncated?)"), ("vocabulary.json", "not valid JSON (truncated?)")] {
            let model = try copy(TranslateCommandTests.modelDirectory)
            try truncate(model + "/" + file)
            let result = try Executables.run("mt-translate", ["--model", model], input: Data("a man\n".utf8))
            assertFailure(result, "mt-translate", saying: ["cannot read \(model)/\(file): \(message)"])
        }
        let model = try copy(TranslateCommandTests.modelDirectory)
        try editJSON(model + "/model.json") { $0["embed-size"] = nil }
        XCTAssertThrowsError(try ModelDirectory(model).loadConfig()) { error in
            XCTAssertEqual("\(error)", "cannot read \(model)/model.json: \"embed-size\" is missing")
        }
    }

    // MARK: --resume (7, 9)

    /// A model directory with a checkpoint, trained in-process for a few updates.
    func checkpointedRun() throws -> (directory: String, options: TrainingOptions) {
        let directory = try TestCorpus.makeTempDir("data-hardening-run")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        var options = TrainerTests.tinyOptions()
        options.maxUpdates = 4
        options.validEvery = 2
        try TrainerTests.makeTrainer(options, directory: directory).run()
        return (directory, options)
    }

    func resume(_ run: (directory: String, options: TrainingOptions)) throws {
        try TrainerTests.makeTrainer(run.options, directory: run.directory).resume(from: run.directory)
    }

    /// 7: a truncated state.json gave `DecodingError.dataCorrupted … not valid JSON`.
    func testTruncatedStateIsReportedInPlainWords() throws {
        let run = try checkpointedRun()
        let state = try ModelDirectory(run.directory).lastCheckpoint().map { run.directory + "/" + $0 + "/state.json" }
        try truncate(try XCTUnwrap(state))
        XCTAssertThrowsError(try resume(run)) { error in
            XCTAssertEqual("\(error)", "cannot read \(state!): not valid JSON (truncated?)")
        }
    }

    /// 9: --resume went on from a state.json with `update: -5` or `epoch: 10^15`.
    func testImplausibleStatesAreRefused() throws {
        let run = try checkpointedRun()
        let state = run.directory + "/" + (try XCTUnwrap(try ModelDirectory(run.directory).lastCheckpoint())) + "/state.json"
        let saved = try Data(contentsOf: URL(fileURLWithPath: state))
        XCTAssertNoThrow(try resume(run))
        for (key, value, reason) in [("update", -5, "update -5 is not from 0 to 1000000000"),
                                     ("epoch", 1_000_000_000_000_000, "epoch 1000000000000000 is not from 0 to the update, 4"),
                                     ("skippedUpdates", 5, "skippedUpdates 5 is not from 0 to the update, 4"),
                                     ("trainingSeconds", -1, "trainingSeconds -1.0 is not a duration")] {
            try saved.write(to: URL(fileURLWithPath: state))
            try editJSON(state) { $0[key] = value }
            XCTAssertThrowsError(try resume(run), key) { error in
                XCTAssertEqual("\(error)", "checkpoint: \(state) is not a state a run can go on from: \(reason)")
            }
        }
    }

    // MARK: manifest.json's file names (9)

    /// 9: a manifest could name any file as a dataset (`/etc/passwd` was opened) or as the SentencePiece model
    /// (copied into the model directory).
    func testManifestNamesOnlyFilesInsideItsDirectory() throws {
        let options = TrainerTests.tinyOptions()
        func start(_ data: String) throws -> Trainer {
            try TrainingRun.make(dataDirectory: data, modelDirectory: data + "/../model", options: options, start: .fresh)
        }
        XCTAssertNoThrow(try start(try dataCopy()))
        for name in ["/etc/passwd", "../train.en.bin", "sub/../../train.en.bin"] {
            let data = try dataCopy()
            try editJSON(data + "/manifest.json") { manifest in
                var splits = manifest["splits"] as! [[String: Any]]
                var sides = splits[0]["sides"] as! [String: Any]
                var english = sides["en"] as! [String: Any]
                english["dataset"] = name
                sides["en"] = english
                splits[0]["sides"] = sides
                manifest["splits"] = splits
            }
            XCTAssertThrowsError(try start(data), name) { error in
                XCTAssertEqual("\(error)", "'\(data)/manifest.json' names the file '\(name)': "
                               + "files must be named relative to the data directory, inside it")
            }
        }
        // An absolute SentencePiece model, even one inside the directory.
        let data = try dataCopy()
        try editJSON(data + "/manifest.json") { manifest in
            var vocabulary = manifest["sentencepiece"] as! [String: Any]
            vocabulary["models"] = ["en": data + "/spm.model", "de": data + "/spm.model"]
            manifest["sentencepiece"] = vocabulary
        }
        XCTAssertThrowsError(try start(data)) { XCTAssertTrue("\($0)".contains("names the file '\(data)/spm.model'"), "\($0)") }
        // A symbolic link out of the directory, to a dataset that would otherwise be read.
        let linked = try dataCopy(), outside = linked + "/../outside.bin"
        try FileManager.default.moveItem(atPath: linked + "/train.en.bin", toPath: outside)
        try FileManager.default.createSymbolicLink(atPath: linked + "/train.en.bin", withDestinationPath: "../outside.bin")
        XCTAssertThrowsError(try start(linked)) { error in
            XCTAssertTrue("\(error)".contains("names the file 'train.en.bin', a symbolic link to '"), "\(error)")
            XCTAssertTrue("\(error)".hasSuffix("outside.bin' outside the data directory"), "\(error)")
        }
    }

    /// 9: a --force re-run of mt-preprocess deletes the outputs an earlier manifest lists; a forged ".." in them
    /// removed the directory above the destination.
    func testForgedOutputsNeverRemoveDirectories() throws {
        let inputs = try copy((try Self.preprocessed.get() as NSString).deletingLastPathComponent), data = inputs + "/data"
        try editJSON(data + "/manifest.json") { $0["outputs"] = ($0["outputs"] as! [String]) + ["..", "."] }
        let result = try Executables.run("mt-preprocess", ["--source-lang", "en", "--target-lang", "de", "--trainpref", inputs + "/train",
                                                           "--validpref", inputs + "/valid", "--destdir", data, "--vocab-size", "100",
                                                           "--quiet", "--threads", "1", "--force"])
        XCTAssertEqual(result.status, 0, result.errors)
        XCTAssertTrue(FileManager.default.fileExists(atPath: inputs + "/train.en"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: data + "/manifest.json"))
    }
}
