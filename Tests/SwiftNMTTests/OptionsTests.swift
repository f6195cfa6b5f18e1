import XCTest
@testable import NMTCommandLine
@testable import NMTModel
@testable import NMTModelFiles
@testable import NMTTraining

/// The option table: training.yaml, --config files, mt-train's flags and their layers; model.json's
/// keys; how the programs fail.
final class OptionsTests: XCTestCase {
    /// The repository's root, for the files it ships.
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    func temporaryDirectory() throws -> String {
        let dir = try TestCorpus.makeTempDir("options")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }

    func testYAMLIsWrittenAsTheUserWouldAndReadsBack() throws {
        let yaml = TrainingOptions().yaml()
        XCTAssertTrue(yaml.hasPrefix("embed-size: 256\n"), yaml)
        for line in ["learning-rate: 0.001", "dropout: 0.3", "label-smoothing: 0.1", "schedule: plateau", "tied-output: true"] {
            XCTAssertTrue(yaml.contains("\n\(line)\n"), "\(line) in\n\(yaml)")
        }
        XCTAssertFalse(yaml.contains("shared-embeddings"), "unset options are left out")
        XCTAssertFalse(yaml.contains("batch-tokens"), "unset options are left out")
        let keys: [String] = yaml.split(separator: "\n").map { String($0.prefix(while: { $0 != ":" })) }
        let unset: Set<String> = ["shared-embeddings", "batch-tokens"]
        XCTAssertEqual(keys, TrainingOptions.table.map(\.key).filter { !unset.contains($0) }, "table order")
        var read = TrainingOptions()
        try read.overlay(yaml: yaml, path: "defaults.yaml")
        XCTAssertEqual(read, TrainingOptions())
        XCTAssertEqual(read.yaml(), yaml)

        var changed = TrainingOptions()
        changed.sharedEmbeddings = false
        changed.batchTokens = 2000
        changed.learningRate = 3e-4
        changed.schedule = .inverseSqrt
        changed.maxMinutes = 1.5
        changed.seed = 42
        var again = TrainingOptions()
        try again.overlay(yaml: changed.yaml(), path: "changed.yaml")
        XCTAssertEqual(again, changed)
        XCTAssertTrue(changed.yaml().contains("\nlearning-rate: 0.0003\n"), changed.yaml())
    }

    /// The files shipped so far: training.yaml as Yams wrote it for the first shipped model (floats in
    /// Yams' notation, the retired `threads`), the shipped model's, and scripts/multi30k.yaml.
    static let firstShippedTrainingYAML = """
        embed-size: 256
        learning-rate: 1.00000004749745e-3
        decay-factor: 5e-1
        clip-norm: 5e+0
        label-smoothing: 1.00000001490116e-1
        dropout: 3.00000011920929e-1
        max-minutes: 8.8e+1
        seed: 1
        threads: 0
        half-precision-weights: true
        """

    func testShippedFilesLoad() throws {
        var first = TrainingOptions()
        try first.overlay(yaml: Self.firstShippedTrainingYAML, path: "training.yaml")
        XCTAssertEqual(first.learningRate, 1e-3)
        XCTAssertEqual(first.dropout, 0.3)
        XCTAssertEqual(first.maxMinutes, 88)
        let saved = Self.repository + "/checkpoints/multi30k-en-de/training.yaml"
        var shipped = TrainingOptions()
        try shipped.overlay(yaml: try String(contentsOfFile: saved, encoding: .utf8), path: saved)
        XCTAssertEqual(shipped.learningRate, 1e-3)
        XCTAssertEqual(shipped.exponentialSmoothing, 0.999)
        let script = Self.repository + "/scripts/multi30k.yaml"
        var options = TrainingOptions()
        try options.overlay(yaml: try String(contentsOfFile: script, encoding: .utf8), path: script)
        XCTAssertEqual(options.validEvery, 500)
        XCTAssertTrue(options.halfPrecisionWeights)
    }

    /// Defaults, then the saved training.yaml of --resume, then --config, then flags: each key from the latest layer that gives it.
    func testLayersApplyInOrder() throws {
        let dir = try temporaryDirectory()
        try "dropout: 0.1\nseed: 5\nvalid-every: 7\nbatch-tokens: 2000\nthreads: 4\n"
            .write(toFile: ModelDirectory(dir).optionsPath, atomically: true, encoding: .utf8)
        try "dropout: 0.2\nseed: 6\n".write(toFile: dir + "/config.yaml", atomically: true, encoding: .utf8)
        let options = try TrainingOptions.resolve(resuming: dir, config: dir + "/config.yaml", flags: ["--seed", "7"])
        XCTAssertEqual(options.dropout, 0.2, "--config over the saved options")
        XCTAssertEqual(options.seed, 7, "flags over --config")
        XCTAssertEqual(options.validEvery, 7, "saved options that --config does not give are kept")
        XCTAssertEqual(options.batchTokens, 2000)
        XCTAssertEqual(options.logEvery, TrainingOptions().logEvery, "defaults under everything")
        XCTAssertEqual(try TrainingOptions.resolve(resuming: nil, config: dir + "/config.yaml", flags: []).seed, 6)

        // batch-sentences replaces batch-tokens from earlier layers, not from its own.
        let sentences = try TrainingOptions.resolve(resuming: dir, config: nil, flags: ["--batch-sentences=32"])
        XCTAssertEqual(sentences.batchSentences, 32)
        XCTAssertNil(sentences.batchTokens)
        XCTAssertEqual(sentences.batchSize, .sentences(32))
        let both = try TrainingOptions.resolve(resuming: nil, config: nil, flags: ["--batch-sentences", "32", "--batch-tokens", "900"])
        XCTAssertEqual(both.batchSize, .tokens(900))
    }

    /// Hand-written YAML spells booleans `yes`/`True`/`off` and leaves an optional option unset with `~`
    /// or nothing; a required option cannot be unset.
    func testYAMLBooleansAndNull() throws {
        var options = TrainingOptions()
        try options.overlay(yaml: "tied-output: no\nkeep-best: True\nshared-embeddings: yes\nbatch-tokens: 500\n", path: "a.yaml")
        XCTAssertEqual(options.tiedOutput, false)
        XCTAssertEqual(options.keepBest, true)
        XCTAssertEqual(options.sharedEmbeddings, true)
        try options.overlay(yaml: "shared-embeddings: ~\nbatch-tokens:\n", path: "b.yaml")
        XCTAssertNil(options.sharedEmbeddings)
        XCTAssertNil(options.batchTokens)
        XCTAssertThrowsError(try options.overlay(yaml: "dropout: ~\n", path: "c.yaml"))
        XCTAssertThrowsError(try options.overlay(yaml: "keep-last: maybe\n", path: "d.yaml"))
    }

    func testUnknownKeysAndBadValuesAreErrors() throws {
        var options = TrainingOptions()
        XCTAssertThrowsError(try options.overlay(yaml: "dropout: 0.2\nlearning-rat: 0.1\n", path: "/x/run.yaml")) { error in
            XCTAssertTrue("\(error)".contains("/x/run.yaml: unknown option 'learning-rat'"), "\(error)")
        }
        XCTAssertThrowsError(try options.overlay(yaml: "schedule: cosine\n", path: "/x/run.yaml")) { error in
            XCTAssertTrue("\(error)".contains("/x/run.yaml: schedule: 'cosine' is not one of constant"), "\(error)")
        }
        XCTAssertThrowsError(try options.overlay(yaml: "- dropout\n", path: "/x/list.yaml"))
        XCTAssertThrowsError(try options.overlay(flags: ["--learning-rat", "0.1"])) { error in
            XCTAssertEqual("\(error)", "unknown option '--learning-rat'")
        }
        XCTAssertThrowsError(try options.overlay(flags: ["--max-updates", "ten"])) { error in
            XCTAssertEqual("\(error)", "--max-updates: 'ten' is not an integer from 0 to 1000000000")
        }
        XCTAssertThrowsError(try options.overlay(flags: ["--dropout"]))
        XCTAssertThrowsError(try options.overlay(flags: ["stray"]))
    }

    /// Usage errors exit with 64 and the usage; run-time failures with 1 and `mt-train: error: …`.
    func testMtTrainExitStatus() throws {
        let dir = try temporaryDirectory()
        let unknown = try Executables.run("mt-train", ["--data", dir, "--model-dir", dir + "/m", "--learning-rat", "0.1"])
        XCTAssertEqual(unknown.status, 64, unknown.errors)
        XCTAssertTrue(unknown.errors.contains("unknown option '--learning-rat'"), unknown.errors)
        let bad = try Executables.run("mt-train", ["--data", dir, "--model-dir", dir + "/m", "--dropout=lots"])
        XCTAssertEqual(bad.status, 64, bad.errors)
        let missing = try Executables.run("mt-train", ["--data", "/nonexistent", "--model-dir", dir + "/m"])
        XCTAssertEqual(missing.status, 1, missing.errors)
        XCTAssertTrue(missing.errors.hasPrefix("mt-train: error: ") && missing.errors.contains("/nonexistent"), missing.errors)
        XCTAssertFalse(missing.errors.contains("Usage"), missing.errors)
        let config = try Executables.run("mt-train", ["--data", dir, "--model-dir", dir + "/m", "--config", dir + "/none.yaml"])
        XCTAssertEqual(config.status, 1, config.errors)
        XCTAssertEqual(config.errors, "mt-train: error: cannot read \(dir)/none.yaml: No such file or directory\n")
    }

    func testFoundationErrorsInPlainWords() {
        XCTAssertThrowsError(try String(contentsOfFile: "/nonexistent/options.yaml", encoding: .utf8)) { error in
            XCTAssertEqual(Failure.plainDescription(of: error), "cannot read /nonexistent/options.yaml: No such file or directory")
        }
        XCTAssertEqual(Failure.plainDescription(of: TrainingError.badFlag("plain")), "plain")
    }

    /// model.json is written in kebab-case; the camelCase of earlier versions still reads.
    func testModelConfigKeys() throws {
        let config = ModelConfig(sourceVocabSize: 30, targetVocabSize: 40, embedSize: 8, sharedEmbeddings: false, tiedOutput: true)
        let json = String(decoding: try JSONEncoder().encode(config), as: UTF8.self)
        XCTAssertTrue(json.contains("\"embed-size\":8") && json.contains("\"source-vocab-size\":30"), json)
        XCTAssertFalse(json.contains("embedSize"), json)
        XCTAssertEqual(try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8)), config)

        let camel = """
        {"attentionSize": 512, "decoderHiddenSize": 512, "decoderLayers": 2, "embedSize": 8, "encoderHiddenSize": 256,
         "encoderLayers": 1, "sharedEmbeddings": false, "sourceVocabSize": 30, "targetVocabSize": 40, "tiedOutput": true}
        """
        XCTAssertEqual(try JSONDecoder().decode(ModelConfig.self, from: Data(camel.utf8)), config)
        XCTAssertThrowsError(try JSONDecoder().decode(ModelConfig.self, from: Data("{\"embed-size\": 8}".utf8)))

        let shipped = Self.repository + "/checkpoints/multi30k-en-de"
        if FileManager.default.fileExists(atPath: shipped + "/model.json") {
            XCTAssertEqual(try ModelDirectory(shipped).loadConfig(), ModelConfig.reference())
        }
    }
}

/// Every program: `--threads` below 1 is a usage error (64); a file that is not there is a run-time failure (1).
final class ProgramFailureTests: XCTestCase {
    func testUsageErrorsAndRunTimeFailures() throws {
        for program in ["mt-train", "mt-translate", "mt-bench", "mt-preprocess"] {
            let result = try Executables.run(program, ["--threads", "0"])
            XCTAssertEqual(result.status, 64, "\(program): \(result.errors)")
        }
        let translate = try Executables.run("mt-translate", ["--model", "/nonexistent/model"], input: Data("hello\n".utf8))
        XCTAssertEqual(translate.status, 1, translate.errors)
        XCTAssertTrue(translate.errors.hasPrefix("mt-translate: error: cannot load the model: "), translate.errors)
        let bleu = try Executables.run("mt-bleu", ["/nonexistent/ref.de", "-i", "/nonexistent/hyp.de"])
        XCTAssertEqual(bleu.status, 1, bleu.errors)
        XCTAssertTrue(bleu.errors.hasPrefix("mt-bleu: error: ") && bleu.errors.contains("/nonexistent/ref.de"), bleu.errors)
        let preprocess = try Executables.run("mt-preprocess", ["-s", "en", "-t", "de", "--trainpref", "/nonexistent/train",
                                                               "--destdir", NSTemporaryDirectory() + "swiftnmt-never", "--quiet"])
        XCTAssertEqual(preprocess.status, 1, preprocess.errors)
        XCTAssertTrue(preprocess.errors.hasPrefix("mt-preprocess: error: "), preprocess.errors)
        let plot = try Executables.run("mt-train", ["--plot", "/nonexistent/run"])
        XCTAssertEqual(plot.status, 1, plot.errors)
        XCTAssertTrue(plot.errors.hasPrefix("mt-train: error: cannot read /nonexistent/run/log.jsonl"), plot.errors)
    }
}
