import XCTest
import CKernels
@testable import NMTMetrics
@testable import NMTModel
@testable import NMTModelFiles
@testable import NMTSearch
@testable import NMTTensor
@testable import NMTText
@testable import NMTTraining

/// Each layer alone: a random linear functional of its outputs, L = Σ R ⊙ output, checked against
/// finite differences for every input and parameter tensor.
final class LayerGradientTests: XCTestCase {
    func testGRUSequenceForwardAndReversedWithPadding() {
        for reversed in [false, true] {
            var rng = RandomSource(seed: reversed ? 7 : 3)
            let steps = 5, batch = 3, inputs = 4, hidden = 6
            var layout = ParameterLayout()
            let weights = GRUWeights.add("gru", inputSize: inputs, hiddenSize: hidden, to: &layout)
            let p = ParameterBuffer(layout: layout), grads = ParameterBuffer(layout: layout)
            randomFill(p.storage.pointer, p.count, scale: 0.6, rng: &rng)
            let input = FloatBuffer(count: steps * batch * inputs), h0 = FloatBuffer(count: batch * hidden)
            randomFill(input.pointer, input.count, scale: 1, rng: &rng)
            randomFill(h0.pointer, h0.count, scale: 0.5, rng: &rng)
            // Sentence lengths 5, 3, 1: padding at the end, as in batches.
            let lengths = [5, 3, 1]
            let mask = FloatBuffer((0..<steps * batch).map { lengths[$0 % batch] > $0 / batch ? 1 : 0 })
            let readout = FloatBuffer(count: steps * batch * hidden)
            randomFill(readout.pointer, readout.count, scale: 1, rng: &rng)
            let gru = GRUSequence(weights: weights, reversed: reversed)

            func loss() -> Double {
                gru.forward(p, input: input.pointer, steps: steps, batch: batch, mask: mask.pointer, initial: h0.pointer)
                var sum = 0.0
                for t in 0..<steps { for k in 0..<batch * hidden { sum += Double(gru.output(t)[k] * readout[t * batch * hidden + k]) } }
                return sum
            }
            _ = loss()
            grads.zero()
            let dInput = FloatBuffer(count: input.count), dh0 = FloatBuffer(count: h0.count)
            gru.backward(p, grads, input: input.pointer, mask: mask.pointer,
                         dOutput: { t in UnsafePointer(readout.pointer + t * batch * hidden) },
                         dInput: dInput.pointer, dInitial: dh0.pointer)
            let checker = GradientCheck()
            var failures: [GradientCheck.Failure] = []
            for view in layout.views {
                failures += checker.check(view.name, values: p[view], analytic: grads[view], count: view.count, rng: &rng, loss: loss)
            }
            failures += checker.check("input", values: input.pointer, analytic: dInput.pointer, count: input.count, rng: &rng, loss: loss)
            failures += checker.check("h0", values: h0.pointer, analytic: dh0.pointer, count: h0.count, rng: &rng, loss: loss)
            XCTAssertTrue(failures.isEmpty, "reversed=\(reversed): \(failures)")
            // Padded steps must not move the state: sentence 2 (length 1) keeps h after its first token.
            let last = gru.output(reversed ? 0 : steps - 1), only = gru.output(0)
            if !reversed { for k in 0..<hidden { XCTAssertEqual(last[2 * hidden + k], only[2 * hidden + k]) } }
        }
    }

    func testAttentionStep() {
        var rng = RandomSource(seed: 11)
        let ts = 4, batch = 3, a = 5, c = 6, ldq = a + 2
        let keys = FloatBuffer(count: ts * batch * a), query = FloatBuffer(count: batch * ldq), v = FloatBuffer(count: a)
        let enc = FloatBuffer(count: ts * batch * c)
        for buffer in [keys, query, v, enc] { randomFill(buffer.pointer, buffer.count, scale: 1, rng: &rng) }
        let lengths = [4, 2, 3]
        let mask = FloatBuffer((0..<ts * batch).map { lengths[$0 % batch] > $0 / batch ? 1 : 0 })
        let alpha = FloatBuffer(count: batch * ts), ctx = FloatBuffer(count: batch * c), readout = FloatBuffer(count: batch * c)
        randomFill(readout.pointer, readout.count, scale: 1, rng: &rng)
        func loss() -> Double {
            nmt_attention_forward(Int32(ts), Int32(batch), Int32(a), Int32(c), keys.pointer, query.pointer, Int32(ldq), v.pointer,
                                  mask.pointer, enc.pointer, alpha.pointer, ctx.pointer)
            return (0..<batch * c).reduce(0.0) { $0 + Double(ctx[$1] * readout[$1]) }
        }
        _ = loss()
        let dKeys = FloatBuffer(count: keys.count), dQuery = FloatBuffer(count: query.count), dV = FloatBuffer(count: a)
        let dEnc = FloatBuffer(count: enc.count)
        nmt_attention_backward(Int32(ts), Int32(batch), Int32(a), Int32(c), keys.pointer, query.pointer, Int32(ldq), v.pointer,
                               mask.pointer, enc.pointer, alpha.pointer, readout.pointer, dKeys.pointer, dQuery.pointer, Int32(ldq),
                               dV.pointer, dEnc.pointer)
        let checker = GradientCheck()
        var failures: [GradientCheck.Failure] = []
        failures += checker.check("keys", values: keys.pointer, analytic: dKeys.pointer, count: keys.count, rng: &rng, loss: loss)
        failures += checker.check("query", values: query.pointer, analytic: dQuery.pointer, count: query.count, rng: &rng, loss: loss)
        failures += checker.check("v", values: v.pointer, analytic: dV.pointer, count: a, rng: &rng, loss: loss)
        failures += checker.check("annotations", values: enc.pointer, analytic: dEnc.pointer, count: enc.count, rng: &rng, loss: loss)
        XCTAssertTrue(failures.isEmpty, "\(failures)")
        // Masked source positions get no attention.
        XCTAssertEqual(alpha[1 * ts + 2], 0)
        XCTAssertEqual(alpha[1 * ts + 3], 0)
        XCTAssertEqual((0..<ts).reduce(Float(0)) { $0 + alpha[2 * ts + $1] }, 1, accuracy: 1e-6)
    }

    func testLabelSmoothedCrossEntropy() {
        var rng = RandomSource(seed: 5)
        let rows = 4, vocab = 9
        let logits = FloatBuffer(count: rows * vocab)
        randomFill(logits.pointer, logits.count, scale: 3, rng: &rng)
        let targets: [Int32] = [3, 0, 8, 5], weights: [Float] = [1, 1, 0, 1]
        let work = FloatBuffer(count: rows * vocab)
        func loss() -> Double {
            work.pointer.update(from: logits.pointer, count: logits.count)
            return nmt_label_smoothed_xent(work.pointer, Int32(rows), Int32(vocab), targets, weights, 0.1, 1, nil)
        }
        _ = loss()
        let analytic = FloatBuffer(count: logits.count)
        analytic.pointer.update(from: work.pointer, count: work.count)
        let failures = GradientCheck().check("logits", values: logits.pointer, analytic: analytic.pointer, count: logits.count,
                                             largest: 10, random: 10, rng: &rng, loss: loss)
        XCTAssertTrue(failures.isEmpty, "\(failures)")
        // The loss of one row computed directly: −Σ q log p with q = 0.9·onehot + 0.1/V.
        let row = (0..<vocab).map { Double(logits[$0]) }
        let lse = log(row.map { exp($0) }.reduce(0, +))
        let expected = -0.9 * (row[3] - lse) - 0.1 / Double(vocab) * row.map { $0 - lse }.reduce(0, +)
        work.pointer.update(from: logits.pointer, count: vocab)
        XCTAssertEqual(nmt_label_smoothed_xent(work.pointer, 1, Int32(vocab), targets, weights, 0.1, 1, nil), expected, accuracy: 1e-5)
    }
}
