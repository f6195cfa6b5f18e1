import XCTest
@testable import NMTModel
@testable import NMTModelFiles
@testable import NMTSearch
@testable import NMTTensor
@testable import NMTText

/// Ensembles: the averaged log-probabilities, a model with itself as the model alone, vocabularies checked.
final class EnsembleTests: XCTestCase {
    private func tinyModel(seed: UInt64, vocabulary: Int = 40) throws -> Seq2Seq {
        let config = ModelConfig(sourceVocabSize: vocabulary, targetVocabSize: vocabulary, embedSize: 8, encoderHiddenSize: 8,
                                 decoderHiddenSize: 12, attentionSize: 8, sharedEmbeddings: true, tiedOutput: true)
        return try Seq2Seq(config: config, seed: seed)
    }

    func testStepAveragesTheMembersLogProbabilities() throws {
        let a = try tinyModel(seed: 1), b = try tinyModel(seed: 2)
        let sources: [[Int32]] = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
        let alone = [IncrementalDecoder(model: a), IncrementalDecoder(model: b)]
        let ensemble = EnsembleDecoder(members: [IncrementalDecoder(model: a), IncrementalDecoder(model: b)])
        var previous: [Int32] = [Int32](repeating: 2, count: 6)  // BOS for 3 sentences × 2 beams
        for decoder in alone + [ensemble] as [any IncrementalDecoding] { decoder.start(sources: sources, beams: 2) }
        for step in 0..<3 {
            for decoder in alone + [ensemble] as [any IncrementalDecoding] { decoder.step(previous: previous) }
            let v = ensemble.targetVocabSize
            XCTAssertEqual(ensemble.rows, 6)
            for row in 0..<6 {
                for k in 0..<v {
                    let expected = ((alone[0].logits[row * v + k] - alone[0].logSumExp[row])
                                    + (alone[1].logits[row * v + k] - alone[1].logSumExp[row])) / 2
                    XCTAssertEqual(ensemble.logits[row * v + k] - ensemble.logSumExp[row], expected, accuracy: 1e-5,
                                   "step \(step), row \(row), piece \(k)")
                }
            }
            previous = (0..<6).map { Int32(4 + ($0 * 7 + step) % 30) }
        }
    }

    func testAModelWithItselfTranslatesAsTheModelAlone() throws {
        let model = try tinyModel(seed: 3)
        let single = BeamSearch(model: model)
        let doubled = BeamSearch(decoder: EnsembleDecoder(members: [IncrementalDecoder(model: model), IncrementalDecoder(model: model)]))
        var rng = RandomSource(seed: 4)
        let sources = (0..<12).map { _ in (0..<(1 + Int(rng.next() % 9))).map { _ in Int32(4 + rng.next() % 36) } }
        let options = BeamSearchOptions(beamSize: 4, lengthPenalty: 0.6, nBest: 3)
        XCTAssertEqual(doubled.search(sources, options: options), single.search(sources, options: options))
        // Two different models do not (the ensemble is not the first model alone).
        let other = BeamSearch(decoder: EnsembleDecoder(members: [IncrementalDecoder(model: model), IncrementalDecoder(model: try tinyModel(seed: 5))]))
        XCTAssertNotEqual(other.search(sources, options: options), single.search(sources, options: options))
    }

    func testCommandLineEnsembleAndMismatchedVocabularies() throws {
        let dir = TranslateCommandTests.modelDirectory
        let input = Data("A man rides a bike.\nTwo dogs play in the snow.\n".utf8)
        let single = try Executables.run("mt-translate", ["--model", dir, "--scores", "--n-best", "2"], input: input)
        let doubled = try Executables.run("mt-translate", ["--model", dir, "--model", dir, "--scores", "--n-best", "2"], input: input)
        XCTAssertEqual(single.status, 0, single.errors)
        XCTAssertEqual(doubled.status, 0, doubled.errors)
        XCTAssertEqual(doubled.output, single.output)

        // A model with another SentencePiece model: refused, naming both files.
        let other = try TestCorpus.makeTempDir("ensemble-other")
        addTeardownBlock { try? FileManager.default.removeItem(atPath: other) }
        var corpus = TestCorpus(seed: 77)
        let text = corpus.pairs(300).flatMap { [$0.0, $0.1] }
        let spm = try SentencePiece.train(sentences: text, options: SentencePieceTrainingOptions(vocabSize: 120), modelPath: other + "/spm.model")
        let config = ModelConfig(sourceVocabSize: spm.vocabularySize, targetVocabSize: spm.vocabularySize, embedSize: 8,
                                 encoderHiddenSize: 8, decoderHiddenSize: 8, attentionSize: 8, sharedEmbeddings: true, tiedOutput: true)
        try ModelDirectory(other).saveModel(try Seq2Seq(config: config, seed: 1))
        try ModelDirectory(other).installVocabulary(sourceLang: "en", targetLang: "de", sourceModel: other + "/spm.model",
                                                    targetModel: other + "/spm.model")
        let refused = try Executables.run("mt-translate", ["--model", dir, "--model", other], input: input)
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.errors.contains(dir + "/spm.model") && refused.errors.contains(other + "/spm.model"), refused.errors)
        XCTAssertEqual(refused.output, "")
    }
}
