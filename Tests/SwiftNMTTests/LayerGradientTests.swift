import XCTest
import CKernels
@testable import NMTModel
@testable import NMTTensor

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

/// The decoder's layers one by one, each its forward/backward pair alone, as `Decoder` and
/// `IncrementalDecoder` call them: a random linear functional of the outputs against finite differences.
final class DecoderLayerGradientTests: XCTestCase {
    /// A model to take the layers' parameter views from: untied, so every tensor is its own.
    func smallModel(seed: UInt64) throws -> (Seq2Seq, RandomSource) {
        let config = ModelConfig(sourceVocabSize: 9, targetVocabSize: 11, embedSize: 4, encoderHiddenSize: 3, encoderLayers: 1,
                                 decoderHiddenSize: 5, decoderLayers: 2, attentionSize: 6, sharedEmbeddings: false, tiedOutput: false)
        let model = try Seq2Seq(config: config, seed: seed)
        var rng = RandomSource(seed: seed + 100)
        randomFill(model.parameters.storage.pointer, model.parameters.count, scale: 0.6, rng: &rng)
        model.gradients.zero()
        return (model, rng)
    }

    func random(_ count: Int, _ rng: inout RandomSource, scale: Float = 1) -> FloatBuffer {
        let buffer = FloatBuffer(count: count)
        randomFill(buffer.pointer, count, scale: scale, rng: &rng)
        return buffer
    }

    func check(_ model: Seq2Seq, prefixes: [String], inputs: [(String, FloatBuffer, FloatBuffer)], rng: inout RandomSource,
               loss: () -> Double) -> [GradientCheck.Failure] {
        var failures: [GradientCheck.Failure] = []
        var checked = 0
        for view in model.layout.views where prefixes.contains(where: { view.name.hasPrefix($0) }) {
            failures += GradientCheck().check(view.name, values: model.parameters[view], analytic: model.gradients[view],
                                              count: view.count, rng: &rng, loss: loss)
            checked += 1
        }
        XCTAssertGreaterThan(checked, 0, "no parameter tensor matched \(prefixes)")
        for (name, values, analytic) in inputs {
            failures += GradientCheck().check(name, values: values.pointer, analytic: analytic.pointer, count: values.count, rng: &rng, loss: loss)
        }
        return failures
    }

    func testInitialState() throws {
        var (model, rng) = try smallModel(seed: 1)
        let layer = model.decoderWeights.initialState, p = model.parameters
        let ts = 3, batch = 3, c = model.config.contextSize, d = model.config.decoderHiddenSize
        let annotations = random(ts * batch * c, &rng), readout = random(batch * d, &rng)
        let mask = FloatBuffer((0..<ts * batch).map { [3, 1, 2][$0 % batch] > $0 / batch ? 1 : 0 })
        let mean = FloatBuffer(count: batch * c), s0 = FloatBuffer(count: batch * d)
        func loss() -> Double {
            layer.forward(p, annotations: annotations.pointer, mask: mask.pointer, sourceSteps: ts, batch: batch, mean: mean.pointer,
                          into: s0.pointer)
            return (0..<batch * d).reduce(0.0) { $0 + Double(s0[$1] * readout[$1]) }
        }
        _ = loss()
        let dS0 = FloatBuffer(readout.array), dMean = FloatBuffer(count: batch * c), dAnnotations = FloatBuffer(count: annotations.count)
        layer.backward(p, model.gradients, annotations: annotations.pointer, mask: mask.pointer, sourceSteps: ts, batch: batch,
                       mean: mean.pointer, s0: s0.pointer, dS0: dS0.pointer, dMean: dMean.pointer, dAnnotations: dAnnotations.pointer)
        let failures = check(model, prefixes: ["decoder.init."], inputs: [("annotations", annotations, dAnnotations)], rng: &rng, loss: loss)
        XCTAssertTrue(failures.isEmpty, "\(failures)")
        // A padded position contributes nothing to the mean.
        XCTAssertEqual(dAnnotations[(2 * batch + 1) * c], 0)
    }

    /// Two steps of the conditional GRU with keys, GRU1's input projection and the batched weight
    /// gradients, exactly as `Decoder` strings them together; the readout covers s_j and ctx_j.
    func testConditionalGRUSteps() throws {
        var (model, rng) = try smallModel(seed: 2)
        let layer = model.decoderWeights.conditionalGRU, p = model.parameters, grads = model.gradients
        let steps = 2, batch = 2, ts = 3, c = layer.contextSize, d = layer.hiddenSize, a = layer.attentionSize
        let e = layer.gru1.inputSize, g = 3 * d
        let embedded = random(steps * batch * e, &rng), annotations = random(ts * batch * c, &rng), s0 = random(batch * d, &rng, scale: 0.5)
        let mask = FloatBuffer([1, 1, 1, 1, 1, 0])  // the second sentence has two source positions
        let readStates = random(steps * batch * d, &rng), readContexts = random(steps * batch * c, &rng)
        let activations = ConditionalGRUActivations()
        let keys = FloatBuffer(count: ts * batch * a), inputProjection = FloatBuffer(count: steps * batch * g)
        let source = ConditionalGRU.Source(keys: keys.pointer, annotations: annotations.pointer, mask: mask.pointer, steps: ts)
        func step(_ j: Int) -> ConditionalGRU.Step {
            activations.step(j, layer, inputProjection: inputProjection.pointer + j * batch * g, sourceSteps: ts)
        }
        func loss() -> Double {
            activations.reserve(layer, steps: steps, batch: batch, sourceSteps: ts, gradients: true)
            activations.states.pointer.update(from: s0.pointer, count: batch * d)
            layer.projectKeys(p, annotations: annotations.pointer, rows: ts * batch, into: keys.pointer)
            layer.gru1.projectInputs(p, embedded.pointer, rows: steps * batch, into: inputProjection.pointer)
            layer.fillQueryBias(p, into: activations.queryBias.pointer)
            for j in 0..<steps { layer.forward(p, queryBias: activations.queryBias.pointer, rows: batch, source: source, step: step(j)) }
            var sum = 0.0
            for i in 0..<steps * batch * d { sum += Double(activations.states[batch * d + i] * readStates[i]) }
            for i in 0..<steps * batch * c { sum += Double(activations.contexts[i] * readContexts[i]) }
            return sum
        }
        _ = loss()
        let dKeys = FloatBuffer(count: keys.count), dAnnotations = FloatBuffer(count: annotations.count)
        let dEmbedded = FloatBuffer(count: embedded.count)
        activations.dState.zero(batch * d)
        for j in stride(from: steps - 1, through: 0, by: -1) {
            let gradients = activations.stepGradients(j, layer)
            BLAS.axpy(batch * d, x: readStates.pointer + j * batch * d, y: gradients.dState)
            gradients.dContext.update(from: readContexts.pointer + j * batch * c, count: batch * c)
            layer.backward(p, grads, rows: batch, source: source, step: step(j), gradients: gradients, dKeys: dKeys.pointer,
                           dAnnotations: dAnnotations.pointer)
        }
        let dS0 = FloatBuffer(Array(activations.dState.array.prefix(batch * d)))
        layer.weightsBackward(p, grads, rows: steps * batch, previousStates: activations.states.pointer,
                              intermediate: activations.intermediate.pointer, contexts: activations.contexts.pointer,
                              dRecurrent1: activations.dRecurrent1.pointer, dGRU2InputProjection: activations.dGRU2InputProjection.pointer,
                              dQueryAndRecurrent: activations.dQueryAndRecurrent.pointer)
        layer.gru1.projectInputsBackward(p, grads, embedded.pointer, rows: steps * batch,
                                         dInputProjection: activations.dInputProjection.pointer, dInput: dEmbedded.pointer)
        layer.projectKeysBackward(p, grads, annotations: annotations.pointer, rows: ts * batch, dKeys: dKeys.pointer,
                                  dAnnotations: dAnnotations.pointer)
        let failures = check(model, prefixes: ["decoder.gru1.", "decoder.gru2.", "decoder.attention."],
                             inputs: [("embedded", embedded, dEmbedded), ("annotations", annotations, dAnnotations), ("s0", s0, dS0)],
                             rng: &rng, loss: loss)
        XCTAssertTrue(failures.isEmpty, "\(failures)")
    }

    /// The deep output and the output projection, with dropout on (the same masks at every evaluation).
    func testDeepOutputWithDropout() throws {
        var (model, rng) = try smallModel(seed: 3)
        let layer = model.decoderWeights.deepOutput, p = model.parameters
        let rows = 5, d = layer.hiddenSize, e = layer.embedSize, c = layer.contextSize, uw = layer.inputWidth
        let top = random(rows * d, &rng), embedded = random(rows * e, &rng), context = random(rows * c, &rng)
        let readout = random(rows * layer.vocabSize, &rng)
        let activations = DeepOutput.Activations()
        activations.reserve(layer, rows: rows, gradients: true)
        func loss() -> Double {
            let masks = DropoutKeys(rate: 0.3, seed: 55, sentences: [0])  // the same masks at every evaluation
            layer.forward(p, rows: rows, top: top.pointer, embedded: embedded.pointer, context: context.pointer, dropout: masks,
                          activations)
            return (0..<rows * layer.vocabSize).reduce(0.0) { $0 + Double(activations.logits[$1] * readout[$1]) }
        }
        _ = loss()
        XCTAssertTrue(activations.stateDropout.active && activations.hiddenDropout.active)
        activations.logits.pointer.update(from: readout.pointer, count: readout.count)
        layer.backward(p, model.gradients, rows: rows, activations)
        let du = activations.dInput.pointer
        let dTop = FloatBuffer((0..<rows * d).map { du[($0 / d) * uw + $0 % d] })
        let dEmbedded = FloatBuffer((0..<rows * e).map { du[($0 / e) * uw + d + $0 % e] })
        let dContext = FloatBuffer((0..<rows * c).map { du[($0 / c) * uw + d + e + $0 % c] })
        let failures = check(model, prefixes: ["decoder.deep_output.", "decoder.output."],
                             inputs: [("top", top, dTop), ("embedded", embedded, dEmbedded), ("context", context, dContext)],
                             rng: &rng, loss: loss)
        XCTAssertTrue(failures.isEmpty, "\(failures)")
    }
}
