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
            let dropout = Dropout()
            var rng = RandomSource(seed: 17)
            dropout.draw(count: count, rate: rate, rng: &rng)
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
