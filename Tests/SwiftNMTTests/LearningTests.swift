import XCTest
@testable import NMTModel
@testable import NMTTensor
@testable import NMTTraining

/// End-to-end learning: a small model learns to reverse random token sequences.
final class LearningTests: XCTestCase {
    func testLearnsToReverseSequences() throws {
        let symbols: ClosedRange<Int32> = 4...23
        var data = RandomSource(seed: 2024)
        func sequence() -> [Int32] {
            let length = 3 + Int(data.next() % 10)  // 3…12
            return (0..<length).map { _ in symbols.lowerBound + Int32(data.next() % UInt64(symbols.count)) }
        }
        let config = ModelConfig(sourceVocabSize: 24, targetVocabSize: 24, embedSize: 32, encoderHiddenSize: 64,
                                 encoderLayers: 1, decoderHiddenSize: 64, decoderLayers: 2, attentionSize: 64,
                                 sharedEmbeddings: true, tiedOutput: true)
        let model = try Seq2Seq(config: config, seed: 7)
        let adam = Adam(parameterCount: model.parameters.count)
        var rng = RandomSource(seed: 1)
        let held = (0..<300).map { _ in sequence() }

        func accuracy() -> Double {
            let decoded = model.greedyDecode(held, maxLength: 20)
            return Double(zip(held, decoded).filter { Array($0.reversed()) == $1 }.count) / Double(held.count)
        }
        var exactMatch = 0.0
        for update in 1...3000 {
            let sources = (0..<32).map { _ in sequence() }
            let batch = Batch(sources: sources, targets: sources.map { Array($0.reversed()) })
            model.train(batch, dropout: 0, labelSmoothing: 0, rng: &rng)
            adam.step(parameters: model.parameters, gradients: model.gradients, learningRate: 3e-3, clipNorm: 5)
            if update % 250 == 0 {
                exactMatch = accuracy()
                if exactMatch >= 0.97 { break }
            }
        }
        print("reverse task: exact match \(exactMatch)")
        XCTAssertGreaterThanOrEqual(exactMatch, 0.95)
    }
}
