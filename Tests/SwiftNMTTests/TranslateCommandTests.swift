import XCTest
@testable import NMTModel
@testable import NMTModelFiles
@testable import NMTText

/// mt-translate as a program: line structure on hostile input, answers before end of input,
/// clear errors for broken model directories.
final class TranslateCommandTests: XCTestCase {
    /// A model directory with a small SentencePiece model and an untrained tiny model of matching vocabulary.
    static let modelDirectory: String = {
        let dir = try! TestCorpus.makeTempDir("translate-model")
        var corpus = TestCorpus(seed: 5)
        let text = corpus.pairs(300).flatMap { [$0.0, $0.1] }
        let spm = try! SentencePiece.train(sentences: text, options: SentencePieceTrainingOptions(vocabSize: 120),
                                           modelPath: dir + "/spm.model")
        let config = ModelConfig(sourceVocabSize: spm.vocabularySize, targetVocabSize: spm.vocabularySize, embedSize: 8,
                                 encoderHiddenSize: 8, decoderHiddenSize: 8, attentionSize: 8, sharedEmbeddings: true, tiedOutput: true)
        let model = try! Seq2Seq(config: config, seed: 1)
        try! ModelDirectory(dir).saveModel(model)
        let files = VocabularyFiles(sourceLang: "en", targetLang: "de", sourceModel: "spm.model", targetModel: "spm.model")
        try! JSONEncoder().encode(files).write(to: URL(fileURLWithPath: dir + "/" + "vocabulary.json"))
        return dir
    }()

    func run(_ arguments: [String], input: Data) throws -> (status: Int32, output: Data, errors: String) {
        let result = try Executables.run("mt-translate", arguments, input: input)
        return (result.status, Data(result.output.utf8), result.errors)
    }

    func testOneOutputLinePerInputLineOnHostileInput() throws {
        var input = Data()
        let lines: [[UInt8]] = [
            Array("A man rides a bike.".utf8), [], Array("tab\there".utf8), [0x41, 0x00, 0x42], Array("carriage\rreturn".utf8),
            [0xFF, 0xFE, 0x20, 0x61], Array("crlf line\r".utf8), Array(repeating: 0x61, count: 5000) + [0x20, 0x62],
            Array("   ".utf8), Array("\u{FEFF}bom and émoji 🚲".utf8),
        ]
        for line in lines { input.append(contentsOf: line + [0x0A]) }
        input.append(contentsOf: Array("last line without newline".utf8))
        let (status, output, errors) = try run(["--model", Self.modelDirectory, "--beam-size", "3", "--max-source-length", "50"], input: input)
        XCTAssertEqual(status, 0, errors)
        let text = String(decoding: output, as: UTF8.self)
        XCTAssertTrue(text.hasSuffix("\n"))
        let outputLines = text.dropLast().split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(outputLines.count, lines.count + 1, text)
        XCTAssertEqual(outputLines[1], "", "an empty line gives an empty line")
        XCTAssertTrue(errors.contains("line 8"), "the cut line is reported: \(errors)")

        let (nStatus, nOutput, nErrors) = try run(["--model", Self.modelDirectory, "--beam-size", "3", "--n-best", "2"], input: input)
        XCTAssertEqual(nStatus, 0, nErrors)
        let nLines = String(decoding: nOutput, as: UTF8.self).split(separator: "\n")
        let indices = Set(nLines.map { $0.components(separatedBy: " ||| ")[0] })
        XCTAssertEqual(indices, Set((0...lines.count).map(String.init)), "every input line has n-best entries")
    }

    /// A line typed into a pipe is answered while the pipe stays open.
    func testAnswersBeforeEndOfInput() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try Executables.path("mt-translate"))
        process.arguments = ["--model", Self.modelDirectory]
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()
        defer { process.terminate() }
        stdin.fileHandleForWriting.write(Data("a man is running .\n".utf8))
        var received = Data()
        let reader = stdout.fileHandleForReading
        while !received.contains(0x0A) {
            let chunk = reader.availableData  // blocks until output arrives; stdin is still open
            if chunk.isEmpty { break }
            received.append(chunk)
        }
        XCTAssertTrue(received.contains(0x0A), "a complete translation line arrived before end of input")
        XCTAssertTrue(process.isRunning, "the translator is still waiting for more input")
        try stdin.fileHandleForWriting.close()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
    }

    func testBrokenModelDirectoriesAreReported() throws {
        let broken = try TestCorpus.makeTempDir("broken-model")
        for file in try FileManager.default.contentsOfDirectory(atPath: Self.modelDirectory) {
            try FileManager.default.copyItem(atPath: Self.modelDirectory + "/" + file, toPath: broken + "/" + file)
        }
        let weights = broken + "/" + "model.safetensors"
        let data = try Data(contentsOf: URL(fileURLWithPath: weights))
        try data.prefix(data.count - 100).write(to: URL(fileURLWithPath: weights))
        let truncated = try run(["--model", broken], input: Data("hello\n".utf8))
        XCTAssertNotEqual(truncated.status, 0)
        XCTAssertTrue(truncated.errors.contains("truncated"), truncated.errors)

        try Data("not safetensors at all".utf8).write(to: URL(fileURLWithPath: weights))
        let garbage = try run(["--model", broken], input: Data("hello\n".utf8))
        XCTAssertNotEqual(garbage.status, 0)
        XCTAssertTrue(garbage.errors.contains("safetensors"), garbage.errors)

        let missing = try run(["--model", broken + "/nowhere"], input: Data())
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.errors.contains("does not exist"), missing.errors)

        // A model whose shapes do not match its configuration.
        try FileManager.default.removeItem(atPath: weights)
        try FileManager.default.copyItem(atPath: Self.modelDirectory + "/" + "model.safetensors", toPath: weights)
        var config = try ModelDirectory(broken).loadConfig()
        config.embedSize = 12
        try JSONEncoder().encode(config).write(to: URL(fileURLWithPath: broken + "/" + "model.json"))
        let shapes = try run(["--model", broken], input: Data("hello\n".utf8))
        XCTAssertNotEqual(shapes.status, 0)
        XCTAssertTrue(shapes.errors.contains("shape"), shapes.errors)
    }
}
