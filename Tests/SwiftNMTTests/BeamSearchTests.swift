import XCTest
@testable import NMTModel
@testable import NMTSearch
@testable import NMTTensor
@testable import NMTTraining

final class BeamSearchTests: XCTestCase {
    /// A model trained briefly on the reverse task, so its distributions are peaked but imperfect.
    static let trained: Seq2Seq = {
        var data = RandomSource(seed: 99)
        func sequence() -> [Int32] { (0..<(3 + Int(data.next() % 8))).map { _ in Int32(4 + data.next() % 16) } }
        let config = ModelConfig(sourceVocabSize: 20, targetVocabSize: 20, embedSize: 16, encoderHiddenSize: 24,
                                 decoderHiddenSize: 32, decoderLayers: 3, attentionSize: 24, sharedEmbeddings: true, tiedOutput: true)
        let model = try! Seq2Seq(config: config, seed: 3)
        let adam = Adam(parameterCount: model.parameters.count)
        var rng = RandomSource(seed: 4)
        for _ in 0..<150 {
            let sources = (0..<16).map { _ in sequence() }
            model.train(Batch(sources: sources, targets: sources.map { Array($0.reversed()) }), rng: &rng)
            adam.step(parameters: model.parameters, gradients: model.gradients, learningRate: 3e-3, clipNorm: 5)
        }
        return model
    }()

    static let inputs: [[Int32]] = (0..<24).map { (i: Int) -> [Int32] in
        (0..<(3 + i % 7)).map { (j: Int) -> Int32 in Int32(4 + (j * 7 + i * 3) % 16) }
    }

    /// Log-probability of a whole output (with EOS) under teacher forcing: the score the search maximizes.
    func modelScore(_ source: [Int32], _ target: [Int32]) -> Float {
        var rng = RandomSource(seed: 0)
        let batch = Batch(sources: [source], targets: [target])
        return Float(-Self.trained.train(batch, rng: &rng, computeGradients: false).nllSum)
    }

    func testBeamOfOneIsGreedy() {
        let greedy = Self.trained.greedyDecode(Self.inputs, maxLength: 30)
        let beam = BeamSearch(model: Self.trained).search(Self.inputs, options: BeamSearchOptions(beamSize: 1, lengthPenalty: 0))
        XCTAssertEqual(beam.map { $0[0].tokens }, greedy)
    }

    func testScoresAreTheModelsLogProbabilities() {
        let results = BeamSearch(model: Self.trained).search(Self.inputs, options: BeamSearchOptions(beamSize: 4, lengthPenalty: 0))
        for (source, list) in zip(Self.inputs, results) {
            XCTAssertEqual(list[0].logProbability, modelScore(source, list[0].tokens), accuracy: 1e-3)
        }
    }

    func testNBestListsAreSortedAndDistinct() {
        let results = BeamSearch(model: Self.trained).search(Self.inputs, options: BeamSearchOptions(beamSize: 6, lengthPenalty: 1, nBest: 6))
        for list in results {
            XCTAssertGreaterThan(list.count, 1)
            XCTAssertEqual(Set(list.map(\.tokens)).count, list.count)
            XCTAssertEqual(list.map(\.score), list.map(\.score).sorted(by: >))
        }
    }

    /// Batched search gives each sentence what it gets alone.
    func testBatchedEqualsAlone() {
        let search = BeamSearch(model: Self.trained)
        let together = search.search(Self.inputs, options: BeamSearchOptions(beamSize: 3))
        for (i, source) in Self.inputs.enumerated().prefix(8) {
            XCTAssertEqual(search.search([source], options: BeamSearchOptions(beamSize: 3))[0][0].tokens, together[i][0].tokens)
        }
    }

    /// Batches run on several threads at once (over model replicas) give the same results, in input order.
    func testParallelBatchesEqualSerial() {
        let options = BeamSearchOptions(beamSize: 3, nBest: 2)
        let inputs = Self.inputs + [[]] + Self.inputs.reversed()
        let serial = BeamSearch(model: Self.trained).searchInBatches(inputs, options: options, batchSize: 5, workers: 1)
        let parallel = BeamSearch(model: Self.trained).searchInBatches(inputs, options: options, batchSize: 5, workers: 3)
        XCTAssertEqual(parallel, serial)
        XCTAssertEqual(serial[Self.inputs.count], [Hypothesis(tokens: [], logProbability: 0, score: 0, alignment: [])])
        // The same source in another batch: the same translation (scores may differ in the last bit).
        XCTAssertEqual(serial[0].map(\.tokens), serial[inputs.count - 1].map(\.tokens))
    }
}
