import CKernels
import NMTTensor

/// What a search needs from a model, and all it may touch: encode the sources and start a number of
/// rows per sentence, advance every row by one token, and move rows around. (JoeyNMT's search receives
/// a decoder the same way; an ensemble is another implementation.)
package protocol IncrementalDecoding: AnyObject {
    var targetVocabSize: Int { get }
    /// Rows (hypotheses) in the current step; the rows of sentence s are s·k … s·k+k−1 after `start`.
    var rows: Int { get }
    var sourceSteps: Int { get }
    /// Encodes `sources` (ids without BOS/EOS) and sets up `beams` rows for each sentence.
    func start(sources: [[Int32]], beams: Int)
    /// Advances every row by one token (`previous` [R]); afterwards log p(v | row) = logits[row, v] − logSumExp[row].
    func step(previous: UnsafePointer<Int32>)
    /// The last step's logits [R, Vt].
    var logits: UnsafePointer<Float> { get }
    /// The last step's log Σ_v exp(logits[row, v]) [R].
    var logSumExp: UnsafePointer<Float> { get }
    /// The last step's attention weights [R, Ts].
    var attention: UnsafePointer<Float> { get }
    /// Row i continues the hypothesis of row parents[i] (of the same sentence).
    func reorder(parents: UnsafePointer<Int32>)
    /// Keeps only the rows `kept` (in that order), e.g. those of unfinished sentences.
    func compact(kept: UnsafePointer<Int32>, count: Int)
    /// Another decoder over the same weights with workspaces of its own, for another thread.
    func replica() -> any IncrementalDecoding
}

/// The model's decoder one target position at a time, for many rows at once: the same layer functions
/// as `Decoder.forward` (the conditional GRU step, the stacked GRU cells, the deep output), called on the
/// rows of one step instead of a whole target prefix. The k beams of sentence s are rows s·k … s·k+k−1,
/// and every row carries its own copy of its sentence's annotations, keys and mask, so each step is
/// one GEMM per layer over all rows and the attention kernel needs no indirection. Beam search moves
/// rows around with `reorder` (by parent index) and drops the rows of finished sentences with `compact`.
///
/// Shapes (R rows, Ts source steps): annotations [Ts·R, C], keys [Ts·R, A], mask [Ts·R],
/// states[l] [R, D], logits [R, Vt], logSumExp [R].
package final class IncrementalDecoder: IncrementalDecoding {
    package let model: Seq2Seq
    package private(set) var rows = 0, sourceSteps = 0
    // The source side, a copy per row.
    private var annotations = FloatBuffer(count: 0), keys = FloatBuffer(count: 0), mask = FloatBuffer(count: 0)
    private var spareAnnotations = FloatBuffer(count: 0), spareKeys = FloatBuffer(count: 0), spareMask = FloatBuffer(count: 0)
    // Per sentence, at the start: [B, C], [Ts·B, A], [B, D].
    private let mean = FloatBuffer(count: 0), sentenceKeys = FloatBuffer(count: 0), initial = FloatBuffer(count: 0)
    // One step.
    private let embedded = FloatBuffer(count: 0)          // [R, E]
    private let inputProjection = FloatBuffer(count: 0)   // [R, 3D]: GRU1's, then each stacked layer's
    private let conditional = ConditionalGRUActivations()  // one step of R rows
    /// states[l]: current state of decoder layer l (0: the conditional GRU's output).
    private var states: [FloatBuffer] = [], nextStates: [FloatBuffer] = []
    private let deep = DeepOutput.Activations()
    private let rowLogSumExp = FloatBuffer(count: 0)

    package init(model: Seq2Seq) {
        self.model = model
        states = (0..<model.config.decoderLayers - 1).map { _ in FloatBuffer(count: 0) }
        nextStates = (0..<model.config.decoderLayers - 1).map { _ in FloatBuffer(count: 0) }
    }

    package func replica() -> any IncrementalDecoding { IncrementalDecoder(model: model.replica()) }

    private var layers: DecoderWeights { model.decoderWeights }
    package var targetVocabSize: Int { model.config.targetVocabSize }
    package var logits: UnsafePointer<Float> { UnsafePointer(deep.logits.pointer) }
    package var logSumExp: UnsafePointer<Float> { UnsafePointer(rowLogSumExp.pointer) }
    package var attention: UnsafePointer<Float> { UnsafePointer(conditional.alpha.pointer) }

    package func start(sources: [[Int32]], beams: Int) {
        let batch = Batch(sources: sources, targets: sources.map { _ in [] })
        batch.sourceTokens.withUnsafeBufferPointer { tokens in
            batch.sourceMask.withUnsafeBufferPointer { sourceMask in
                model.encoder.forward(model.parameters, tokens: tokens.baseAddress!, mask: sourceMask.baseAddress!,
                                      steps: batch.sourceSteps, batch: batch.size, dropout: .none)
                start(encoded: model.encoder.annotations, sourceMask: sourceMask.baseAddress!, sourceSteps: batch.sourceSteps,
                      sentences: batch.size, beams: beams)
            }
        }
    }

    /// Sets up `beams` rows for each of `sentences` sentences from the encoder's output (`encoded`
    /// [Ts·B, C], `sourceMask` [Ts·B]): keys and initial states are computed per sentence, then
    /// repeated for its rows.
    func start(encoded: UnsafePointer<Float>, sourceMask: UnsafePointer<Float>, sourceSteps ts: Int, sentences b: Int, beams k: Int) {
        let c = model.config, d = c.decoderHiddenSize, p = model.parameters, cs = c.contextSize, a = c.attentionSize
        let cgru = layers.conditionalGRU
        rows = b * k
        sourceSteps = ts
        let r = rows
        for (buffer, size) in [(mean, b * cs), (sentenceKeys, ts * b * a), (initial, b * d),
                               (annotations, ts * r * cs), (keys, ts * r * a), (mask, ts * r),
                               (spareAnnotations, ts * r * cs), (spareKeys, ts * r * a), (spareMask, ts * r),
                               (embedded, r * c.embedSize), (inputProjection, r * 3 * d), (rowLogSumExp, r)] {
            buffer.reserve(size)
        }
        for s in states + nextStates { s.reserve(r * d) }
        conditional.reserve(cgru, steps: 1, batch: r, sourceSteps: ts, gradients: false)
        deep.reserve(layers.deepOutput, rows: r, gradients: false)
        cgru.fillQueryBias(p, into: conditional.queryBias.pointer)
        layers.initialState.forward(p, annotations: encoded, mask: sourceMask, sourceSteps: ts, batch: b, mean: mean.pointer,
                                    into: initial.pointer)
        cgru.projectKeys(p, annotations: encoded, rows: ts * b, into: sentenceKeys.pointer)
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

    package func step(previous: UnsafePointer<Int32>) {
        let c = model.config, p = model.parameters, cgru = layers.conditionalGRU
        let r = rows, v = c.targetVocabSize
        Embedding.forward(table: p[layers.embedding], ids: previous, count: r, width: c.embedSize, into: embedded.pointer)
        cgru.gru1.projectInputs(p, embedded.pointer, rows: r, into: inputProjection.pointer)
        var step = conditional.step(0, cgru, inputProjection: inputProjection.pointer, sourceSteps: sourceSteps)
        step.previous = UnsafePointer(states[0].pointer)
        step.state = nextStates[0].pointer
        cgru.forward(p, queryBias: conditional.queryBias.pointer, rows: r,
                     source: ConditionalGRU.Source(keys: keys.pointer, annotations: annotations.pointer, mask: mask.pointer, steps: sourceSteps),
                     step: step)
        // The stacked layers reuse the conditional GRU's scratch: nothing goes backward in search.
        for (l, layer) in layers.stacked.enumerated() {
            layer.projectInputs(p, nextStates[l].pointer, rows: r, into: inputProjection.pointer)
            layer.step(p, inputProjection: inputProjection.pointer, previous: states[l + 1].pointer, rows: r, mask: nil,
                       recurrent: conditional.recurrent1.pointer, cache: conditional.cache1.pointer, into: nextStates[l + 1].pointer)
        }
        swap(&states, &nextStates)
        layers.deepOutput.forward(p, rows: r, top: states.last!.pointer, embedded: embedded.pointer, context: conditional.contexts.pointer,
                                  dropout: .none, deep)
        for row in 0..<r { rowLogSumExp[row] = nmt_log_sum_exp(deep.logits.pointer + row * v, v) }
    }

    package func reorder(parents: UnsafePointer<Int32>) {
        let d = model.config.decoderHiddenSize
        for l in states.indices {
            let from = states[l].pointer, to = nextStates[l].pointer
            for row in 0..<rows { (to + row * d).update(from: from + Int(parents[row]) * d, count: d) }
            swap(&states[l], &nextStates[l])
        }
    }

    /// Gathers states, annotations, keys and mask of the kept rows, so finished sentences cost nothing in later steps.
    package func compact(kept: UnsafePointer<Int32>, count: Int) {
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
