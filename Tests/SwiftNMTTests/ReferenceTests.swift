import CKernels
import XCTest
@testable import NMTModel
@testable import NMTTensor

/// The model's equations as docs/model.md states them, computed here in Double from the parameter
/// views, against the code's Float results. The gradient checks prove that forward and backward agree
/// with each other; these prove that the forward computes the documented function (a GRU with the
/// roles of z and 1 − z swapped, consistently in both passes, passes every gradient check).
final class ReferenceTests: XCTestCase {
    /// |code − reference| ≤ 1e-4 · (1 + |reference|): Float arithmetic and the kernels' polynomial exp
    /// are far inside it, a wrong equation far outside.
    /// One failure per vector, naming its worst element.
    func assertClose(_ code: [Float], _ reference: [Double], _ message: @autoclosure () -> String,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(code.count, reference.count, message(), file: file, line: line)
        let excess = zip(code, reference).map { abs(Double($0) - $1) / (1 + abs($1)) }
        guard let worst = excess.indices.max(by: { excess[$0] < excess[$1] }), excess[worst] > 1e-4 else { return }
        XCTFail("\(message()): element \(worst) is \(code[worst]), the reference \(reference[worst])", file: file, line: line)
    }

    // MARK: The GRU cell alone

    /// torch.nn.GRU's cell on random weights and biases (biases non-zero, so the reset gate's place
    /// relative to b_hn matters), over a few steps from a random initial state.
    func testGRUCellFollowsTorchEquations() {
        var rng = RandomSource(seed: 21)
        let steps = 4, batch = 3, inputs = 5, hidden = 6
        var layout = ParameterLayout()
        let weights = GRUWeights.add("gru", inputSize: inputs, hiddenSize: hidden, to: &layout)
        let p = ParameterBuffer(layout: layout)
        randomFill(p.storage.pointer, p.count, scale: 0.8, rng: &rng)
        let input = FloatBuffer(count: steps * batch * inputs), h0 = FloatBuffer(count: batch * hidden)
        randomFill(input.pointer, input.count, scale: 1, rng: &rng)
        randomFill(h0.pointer, h0.count, scale: 0.8, rng: &rng)
        let gru = GRUSequence(weights: weights)
        gru.forward(p, input: input.pointer, steps: steps, batch: batch, mask: nil, initial: h0.pointer)

        let reference = DoubleGRU(p, weights)
        for b in 0..<batch {
            var h = (0..<hidden).map { Double(h0[b * hidden + $0]) }
            for t in 0..<steps {
                h = reference.step(x: (0..<inputs).map { Double(input[(t * batch + b) * inputs + $0]) }, h: h)
                assertClose(Array(UnsafeBufferPointer(start: gru.output(t) + b * hidden, count: hidden)), h, "sentence \(b), step \(t)")
            }
        }
    }

    // MARK: The attention alone

    /// The attention kernel the conditional GRU calls: e_t = v · tanh(k_t + q) over the real source
    /// positions, α = softmax(e) with padding getting α = 0, context = Σ_t α_t c_t; three sentences of
    /// lengths 5, 3 and 1 padded to 5 (time-major rows t·B + b, as in batches).
    func testAttentionIsTheMaskedSoftmaxAndItsContext() {
        var rng = RandomSource(seed: 31)
        let steps = 5, batch = 3, attention = 4, context = 6, lengths = [5, 3, 1]
        func random(_ count: Int, scale: Float) -> [Float] { (0..<count).map { _ in rng.uniform(scale) } }
        let keys = random(steps * batch * attention, scale: 1.5), query = random(batch * attention, scale: 1.5)
        let v = random(attention, scale: 2), annotations = random(steps * batch * context, scale: 1)
        let mask = (0..<steps * batch).map { (row: Int) -> Float in row / batch < lengths[row % batch] ? 1 : 0 }
        var alpha = [Float](repeating: .nan, count: batch * steps), contexts = [Float](repeating: .nan, count: batch * context)
        nmt_attention_forward(Int32(steps), Int32(batch), Int32(attention), Int32(context), keys, query, Int32(attention), v, mask,
                              annotations, &alpha, &contexts)

        for b in 0..<batch {
            let real = 0..<lengths[b]
            let energies = real.map { (t: Int) -> Double in
                (0..<attention).reduce(0.0) { sum, a in
                    sum + Double(v[a]) * tanh(Double(keys[(t * batch + b) * attention + a]) + Double(query[b * attention + a]))
                }
            }
            let exps = energies.map { exp($0) }, total = exps.reduce(0, +)
            let weights = exps.map { $0 / total } + [Double](repeating: 0, count: steps - lengths[b])
            let expectedContext = (0..<context).map { (i: Int) -> Double in
                real.reduce(0.0) { $0 + weights[$1] * Double(annotations[($1 * batch + b) * context + i]) }
            }
            assertClose(Array(alpha[b * steps..<(b + 1) * steps]), weights, "attention weights of sentence \(b)")
            assertClose(Array(contexts[b * context..<(b + 1) * context]), expectedContext, "context of sentence \(b)")
        }
    }

    // MARK: The whole decoder step

    /// A tiny model (two encoder layers, three decoder layers, so every kind of tensor is used) with
    /// every parameter random, biases included.
    static func randomModel() -> Seq2Seq {
        let config = ModelConfig(sourceVocabSize: 11, targetVocabSize: 13, embedSize: 6, encoderHiddenSize: 5, encoderLayers: 2,
                                 decoderHiddenSize: 7, decoderLayers: 3, attentionSize: 8)
        let model = try! Seq2Seq(config: config, seed: 5)
        var rng = RandomSource(seed: 6)
        randomFill(model.parameters.storage.pointer, model.parameters.count, scale: 0.7, rng: &rng)
        return model
    }

    /// `IncrementalDecoder` over two sentences of different lengths (so the shorter one is padded),
    /// two rows each fed different tokens, checked step by step: the attention weights against the
    /// masked softmax of v·tanh(k_t + W_q s'), the logits against the whole documented decoder.
    func testDecoderStepsFollowTheSpecification() {
        let model = Self.randomModel()
        let sources: [[Int32]] = [[4, 7, 9, 5, 10], [6, 8, 4]]
        let beams = 2
        // Tokens fed to each row (row s·k + j): BOS first, then anything, EOS and padding included.
        let fed: [[Int32]] = [[2, 5, 9, 12], [2, 7, 7, 3], [2, 11, 4, 6], [2, 0, 10, 8]]
        let decoder = IncrementalDecoder(model: model)
        decoder.start(sources: sources, beams: beams)
        let reference = ReferenceModel(model)
        var states = fed.indices.map { reference.start(source: sources[$0 / beams]) }
        let v = model.config.targetVocabSize, ts = decoder.sourceSteps
        for step in 0..<fed[0].count {
            let previous = fed.map { $0[step] }
            previous.withUnsafeBufferPointer { decoder.step(previous: $0.baseAddress!) }
            for row in fed.indices {
                let (logits, alpha) = reference.step(&states[row], previous: fed[row][step])
                let padding = [Double](repeating: 0, count: ts - alpha.count)  // padding gets no attention
                assertClose(Array(UnsafeBufferPointer(start: decoder.attention + row * ts, count: ts)), alpha + padding,
                            "attention weights, step \(step), row \(row)")
                assertClose(Array(UnsafeBufferPointer(start: decoder.logits + row * v, count: v)), logits, "logits, step \(step), row \(row)")
            }
        }
    }
}

// MARK: The reference, in Double

/// One GRU's tensors read as Double, and its step as docs/model.md writes it.
struct DoubleGRU {
    let weightIH: [Double], weightHH: [Double], biasIH: [Double], biasHH: [Double]
    let inputSize: Int, hiddenSize: Int

    init(_ p: ParameterBuffer, _ w: GRUWeights) {
        weightIH = doubles(p, w.weightIH); weightHH = doubles(p, w.weightHH)
        biasIH = doubles(p, w.biasIH); biasHH = doubles(p, w.biasHH)
        inputSize = w.inputSize; hiddenSize = w.hiddenSize
    }

    init(_ model: Seq2Seq, _ prefix: String) {
        let view = { (name: String) in model.layout.view(named: "\(prefix).\(name)")! }
        weightIH = doubles(model.parameters, view("weight_ih")); weightHH = doubles(model.parameters, view("weight_hh"))
        biasIH = doubles(model.parameters, view("bias_ih")); biasHH = doubles(model.parameters, view("bias_hh"))
        hiddenSize = biasIH.count / 3; inputSize = weightIH.count / (3 * hiddenSize)
    }

    /// r = σ(W_ir x + b_ir + W_hr h + b_hr), z = σ(W_iz x + b_iz + W_hz h + b_hz),
    /// n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 − z) ⊙ n + z ⊙ h.
    func step(x: [Double], h: [Double]) -> [Double] {
        let gi = affine(weightIH, biasIH, x), gh = affine(weightHH, biasHH, h), n = hiddenSize
        return (0..<n).map { i in
            let r = sigmoid(gi[i] + gh[i])
            let z = sigmoid(gi[n + i] + gh[n + i])
            let candidate = tanh(gi[2 * n + i] + r * gh[2 * n + i])
            return (1 - z) * candidate + z * h[i]
        }
    }
}

/// The encoder and decoder of docs/model.md for one hypothesis, from the model's named tensors.
struct ReferenceModel {
    struct State {
        var annotations: [[Double]] = [], keys: [[Double]] = []
        /// The decoder layers' states: [0] the conditional GRU's s_j, then each stacked layer's.
        var layers: [[Double]] = []
    }

    let model: Seq2Seq
    init(_ model: Seq2Seq) { self.model = model }

    func tensor(_ name: String) -> [Double] { doubles(model.parameters, model.layout.view(named: name)!) }
    func row(_ name: String, _ index: Int32, width: Int) -> [Double] { Array(tensor(name)[Int(index) * width..<(Int(index) + 1) * width]) }

    /// Encodes the source; s_0 = tanh(W_init · mean(c) + b_init) starts every decoder layer; k_t = U_a c_t + b_a.
    func start(source: [Int32]) -> State {
        let c = model.config
        let embedded = source.map { row("encoder.embedding.weight", $0, width: c.embedSize) }
        let forward = DoubleGRU(model, "encoder.gru0.forward"), backward = DoubleGRU(model, "encoder.gru0.backward")
        var h = [Double](repeating: 0, count: c.encoderHiddenSize)
        let forwardStates = embedded.map { e in h = forward.step(x: e, h: h); return h }
        h = [Double](repeating: 0, count: c.encoderHiddenSize)
        let backwardStates = Array(embedded.reversed().map { e in h = backward.step(x: e, h: h); return h }.reversed())
        var annotations = zip(forwardStates, backwardStates).map { $0 + $1 }
        for l in 1..<c.encoderLayers {
            let layer = DoubleGRU(model, "encoder.gru\(l)")
            var h = [Double](repeating: 0, count: c.contextSize)
            annotations = annotations.map { x in h = layer.step(x: x, h: h); return h }
        }
        let mean = (0..<c.contextSize).map { i in annotations.map { $0[i] }.reduce(0, +) / Double(annotations.count) }
        let initial = affine(tensor("decoder.init.weight"), tensor("decoder.init.bias"), mean).map(tanh)
        let keys = annotations.map { affine(tensor("decoder.attention.key.weight"), tensor("decoder.attention.key.bias"), $0) }
        return State(annotations: annotations, keys: keys, layers: Array(repeating: initial, count: c.decoderLayers - 1))
    }

    /// One target position with input `previous`: returns the logits and the attention weights.
    func step(_ state: inout State, previous: Int32) -> (logits: [Double], attention: [Double]) {
        let c = model.config
        let f = row("decoder.embedding.weight", previous, width: c.embedSize)
        let intermediate = DoubleGRU(model, "decoder.gru1").step(x: f, h: state.layers[0])
        let query = affine(tensor("decoder.attention.query.weight"), nil, intermediate)
        let v = tensor("decoder.attention.score.weight")
        let energies = state.keys.map { key in zip(v, zip(key, query).map { tanh($0 + $1) }).map(*).reduce(0, +) }
        let largest = energies.max()!
        let exps = energies.map { exp($0 - largest) }, total = exps.reduce(0, +)
        let alpha = exps.map { $0 / total }
        let context = (0..<c.contextSize).map { i in zip(alpha, state.annotations).map { $0 * $1[i] }.reduce(0, +) }
        state.layers[0] = DoubleGRU(model, "decoder.gru2").step(x: context, h: intermediate)
        for l in 1..<state.layers.count {
            state.layers[l] = DoubleGRU(model, "decoder.gru\(l + 2)").step(x: state.layers[l - 1], h: state.layers[l])
        }
        let t = affine(tensor("decoder.deep_output.weight"), tensor("decoder.deep_output.bias"), state.layers.last! + f + context).map(tanh)
        return (affine(tensor("decoder.output.weight"), tensor("decoder.output.bias"), t), alpha)
    }
}

func doubles(_ p: ParameterBuffer, _ view: ParameterView) -> [Double] {
    UnsafeBufferPointer(start: p[view], count: view.count).map(Double.init)
}

/// W·x + b for W stored [out, in].
func affine(_ weight: [Double], _ bias: [Double]?, _ x: [Double]) -> [Double] {
    let outputs = weight.count / x.count
    var y = [Double](repeating: 0, count: outputs)
    for o in 0..<outputs {
        var sum: Double = bias?[o] ?? 0
        for i in 0..<x.count { sum += weight[o * x.count + i] * x[i] }
        y[o] = sum
    }
    return y
}

func sigmoid(_ x: Double) -> Double { 1 / (1 + exp(-x)) }
