import Foundation
import XCTest
@testable import NMTModel
@testable import NMTTensor
@testable import NMTTraining

/// The training rules checked against what they must compute (docs/model.md, Kingma & Ba), not against
/// what the code computes today: Adam's updates, clipping as the moments see it, the dropout mask, and a
/// validation loss that dropout never touches.
final class OptimizerTests: XCTestCase {
    // MARK: Adam

    /// Three steps over a few parameters against the published algorithm, with its bias corrections:
    /// m = β1 m + (1−β1) g, v = β2 v + (1−β2) g², m̂ = m/(1−β1^t), v̂ = v/(1−β2^t), θ −= lr · m̂/(√v̂ + ε).
    /// Without the corrections the first step alone moves θ by about lr·(1−β1)/√(1−β2) ≈ 3.2·lr instead of lr.
    func testAdamFollowsKingmaAndBa() {
        var layout = ParameterLayout()
        _ = layout.add("w", [5])
        let parameters = ParameterBuffer(layout: layout), gradients = ParameterBuffer(layout: layout)
        let initial: [Float] = [0.5, -1.25, 2, 0, 0.03]
        parameters.storage.pointer.update(from: initial, count: 5)
        // Gradients of different signs and sizes that change from step to step (norms stay below any clipping).
        let gradientSteps: [[Float]] = [[0.1, -0.4, 1.5, 0.002, -0.7], [0.3, 0.2, -1.0, 0.004, -0.6], [-0.2, 0.5, 0.8, -0.001, 0.9]]
        let adam = Adam(parameterCount: 5)
        XCTAssertEqual([adam.beta1, adam.beta2, adam.epsilon], [0.9, 0.999, 1e-8], "Kingma & Ba's defaults")
        let learningRate = 0.01, beta1 = Double(adam.beta1), beta2 = Double(adam.beta2), epsilon = Double(adam.epsilon)

        var theta = initial.map(Double.init), m = [Double](repeating: 0, count: 5), v = m
        for (index, g) in gradientSteps.enumerated() {
            let t = Double(index + 1)
            gradients.storage.pointer.update(from: g, count: 5)
            adam.step(parameters: parameters, gradients: gradients, learningRate: Float(learningRate))
            for i in 0..<5 {
                m[i] = beta1 * m[i] + (1 - beta1) * Double(g[i])
                v[i] = beta2 * v[i] + (1 - beta2) * Double(g[i]) * Double(g[i])
                let mHat = m[i] / (1 - pow(beta1, t)), vHat = v[i] / (1 - pow(beta2, t))
                theta[i] -= learningRate * mHat / (vHat.squareRoot() + epsilon)
            }
            for i in 0..<5 {
                XCTAssertEqual(Double(parameters.storage[i]), theta[i], accuracy: 1e-6, "step \(index + 1), parameter \(i)")
                XCTAssertEqual(Double(adam.firstMoment[i]), m[i], accuracy: 1e-6 * (1 + abs(m[i])), "m, step \(index + 1), parameter \(i)")
                XCTAssertEqual(Double(adam.secondMoment[i]), v[i], accuracy: 1e-6 * (1 + abs(v[i])), "v, step \(index + 1), parameter \(i)")
            }
        }
    }

    /// A gradient whose norm is above clip-norm reaches the moments scaled to the clip norm:
    /// after one step m = (1−β1)·g·(clip/‖g‖) and v = (1−β2)·(g·clip/‖g‖)².
    func testClippingScalesTheGradientTheMomentsSee() {
        var layout = ParameterLayout()
        _ = layout.add("w", [4])
        let parameters = ParameterBuffer(layout: layout), gradients = ParameterBuffer(layout: layout)
        let g: [Float] = [3, -4, 12, 0]  // ‖g‖ = 13
        gradients.storage.pointer.update(from: g, count: 4)
        let adam = Adam(parameterCount: 4), clip: Float = 2
        XCTAssertEqual(adam.step(parameters: parameters, gradients: gradients, learningRate: 0.01, clipNorm: clip), 13,
                       "the norm before clipping is reported")
        for i in 0..<4 {
            let clipped = Double(g[i]) * 2 / 13
            XCTAssertEqual(Double(adam.firstMoment[i]), (1 - 0.9) * clipped, accuracy: 1e-6, "m[\(i)]")
            XCTAssertEqual(Double(adam.secondMoment[i]), (1 - 0.999) * clipped * clipped, accuracy: 1e-7, "v[\(i)]")
        }
    }

    /// The trainer passes its clip norm on: after one update with a tiny --clip-norm the first moment's
    /// norm is exactly (1−β1)·clip, whatever the gradient was.
    func testTrainerClipsItsUpdates() throws {
        var options = TrainerTests.tinyOptions()
        options.maxUpdates = 1
        options.clipNorm = 0.01
        let directory = NSTemporaryDirectory() + "swiftnmt-clip-\(UUID().uuidString)"
        addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
        let trainer = try TrainerTests.makeTrainer(options, directory: directory)
        try trainer.run()
        XCTAssertEqual(trainer.state.update, 1)
        let momentNorm = Adam.gradientNorm(ParameterBuffer(copying: trainer.adam.firstMoment, layout: trainer.model.layout))
        XCTAssertEqual(momentNorm, 0.1 * 0.01, accuracy: 1e-6)
    }

    // MARK: Dropout

    /// Inverted dropout: every mask value is exactly 0 or 1/(1−p), about a fraction p are 0, and the
    /// mean is 1, so the expected activation is unchanged and nothing needs scaling at inference.
    func testDropoutMaskKeepsTheExpectation() {
        let count = 200_000
        for rate: Float in [0.1, 0.3, 0.5] {
            let dropout = Dropout(site: 1)
            // 200,000 entries as [steps 50, batch 8, width 500].
            dropout.draw(count: count, width: 500, keys: DropoutKeys(rate: rate, seed: 17, sentences: (0..<8).map { UInt64($0) * 3 }))
            let mask = UnsafeBufferPointer(start: dropout.mask.pointer, count: count)
            let kept = Float(1) / (1 - rate)
            XCTAssertTrue(mask.allSatisfy { $0 == 0 || abs($0 - kept) <= kept * 1e-6 },
                          "rate \(rate): values other than 0 and \(kept): \(Array(Set(mask).prefix(5)))")
            let zeros = Double(mask.filter { $0 == 0 }.count) / Double(count)
            let mean = mask.reduce(0.0) { $0 + Double($1) } / Double(count)
            // Standard errors at 200,000 draws are below 0.0023: these bounds are over 4 of them.
            XCTAssertEqual(zeros, Double(rate), accuracy: 0.005, "rate \(rate): fraction dropped")
            XCTAssertEqual(mean, 1, accuracy: 0.01, "rate \(rate): mean of the mask")
            // Applying it multiplies by the mask.
            let ones = FloatBuffer([Float](repeating: 1, count: count))
            dropout.apply(ones.pointer, count: count)
            XCTAssertEqual(ones.array, Array(mask))
        }
    }

    /// A sentence's dropout masks depend on its key (its position in the global batch), not on which slice
    /// of the batch computes it: the gradients of a batch, dropout on, are the sum of the gradients of its
    /// slices when each slice keys its sentences by their positions and scales by the whole batch's tokens.
    /// This is what lets processes split a batch (data-parallel training) and still train as one.
    func testSlicesOfABatchAddUpToTheBatch() throws {
        let config = ModelConfig(sourceVocabSize: 30, targetVocabSize: 30, embedSize: 8, encoderHiddenSize: 8, decoderHiddenSize: 12,
                                 attentionSize: 8, sharedEmbeddings: true, tiedOutput: true)
        let model = try Seq2Seq(config: config, seed: 4)
        var rng = RandomSource(seed: 9)
        let sources = (0..<10).map { _ in (0..<(2 + Int(rng.next() % 7))).map { _ in Int32(4 + rng.next() % 26) } }
        let targets = (0..<10).map { _ in (0..<(1 + Int(rng.next() % 8))).map { _ in Int32(4 + rng.next() % 26) } }
        let whole = Batch(sources: sources, targets: targets)
        let keys = DropoutKeys(rate: 0.3, seed: 77, sentences: (0..<10).map { UInt64($0) })
        let wholeLoss = model.train(whole, dropout: keys, labelSmoothing: 0.1)
        let expected = model.gradients.storage.array
        let scale = 1 / Float(whole.targetTokenCount)

        var summed = [Float](repeating: 0, count: expected.count), lossSum = 0.0, nllSum = 0.0
        for slice in [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]] {  // rank r of 2 takes the positions p with p mod 2 = r
            let part = Batch(sources: slice.map { sources[$0] }, targets: slice.map { targets[$0] })
            var sliceKeys = keys
            sliceKeys.sentences = slice.map { UInt64($0) }
            let result = model.train(part, dropout: sliceKeys, labelSmoothing: 0.1, tokenScale: scale)
            lossSum += result.lossSum
            nllSum += result.nllSum
            for (i, g) in model.gradients.storage.array.enumerated() { summed[i] += g }
        }
        XCTAssertEqual(lossSum, wholeLoss.lossSum, accuracy: 1e-3 * abs(wholeLoss.lossSum))
        XCTAssertEqual(nllSum, wholeLoss.nllSum, accuracy: 1e-3 * abs(wholeLoss.nllSum))
        let largest = expected.map(abs).max()!
        XCTAssertGreaterThan(largest, 0)
        for i in expected.indices { XCTAssertEqual(summed[i], expected[i], accuracy: 1e-5 + 1e-3 * abs(expected[i]), "gradient \(i)") }
        // Keyed by their slice positions instead (0..<5 in each), the masks differ and so do the gradients.
        var wrong = [Float](repeating: 0, count: expected.count)
        for slice in [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]] {
            let part = Batch(sources: slice.map { sources[$0] }, targets: slice.map { targets[$0] })
            var sliceKeys = keys
            sliceKeys.sentences = (0..<UInt64(slice.count)).map { $0 }
            model.train(part, dropout: sliceKeys, labelSmoothing: 0.1, tokenScale: scale)
            for (i, g) in model.gradients.storage.array.enumerated() { wrong[i] += g }
        }
        let mismatches = expected.indices.filter { abs(wrong[$0] - expected[$0]) > 1e-5 + 1e-3 * abs(expected[$0]) }.count
        XCTAssertGreaterThan(mismatches, expected.count / 10)
    }

    // MARK: Validation

    /// Validation measures the model as it translates, without dropout: the training options' dropout
    /// rate must not change the validation loss of the same weights.
    func testValidationLossDoesNotDependOnDropout() throws {
        func validationLoss(dropout: Float) throws -> Double {
            var options = TrainerTests.tinyOptions()
            options.dropout = dropout
            let directory = NSTemporaryDirectory() + "swiftnmt-validation-\(UUID().uuidString)"
            addTeardownBlock { try? FileManager.default.removeItem(atPath: directory) }
            let trainer = try TrainerTests.makeTrainer(options, directory: directory)
            return try XCTUnwrap(trainer.validationLoss()).loss
        }
        let withoutDropout = try validationLoss(dropout: 0)
        XCTAssertEqual(try validationLoss(dropout: 0.3), withoutDropout)
        XCTAssertEqual(try validationLoss(dropout: 0.5), withoutDropout)
    }
}

extension ParameterBuffer {
    /// A buffer of `layout` holding a copy of `values` (e.g. an optimizer moment, to take its norm).
    convenience init(copying values: FloatBuffer, layout: ParameterLayout) {
        self.init(layout: layout)
        storage.pointer.update(from: values.pointer, count: count)
    }
}
