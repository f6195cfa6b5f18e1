import CKernels
import NMTTensor

/// The four tensors of one GRU in torch.nn.GRU's layout: gates stacked as (reset, update, new).
///   weight_ih [3H, In]   weight_hh [3H, H]   bias_ih [3H]   bias_hh [3H]
struct GRUWeights: Sendable {
    let weightIH, weightHH, biasIH, biasHH: ParameterView
    let inputSize, hiddenSize: Int

    static func add(_ prefix: String, inputSize: Int, hiddenSize: Int, to layout: inout ParameterLayout,
                    weightHHFirst: ParameterView? = nil) -> GRUWeights {
        let wih = layout.add("\(prefix).weight_ih", [3 * hiddenSize, inputSize])
        let whh = weightHHFirst ?? layout.add("\(prefix).weight_hh", [3 * hiddenSize, hiddenSize])
        let bih = layout.add("\(prefix).bias_ih", [3 * hiddenSize])
        let bhh = layout.add("\(prefix).bias_hh", [3 * hiddenSize])
        return GRUWeights(weightIH: wih, weightHH: whh, biasIH: bih, biasHH: bhh, inputSize: inputSize, hiddenSize: hiddenSize)
    }
}

// MARK: The cell: input projections of all rows at once, then one step at a time

/// Shapes (N rows, B rows of one step, H hidden, In inputs):
///   input [N, In] → inputProjection gi [N, 3H];  previous h [B, H] → cache [B, 4H] (r, z, n, gh_n), next h [B, H]
/// Used by every GRU of the model: the encoder's layers, the decoder's stacked layers, and the
/// conditional GRU's first half, in training (`GRUSequence`) and in step-by-step decoding alike.
extension GRUWeights {
    /// gi = input · W_ihᵀ + b_ih for all rows at once (all time steps of a sequence in one GEMM).
    func projectInputs(_ p: ParameterBuffer, _ input: UnsafePointer<Float>, rows: Int, into inputProjection: UnsafeMutablePointer<Float>) {
        p.linear(input, rows: rows, inputs: inputSize, weight: weightIH, bias: p[biasIH], outputs: 3 * hiddenSize,
                    into: inputProjection)
    }

    /// Backward of `projectInputs` over all rows: dW_ih, db_ih, and dInput += dgi · W_ih when given.
    func projectInputsBackward(_ p: ParameterBuffer, _ grads: ParameterBuffer, _ input: UnsafePointer<Float>, rows: Int,
                               dInputProjection: UnsafePointer<Float>, dInput: UnsafeMutablePointer<Float>?) {
        BLAS.linearBackward(input, rows: rows, inputs: inputSize, weight: p[weightIH], outputs: 3 * hiddenSize,
                            dy: dInputProjection, dWeight: grads[weightIH], dBias: grads[biasIH], dx: dInput, accumulateDx: true)
    }

    /// One step for `rows` rows: gh = h · W_hhᵀ + b_hh (into `recurrent`), then the gates.
    /// `mask` [B] or nil: a masked row keeps its previous state.
    func step(_ p: ParameterBuffer, inputProjection: UnsafePointer<Float>, ldInputProjection: Int? = nil,
              previous: UnsafePointer<Float>, rows: Int, mask: UnsafePointer<Float>?,
              recurrent: UnsafeMutablePointer<Float>, cache: UnsafeMutablePointer<Float>, into next: UnsafeMutablePointer<Float>) {
        let h = hiddenSize, g = 3 * h
        p.linear(previous, rows: rows, inputs: h, weight: weightHH, bias: p[biasHH], outputs: g, into: recurrent)
        nmt_gru_forward(Int32(rows), Int32(h), inputProjection, Int32(ldInputProjection ?? g), recurrent, Int32(g), previous, mask,
                        cache, next)
    }

    /// Backward of `step` given dL/dnext (`dNext` [B, H]): writes dgi and dgh [B, 3H] and
    /// dL/dprevious = the gates' direct part + dgh · W_hh (into `dPrevious` [B, H]).
    func stepBackward(_ p: ParameterBuffer, cache: UnsafePointer<Float>, previous: UnsafePointer<Float>, rows: Int,
                      mask: UnsafePointer<Float>?, dNext: UnsafePointer<Float>,
                      dInputProjection: UnsafeMutablePointer<Float>, dRecurrent: UnsafeMutablePointer<Float>,
                      dPrevious: UnsafeMutablePointer<Float>) {
        let h = hiddenSize, g = 3 * h
        nmt_gru_backward(Int32(rows), Int32(h), cache, previous, mask, dNext, dInputProjection, Int32(g), dRecurrent, Int32(g), dPrevious)
        BLAS.gemm(m: rows, n: h, k: g, a: dRecurrent, lda: g, b: p[weightHH], ldb: h, beta: 1, c: dPrevious, ldc: h)
    }

    /// The recurrent weights' gradients of all steps at once: dW_hh += dghᵀ · previous states, db_hh += Σ dgh.
    func recurrentBackward(_ p: ParameterBuffer, _ grads: ParameterBuffer, previousStates: UnsafePointer<Float>, rows: Int, dRecurrent: UnsafePointer<Float>) {
        BLAS.linearBackward(previousStates, rows: rows, inputs: hiddenSize, weight: p[weightHH], outputs: 3 * hiddenSize,
                            dy: dRecurrent, dWeight: grads[weightHH], dBias: grads[biasHH], dx: nil, accumulateDx: false)
    }
}

// MARK: The recurrence driver

/// One GRU run over a time-major sequence, forward or reversed, with padding masks. Like Marian's
/// recurrence driver: it loops over time and direction and applies masks, and leaves the math of a
/// step to the cell above; the weight gradients of all steps are batched into GEMMs after the loop.
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
    }

    /// The backward pass's buffers, reserved only when one runs (search never touches them).
    private func reserveGradients() {
        let h = weights.hiddenSize, rows = steps * batch
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
        let h = hiddenSize, g = 3 * h, bh = batch * h
        weights.projectInputs(p, input, rows: steps * batch, into: inputProjection.pointer)
        if let initial { states.pointer.update(from: initial, count: bh) } else { states.zero(bh) }
        for s in 0..<steps {
            let t = time(ofStep: s)
            weights.step(p, inputProjection: inputProjection.pointer + t * batch * g, previous: states.pointer + s * bh, rows: batch,
                         mask: mask.map { $0 + t * batch }, recurrent: recurrentProjection.pointer,
                         cache: cache.pointer + s * batch * 4 * h, into: states.pointer + (s + 1) * bh)
        }
    }

    /// Backward pass. `dOutput(t)` gives dL/d(output at t) [B, H] or nil when none arrives there.
    /// Accumulates weight gradients into `grads`, adds dL/dinput into `dInput` [T·B, In] when given,
    /// and writes dL/dh0 into `dInitial` [B, H] when given.
    func backward(_ p: ParameterBuffer, _ grads: ParameterBuffer, input: UnsafePointer<Float>,
                  mask: UnsafePointer<Float>?, dOutput: (Int) -> UnsafePointer<Float>?,
                  dInput: UnsafeMutablePointer<Float>?, dInitial: UnsafeMutablePointer<Float>?) {
        reserveGradients()
        let h = hiddenSize, g = 3 * h, bh = batch * h
        dState.zero(bh)
        for s in stride(from: steps - 1, through: 0, by: -1) {
            let t = time(ofStep: s)
            if let d = dOutput(t) { BLAS.axpy(bh, x: d, y: dState.pointer) }
            weights.stepBackward(p, cache: cache.pointer + s * batch * 4 * h, previous: states.pointer + s * bh, rows: batch,
                                 mask: mask.map { $0 + t * batch }, dNext: dState.pointer,
                                 dInputProjection: dInputProjection.pointer + t * batch * g,
                                 dRecurrent: dRecurrent.pointer + s * batch * g, dPrevious: dStatePrevious.pointer)
            dState.pointer.update(from: dStatePrevious.pointer, count: bh)
        }
        if let dInitial { dInitial.update(from: dState.pointer, count: bh) }
        // Rows of dRecurrent (by step) pair with states slots 0..T−1 (the previous state of each step).
        weights.recurrentBackward(p, grads, previousStates: states.pointer, rows: steps * batch, dRecurrent: dRecurrent.pointer)
        weights.projectInputsBackward(p, grads, input, rows: steps * batch, dInputProjection: dInputProjection.pointer, dInput: dInput)
    }
}
