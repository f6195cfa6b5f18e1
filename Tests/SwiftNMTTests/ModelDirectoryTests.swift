import XCTest
@testable import NMTTraining

/// A model directory that nothing can spoil: a run that fails writes nothing, a finished model is
/// never overwritten without --overwrite, one writer at a time, `last` never leads outside, and
/// --resume is idempotent and honest. Through the programs, on tiny data and a tiny model.
final class ModelDirectoryTests: XCTestCase {
    /// Two preprocessed directories of the same sizes whose SentencePiece models differ (other text).
    static let data: (first: String, second: String, root: String)? = {
        guard let root = try? TestCorpus.makeTempDir("modeldir") else { return nil }
        func preprocess(_ name: String, seed: UInt64) -> Bool {
            var corpus = TestCorpus(seed: seed)
            for (split, n) in [("train", 400), ("valid", 20)] {
                let pairs = corpus.pairs(n)
                guard (try? TestCorpus.writeLines(pairs.map(\.0), to: "\(root)/\(name)-\(split).en")) != nil,
                      (try? TestCorpus.writeLines(pairs.map(\.1), to: "\(root)/\(name)-\(split).de")) != nil else { return false }
            }
            let result = try? Executables.run("mt-preprocess", ["--source-lang", "en", "--target-lang", "de",
                                                                "--trainpref", "\(root)/\(name)-train", "--validpref", "\(root)/\(name)-valid",
                                                                "--destdir", "\(root)/\(name)", "--vocab-size", "150", "--quiet"])
            return result?.status == 0
        }
        guard preprocess("first", seed: 11), preprocess("second", seed: 12) else { return nil }
        return (root + "/first", root + "/second", root)
    }()

    override class func tearDown() {
        if let root = data?.root { try? FileManager.default.removeItem(atPath: root) }
    }

    static let tiny = ["--embed-size", "8", "--encoder-hidden-size", "8", "--decoder-hidden-size", "8", "--attention-size", "8",
                       "--batch-sentences", "16", "--valid-every", "5", "--log-every", "5", "--max-updates", "10",
                       "--patience", "0", "--threads", "1", "--valid-bleu-sentences", "4"]

    func firstData() throws -> String {
        _ = try Executables.path("mt-train")
        guard let data = Self.data else { throw XCTSkip("mt-preprocess could not prepare the test data") }
        return data.first
    }

    func temporaryDirectory() throws -> String {
        let path = try TestCorpus.makeTempDir("model")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// A trained model directory (a fresh one in a new temporary directory).
    func trainedModel(_ extra: [String] = []) throws -> String {
        let model = try temporaryDirectory() + "/model"
        let run = try Executables.run("mt-train", ["--data", try firstData(), "--model-dir", model] + Self.tiny + extra)
        XCTAssertEqual(run.status, 0, run.errors)
        return model
    }

    /// Every file under `directory` (the lock file aside) with its bytes; a symbolic link as its target.
    func snapshot(_ directory: String) throws -> [String: Data] {
        let fm = FileManager.default
        var files: [String: Data] = [:]
        for item in try fm.subpathsOfDirectory(atPath: directory) where item != ".lock" {
            let path = directory + "/" + item
            if let target = try? fm.destinationOfSymbolicLink(atPath: path) {
                files[item] = Data(("-> " + target).utf8)
            } else if let data = fm.contents(atPath: path) {
                files[item] = data
            }
        }
        return files
    }

    func assertRefused(_ arguments: [String], leaves model: String, saying words: [String],
                       file: StaticString = #filePath, line: UInt = #line) throws {
        let before = try snapshot(model)
        let run = try Executables.run("mt-train", arguments)
        XCTAssertEqual(run.status, 1, "refused: \(arguments)\n\(run.errors)", file: file, line: line)
        XCTAssertTrue(run.errors.hasPrefix("mt-train: error: "), run.errors, file: file, line: line)
        for word in words { XCTAssertTrue(run.errors.contains(word), "the error names \(word): \(run.errors)", file: file, line: line) }
        XCTAssertEqual(try snapshot(model), before, "a refused run leaves \(model) as it was", file: file, line: line)
    }

    // Defect 1: a run that fails its checks has written nothing.
    func testFailedRunWritesNothing() throws {
        let data = try firstData(), model = try trainedModel()
        try assertRefused(["--data", data, "--model-dir", model, "--overwrite", "--init-from", "/nonexistent"] + Self.tiny,
                          leaves: model, saying: ["/nonexistent"])
        try assertRefused(["--data", data, "--resume", model, "--embed-size", "64"], leaves: model, saying: ["embed-size", "8", "64"])
        let translated = try Executables.run("mt-translate", ["--model", model], input: Data("A man.\n".utf8))
        XCTAssertEqual(translated.status, 0, translated.errors)
    }

    // Defect 2: --resume against data preprocessed with another SentencePiece model is refused.
    func testResumeRefusesAnotherSentencePieceModel() throws {
        let model = try trainedModel(["--max-updates", "5"])
        let other = try XCTUnwrap(Self.data).second
        try assertRefused(["--data", other, "--resume", model, "--max-updates", "10"], leaves: model,
                          saying: [other + "/spm.model", model + "/spm.model"])
    }

    // Defect 3: a finished model directory is not overwritten without --overwrite, checkpoint or not.
    func testFinishedModelIsNotOverwritten() throws {
        let data = try firstData(), model = try trainedModel(["--keep-last", "false"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: model + "/last"))
        try assertRefused(["--data", data, "--model-dir", model] + Self.tiny, leaves: model, saying: [model, "--overwrite"])
        let overwritten = try Executables.run("mt-train", ["--data", data, "--model-dir", model, "--overwrite"] + Self.tiny)
        XCTAssertEqual(overwritten.status, 0, overwritten.errors)
    }

    // Defect 4: one writer at a time; the second fails at once, naming the holder's PID.
    func testASecondWriterIsRefusedWhileTheFirstHoldsTheLock() throws {
        let data = try firstData(), model = try trainedModel(["--max-updates", "5"])
        // Hold the lock as mt-train does: flock on model/.lock, with our PID in it.
        let fd = open(model + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd) }
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)
        ftruncate(fd, 0)
        let pid = Data("\(getpid())\n".utf8)
        _ = pid.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
        try assertRefused(["--data", data, "--resume", model, "--max-updates", "10"], leaves: model, saying: ["PID \(getpid())"])
        try assertRefused(["--data", data, "--model-dir", model, "--overwrite"] + Self.tiny, leaves: model, saying: ["PID \(getpid())"])
        flock(fd, LOCK_UN)
        let resumed = try Executables.run("mt-train", ["--data", data, "--resume", model, "--max-updates", "10"])
        XCTAssertEqual(resumed.status, 0, resumed.errors)
    }

    // Defect 4: two runs started at the same instant on one directory: one trains, the other is refused.
    func testTwoWritersStartedTogether() throws {
        let data = try firstData(), model = try temporaryDirectory() + "/model"
        let runs = try (0..<2).map { _ in
            let process = Process(), errors = Pipe()
            process.executableURL = URL(fileURLWithPath: try Executables.path("mt-train"))
            process.arguments = ["--data", data, "--model-dir", model] + Self.tiny
            process.standardError = errors
            return (process, errors)
        }
        for (process, _) in runs { try process.run() }
        let outcomes = runs.map { process, errors in
            let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            return (status: process.terminationStatus, errors: text)
        }
        XCTAssertEqual(outcomes.map(\.status).sorted(), [0, 1], "\(outcomes)")
        let refused = try XCTUnwrap(outcomes.first { $0.status == 1 })
        XCTAssertTrue(refused.errors.hasPrefix("mt-train: error: "), refused.errors)
        // At once if the other holds the lock; after it, because the directory then holds its model.
        XCTAssertTrue(refused.errors.contains("is in use") || refused.errors.contains("already holds a model"), refused.errors)
        let log = try String(contentsOfFile: model + "/log.jsonl", encoding: .utf8)
        XCTAssertTrue(log.contains("\"kind\":\"stop\""), "the winner's log is whole: \(log)")
    }

    // Defect 4: a running mt-train holds the lock until it ends, even killed with SIGKILL.
    func testARunningWriterHoldsTheLockUntilItEnds() throws {
        let data = try firstData(), model = try temporaryDirectory() + "/model"
        let first = Process()
        first.executableURL = URL(fileURLWithPath: try Executables.path("mt-train"))
        first.arguments = ["--data", data, "--model-dir", model] + Self.tiny + ["--max-updates", "1000000"]
        first.standardError = FileHandle.nullDevice
        try first.run()
        defer { if first.isRunning { kill(first.processIdentifier, SIGKILL); first.waitUntilExit() } }
        let deadline = Date().addingTimeInterval(60)
        while (try? String(contentsOfFile: model + "/.lock", encoding: .utf8)) != "\(first.processIdentifier)\n" && Date() < deadline {
            usleep(2000)
        }
        let second = try Executables.run("mt-train", ["--data", data, "--model-dir", model, "--overwrite"] + Self.tiny)
        XCTAssertEqual(second.status, 1, second.errors)
        XCTAssertTrue(second.errors.contains("PID \(first.processIdentifier)"), second.errors)
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let after = try Executables.run("mt-train", ["--data", data, "--model-dir", model, "--overwrite"] + Self.tiny)
        XCTAssertEqual(after.status, 0, "the lock ends with its process: \(after.errors)")
    }

    // Defect 5: `last` pointing outside the model directory is an error, and nothing outside is deleted.
    func testLastLeadingOutsideIsRefused() throws {
        let data = try firstData(), model = try trainedModel(["--max-updates", "5"])
        let fm = FileManager.default
        let checkpoint = model + "/" + (try fm.destinationOfSymbolicLink(atPath: model + "/last"))
        let victim = (model as NSString).deletingLastPathComponent + "/victim"
        try fm.copyItem(atPath: checkpoint, toPath: victim)
        for target in ["../victim", victim] {
            try fm.removeItem(atPath: model + "/last")
            try fm.createSymbolicLink(atPath: model + "/last", withDestinationPath: target)
            try assertRefused(["--data", data, "--resume", model, "--max-updates", "10"], leaves: model, saying: [model + "/last", target])
            XCTAssertTrue(fm.fileExists(atPath: victim + "/state.json"), "nothing outside the model directory is deleted")
        }
        // Starting over removes the link, never what it points to.
        let overwritten = try Executables.run("mt-train", ["--data", data, "--model-dir", model, "--overwrite"] + Self.tiny)
        XCTAssertEqual(overwritten.status, 0, overwritten.errors)
        XCTAssertTrue(fm.fileExists(atPath: victim + "/state.json"), "nothing outside the model directory is deleted")
    }

    // Defect 6: resuming a finished run does nothing; a changed learning rate really applies; options a
    // resume may not change are refused, naming the saved and the new value.
    func testResumeIsIdempotentAndHonest() throws {
        let data = try firstData(), model = try trainedModel()
        let before = try snapshot(model)
        for _ in 0..<2 {
            let again = try Executables.run("mt-train", ["--data", data, "--resume", model])
            XCTAssertEqual(again.status, 0, again.errors)
            XCTAssertTrue(again.errors.contains("already"), again.errors)
            XCTAssertEqual(try snapshot(model), before, "resuming a finished run writes nothing")
        }
        try assertRefused(["--data", data, "--resume", model, "--max-updates", "15", "--batch-sentences", "8"], leaves: model,
                          saying: ["batch-sentences", "16", "8"])
        let longer = try Executables.run("mt-train", ["--data", data, "--resume", model, "--max-updates", "15", "--learning-rate", "0.05"])
        XCTAssertEqual(longer.status, 0, longer.errors)
        let yaml = try String(contentsOfFile: model + "/training.yaml", encoding: .utf8)
        XCTAssertTrue(yaml.contains("learning-rate: 0.05\n") && yaml.contains("max-updates: 15\n"), yaml)
        let state = try JSONDecoder().decode(TrainingState.self, from: try Data(contentsOf: URL(fileURLWithPath: model + "/last/state.json")))
        XCTAssertEqual(state.update, 15)
        XCTAssertEqual(state.schedule.baseRate, 0.05)
        let log = try String(contentsOfFile: model + "/log.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { try? JSONDecoder().decode(TrainingEvent.self, from: Data($0.utf8)) }
        let trained = try XCTUnwrap(log.last { $0.kind == .train })
        XCTAssertEqual(trained.update, 15)
        XCTAssertEqual(trained.learningRate, 0.05, "training goes on at the new learning rate")
        let help = try Executables.run("mt-train", ["--help"]).output.replacingOccurrences(of: "\n", with: " ")
        XCTAssertTrue(help.contains("--resume may change only"), help)
    }
}
