import XCTest
@testable import NMTTraining

/// The whole pipeline through the programs, on a few hundred generated pairs and a tiny model:
/// preprocess, train, kill -9 and resume, translate, score.
final class PipelineTests: XCTestCase {
    func testPreprocessTrainKillResumeTranslateScore() throws {
        let dir = try TestCorpus.makeTempDir("pipeline")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        var corpus = TestCorpus(seed: 11)
        for (split, n) in [("train", 400), ("valid", 40), ("test", 30)] {
            let pairs = corpus.pairs(n)
            try TestCorpus.writeLines(pairs.map(\.0), to: "\(dir)/\(split).en")
            try TestCorpus.writeLines(pairs.map(\.1), to: "\(dir)/\(split).de")
        }
        let pre = try Executables.run("mt-preprocess", ["--source-lang", "en", "--target-lang", "de", "--trainpref", dir + "/train",
                                                        "--validpref", dir + "/valid", "--testpref", dir + "/test",
                                                        "--destdir", dir + "/data", "--vocab-size", "150", "--quiet"])
        XCTAssertEqual(pre.status, 0, pre.errors)

        let options = ["--data", dir + "/data", "--embed-size", "16", "--encoder-hidden-size", "16", "--decoder-hidden-size", "24",
                       "--attention-size", "16", "--batch-sentences", "16", "--learning-rate", "0.003", "--valid-every", "10",
                       "--log-every", "5", "--max-updates", "60", "--patience", "0", "--threads", "1", "--valid-bleu-sentences", "20"]
        // Uninterrupted reference run.
        let straight = try Executables.run("mt-train", options + ["--model-dir", dir + "/straight"])
        XCTAssertEqual(straight.status, 0, straight.errors)

        // The same run killed with SIGKILL once a checkpoint exists, then resumed.
        let killed = Process()
        killed.executableURL = URL(fileURLWithPath: try Executables.path("mt-train"))
        killed.arguments = options + ["--model-dir", dir + "/killed"]
        killed.standardError = FileHandle.nullDevice
        try killed.run()
        let state = dir + "/killed/last/state.json"
        let deadline = Date().addingTimeInterval(300)
        while !FileManager.default.fileExists(atPath: state) && killed.isRunning && Date() < deadline { usleep(2000) }
        kill(killed.processIdentifier, SIGKILL)
        killed.waitUntilExit()
        XCTAssertEqual(killed.terminationReason, .uncaughtSignal, "the run was killed before it finished")
        // --threads is not saved with the run; OpenBLAS's sums, and so the bits, depend on it.
        let resumed = try Executables.run("mt-train", ["--data", dir + "/data", "--resume", dir + "/killed", "--threads", "1"])
        XCTAssertEqual(resumed.status, 0, resumed.errors)
        XCTAssertTrue(resumed.errors.contains("resuming"), resumed.errors)
        let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/straight/last/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: dir + "/killed/last/model.safetensors"))
        XCTAssertEqual(a, b, "resumed training ends with the same weights as uninterrupted training")

        // The loss falls; the log is JSON lines; the plot exists.
        let log = try String(contentsOfFile: dir + "/straight/log.jsonl", encoding: .utf8)
        let losses = log.split(separator: "\n").compactMap { try? JSONDecoder().decode(TrainingEvent.self, from: Data($0.utf8)) }
            .filter { $0.kind == .train }.compactMap(\.loss)
        XCTAssertGreaterThan(losses.count, 5)
        XCTAssertLessThan(losses.last!, losses.first! * 0.9)
        XCTAssertTrue(try String(contentsOfFile: dir + "/straight/training.svg", encoding: .utf8).contains("<svg"))

        // Translate the test set and score it.
        let source = try Data(contentsOf: URL(fileURLWithPath: dir + "/data/test.en.txt"))
        let translated = try Executables.run("mt-translate", ["--model", dir + "/straight", "--beam-size", "3"], input: source)
        XCTAssertEqual(translated.status, 0, translated.errors)
        XCTAssertEqual(translated.output.split(separator: "\n", omittingEmptySubsequences: false).count - 1, 30)
        // Training wrote the lexical shortlist; decoding over it (in int8) keeps every line.
        XCTAssertTrue(try String(contentsOfFile: dir + "/straight/shortlist.txt", encoding: .utf8).contains("\nfrequent\t"))
        let shortlisted = try Executables.run("mt-translate", ["--model", dir + "/straight", "--beam-size", "3", "--shortlist",
                                                               "--precision", "int8"], input: source)
        XCTAssertEqual(shortlisted.status, 0, shortlisted.errors)
        XCTAssertEqual(shortlisted.output.split(separator: "\n", omittingEmptySubsequences: false).count - 1, 30)
        // A checkpoint uses its run's shortlist, as it uses its run's vocabulary.
        let fromCheckpoint = try Executables.run("mt-translate", ["--model", dir + "/straight/last", "--shortlist"], input: source)
        XCTAssertEqual(fromCheckpoint.status, 0, fromCheckpoint.errors)
        let hypotheses = dir + "/test.hyp.de"
        try translated.output.write(toFile: hypotheses, atomically: true, encoding: .utf8)
        let scored = try Executables.run("mt-bleu", [dir + "/data/test.de.txt", "-i", hypotheses, "-b"])
        XCTAssertEqual(scored.status, 0, scored.errors)
        let bleu = Double(scored.output.trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertNotNil(bleu, scored.output)
        XCTAssertTrue((0...100).contains(bleu ?? -1))
    }

    /// Every option of the table is listed in mt-train's help, and can be given as a flag.
    func testEveryConfigurationKeyIsAFlag() throws {
        let help = try Executables.run("mt-train", ["--help"])
        XCTAssertEqual(help.status, 0)
        for option in TrainingOptions.table {
            XCTAssertTrue(help.output.contains("--\(option.key) "), "mt-train --help lists no --\(option.key)")
        }
        let words = help.output.split(whereSeparator: \.isWhitespace).joined(separator: " ")
        XCTAssertTrue(words.contains("Adam learning rate. (above 0.0, up to 1.0; default: 0.001)"), help.output)
        let flags = TrainingOptions.table.compactMap { option in option.defaultValue.map { ["--" + option.key, $0] } }.flatMap { $0 }
        var options = TrainingOptions()
        XCTAssertNoThrow(try options.overlay(flags: flags))
    }
}
