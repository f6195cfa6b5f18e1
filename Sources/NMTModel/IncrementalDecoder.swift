import CKernels
import NMTTensor

/// Decoding one target position at a time for many rows at once: the inference counterpart of
/// `Decoder.forward`, built on the same `conditionalStep`. A row is one hypothesis; the k beams of
/// sentence s are rows s·k … s·k+k−1, and every row carries its own copy of its sentence's
/// annotations, keys and mask, so each step is one GEMM per layer over all rows and the attention
/// kernel needs no indirection. Beam search moves rows around with `reorder` (by parent index) and
/// drops the rows of finished sentences with `compact`.
///
/// Shapes (R rows, Ts source steps): annotations [Ts·R, C], keys [Ts·R, A], mask [Ts·R],
/// states[l] [R, D], logits [R, Vt], logSumExp [R].
public final class IncrementalDecoder {
    public let model: Seq2Seq
    public private(set) var rows = 0, sourceSteps = 0
    var annotations = FloatBuffer(count: 0), keys = FloatBuffer(count: 0), mask = FloatBuffer(count: 0)
    private var spareAnnotations = FloatBuffer(count: 0), spareKeys = FloatBuffer(count: 0), spareMask = FloatBuffer(count: 0)
    let mean = FloatBuffer(count: 0), sentenceKeys = FloatBuffer(count: 0), initial = FloatBuffer(count: 0)
    let embedded = FloatBuffer(count: 0), inputProjection = FloatBuffer(count: 0)
    let recurrentScratch = FloatBuffer(count: 0), gru2Scratch = FloatBuffer(count: 0)
    let cache = FloatBuffer(count: 0), intermediate = FloatBuffer(count: 0)
    let queryAndRecurrent = FloatBuffer(count: 0)
    let context = FloatBuffer(count: 0)
    /// The attention weights of the last step [R, Ts].
    public let alpha = FloatBuffer(count: 0)
    /// states[l]: current state of decoder layer l (0: the conditional GRU's output).
    var states: [FloatBuffer] = []
    var nextStates: [FloatBuffer] = []
    let deepInput = FloatBuffer(count: 0), deepHidden = FloatBuffer(count: 0)
    /// The last step's output: logits [R, Vt] and their log-sum-exp [R].
    public let logits = FloatBuffer(count: 0), logSumExp = FloatBuffer(count: 0)

    public init(model: Seq2Seq) {
        self.model = model
        states = (0..<model.config.decoderLayers - 1).map { _ in FloatBuffer(count: 0) }
        nextStates = (0..<model.config.decoderLayers - 1).map { _ in FloatBuffer(count: 0) }
    }

    var decoder: Decoder { model.decoder }

    /// Encodes `sources` (ids without BOS/EOS) and sets up `beams` rows for each sentence.
    public func start(sources: [[Int32]], beams: Int) {
        let batch = Batch(sources: sources, targets: sources.map { _ in [] })
        var rng = RandomSource(seed: 0)  // dropout is off: no number is drawn
        batch.sourceTokens.withUnsafeBufferPointer { tokens in
            batch.sourceMask.withUnsafeBufferPointer { sourceMask in
                model.encoder.forward(model.parameters, tokens: tokens.baseAddress!, mask: sourceMask.baseAddress!,
                                      steps: batch.sourceSteps, batch: batch.size, dropout: 0, rng: &rng)
                start(encoded: model.encoder.annotations, sourceMask: sourceMask.baseAddress!, sourceSteps: batch.sourceSteps,
                      sentences: batch.size, beams: beams)
            }
        }
    }

    /// Sets up `beams` rows for each of `sentences` sentences from the encoder's output
    /// (`encoded` [Ts·B, C], `sourceMask` [Ts·B]): keys and initial states are computed per
    /// sentence, then repeated for its rows.
    func start(encoded: UnsafePointer<Float>, sourceMask: UnsafePointer<Float>, sourceSteps ts: Int, sentences b: Int, beams k: Int) {
        let c = model.config, d = c.decoderHiddenSize, p = model.parameters, cs = c.contextSize, a = c.attentionSize
        rows = b * k
        sourceSteps = ts
        let r = rows
        for (buffer, size) in [(mean, b * cs), (sentenceKeys, ts * b * a), (initial, b * d),
                               (annotations, ts * r * cs), (keys, ts * r * a), (mask, ts * r),
                               (spareAnnotations, ts * r * cs), (spareKeys, ts * r * a), (spareMask, ts * r),
                               (embedded, r * c.embedSize), (inputProjection, r * 3 * d),
                               (recurrentScratch, r * 3 * d), (gru2Scratch, r * 3 * d), (cache, r * 4 * d),
                               (intermediate, r * d), (queryAndRecurrent, r * decoder.queryWidth),
                               (alpha, r * ts), (context, r * cs), (deepInput, r * decoder.deepWidth),
                               (deepHidden, r * c.embedSize), (logits, r * c.targetVocabSize), (logSumExp, r)] {
            buffer.reserve(size)
        }
        for s in states + nextStates { s.reserve(r * d) }
        decoder.fillQueryBias(p)
        decoder.initialState(p, annotations: encoded, mask: sourceMask, sourceSteps: ts, batch: b, mean: mean.pointer, into: initial.pointer)
        decoder.projectKeys(p, annotations: encoded, rows: ts * b, into: sentenceKeys.pointer)
        for t in 0..<ts {
            for s in 0..<b {
                for j in 0..<k {
                    let row = t * r + s * k + j, from = t * b + s
                    (annotations.pointer + row * cs).update(from: encoded + from * cs, count: cs)
                    (keys.pointer + row * a).update(from: sentenceKeys.pointer + from * a, count: a)
                    mask[row] = sourceMask[from]
                }
            }
        }
        for state in states {
            for s in 0..<b { for j in 0..<k { (state.pointer + (s * k + j) * d).update(from: initial.pointer + s * d, count: d) } }
        }
    }

    /// Advances every row by one token (`previous` [R]): fills `logits` [R, Vt] and `logSumExp` [R],
    /// so log p(v) = logits[v] − logSumExp (the full log-softmax is never written out).
    public func step(previous: UnsafePointer<Int32>) {
        let c = model.config, p = model.parameters, w = decoder.w
        let d = c.decoderHiddenSize, e = c.embedSize, g = 3 * d, uw = decoder.deepWidth, r = rows
        Embedding.forward(table: p[w.embedding], ids: previous, count: r, width: e, into: embedded.pointer)
        BLAS.linear(embedded.pointer, rows: r, inputs: e, weight: p[w.gru1.weightIH], bias: p[w.gru1.biasIH],
                    outputs: g, into: inputProjection.pointer)
        decoder.conditionalStep(p, batch: r, inputProjection: inputProjection.pointer, previous: states[0].pointer,
                                keys: keys.pointer, annotations: annotations.pointer, sourceMask: mask.pointer, sourceSteps: sourceSteps,
                                recurrentScratch: recurrentScratch.pointer, gru2Scratch: gru2Scratch.pointer,
                                cache1: cache.pointer, intermediate: intermediate.pointer,
                                queryAndRecurrent: queryAndRecurrent.pointer, alpha: alpha.pointer,
                                context: context.pointer, cache2: cache.pointer, state: nextStates[0].pointer)
        for (l, layer) in w.stacked.enumerated() {
            BLAS.linear(nextStates[l].pointer, rows: r, inputs: d, weight: p[layer.weightIH], bias: p[layer.biasIH],
                        outputs: g, into: inputProjection.pointer)
            BLAS.linear(states[l + 1].pointer, rows: r, inputs: d, weight: p[layer.weightHH], bias: p[layer.biasHH],
                        outputs: g, into: recurrentScratch.pointer)
            nmt_gru_forward(Int32(r), Int32(d), inputProjection.pointer, Int32(g), recurrentScratch.pointer, Int32(g),
                            states[l + 1].pointer, nil, cache.pointer, nextStates[l + 1].pointer)
        }
        swap(&states, &nextStates)
        let u = deepInput.pointer, top = states.last!.pointer
        for row in 0..<r {
            (u + row * uw).update(from: top + row * d, count: d)
            (u + row * uw + d).update(from: embedded.pointer + row * e, count: e)
            (u + row * uw + d + e).update(from: context.pointer + row * c.contextSize, count: c.contextSize)
        }
        BLAS.linear(u, rows: r, inputs: uw, weight: p[w.deepOutputWeight], bias: p[w.deepOutputBias], outputs: e, into: deepHidden.pointer)
        nmt_tanh(deepHidden.pointer, deepHidden.pointer, r * e)
        let v = c.targetVocabSize
        BLAS.linear(deepHidden.pointer, rows: r, inputs: e, weight: p[w.outputWeight], bias: p[w.outputBias], outputs: v, into: logits.pointer)
        for row in 0..<r { logSumExp[row] = nmt_log_sum_exp(logits.pointer + row * v, v) }
    }

    /// Row i continues the hypothesis of row parents[i] (same sentence): gathers the decoder states.
    public func reorder(parents: UnsafePointer<Int32>) {
        let d = model.config.decoderHiddenSize
        for l in states.indices {
            let from = states[l].pointer, to = nextStates[l].pointer
            for row in 0..<rows { (to + row * d).update(from: from + Int(parents[row]) * d, count: d) }
            swap(&states[l], &nextStates[l])
        }
    }

    /// Keeps only the rows `kept` (in that order), e.g. those of unfinished sentences: gathers states,
    /// annotations, keys and mask, so finished sentences cost nothing in later steps.
    public func compact(kept: UnsafePointer<Int32>, count: Int) {
        let c = model.config, d = c.decoderHiddenSize, cs = c.contextSize, a = c.attentionSize, ts = sourceSteps, old = rows
        for l in states.indices {
            for i in 0..<count { (nextStates[l].pointer + i * d).update(from: states[l].pointer + Int(kept[i]) * d, count: d) }
            swap(&states[l], &nextStates[l])
        }
        for t in 0..<ts {
            for i in 0..<count {
                let from = t * old + Int(kept[i]), to = t * count + i
                (spareAnnotations.pointer + to * cs).update(from: annotations.pointer + from * cs, count: cs)
                (spareKeys.pointer + to * a).update(from: keys.pointer + from * a, count: a)
                spareMask[to] = mask[from]
            }
        }
        swap(&annotations, &spareAnnotations)
        swap(&keys, &spareKeys)
        swap(&mask, &spareMask)
        rows = count
    }
}
