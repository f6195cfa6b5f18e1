import XCTest
@testable import NMTModel
@testable import NMTModelFiles
@testable import NMTText

/// mt-average: the element-wise mean of matching models, refused with the first difference otherwise.
final class ModelAverageTests: XCTestCase {
    private var dirs: [String] = []

    override func tearDown() {
        for d in dirs { try? FileManager.default.removeItem(atPath: d) }
        dirs = []
    }

    /// A model directory with the given SentencePiece model file and a tiny untrained model.
    private func modelDirectory(spm: String, seed: UInt64, embedSize: Int = 8) throws -> String {
        let dir = try TestCorpus.makeTempDir("average-model")
        dirs.append(dir)
        let piece = try SentencePiece(modelPath: spm)
        let config = ModelConfig(sourceVocabSize: piece.vocabularySize, targetVocabSize: piece.vocabularySize, embedSize: embedSize,
                                 encoderHiddenSize: 8, decoderHiddenSize: 8, attentionSize: 8, sharedEmbeddings: true, tiedOutput: true)
        try ModelDirectory(dir).saveModel(try Seq2Seq(config: config, seed: seed))
        try ModelDirectory(dir).installVocabulary(sourceLang: "en", targetLang: "de", sourceModel: spm, targetModel: spm)
        return dir
    }

    private func weights(_ dir: String) throws -> [Float] {
        try ModelDirectory(dir).loadModel().parameters.storage.array
    }

    func testAverageIsTheMeanAndOfAModelWithItselfTheModel() throws {
        let spm = TranslateCommandTests.modelDirectory + "/spm.model"
        let a = try modelDirectory(spm: spm, seed: 1), b = try modelDirectory(spm: spm, seed: 2)
        let out = try TestCorpus.makeTempDir("average-out")
        dirs.append(out)

        try ModelAverage.average([a, a, a], into: out + "/self")
        XCTAssertEqual(try weights(out + "/self"), try weights(a), "three times the same model average to it exactly")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/self/" + Shortlist.fileName), "a has no shortlist")
        // The first model's shortlist goes with the average.
        let shortlist = "frequent\t7 5 6\n"
        try shortlist.write(toFile: a + "/" + Shortlist.fileName, atomically: true, encoding: .utf8)
        try ModelAverage.average([a, b], into: out + "/with-shortlist")
        XCTAssertEqual(try String(contentsOfFile: out + "/with-shortlist/" + Shortlist.fileName, encoding: .utf8), shortlist)
        try FileManager.default.removeItem(atPath: a + "/" + Shortlist.fileName)

        let result = try Executables.run("mt-average", ["--output", out + "/mean", a, b])
        XCTAssertEqual(result.status, 0, result.errors)
        let expected = zip(try weights(a), try weights(b)).map { Float((Double($0) + Double($1)) / 2) }
        let mean = try weights(out + "/mean")
        XCTAssertEqual(mean, expected)
        XCTAssertNotEqual(mean, try weights(a))
        // mt-translate loads it.
        let translated = try Executables.run("mt-translate", ["--model", out + "/mean", "--beam-size", "2"], input: Data("A dog runs.\n".utf8))
        XCTAssertEqual(translated.status, 0, translated.errors)
        XCTAssertEqual(translated.output.filter { $0 == "\n" }.count, 1)

        // An output that holds a model is replaced only with --overwrite.
        let again = try Executables.run("mt-average", ["--output", out + "/mean", a])
        XCTAssertEqual(again.status, 1)
        XCTAssertTrue(again.errors.contains("already holds a model"), again.errors)
        XCTAssertEqual(try Executables.run("mt-average", ["--output", out + "/mean", "--overwrite", a]).status, 0)
        XCTAssertEqual(try weights(out + "/mean"), try weights(a))
    }

    func testMismatchedModelsAreRefusedWithTheFirstDifference() throws {
        let spm = TranslateCommandTests.modelDirectory + "/spm.model"
        let a = try modelDirectory(spm: spm, seed: 1)
        let wider = try modelDirectory(spm: spm, seed: 1, embedSize: 16)
        let out = try TestCorpus.makeTempDir("average-refused")
        dirs.append(out)
        let config = try Executables.run("mt-average", ["--output", out + "/x", a, wider])
        XCTAssertEqual(config.status, 1)
        XCTAssertTrue(config.errors.contains("embedSize"), config.errors)
        XCTAssertTrue(config.errors.contains(wider), config.errors)

        // Another SentencePiece model: refused, naming both files.
        let other = try TestCorpus.makeTempDir("average-spm")
        dirs.append(other)
        var corpus = TestCorpus(seed: 99)
        let text = corpus.pairs(300).flatMap { [$0.0, $0.1] }
        let otherSPM = try SentencePiece.train(sentences: text, options: SentencePieceTrainingOptions(vocabSize: 120),
                                               modelPath: other + "/spm.model")
        XCTAssertEqual(otherSPM.vocabularySize, 120)
        let b = try modelDirectory(spm: other + "/spm.model", seed: 1)
        let vocabulary = try Executables.run("mt-average", ["--output", out + "/y", a, b])
        XCTAssertEqual(vocabulary.status, 1)
        XCTAssertTrue(vocabulary.errors.contains(a + "/spm.model") && vocabulary.errors.contains(b + "/spm.model"), vocabulary.errors)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/x") || FileManager.default.fileExists(atPath: out + "/y"),
                       "nothing written")
    }
}
