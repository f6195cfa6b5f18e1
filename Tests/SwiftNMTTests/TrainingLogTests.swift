import XCTest
@testable import NMTModelFiles
@testable import NMTTraining

/// `log.jsonl` is the record of a run: every event once, in order, whatever its figures.
final class TrainingLogTests: XCTestCase {
    /// A diverged validation's infinite perplexity is written as null and named, not dropped with its line.
    func testNonFiniteFiguresAreWrittenAsNull() throws {
        let event = TrainingEvent(kind: .valid, update: 30, epoch: 1, loss: 4.5, perplexity: .infinity, bleu: .nan, message: "no improvement")
        let line = event.jsonLine()
        XCTAssertEqual(line.last, UInt8(ascii: "\n"))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: line) as? [String: Any], String(decoding: line, as: UTF8.self))
        XCTAssertEqual(object["update"] as? Int, 30)
        XCTAssertEqual(object["loss"] as? Double, 4.5)
        XCTAssertTrue(object["perplexity"] is NSNull)
        XCTAssertTrue(object["bleu"] is NSNull)
        XCTAssertEqual(object["notFinite"] as? [String: String], ["perplexity": "inf", "bleu": "nan"])
        // And it reads back as an event.
        let decoded = try JSONDecoder().decode(TrainingEvent.self, from: line)
        XCTAssertEqual(decoded.kind, .valid)
        XCTAssertNil(decoded.perplexity)
    }

    /// A run killed after its checkpoint at update 20 had logged updates 25 and 30; resumed from the
    /// checkpoint, it trains those updates again and logs each update once, in order.
    func testResumedRunLogsEachUpdateOnce() throws {
        let directory = NSTemporaryDirectory() + "swiftnmt-log-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var firstPart = TrainerTests.tinyOptions()
        firstPart.maxUpdates = 20
        try TrainerTests.makeTrainer(firstPart, directory: directory).run()
        let log = ModelDirectory(directory).logPath
        let handle = try XCTUnwrap(FileHandle(forWritingAtPath: log))
        try handle.seekToEnd()
        for update in [25, 30] {
            try handle.write(contentsOf: TrainingEvent(kind: .train, update: update, epoch: 0, loss: 1).jsonLine())
        }
        try handle.close()

        let resumed = try TrainerTests.makeTrainer(TrainerTests.tinyOptions(), directory: directory)
        try resumed.resume(from: directory)
        try resumed.run()
        let events = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
            .map { try JSONDecoder().decode(TrainingEvent.self, from: Data($0.utf8)) }
        let trained = events.filter { $0.kind == .train }.map(\.update)
        XCTAssertEqual(trained, Array(stride(from: 5, through: 40, by: 5)))
        XCTAssertEqual(events.map(\.update), events.map(\.update).sorted(), "events in order")
    }
}

/// Signals and closed streams during training, through the program.
final class TrainingSignalTests: XCTestCase {
    func preprocessed() throws -> (directory: String, options: [String]) {
        let dir = try TestCorpus.makeTempDir("signals")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        _ = try TestCorpus.preprocessed(in: dir, seed: 5, train: 200, valid: 20, vocabSize: 120)
        return (dir, ["--data", dir + "/data", "--embed-size", "8", "--encoder-hidden-size", "8", "--decoder-hidden-size", "8",
                      "--attention-size", "8", "--batch-sentences", "8", "--valid-every", "5", "--log-every", "1", "--patience", "0",
                      "--threads", "1", "--valid-bleu-sentences", "5"])
    }

    /// A closed terminal (SIGHUP) stops training as SIGTERM does: after the update, with a checkpoint, exit 0.
    func testHangUpStopsWithACheckpoint() throws {
        let (dir, options) = try preprocessed()
        let run = Process()
        run.executableURL = URL(fileURLWithPath: try Executables.path("mt-train"))
        run.arguments = options + ["--model-dir", dir + "/model", "--max-updates", "100000"]
        run.standardError = FileHandle.nullDevice
        try run.run()
        let state = dir + "/model/last/state.json"
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: state) && run.isRunning && Date() < deadline { usleep(2000) }
        kill(run.processIdentifier, SIGHUP)
        run.waitUntilExit()
        XCTAssertEqual(run.terminationReason, .exit, "killed by SIGHUP")
        XCTAssertEqual(run.terminationStatus, 0)
        let log = try String(contentsOfFile: dir + "/model/log.jsonl", encoding: .utf8)
        XCTAssertTrue(log.contains("interrupted"), "the run says why it stopped")
    }

    /// With its stderr closed (`2>&1 | head -2` after head exits), training goes on and finishes.
    func testClosedStandardErrorDoesNotStopTraining() throws {
        let (dir, options) = try preprocessed()
        let run = Process()
        run.executableURL = URL(fileURLWithPath: try Executables.path("mt-train"))
        run.arguments = options + ["--model-dir", dir + "/model", "--max-updates", "12"]
        let errors = Pipe()
        run.standardError = errors
        try errors.fileHandleForReading.close()  // nobody reads: every progress line meets a closed pipe
        try run.run()
        run.waitUntilExit()
        XCTAssertEqual(run.terminationReason, .exit, "killed by a signal (SIGPIPE)")
        XCTAssertEqual(run.terminationStatus, 0)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/model/model.safetensors"))
    }

    /// mt-translate reads a model directory, and its checkpoint `last`, while training rewrites them:
    /// every translation finds a whole model (files are replaced by rename, the previous checkpoint outlives
    /// the switch of `last`, and readers need no lock).
    func testTranslationWhileTrainingWritesTheModel() throws {
        let (dir, options) = try preprocessed()
        let run = Process()
        run.executableURL = URL(fileURLWithPath: try Executables.path("mt-train"))
        run.arguments = options + ["--model-dir", dir + "/model", "--max-updates", "400", "--valid-every", "2"]
        run.standardError = FileHandle.nullDevice
        try run.run()
        defer { if run.isRunning { kill(run.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: dir + "/model/model.safetensors") && run.isRunning && Date() < deadline {
            usleep(2000)
        }
        var translations = 0
        while run.isRunning && translations < 40 {
            // The model directory's best weights, and the checkpoint `last` as the trainer switches it.
            let model = translations % 2 == 0 ? dir + "/model" : dir + "/model/last"
            let result = try Executables.run("mt-translate", ["--model", model, "--beam-size", "2", "--threads", "1"],
                                             input: Data("a b c\nd e\nf\n".utf8))
            XCTAssertEqual(result.status, 0, result.errors)
            XCTAssertEqual(result.output.split(separator: "\n", omittingEmptySubsequences: false).count, 4, result.output)
            translations += 1
        }
        XCTAssertGreaterThan(translations, 0, "training ended before a translation could run")
        run.waitUntilExit()
        XCTAssertEqual(run.terminationStatus, 0)
    }
}
