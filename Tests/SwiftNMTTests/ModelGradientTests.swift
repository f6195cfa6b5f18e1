import XCTest
@testable import NMTModel
@testable import NMTTensor

/// The whole model's loss (label smoothing, dropout, padded batches) against finite differences,
/// for sampled entries of every parameter tensor.
final class ModelGradientTests: XCTestCase {
    static let sources: [[Int32]] = [[5, 6, 7, 8, 9], [10, 4], [7, 7, 12]]
    static let targets: [[Int32]] = [[6, 9, 4], [11, 5, 8, 10], [4]]

    static func smallModel(shared: Bool, stacked: Bool) throws -> Seq2Seq {
        let config = ModelConfig(sourceVocabSize: 13, targetVocabSize: shared ? 13 : 14, embedSize: 6, encoderHiddenSize: 5,
                                 encoderLayers: stacked ? 2 : 1, decoderHiddenSize: 7, decoderLayers: stacked ? 3 : 2,
                                 attentionSize: 8, sharedEmbeddings: shared, tiedOutput: shared)
        let model = try Seq2Seq(config: config, seed: 42)
        // Larger than the initial weights so every gate and the attention are far from linear.
        var rng = RandomSource(seed: 9)
        randomFill(model.parameters.storage.pointer, model.parameters.count, scale: 0.5, rng: &rng)
        return model
    }

    /// Returns the failures of a check of every tensor; `corrupt` may alter the analytic gradients first.
    func checkModel(_ model: Seq2Seq, dropout: Float, corrupt: ((ParameterBuffer) -> Void)? = nil) -> [GradientCheck.Failure] {
        let batch = Batch(sources: Self.sources, targets: Self.targets)
        // 15 target positions: the output layer and the loss go in chunks of 4, 4, 4 and 3 rows.
        model.outputChunkRows = 4
        func loss() -> Double {
            var rng = RandomSource(seed: 123)  // the same dropout masks at every evaluation
            return model.train(batch, dropout: dropout, labelSmoothing: 0.1, rng: &rng, computeGradients: false).loss
        }
        var rng = RandomSource(seed: 123)
        model.train(batch, dropout: dropout, labelSmoothing: 0.1, rng: &rng)
        let analytic = ParameterBuffer(layout: model.layout)
        analytic.storage.pointer.update(from: model.gradients.storage.pointer, count: model.gradients.count)
        corrupt?(analytic)
        var sampler = RandomSource(seed: 77)
        var failures: [GradientCheck.Failure] = []
        for view in model.layout.views {
            failures += GradientCheck().check(view.name, values: model.parameters[view], analytic: analytic[view], count: view.count,
                                              rng: &sampler, loss: loss)
        }
        return failures
    }

    func testSeparateVocabulariesStackedLayersWithDropout() throws {
        let model = try Self.smallModel(shared: false, stacked: true)
        XCTAssertEqual(model.layout.views.count, 36)
        let failures = checkModel(model, dropout: 0.2)
        XCTAssertTrue(failures.isEmpty, "\(failures.count) failures: \(failures)")
    }

    /// Three encoder layers, two stacked decoder layers above the conditional GRU (so the backward
    /// pass hands gradients down a chain of them), shared embeddings with an untied output.
    func testDeepStacksSharedEmbeddingsUntiedOutput() throws {
        let config = ModelConfig(sourceVocabSize: 13, targetVocabSize: 13, embedSize: 6, encoderHiddenSize: 4, encoderLayers: 3,
                                 decoderHiddenSize: 5, decoderLayers: 4, attentionSize: 6, sharedEmbeddings: true, tiedOutput: false)
        let model = try Seq2Seq(config: config, seed: 43)
        var rng = RandomSource(seed: 10)
        randomFill(model.parameters.storage.pointer, model.parameters.count, scale: 0.5, rng: &rng)
        XCTAssertNotNil(model.layout.view(named: "decoder.gru4.weight_hh"))
        XCTAssertNotNil(model.layout.view(named: "decoder.output.weight"))
        let failures = checkModel(model, dropout: 0.2)
        XCTAssertTrue(failures.isEmpty, "\(failures.count) failures: \(failures)")
    }

    func testSharedAndTiedEmbeddings() throws {
        let model = try Self.smallModel(shared: true, stacked: false)
        XCTAssertNil(model.layout.view(named: "decoder.embedding.weight"))
        XCTAssertNil(model.layout.view(named: "decoder.output.weight"))
        let failures = checkModel(model, dropout: 0)
        XCTAssertTrue(failures.isEmpty, "\(failures.count) failures: \(failures)")
    }

    /// The checker is sharp enough to see a gradient that is 5% off in one tensor.
    func testCheckCatchesAWrongGradient() throws {
        let model = try Self.smallModel(shared: false, stacked: false)
        let target = model.layout.view(named: "decoder.gru1.weight_hh")!
        let failures = checkModel(model, dropout: 0) { grads in
            let g = grads[target]
            for i in 0..<target.count { g[i] *= 1.05 }
        }
        XCTAssertFalse(failures.isEmpty)
        XCTAssertTrue(failures.allSatisfy { $0.tensor == target.name }, "\(failures)")
    }

    /// A padded batch gives every sentence the logits it gets alone (within 1e-5).
    func testBatchedEqualsPerSentence() throws {
        let model = try Self.smallModel(shared: false, stacked: true)
        var rng = RandomSource(seed: 1)
        let batch = Batch(sources: Self.sources, targets: Self.targets)
        model.train(batch, rng: &rng, computeGradients: false)
        let v = model.config.targetVocabSize, b = batch.size
        // train() leaves dL/dlogits in place; recompute the logits with forward only.
        let batched = logits(model, batch)
        for s in 0..<b {
            let single = Batch(sources: [Self.sources[s]], targets: [Self.targets[s]])
            let alone = logits(model, single)
            for j in 0..<single.targetSteps {
                for k in 0..<v {
                    XCTAssertEqual(batched[(j * b + s) * v + k], alone[j * v + k], accuracy: 1e-5, "sentence \(s) step \(j)")
                }
            }
        }
    }

    private func logits(_ model: Seq2Seq, _ batch: Batch) -> [Float] {
        batch.sourceTokens.withUnsafeBufferPointer { tokens in
            batch.sourceMask.withUnsafeBufferPointer { mask in
                batch.targetInput.withUnsafeBufferPointer { input in
                    model.encoder.forward(model.parameters, tokens: tokens.baseAddress!, mask: mask.baseAddress!, steps: batch.sourceSteps,
                                          batch: batch.size, dropout: .none)
                    model.decoder.forward(model.parameters, annotations: model.encoder.annotations, sourceMask: mask.baseAddress!,
                                          sourceSteps: batch.sourceSteps, targetInput: input.baseAddress!, steps: batch.targetSteps,
                                          batch: batch.size, dropout: .none)
                }
            }
        }
        return Array(UnsafeBufferPointer(start: model.decoder.logits.pointer, count: batch.targetSteps * batch.size * model.config.targetVocabSize))
    }
}
