import CKernels

/// Incremental decoding for a batch of sentences, one target position at a time for all rows:
/// the inference counterpart of `Decoder.forward`, reusing its step function.
/// Rows are sentences; each step embeds the previous tokens, advances the conditional GRU and the
/// stacked layers, and writes log-probabilities [B, Vt] for the next token.
final class IncrementalDecoder {
    let model: Seq2Seq
    var batch = 0, sourceSteps = 0
    let mean = FloatBuffer(count: 0), keys = FloatBuffer(count: 0)
    let embedded = FloatBuffer(count: 0), inputProjection = FloatBuffer(count: 0)
    let recurrentScratch = FloatBuffer(count: 0), gru2Scratch = FloatBuffer(count: 0)
    let cache = FloatBuffer(count: 0), intermediate = FloatBuffer(count: 0)
    let queryAndRecurrent = FloatBuffer(count: 0)
    let alpha = FloatBuffer(count: 0), context = FloatBuffer(count: 0)
    /// states[l]: [B, D] current state of decoder layer l (0: the conditional GRU's output).
    var states: [FloatBuffer] = []
    var nextStates: [FloatBuffer] = []
    let deepInput = FloatBuffer(count: 0), deepHidden = FloatBuffer(count: 0)
    let logProbabilities = FloatBuffer(count: 0)

    init(model: Seq2Seq) {
        self.model = model
        states = (0..<model.config.decoderLayers - 1).map { _ in FloatBuffer(count: 0) }
        nextStates = (0..<model.config.decoderLayers - 1).map { _ in FloatBuffer(count: 0) }
    }

    var decoder: Decoder { model.decoder }

    /// Prepares keys and initial states from the encoder's annotations of this batch.
    func start(annotations: UnsafePointer<Float>, sourceMask: UnsafePointer<Float>, sourceSteps: Int, batch: Int) {
        self.batch = batch
        self.sourceSteps = sourceSteps
        let c = model.config, d = c.decoderHiddenSize, p = model.parameters
        for (buffer, size) in [(mean, batch * c.contextSize), (keys, sourceSteps * batch * c.attentionSize),
                               (embedded, batch * c.embedSize), (inputProjection, batch * 3 * d),
                               (recurrentScratch, batch * 3 * d), (gru2Scratch, batch * 3 * d), (cache, batch * 4 * d),
                               (intermediate, batch * d), (queryAndRecurrent, batch * decoder.queryWidth),
                               (alpha, batch * sourceSteps), (context, batch * c.contextSize),
                               (deepInput, batch * decoder.deepWidth), (deepHidden, batch * c.embedSize),
                               (logProbabilities, batch * c.targetVocabSize)] {
            buffer.reserve(size)
        }
        for s in states + nextStates { s.reserve(batch * d) }
        decoder.fillQueryBias(p)
        decoder.initialState(p, annotations: annotations, mask: sourceMask, sourceSteps: sourceSteps, batch: batch,
                             mean: mean.pointer, into: states[0].pointer)
        for s in states.dropFirst() { s.pointer.update(from: states[0].pointer, count: batch * d) }
        decoder.projectKeys(p, annotations: annotations, rows: sourceSteps * batch, into: keys.pointer)
    }

    /// Gathers the states by parent row after a beam-search step: row r continues hypothesis parents[r].
    func reorder(parents: [Int32]) {
        let d = model.config.decoderHiddenSize
        for l in states.indices {
            let from = states[l].pointer, to = nextStates[l].pointer
            for r in 0..<batch { (to + r * d).update(from: from + Int(parents[r]) * d, count: d) }
            swap(&states[l], &nextStates[l])
        }
    }

    /// Advances every row by one token (`previous` [B]) and fills `logProbabilities` [B, Vt].
    func step(previous: UnsafePointer<Int32>, annotations: UnsafePointer<Float>, sourceMask: UnsafePointer<Float>) {
        let c = model.config, p = model.parameters, w = decoder.w
        let d = c.decoderHiddenSize, e = c.embedSize, g = 3 * d, uw = decoder.deepWidth
        Embedding.forward(table: p[w.embedding], ids: previous, count: batch, width: e, into: embedded.pointer)
        BLAS.linear(embedded.pointer, rows: batch, inputs: e, weight: p[w.gru1.weightIH], bias: p[w.gru1.biasIH],
                    outputs: g, into: inputProjection.pointer)
        decoder.conditionalStep(p, batch: batch, inputProjection: inputProjection.pointer, previous: states[0].pointer,
                                keys: keys.pointer, annotations: annotations, sourceMask: sourceMask, sourceSteps: sourceSteps,
                                recurrentScratch: recurrentScratch.pointer, gru2Scratch: gru2Scratch.pointer,
                                cache1: cache.pointer, intermediate: intermediate.pointer,
                                queryAndRecurrent: queryAndRecurrent.pointer, alpha: alpha.pointer,
                                context: context.pointer, cache2: cache.pointer, state: nextStates[0].pointer)
        for (l, layer) in w.stacked.enumerated() {
            BLAS.linear(nextStates[l].pointer, rows: batch, inputs: d, weight: p[layer.weightIH], bias: p[layer.biasIH],
                        outputs: g, into: inputProjection.pointer)
            BLAS.linear(states[l + 1].pointer, rows: batch, inputs: d, weight: p[layer.weightHH], bias: p[layer.biasHH],
                        outputs: g, into: recurrentScratch.pointer)
            nmt_gru_forward(Int32(batch), Int32(d), inputProjection.pointer, Int32(g), recurrentScratch.pointer, Int32(g),
                            states[l + 1].pointer, nil, cache.pointer, nextStates[l + 1].pointer)
        }
        swap(&states, &nextStates)
        let u = deepInput.pointer, top = states.last!.pointer
        for r in 0..<batch {
            (u + r * uw).update(from: top + r * d, count: d)
            (u + r * uw + d).update(from: embedded.pointer + r * e, count: e)
            (u + r * uw + d + e).update(from: context.pointer + r * c.contextSize, count: c.contextSize)
        }
        BLAS.linear(u, rows: batch, inputs: uw, weight: p[w.deepOutputWeight], bias: p[w.deepOutputBias], outputs: e,
                    into: deepHidden.pointer)
        nmt_tanh(deepHidden.pointer, deepHidden.pointer, batch * e)
        BLAS.linear(deepHidden.pointer, rows: batch, inputs: e, weight: p[w.outputWeight], bias: p[w.outputBias],
                    outputs: c.targetVocabSize, into: logProbabilities.pointer)
        nmt_log_softmax_rows(logProbabilities.pointer, batch, c.targetVocabSize)
    }
}

extension Seq2Seq {
    /// Greedy decoding of a batch of source sentences (ids without BOS/EOS). Stops each sentence at
    /// EOS or after `maxLength` tokens; returns the ids without EOS.
    public func greedyDecode(_ sources: [[Int32]], maxLength: Int) -> [[Int32]] {
        guard !sources.isEmpty else { return [] }
        let batch = Batch(sources: sources, targets: sources.map { _ in [] })
        var rng = RandomSource(seed: 0)
        let b = batch.size, v = config.targetVocabSize
        var outputs = [[Int32]](repeating: [], count: b)
        var finished = [Bool](repeating: false, count: b)
        var previous = [Int32](repeating: SpecialTokens.bos, count: b)
        batch.sourceTokens.withUnsafeBufferPointer { tokens in
            batch.sourceMask.withUnsafeBufferPointer { mask in
                encoder.forward(parameters, tokens: tokens.baseAddress!, mask: mask.baseAddress!, steps: batch.sourceSteps,
                                batch: b, dropout: 0, rng: &rng)
                let stepper = IncrementalDecoder(model: self)
                stepper.start(annotations: encoder.annotations, sourceMask: mask.baseAddress!, sourceSteps: batch.sourceSteps, batch: b)
                for _ in 0..<maxLength {
                    stepper.step(previous: previous, annotations: encoder.annotations, sourceMask: mask.baseAddress!)
                    for r in 0..<b where !finished[r] {
                        let row = stepper.logProbabilities.pointer + r * v
                        var best = 0
                        for k in 1..<v where row[k] > row[best] { best = k }
                        previous[r] = Int32(best)
                        if Int32(best) == SpecialTokens.eos { finished[r] = true } else { outputs[r].append(Int32(best)) }
                    }
                    if !finished.contains(false) { break }
                }
            }
        }
        return outputs
    }
}
