import CKernels
import NMTTensor

/// Parameter views of the decoder.
struct DecoderWeights: Sendable {
    let embedding: ParameterView          // [Vt, E]  (the encoder's table when shared)
    let initWeight, initBias: ParameterView          // [D, C], [D]
    let gru1: GRUWeights                  // In = E, H = D
    let keyWeight, keyBias: ParameterView            // [A, C], [A]
    /// [A, D], stored directly before gru2.weight_hh [3D, D], so the two read as one [A+3D, D] matrix
    /// and the attention query and GRU2's recurrent projection of s'_j are a single GEMM.
    let queryWeight: ParameterView
    let scoreVector: ParameterView        // v [A]
    let gru2: GRUWeights                  // In = C, H = D
    let stacked: [GRUWeights]             // In = D, H = D
    let deepOutputWeight, deepOutputBias: ParameterView  // [E, D+E+C], [E]
    let outputWeight, outputBias: ParameterView          // [Vt, E] (the target embedding when tied), [Vt]
}

/// Conditional GRU decoder (Nematus / Marian s2s) with teacher forcing, deep output and the
/// output projection. Shapes (Tt target steps, Ts source steps, B sentences):
///   targetEmbedded Y [Tt·B, E]     cgruStates [(Tt+1)·B, D]: slot 0 = s0, slot j+1 = s_j
///   intermediate s' [Tt·B, D]      queryAndRecurrent [Tt·B, A+3D]   alpha [Tt·B, Ts]   contexts [Tt·B, C]
///   deepInput U [Tt·B, D+E+C]      deepHidden [Tt·B, E]               logits [Tt·B, Vt]
final class Decoder {
    let w: DecoderWeights
    let embed, hidden, attention, context, vocab: Int
    let stacked: [GRUSequence]

    // Forward buffers.
    let initialMean = FloatBuffer(count: 0)          // [B, C]
    let keys = FloatBuffer(count: 0)                 // [Ts·B, A]
    let targetEmbedded = FloatBuffer(count: 0)
    let embeddingDropout = Dropout()
    let gru1InputProjection = FloatBuffer(count: 0)  // [Tt·B, 3D]
    let cgruStates = FloatBuffer(count: 0)
    let cache1 = FloatBuffer(count: 0), cache2 = FloatBuffer(count: 0)  // [Tt·B, 4D]
    let recurrent1 = FloatBuffer(count: 0)           // [B, 3D] scratch
    let gru2InputProjection = FloatBuffer(count: 0)  // [B, 3D] scratch
    let intermediate = FloatBuffer(count: 0)
    let queryAndRecurrent = FloatBuffer(count: 0)
    let queryBias = FloatBuffer(count: 0)            // [A+3D]: zeros, then gru2.bias_hh
    let alpha = FloatBuffer(count: 0)
    let contexts = FloatBuffer(count: 0)
    let deepInput = FloatBuffer(count: 0)
    let stateDropout = Dropout()
    let deepHidden = FloatBuffer(count: 0)           // tanh output, before dropout
    let deepHiddenDropped = FloatBuffer(count: 0)
    let deepDropout = Dropout()
    let logits = FloatBuffer(count: 0)

    // Backward buffers.
    let dDeepHidden = FloatBuffer(count: 0), dDeepInput = FloatBuffer(count: 0)
    let dTopStates = FloatBuffer(count: 0)           // [Tt·B, D] grad w.r.t. top-layer outputs
    let dCgruOutputs = FloatBuffer(count: 0)         // [Tt·B, D] grad w.r.t. s_j from layers above
    let dStackInputs = FloatBuffer(count: 0)
    let dInitial = FloatBuffer(count: 0)             // [B, D]
    let dState = FloatBuffer(count: 0), dIntermediate = FloatBuffer(count: 0), dPrevious = FloatBuffer(count: 0)
    let dGi1 = FloatBuffer(count: 0), dGh1 = FloatBuffer(count: 0), dGi2 = FloatBuffer(count: 0)
    let dQueryAndRecurrent = FloatBuffer(count: 0)
    let dContext = FloatBuffer(count: 0)             // [B, C]
    let dKeys = FloatBuffer(count: 0)
    let dTargetEmbedded = FloatBuffer(count: 0)
    let dMean = FloatBuffer(count: 0)

    private(set) var steps = 0, batch = 0, sourceSteps = 0

    init(weights: DecoderWeights, config c: ModelConfig) {
        w = weights
        embed = c.embedSize; hidden = c.decoderHiddenSize; attention = c.attentionSize; context = c.contextSize; vocab = c.targetVocabSize
        stacked = weights.stacked.map { GRUSequence(weights: $0) }
    }

    var queryWidth: Int { attention + 3 * hidden }
    var deepWidth: Int { hidden + embed + context }

    private func reserve(steps: Int, batch: Int, sourceSteps: Int) {
        self.steps = steps; self.batch = batch; self.sourceSteps = sourceSteps
        let rows = steps * batch, d = hidden
        for (buffer, size) in [(initialMean, batch * context), (keys, sourceSteps * batch * attention),
                               (targetEmbedded, rows * embed), (gru1InputProjection, rows * 3 * d),
                               (cgruStates, (steps + 1) * batch * d), (cache1, rows * 4 * d), (cache2, rows * 4 * d),
                               (recurrent1, batch * 3 * d), (gru2InputProjection, batch * 3 * d), (intermediate, rows * d),
                               (queryAndRecurrent, rows * queryWidth), (queryBias, queryWidth),
                               (alpha, rows * sourceSteps), (contexts, rows * context),
                               (deepInput, rows * deepWidth), (deepHidden, rows * embed), (deepHiddenDropped, rows * embed),
                               (logits, rows * vocab), (dDeepHidden, rows * embed), (dDeepInput, rows * deepWidth),
                               (dTopStates, rows * d), (dCgruOutputs, rows * d), (dStackInputs, rows * d),
                               (dInitial, batch * d), (dState, batch * d), (dIntermediate, batch * d), (dPrevious, batch * d),
                               (dGi1, rows * 3 * d), (dGh1, rows * 3 * d), (dGi2, rows * 3 * d),
                               (dQueryAndRecurrent, rows * queryWidth), (dContext, batch * context),
                               (dKeys, sourceSteps * batch * attention), (dTargetEmbedded, rows * embed), (dMean, batch * context)] {
            buffer.reserve(size)
        }
    }

    // MARK: Pieces shared with search

    /// s0 = tanh(W_init · mean(annotations over unmasked steps) + b_init)  → `initial` [B, D]; also fills `mean` [B, C].
    func initialState(_ p: ParameterBuffer, annotations: UnsafePointer<Float>, mask: UnsafePointer<Float>,
                      sourceSteps: Int, batch: Int, mean: UnsafeMutablePointer<Float>, into initial: UnsafeMutablePointer<Float>) {
        let c = context
        mean.update(repeating: 0, count: batch * c)
        for b in 0..<batch {
            var length: Float = 0
            for t in 0..<sourceSteps where mask[t * batch + b] != 0 {
                BLAS.axpy(c, x: annotations + (t * batch + b) * c, y: mean + b * c)
                length += 1
            }
            if length > 0 { for k in 0..<c { mean[b * c + k] /= length } }
        }
        BLAS.linear(mean, rows: batch, inputs: c, weight: p[w.initWeight], bias: p[w.initBias], outputs: hidden, into: initial)
        nmt_tanh(initial, initial, batch * hidden)
    }

    /// Attention keys U_a·c_i + b_a for every source position: one GEMM per sentence batch.
    func projectKeys(_ p: ParameterBuffer, annotations: UnsafePointer<Float>, rows: Int, into keys: UnsafeMutablePointer<Float>) {
        BLAS.linear(annotations, rows: rows, inputs: context, weight: p[w.keyWeight], bias: p[w.keyBias], outputs: attention, into: keys)
    }

    func fillQueryBias(_ p: ParameterBuffer) {
        queryBias.reserve(queryWidth)
        queryBias.zero(attention)
        (queryBias.pointer + attention).update(from: p[w.gru2.biasHH], count: 3 * hidden)
    }

    /// One step of the conditional GRU for `batch` rows:
    ///   s' = GRU1(y_{j−1}, s_{j−1});  ctx = attention(s');  s = GRU2(ctx, s')
    /// `inputProjection` is W_ih1·y + b_ih1 [B, 3D]. Writes the caches, s', [query; gh2], α, ctx and s.
    /// `fillQueryBias` must have been called with the current parameters.
    func conditionalStep(_ p: ParameterBuffer, batch: Int, inputProjection: UnsafePointer<Float>, previous: UnsafePointer<Float>,
                         keys: UnsafePointer<Float>, annotations: UnsafePointer<Float>, sourceMask: UnsafePointer<Float>, sourceSteps: Int,
                         recurrentScratch: UnsafeMutablePointer<Float>, gru2Scratch: UnsafeMutablePointer<Float>,
                         cache1: UnsafeMutablePointer<Float>, intermediate: UnsafeMutablePointer<Float>,
                         queryAndRecurrent: UnsafeMutablePointer<Float>, alpha: UnsafeMutablePointer<Float>,
                         context ctx: UnsafeMutablePointer<Float>, cache2: UnsafeMutablePointer<Float>,
                         state: UnsafeMutablePointer<Float>) {
        let d = hidden, g = 3 * d, qw = queryWidth
        BLAS.linear(previous, rows: batch, inputs: d, weight: p[w.gru1.weightHH], bias: p[w.gru1.biasHH], outputs: g, into: recurrentScratch)
        nmt_gru_forward(Int32(batch), Int32(d), inputProjection, Int32(g), recurrentScratch, Int32(g), previous, nil, cache1, intermediate)
        BLAS.linear(intermediate, rows: batch, inputs: d, weight: p[w.queryWeight], bias: queryBias.pointer, outputs: qw, into: queryAndRecurrent)
        nmt_attention_forward(Int32(sourceSteps), Int32(batch), Int32(attention), Int32(context), keys, queryAndRecurrent, Int32(qw),
                              p[w.scoreVector], sourceMask, annotations, alpha, ctx)
        BLAS.linear(ctx, rows: batch, inputs: context, weight: p[w.gru2.weightIH], bias: p[w.gru2.biasIH], outputs: g, into: gru2Scratch)
        nmt_gru_forward(Int32(batch), Int32(d), gru2Scratch, Int32(g), queryAndRecurrent + attention, Int32(qw), intermediate, nil, cache2, state)
    }

    // MARK: Teacher-forced forward and backward

    /// Runs the decoder over the whole target prefix and leaves the logits [Tt·B, Vt] in `logits`.
    func forward(_ p: ParameterBuffer, annotations: UnsafePointer<Float>, sourceMask: UnsafePointer<Float>, sourceSteps: Int,
                 targetInput: UnsafePointer<Int32>, steps: Int, batch: Int, dropout: Float, rng: inout RandomSource) {
        reserve(steps: steps, batch: batch, sourceSteps: sourceSteps)
        let rows = steps * batch, d = hidden, g = 3 * d, qw = queryWidth
        fillQueryBias(p)
        initialState(p, annotations: annotations, mask: sourceMask, sourceSteps: sourceSteps, batch: batch,
                     mean: initialMean.pointer, into: cgruStates.pointer)
        projectKeys(p, annotations: annotations, rows: sourceSteps * batch, into: keys.pointer)
        Embedding.forward(table: p[w.embedding], ids: targetInput, count: rows, width: embed, into: targetEmbedded.pointer)
        embeddingDropout.forward(targetEmbedded.pointer, count: rows * embed, rate: dropout, rng: &rng)
        BLAS.linear(targetEmbedded.pointer, rows: rows, inputs: embed, weight: p[w.gru1.weightIH], bias: p[w.gru1.biasIH],
                    outputs: g, into: gru1InputProjection.pointer)

        for j in 0..<steps {
            conditionalStep(p, batch: batch, inputProjection: gru1InputProjection.pointer + j * batch * g,
                            previous: cgruStates.pointer + j * batch * d, keys: keys.pointer, annotations: annotations,
                            sourceMask: sourceMask, sourceSteps: sourceSteps,
                            recurrentScratch: recurrent1.pointer, gru2Scratch: gru2InputProjection.pointer,
                            cache1: cache1.pointer + j * batch * 4 * d, intermediate: intermediate.pointer + j * batch * d,
                            queryAndRecurrent: queryAndRecurrent.pointer + j * batch * qw,
                            alpha: alpha.pointer + j * batch * sourceSteps, context: contexts.pointer + j * batch * context,
                            cache2: cache2.pointer + j * batch * 4 * d, state: cgruStates.pointer + (j + 1) * batch * d)
        }

        var top = cgruStates.pointer + batch * d
        for layer in stacked {
            layer.forward(p, input: top, steps: steps, batch: batch, mask: nil, initial: cgruStates.pointer)
            top = layer.output(0)
        }
        // Deep output: t = tanh(W_o·[s_top; y; ctx] + b_o), dropout on s_top and on t.
        let u = deepInput.pointer, uw = deepWidth
        for r in 0..<rows {
            (u + r * uw).update(from: top + r * d, count: d)
            (u + r * uw + d).update(from: targetEmbedded.pointer + r * embed, count: embed)
            (u + r * uw + d + embed).update(from: contexts.pointer + r * context, count: context)
        }
        stateDropout.draw(count: rows * d, rate: dropout, rng: &rng)
        if stateDropout.active {
            for r in 0..<rows { nmt_mul(u + r * uw, stateDropout.mask.pointer + r * d, u + r * uw, d) }
        }
        BLAS.linear(u, rows: rows, inputs: uw, weight: p[w.deepOutputWeight], bias: p[w.deepOutputBias], outputs: embed,
                    into: deepHidden.pointer)
        nmt_tanh(deepHidden.pointer, deepHidden.pointer, rows * embed)
        deepHiddenDropped.pointer.update(from: deepHidden.pointer, count: rows * embed)
        deepDropout.forward(deepHiddenDropped.pointer, count: rows * embed, rate: dropout, rng: &rng)
        BLAS.linear(deepHiddenDropped.pointer, rows: rows, inputs: embed, weight: p[w.outputWeight], bias: p[w.outputBias],
                    outputs: vocab, into: logits.pointer)
    }

    /// Backward from dL/dlogits (left in `logits` by the loss). Accumulates parameter gradients,
    /// adds dL/dannotations into `dAnnotations` [Ts·B, C] (which the caller zeroes first).
    func backward(_ p: ParameterBuffer, _ grads: ParameterBuffer, annotations: UnsafePointer<Float>,
                  sourceMask: UnsafePointer<Float>, targetInput: UnsafePointer<Int32>, dAnnotations: UnsafeMutablePointer<Float>) {
        let rows = steps * batch, d = hidden, g = 3 * d, qw = queryWidth, uw = deepWidth, c = context, bd = batch * d
        dKeys.zero(sourceSteps * batch * attention)
        // Output projection and deep output.
        BLAS.linearBackward(deepHiddenDropped.pointer, rows: rows, inputs: embed, weight: p[w.outputWeight], outputs: vocab,
                            dy: logits.pointer, dWeight: grads[w.outputWeight], dBias: grads[w.outputBias],
                            dx: dDeepHidden.pointer, accumulateDx: false)
        deepDropout.backward(dDeepHidden.pointer, count: rows * embed)
        nmt_tanh_backward(deepHidden.pointer, dDeepHidden.pointer, dDeepHidden.pointer, rows * embed)
        BLAS.linearBackward(deepInput.pointer, rows: rows, inputs: uw, weight: p[w.deepOutputWeight], outputs: embed,
                            dy: dDeepHidden.pointer, dWeight: grads[w.deepOutputWeight], dBias: grads[w.deepOutputBias],
                            dx: dDeepInput.pointer, accumulateDx: false)
        let du = dDeepInput.pointer
        for r in 0..<rows {
            (dTopStates.pointer + r * d).update(from: du + r * uw, count: d)
            (dTargetEmbedded.pointer + r * embed).update(from: du + r * uw + d, count: embed)
        }
        stateDropout.backward(dTopStates.pointer, count: rows * d)

        // Stacked layers, top down; each passes dL/dinput to the one below and dL/dh0 to s0.
        dInitial.zero(bd)
        var dAbove = dTopStates.pointer, spare = dStackInputs.pointer
        for l in stride(from: stacked.count - 1, through: 0, by: -1) {
            let below = l == 0 ? cgruStates.pointer + bd : stacked[l - 1].output(0)
            let dBelow = l == 0 ? dCgruOutputs.pointer : spare
            let dOut = UnsafePointer(dAbove)
            dBelow.update(repeating: 0, count: rows * d)
            stacked[l].backward(p, grads, input: below, mask: nil, dOutput: { t in dOut + t * bd },
                                dInput: dBelow, dInitial: dPrevious.pointer)
            BLAS.axpy(bd, x: dPrevious.pointer, y: dInitial.pointer)
            spare = dAbove
            dAbove = dBelow
        }
        if stacked.isEmpty { dCgruOutputs.pointer.update(from: dTopStates.pointer, count: rows * d) }

        // Conditional GRU, backwards through time.
        dState.zero(bd)
        for j in stride(from: steps - 1, through: 0, by: -1) {
            BLAS.axpy(bd, x: dCgruOutputs.pointer + j * bd, y: dState.pointer)
            let qr = queryAndRecurrent.pointer + j * batch * qw, dqr = dQueryAndRecurrent.pointer + j * batch * qw
            // GRU2: s_j = GRU2(ctx_j, s'_j)
            nmt_gru_backward(Int32(batch), Int32(d), cache2.pointer + j * batch * 4 * d, intermediate.pointer + j * bd, nil,
                             dState.pointer, dGi2.pointer + j * batch * g, Int32(g), dqr + attention, Int32(qw), dIntermediate.pointer)
            // dctx = deep-output part + dgi2 · W_ih2
            for b in 0..<batch { (dContext.pointer + b * c).update(from: du + (j * batch + b) * uw + d + embed, count: c) }
            BLAS.gemm(m: batch, n: c, k: g, a: dGi2.pointer + j * batch * g, lda: g, b: p[w.gru2.weightIH], ldb: c,
                      beta: 1, c: dContext.pointer, ldc: c)
            nmt_attention_backward(Int32(sourceSteps), Int32(batch), Int32(attention), Int32(c), keys.pointer, qr, Int32(qw),
                                   p[w.scoreVector], sourceMask, annotations, alpha.pointer + j * batch * sourceSteps,
                                   dContext.pointer, dKeys.pointer, dqr, Int32(qw), grads[w.scoreVector], dAnnotations)
            // ds' += [dquery; dgh2] · [W_q; W_hh2]
            BLAS.gemm(m: batch, n: d, k: qw, a: dqr, lda: qw, b: p[w.queryWeight], ldb: d, beta: 1, c: dIntermediate.pointer, ldc: d)
            // GRU1: s'_j = GRU1(y_{j−1}, s_{j−1})
            nmt_gru_backward(Int32(batch), Int32(d), cache1.pointer + j * batch * 4 * d, cgruStates.pointer + j * bd, nil,
                             dIntermediate.pointer, dGi1.pointer + j * batch * g, Int32(g), dGh1.pointer + j * batch * g, Int32(g),
                             dState.pointer)
            BLAS.gemm(m: batch, n: d, k: g, a: dGh1.pointer + j * batch * g, lda: g, b: p[w.gru1.weightHH], ldb: d,
                      beta: 1, c: dState.pointer, ldc: d)
        }
        BLAS.axpy(bd, x: dState.pointer, y: dInitial.pointer)

        // Weight gradients of the time loop, batched over all steps.
        BLAS.linearBackward(intermediate.pointer, rows: rows, inputs: d, weight: p[w.queryWeight], outputs: qw,
                            dy: dQueryAndRecurrent.pointer, dWeight: grads[w.queryWeight], dBias: nil, dx: nil, accumulateDx: false)
        BLAS.addRows(dQueryAndRecurrent.pointer + attention, rows: rows, columns: g, ld: qw, into: grads[w.gru2.biasHH])
        BLAS.linearBackward(contexts.pointer, rows: rows, inputs: c, weight: p[w.gru2.weightIH], outputs: g,
                            dy: dGi2.pointer, dWeight: grads[w.gru2.weightIH], dBias: grads[w.gru2.biasIH], dx: nil, accumulateDx: false)
        BLAS.linearBackward(cgruStates.pointer, rows: rows, inputs: d, weight: p[w.gru1.weightHH], outputs: g,
                            dy: dGh1.pointer, dWeight: grads[w.gru1.weightHH], dBias: grads[w.gru1.biasHH], dx: nil, accumulateDx: false)
        BLAS.linearBackward(targetEmbedded.pointer, rows: rows, inputs: embed, weight: p[w.gru1.weightIH], outputs: g,
                            dy: dGi1.pointer, dWeight: grads[w.gru1.weightIH], dBias: grads[w.gru1.biasIH],
                            dx: dTargetEmbedded.pointer, accumulateDx: true)
        embeddingDropout.backward(dTargetEmbedded.pointer, count: rows * embed)
        Embedding.backward(dTable: grads[w.embedding], ids: targetInput, count: rows, width: embed, dOut: dTargetEmbedded.pointer)

        // Keys and initial state back into the annotations.
        BLAS.linearBackward(annotations, rows: sourceSteps * batch, inputs: c, weight: p[w.keyWeight], outputs: attention,
                            dy: dKeys.pointer, dWeight: grads[w.keyWeight], dBias: grads[w.keyBias],
                            dx: dAnnotations, accumulateDx: true)
        nmt_tanh_backward(cgruStates.pointer, dInitial.pointer, dInitial.pointer, bd)
        BLAS.linearBackward(initialMean.pointer, rows: batch, inputs: c, weight: p[w.initWeight], outputs: d,
                            dy: dInitial.pointer, dWeight: grads[w.initWeight], dBias: grads[w.initBias],
                            dx: dMean.pointer, accumulateDx: false)
        for b in 0..<batch {
            var length: Float = 0
            for t in 0..<sourceSteps where sourceMask[t * batch + b] != 0 { length += 1 }
            guard length > 0 else { continue }
            for t in 0..<sourceSteps where sourceMask[t * batch + b] != 0 {
                BLAS.axpy(c, alpha: 1 / length, x: dMean.pointer + b * c, y: dAnnotations + (t * batch + b) * c)
            }
        }
    }
}
