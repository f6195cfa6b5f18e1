import CKernels
import NMTTensor

/// The four tensors of one GRU in torch.nn.GRU's layout: gates stacked as (reset, update, new).
///   weight_ih [3H, In]   weight_hh [3H, H]   bias_ih [3H]   bias_hh [3H]
public struct GRUWeights: Sendable {
    public let weightIH, weightHH, biasIH, biasHH: ParameterView
    public let inputSize, hiddenSize: Int

    static func add(_ prefix: String, inputSize: Int, hiddenSize: Int, to layout: inout ParameterLayout,
                    weightHHFirst: ParameterView? = nil) -> GRUWeights {
        let wih = layout.add("\(prefix).weight_ih", [3 * hiddenSize, inputSize])
        let whh = weightHHFirst ?? layout.add("\(prefix).weight_hh", [3 * hiddenSize, hiddenSize])
        let bih = layout.add("\(prefix).bias_ih", [3 * hiddenSize])
        let bhh = layout.add("\(prefix).bias_hh", [3 * hiddenSize])
        return GRUWeights(weightIH: wih, weightHH: whh, biasIH: bih, biasHH: bhh, inputSize: inputSize, hiddenSize: hiddenSize)
    }
}

/// One GRU run over a time-major sequence, forward or reversed, with padding masks. Like a Marian
/// cell plus its recurrence driver: the input projections of all time steps are one GEMM, each step
/// is one recurrent GEMM for the whole batch plus the fused gate kernel, and the backward pass
/// batches all weight gradients into GEMMs after the time loop.
///
/// Shapes (T steps, B sentences, H hidden, In inputs):
///   input [T·B, In] (row t·B + b)        inputProjection (gi) [T·B, 3H], indexed by time
///   states [(T+1)·B, H]: slot 0 is h0, slot s+1 the state after processing step s
///   cache [T·B, 4H] and dRecurrent (dgh) [T·B, 3H], indexed by processing step
/// Step s processes time t = s (forward) or T−1−s (reversed), so `output(t)` is slot t+1 or T−t.
final class GRUSequence {
    let weights: GRUWeights
    let reversed: Bool
    private(set) var steps = 0, batch = 0
    let inputProjection = FloatBuffer(count: 0)
    let states = FloatBuffer(count: 0)
    let cache = FloatBuffer(count: 0)
    let recurrentProjection = FloatBuffer(count: 0)  // [B, 3H], one step's W_hh·h + b_hh
    let dInputProjection = FloatBuffer(count: 0)
    let dRecurrent = FloatBuffer(count: 0)
    let dState = FloatBuffer(count: 0)                // [B, H], carried backwards through time
    let dStatePrevious = FloatBuffer(count: 0)        // [B, H]

    init(weights: GRUWeights, reversed: Bool = false) {
        self.weights = weights
        self.reversed = reversed
    }

    var hiddenSize: Int { weights.hiddenSize }

    func reserve(steps: Int, batch: Int) {
        self.steps = steps
        self.batch = batch
        let h = weights.hiddenSize, rows = steps * batch
        inputProjection.reserve(rows * 3 * h)
        states.reserve((steps + 1) * batch * h)
        cache.reserve(rows * 4 * h)
        recurrentProjection.reserve(batch * 3 * h)
        dInputProjection.reserve(rows * 3 * h)
        dRecurrent.reserve(rows * 3 * h)
        dState.reserve(batch * h)
        dStatePrevious.reserve(batch * h)
    }

    @inline(__always) func time(ofStep s: Int) -> Int { reversed ? steps - 1 - s : s }
    @inline(__always) func slot(ofTime t: Int) -> Int { reversed ? steps - t : t + 1 }
    /// Hidden state [B, H] after time t.
    @inline(__always) func output(_ t: Int) -> UnsafeMutablePointer<Float> { states.pointer + slot(ofTime: t) * batch * hiddenSize }

    /// Runs the GRU over `input` [T·B, In]. `initial` [B, H] is h0 (nil: zeros); `mask` [T·B] or nil.
    func forward(_ p: ParameterBuffer, input: UnsafePointer<Float>, steps: Int, batch: Int,
                 mask: UnsafePointer<Float>?, initial: UnsafePointer<Float>?) {
        reserve(steps: steps, batch: batch)
        let h = hiddenSize, g = 3 * h, w = weights
        BLAS.linear(input, rows: steps * batch, inputs: w.inputSize, weight: p[w.weightIH], bias: p[w.biasIH],
                    outputs: g, into: inputProjection.pointer)
        if let initial { states.pointer.update(from: initial, count: batch * h) } else { states.zero(batch * h) }
        for s in 0..<steps {
            let t = time(ofStep: s)
            let previous = states.pointer + s * batch * h
            BLAS.linear(previous, rows: batch, inputs: h, weight: p[w.weightHH], bias: p[w.biasHH], outputs: g,
                        into: recurrentProjection.pointer)
            nmt_gru_forward(Int32(batch), Int32(h), inputProjection.pointer + t * batch * g, Int32(g),
                            recurrentProjection.pointer, Int32(g), previous, mask.map { $0 + t * batch },
                            cache.pointer + s * batch * 4 * h, states.pointer + (s + 1) * batch * h)
        }
    }

    /// Backward pass. `dOutput(t)` gives dL/d(output at t) [B, H] or nil when none arrives there.
    /// Accumulates weight gradients into `grads`, adds dL/dinput into `dInput` [T·B, In] when given,
    /// and writes dL/dh0 into `dInitial` [B, H] when given.
    func backward(_ p: ParameterBuffer, _ grads: ParameterBuffer, input: UnsafePointer<Float>,
                  mask: UnsafePointer<Float>?, dOutput: (Int) -> UnsafePointer<Float>?,
                  dInput: UnsafeMutablePointer<Float>?, dInitial: UnsafeMutablePointer<Float>?) {
        let h = hiddenSize, g = 3 * h, w = weights, bh = batch * h
        dState.zero(bh)
        for s in stride(from: steps - 1, through: 0, by: -1) {
            let t = time(ofStep: s)
            if let d = dOutput(t) { BLAS.axpy(bh, x: d, y: dState.pointer) }
            nmt_gru_backward(Int32(batch), Int32(h), cache.pointer + s * batch * 4 * h, states.pointer + s * bh,
                             mask.map { $0 + t * batch }, dState.pointer,
                             dInputProjection.pointer + t * batch * g, Int32(g),
                             dRecurrent.pointer + s * batch * g, Int32(g), dStatePrevious.pointer)
            // dh_{prev} = direct part + dgh · W_hh
            BLAS.gemm(m: batch, n: h, k: g, a: dRecurrent.pointer + s * batch * g, lda: g, b: p[w.weightHH], ldb: h,
                      beta: 1, c: dStatePrevious.pointer, ldc: h)
            dState.pointer.update(from: dStatePrevious.pointer, count: bh)
        }
        if let dInitial { dInitial.update(from: dState.pointer, count: bh) }
        let rows = steps * batch
        // Recurrent weights: rows of dRecurrent (by step) pair with states slots 0..T−1 (the previous state of each step).
        BLAS.linearBackward(states.pointer, rows: rows, inputs: h, weight: p[w.weightHH], outputs: g,
                            dy: dRecurrent.pointer, dWeight: grads[w.weightHH], dBias: grads[w.biasHH],
                            dx: nil, accumulateDx: false)
        BLAS.linearBackward(input, rows: rows, inputs: w.inputSize, weight: p[w.weightIH], outputs: g,
                            dy: dInputProjection.pointer, dWeight: grads[w.weightIH], dBias: grads[w.biasIH],
                            dx: dInput, accumulateDx: true)
    }
}
