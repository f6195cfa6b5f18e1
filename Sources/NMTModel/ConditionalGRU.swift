import CKernels
import NMTTensor

/// The conditional GRU with attention (Nematus' cGRU, Marian's s2s decoder cell), one target step:
///   s'_j = GRU1(y_{j−1}, s_{j−1})
///   e_ij = v · tanh(U_a c_i + b_a + W_a s'_j),   α_j = softmax over the unmasked i,   ctx_j = Σ_i α_ij c_i
///   s_j  = GRU2(ctx_j, s'_j)
/// GRU1's input projection is computed by the caller for all steps at once (`gru1.projectInputs`), the
/// keys U_a c_i + b_a once per batch (`projectKeys`). The query W_a s' and GRU2's recurrent projection
/// W_hh2 s' are one GEMM, because W_a [A, D] is stored directly before W_hh2 [3D, D].
///
/// Shapes (B rows, Ts source steps, D hidden, A attention, C annotation):
///   keys [Ts·B, A]   annotations [Ts·B, C]   mask [Ts·B]   (time-major, row t·B + b)
///   one step: gi1 [B, 3D]   s_{j−1}, s', s_j [B, D]   caches [B, 4D]   [query; gh2] [B, A+3D]   α [B, Ts]   ctx [B, C]
struct ConditionalGRU: Sendable {
    let gru1: GRUWeights                         // decoder.gru1: In = E, H = D
    let gru2: GRUWeights                         // decoder.gru2: In = C, H = D
    let keyWeight, keyBias: ParameterView        // U_a [A, C], b_a [A]
    let queryWeight: ParameterView               // W_a [A, D], followed in storage by gru2.weight_hh
    let scoreVector: ParameterView               // v [A]
    let attentionSize, contextSize: Int

    var hiddenSize: Int { gru1.hiddenSize }
    var queryWidth: Int { attentionSize + 3 * hiddenSize }

    /// The source side that every step attends to.
    struct Source {
        var keys: UnsafePointer<Float>
        var annotations: UnsafePointer<Float>
        var mask: UnsafePointer<Float>
        var steps: Int
    }

    /// The source side in search: each sentence's keys [P, A] and annotations [P, C] once, for all its
    /// rows; row r attends to positions starts[r] ..< starts[r] + lengths[r]. `steps` is the longest
    /// length, the row stride of α. Sentences join and leave without moving the others' annotations.
    struct PooledSource {
        var keys: UnsafePointer<Float>
        var annotations: UnsafePointer<Float>
        var starts: UnsafePointer<Int32>
        var lengths: UnsafePointer<Int32>
        var steps: Int
    }

    /// Where one step reads and writes: slices of the training activations at step j, or the
    /// search's workspaces.
    struct Step {
        var inputProjection: UnsafePointer<Float>             // gi1 = W_ih1 y_{j−1} + b_ih1
        var previous: UnsafePointer<Float>                    // s_{j−1}
        var recurrent1: UnsafeMutablePointer<Float>           // scratch: W_hh1 s_{j−1} + b_hh1
        var cache1: UnsafeMutablePointer<Float>
        var intermediate: UnsafeMutablePointer<Float>         // s'_j
        var queryAndRecurrent: UnsafeMutablePointer<Float>    // [W_a s'_j; W_hh2 s'_j + b_hh2]
        var alpha: UnsafeMutablePointer<Float>
        var context: UnsafeMutablePointer<Float>
        var gru2InputProjection: UnsafeMutablePointer<Float>  // scratch: W_ih2 ctx_j + b_ih2
        var cache2: UnsafeMutablePointer<Float>
        var state: UnsafeMutablePointer<Float>                // s_j
    }

    /// The gradients of one step. `dState` comes in as dL/ds_j and leaves as dL/ds_{j−1}; `dContext`
    /// comes in as the part of dL/dctx_j from the layers above.
    struct StepGradients {
        var dState: UnsafeMutablePointer<Float>
        var dContext: UnsafeMutablePointer<Float>
        var dIntermediate: UnsafeMutablePointer<Float>        // scratch [B, D]
        var dInputProjection: UnsafeMutablePointer<Float>     // dgi1 [B, 3D]
        var dRecurrent1: UnsafeMutablePointer<Float>          // dgh1 [B, 3D]
        var dGRU2InputProjection: UnsafeMutablePointer<Float> // dgi2 [B, 3D]
        var dQueryAndRecurrent: UnsafeMutablePointer<Float>   // [B, A+3D]
    }

    // MARK: Keys, once per batch

    func projectKeys(_ p: ParameterBuffer, annotations: UnsafePointer<Float>, rows: Int, into keys: UnsafeMutablePointer<Float>) {
        p.linear(annotations, rows: rows, inputs: contextSize, weight: keyWeight, bias: p[keyBias], outputs: attentionSize, into: keys)
    }

    func projectKeysBackward(_ p: ParameterBuffer, _ grads: ParameterBuffer, annotations: UnsafePointer<Float>, rows: Int,
                             dKeys: UnsafePointer<Float>, dAnnotations: UnsafeMutablePointer<Float>) {
        BLAS.linearBackward(annotations, rows: rows, inputs: contextSize, weight: p[keyWeight], outputs: attentionSize,
                            dy: dKeys, dWeight: grads[keyWeight], dBias: grads[keyBias], dx: dAnnotations, accumulateDx: true)
    }

    /// The bias of the fused [query; gh2] GEMM [A+3D]: zeros (the keys carry the attention's bias), then b_hh2.
    func fillQueryBias(_ p: ParameterBuffer, into queryBias: UnsafeMutablePointer<Float>) {
        queryBias.update(repeating: 0, count: attentionSize)
        (queryBias + attentionSize).update(from: p[gru2.biasHH], count: 3 * hiddenSize)
    }

    // MARK: One step

    func forward(_ p: ParameterBuffer, queryBias: UnsafePointer<Float>, rows: Int, source: Source, step s: Step) {
        forward(p, queryBias: queryBias, rows: rows, step: s) {
            nmt_attention_forward(Int32(source.steps), Int32(rows), Int32(attentionSize), Int32(contextSize), source.keys,
                                  s.queryAndRecurrent, Int32(queryWidth), p[scoreVector], source.mask, source.annotations, s.alpha, s.context)
        }
    }

    /// The same step in search, over the pooled source side.
    func forward(_ p: ParameterBuffer, queryBias: UnsafePointer<Float>, rows: Int, source: PooledSource, step s: Step) {
        forward(p, queryBias: queryBias, rows: rows, step: s) {
            nmt_attention_forward_pooled(Int32(rows), Int32(source.steps), Int32(attentionSize), Int32(contextSize), source.keys,
                                         source.annotations, source.starts, source.lengths, s.queryAndRecurrent, Int32(queryWidth),
                                         p[scoreVector], s.alpha, s.context)
        }
    }

    /// GRU1, the query, `attend` (α and ctx from the query), GRU2.
    private func forward(_ p: ParameterBuffer, queryBias: UnsafePointer<Float>, rows: Int, step s: Step, attend: () -> Void) {
        let d = hiddenSize, g = 3 * d, qw = queryWidth
        gru1.step(p, inputProjection: s.inputProjection, previous: s.previous, rows: rows, mask: nil, recurrent: s.recurrent1,
                  cache: s.cache1, into: s.intermediate)
        p.linear(s.intermediate, rows: rows, inputs: d, weight: queryWeight, bias: queryBias, outputs: qw, into: s.queryAndRecurrent)
        attend()
        p.linear(s.context, rows: rows, inputs: contextSize, weight: gru2.weightIH, bias: p[gru2.biasIH], outputs: g,
                    into: s.gru2InputProjection)
        nmt_gru_forward(Int32(rows), Int32(d), s.gru2InputProjection, Int32(g), s.queryAndRecurrent + attentionSize, Int32(qw),
                        s.intermediate, nil, s.cache2, s.state)
    }

    /// Backward of `forward`, in reverse order. Adds into `dKeys`, `dAnnotations` and v's gradient;
    /// the GEMM weights' gradients of all steps are taken at once afterwards (`weightsBackward`).
    func backward(_ p: ParameterBuffer, _ grads: ParameterBuffer, rows: Int, source: Source, step s: Step, gradients ds: StepGradients,
                  dKeys: UnsafeMutablePointer<Float>, dAnnotations: UnsafeMutablePointer<Float>) {
        let d = hiddenSize, g = 3 * d, qw = queryWidth, c = contextSize
        // s_j = GRU2(ctx_j, s'_j): its recurrent gradient lands in the gh2 part of [dquery; dgh2].
        nmt_gru_backward(Int32(rows), Int32(d), s.cache2, s.intermediate, nil, ds.dState, ds.dGRU2InputProjection, Int32(g),
                         ds.dQueryAndRecurrent + attentionSize, Int32(qw), ds.dIntermediate)
        BLAS.gemm(m: rows, n: c, k: g, a: ds.dGRU2InputProjection, lda: g, b: p[gru2.weightIH], ldb: c, beta: 1, c: ds.dContext, ldc: c)
        nmt_attention_backward(Int32(source.steps), Int32(rows), Int32(attentionSize), Int32(c), source.keys, s.queryAndRecurrent,
                               Int32(qw), p[scoreVector], source.mask, source.annotations, s.alpha, ds.dContext, dKeys,
                               ds.dQueryAndRecurrent, Int32(qw), grads[scoreVector], dAnnotations)
        // ds' += [dquery; dgh2] · [W_a; W_hh2]
        BLAS.gemm(m: rows, n: d, k: qw, a: ds.dQueryAndRecurrent, lda: qw, b: p[queryWeight], ldb: d, beta: 1, c: ds.dIntermediate, ldc: d)
        // s'_j = GRU1(y_{j−1}, s_{j−1})
        gru1.stepBackward(p, cache: s.cache1, previous: s.previous, rows: rows, mask: nil, dNext: ds.dIntermediate,
                          dInputProjection: ds.dInputProjection, dRecurrent: ds.dRecurrent1, dPrevious: ds.dState)
    }

    /// The gradients of W_a, W_hh2, b_hh2, W_ih2, b_ih2, W_hh1 and b_hh1 over all `rows` = Tt·B rows at
    /// once. `previousStates` [Tt·B, D] are s_0 … s_{Tt−1}; the other arguments are all steps' activations
    /// and gradients, stacked. (GRU1's input weights go back with the embeddings: `gru1.projectInputsBackward`.)
    func weightsBackward(_ p: ParameterBuffer, _ grads: ParameterBuffer, rows: Int, previousStates: UnsafePointer<Float>,
                         intermediate: UnsafePointer<Float>, contexts: UnsafePointer<Float>, dRecurrent1: UnsafePointer<Float>,
                         dGRU2InputProjection: UnsafePointer<Float>, dQueryAndRecurrent: UnsafePointer<Float>) {
        let d = hiddenSize, g = 3 * d, qw = queryWidth
        BLAS.linearBackward(intermediate, rows: rows, inputs: d, weight: p[queryWeight], outputs: qw, dy: dQueryAndRecurrent,
                            dWeight: grads[queryWeight], dBias: nil, dx: nil, accumulateDx: false)
        BLAS.addRows(dQueryAndRecurrent + attentionSize, rows: rows, columns: g, ld: qw, into: grads[gru2.biasHH])
        BLAS.linearBackward(contexts, rows: rows, inputs: contextSize, weight: p[gru2.weightIH], outputs: g, dy: dGRU2InputProjection,
                            dWeight: grads[gru2.weightIH], dBias: grads[gru2.biasIH], dx: nil, accumulateDx: false)
        gru1.recurrentBackward(p, grads, previousStates: previousStates, rows: rows, dRecurrent: dRecurrent1)
    }
}

/// The conditional GRU's activations for `steps` steps of `batch` rows (one step in search), with
/// their gradients when training. `step(j)` points into step j.
final class ConditionalGRUActivations {
    private(set) var steps = 0, batch = 0
    let queryBias = FloatBuffer(count: 0)            // [A+3D]
    let states = FloatBuffer(count: 0)               // [(T+1)·B, D]: slot 0 = s0, slot j+1 = s_j
    let recurrent1 = FloatBuffer(count: 0)           // [B, 3D] scratch
    let gru2InputProjection = FloatBuffer(count: 0)  // [B, 3D] scratch
    let cache1 = FloatBuffer(count: 0), cache2 = FloatBuffer(count: 0)  // [T·B, 4D]
    let intermediate = FloatBuffer(count: 0)         // [T·B, D]
    let queryAndRecurrent = FloatBuffer(count: 0)    // [T·B, A+3D]
    let alpha = FloatBuffer(count: 0)                // [T·B, Ts]
    let contexts = FloatBuffer(count: 0)             // [T·B, C]
    // Gradients.
    let dState = FloatBuffer(count: 0), dIntermediate = FloatBuffer(count: 0)  // [B, D]
    let dContext = FloatBuffer(count: 0)                                       // [B, C]
    let dInputProjection = FloatBuffer(count: 0), dRecurrent1 = FloatBuffer(count: 0), dGRU2InputProjection = FloatBuffer(count: 0)
    let dQueryAndRecurrent = FloatBuffer(count: 0)

    /// Without gradients (search), nothing goes backward, so GRU2 overwrites GRU1's cache instead of keeping its own.
    private(set) var keepsCaches = true

    func reserve(_ layer: ConditionalGRU, steps: Int, batch: Int, sourceSteps: Int, gradients: Bool) {
        self.steps = steps
        self.batch = batch
        keepsCaches = gradients
        let rows = steps * batch, d = layer.hiddenSize, qw = layer.queryWidth
        for (buffer, size) in [(queryBias, qw), (states, (steps + 1) * batch * d), (recurrent1, batch * 3 * d),
                               (gru2InputProjection, batch * 3 * d), (cache1, rows * 4 * d), (cache2, gradients ? rows * 4 * d : 0),
                               (intermediate, rows * d), (queryAndRecurrent, rows * qw), (alpha, rows * sourceSteps),
                               (contexts, rows * layer.contextSize)] {
            buffer.reserve(size)
        }
        guard gradients else { return }
        for (buffer, size) in [(dState, batch * d), (dIntermediate, batch * d), (dContext, batch * layer.contextSize),
                               (dInputProjection, rows * 3 * d), (dRecurrent1, rows * 3 * d), (dGRU2InputProjection, rows * 3 * d),
                               (dQueryAndRecurrent, rows * qw)] {
            buffer.reserve(size)
        }
    }

    /// Step j's slices; `inputProjection` is the caller's gi1 of that step.
    func step(_ j: Int, _ layer: ConditionalGRU, inputProjection: UnsafePointer<Float>, sourceSteps: Int) -> ConditionalGRU.Step {
        let b = batch, d = layer.hiddenSize
        return ConditionalGRU.Step(inputProjection: inputProjection, previous: states.pointer + j * b * d,
                                   recurrent1: recurrent1.pointer, cache1: cache1.pointer + j * b * 4 * d,
                                   intermediate: intermediate.pointer + j * b * d,
                                   queryAndRecurrent: queryAndRecurrent.pointer + j * b * layer.queryWidth,
                                   alpha: alpha.pointer + j * b * sourceSteps, context: contexts.pointer + j * b * layer.contextSize,
                                   gru2InputProjection: gru2InputProjection.pointer,
                                   cache2: (keepsCaches ? cache2 : cache1).pointer + j * b * 4 * d,
                                   state: states.pointer + (j + 1) * b * d)
    }

    /// Step j's gradient slices.
    func stepGradients(_ j: Int, _ layer: ConditionalGRU) -> ConditionalGRU.StepGradients {
        let b = batch, g = 3 * layer.hiddenSize
        return ConditionalGRU.StepGradients(dState: dState.pointer, dContext: dContext.pointer, dIntermediate: dIntermediate.pointer,
                                            dInputProjection: dInputProjection.pointer + j * b * g,
                                            dRecurrent1: dRecurrent1.pointer + j * b * g,
                                            dGRU2InputProjection: dGRU2InputProjection.pointer + j * b * g,
                                            dQueryAndRecurrent: dQueryAndRecurrent.pointer + j * b * layer.queryWidth)
    }
}
