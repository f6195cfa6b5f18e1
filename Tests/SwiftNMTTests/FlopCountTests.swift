import XCTest
@testable import NMTModel
@testable import NMTTensor

final class FlopCountTests: XCTestCase {
    /// The analytic count used for FLOP utilization matches the matrix products the code really
    /// runs: BLAS calls tallied during a forward pass, plus the attention's fused products.
    func testAnalyticCountMatchesExecutedProducts() throws {
        let config = ModelConfig(sourceVocabSize: 50, targetVocabSize: 60, embedSize: 16, encoderHiddenSize: 12, encoderLayers: 2,
                                 decoderHiddenSize: 20, decoderLayers: 3, attentionSize: 24)
        let model = try Seq2Seq(config: config)
        // Equal lengths: no padding, so executed and useful work coincide.
        let sources = [[Int32]](repeating: [5, 6, 7, 8, 9, 10], count: 4)
        let targets = [[Int32]](repeating: [11, 12, 13, 14], count: 4)
        var rng = RandomSource(seed: 1)
        BLAS.flopTally = 0
        model.train(Batch(sources: sources, targets: targets), rng: &rng, computeGradients: false)
        let executedForward = BLAS.flopTally!
        BLAS.flopTally = 0
        model.train(Batch(sources: sources, targets: targets), rng: &rng, computeGradients: true)
        let executedStep = BLAS.flopTally!
        BLAS.flopTally = nil
        // The attention's products run in a fused kernel, not through BLAS: add them by hand.
        let attention = Double(6 * 5 * 4) * Double(2 * 24 + 2 * 24)
        let analytic = FlopCount.forward(config, sourceLengths: [6, 6, 6, 6], targetLengths: [4, 4, 4, 4])
        XCTAssertEqual(executedForward + attention, analytic, accuracy: analytic * 1e-9)
        // Backward: an input-gradient and a weight-gradient product per forward product, except the
        // input gradients nobody needs (below the embeddings' projections), so a bit under 3×.
        let ratio = (executedStep + 3 * attention) / analytic
        XCTAssertGreaterThan(ratio, 2.7)
        XCTAssertLessThanOrEqual(ratio, 3.0)
    }
}
