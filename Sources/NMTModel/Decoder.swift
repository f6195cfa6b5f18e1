import CKernels
import NMTTensor

/// Parameter views of the decoder, grouped by layer.
struct DecoderWeights: Sendable {
    let embedding: ParameterView          // [Vt, E]  (the encoder's table when shared)
    let initialState: InitialState
    let conditionalGRU: ConditionalGRU
    let stacked: [GRUWeights]             // decoder.gru3, …: In = D, H = D
    let deepOutput: DeepOutput
}

/// The decoder with teacher forcing: initial state, conditional GRU over the target steps, further
/// stacked GRUs, deep output and output projection. Each layer's forward and backward live side by
/// side in its own file; `forward` and `backward` here are the two loops over them, in mirror order.
///
/// Shapes (Tt target steps, Ts source steps, B sentences):
///   targetEmbedded Y [Tt·B, E]   gru1InputProjection [Tt·B, 3D]   keys [Ts·B, A]   initialMean [B, C]
///   conditional GRU: states [(Tt+1)·B, D] (slot 0 = s0, slot j+1 = s_j) and per step as in ConditionalGRU
///   stacked layer l: its GRUSequence's states      deep output: [Tt·B, D+E+C] → [Tt·B, E] → logits [Tt·B, Vt]
final class Decoder {
    let w: DecoderWeights
    let stacked: [GRUSequence]
    private(set) var steps = 0, batch = 0, sourceSteps = 0

    // Activations.
    let initialMean = FloatBuffer(count: 0)
    let keys = FloatBuffer(count: 0)
    let targetEmbedded = FloatBuffer(count: 0)
    let embeddingDropout = Dropout(site: 2)
    let gru1InputProjection = FloatBuffer(count: 0)
    let conditional = ConditionalGRUActivations()
    let deep = DeepOutput.Activations()
    /// The logits [Tt·B, Vt] after a `forward` without `outputChunkRows` (training's passes hold one chunk
    /// of them at a time instead, in `loss`); the loss overwrites them with dL/dlogits.
    var logits: FloatBuffer { deep.logits }

    // Gradients.
    let dTopStates = FloatBuffer(count: 0)           // [Tt·B, D] dL/d(top layer's outputs)
    let dConditionalStates = FloatBuffer(count: 0)   // [Tt·B, D] dL/ds_j from the layers above
    let dStackScratch = FloatBuffer(count: 0)        // [Tt·B, D]
    let dInitial = FloatBuffer(count: 0)             // [B, D] dL/ds0, summed over every layer that starts from it
    let dStackInitial = FloatBuffer(count: 0)        // [B, D]
    let dKeys = FloatBuffer(count: 0)
    let dTargetEmbedded = FloatBuffer(count: 0)
    let dMean = FloatBuffer(count: 0)

    init(weights: DecoderWeights) {
        w = weights
        stacked = weights.stacked.map { GRUSequence(weights: $0) }
    }

    var hidden: Int { w.conditionalGRU.hiddenSize }
    var embed: Int { w.deepOutput.embedSize }
    var context: Int { w.conditionalGRU.contextSize }

    private func reserve(steps: Int, batch: Int, sourceSteps: Int, logitRows: Int?) {
        self.steps = steps; self.batch = batch; self.sourceSteps = sourceSteps
        let rows = steps * batch, d = hidden, a = w.conditionalGRU.attentionSize
        conditional.reserve(w.conditionalGRU, steps: steps, batch: batch, sourceSteps: sourceSteps, gradients: true)
        deep.reserve(w.deepOutput, rows: rows, gradients: true, logitRows: logitRows)
        for (buffer, size) in [(initialMean, batch * context), (keys, sourceSteps * batch * a), (targetEmbedded, rows * embed),
                               (gru1InputProjection, rows * 3 * d), (dTopStates, rows * d), (dConditionalStates, rows * d),
                               (dStackScratch, rows * d), (dInitial, batch * d), (dStackInitial, batch * d),
                               (dKeys, sourceSteps * batch * a), (dTargetEmbedded, rows * embed), (dMean, batch * context)] {
            buffer.reserve(size)
        }
    }

    /// The output of the topmost decoder GRU [Tt·B, D].
    private var topStates: UnsafeMutablePointer<Float> {
        stacked.last?.output(0) ?? conditional.states.pointer + batch * hidden
    }

    /// Runs the decoder over the whole target prefix and leaves the logits [Tt·B, Vt] in `logits`; with
    /// `outputChunkRows`, it stops before the output layer, which `loss` then runs that many rows at a time.
    func forward(_ p: ParameterBuffer, annotations: UnsafePointer<Float>, sourceMask: UnsafePointer<Float>, sourceSteps: Int,
                 targetInput: UnsafePointer<Int32>, steps: Int, batch: Int, dropout: DropoutKeys, outputChunkRows: Int? = nil) {
        reserve(steps: steps, batch: batch, sourceSteps: sourceSteps, logitRows: outputChunkRows)
        let rows = steps * batch, cgru = w.conditionalGRU, g = 3 * hidden
        w.initialState.forward(p, annotations: annotations, mask: sourceMask, sourceSteps: sourceSteps, batch: batch,
                               mean: initialMean.pointer, into: conditional.states.pointer)
        cgru.projectKeys(p, annotations: annotations, rows: sourceSteps * batch, into: keys.pointer)
        Embedding.forward(table: p[w.embedding], ids: targetInput, count: rows, width: embed, into: targetEmbedded.pointer)
        embeddingDropout.forward(targetEmbedded.pointer, count: rows * embed, width: embed, keys: dropout)
        cgru.gru1.projectInputs(p, targetEmbedded.pointer, rows: rows, into: gru1InputProjection.pointer)

        cgru.fillQueryBias(p, into: conditional.queryBias.pointer)
        let source = ConditionalGRU.Source(keys: keys.pointer, annotations: annotations, mask: sourceMask, steps: sourceSteps)
        for j in 0..<steps {
            let step = conditional.step(j, cgru, inputProjection: gru1InputProjection.pointer + j * batch * g, sourceSteps: sourceSteps)
            cgru.forward(p, queryBias: conditional.queryBias.pointer, rows: batch, source: source, step: step)
        }

        var below = conditional.states.pointer + batch * hidden
        for layer in stacked {
            layer.forward(p, input: below, steps: steps, batch: batch, mask: nil, initial: conditional.states.pointer)
            below = layer.output(0)
        }
        w.deepOutput.forward(p, rows: rows, top: topStates, embedded: targetEmbedded.pointer, context: conditional.contexts.pointer,
                             dropout: dropout, deep, projectOutput: outputChunkRows == nil)
    }

    /// The output layer and the loss after a `forward` with `outputChunkRows`, and with `grads` their backward
    /// (see `DeepOutput.lossInChunks`). Returns the loss sum and the NLL sum.
    func loss(_ p: ParameterBuffer, _ grads: ParameterBuffer?, chunkRows: Int, targets: UnsafePointer<Int32>, weights: UnsafePointer<Float>,
              labelSmoothing: Float, tokenScale: Float) -> (loss: Double, nll: Double) {
        var nll = 0.0
        let loss = w.deepOutput.lossInChunks(p, grads, rows: steps * batch, chunkRows: chunkRows, targets: targets, weights: weights,
                                             labelSmoothing: labelSmoothing, tokenScale: tokenScale, deep, nll: &nll)
        return (loss, nll)
    }

    /// Backward from dL/dlogits (left in `logits` by the loss), through the layers in reverse order;
    /// with `outputDone`, from the dL/dt that `loss` left (it has done the output layer's backward).
    /// Accumulates parameter gradients and adds dL/dannotations into `dAnnotations` [Ts·B, C] (which the
    /// caller zeroes first).
    func backward(_ p: ParameterBuffer, _ grads: ParameterBuffer, annotations: UnsafePointer<Float>,
                  sourceMask: UnsafePointer<Float>, targetInput: UnsafePointer<Int32>, dAnnotations: UnsafeMutablePointer<Float>,
                  outputDone: Bool = false) {
        let rows = steps * batch, d = hidden, bd = batch * d, cgru = w.conditionalGRU, uw = w.deepOutput.inputWidth
        w.deepOutput.backward(p, grads, rows: rows, deep, outputDone: outputDone)
        // dU = [ds_top; dy; dctx]: the first two parts are gathered here, dctx is read step by step below.
        let du = deep.dInput.pointer
        for r in 0..<rows {
            (dTopStates.pointer + r * d).update(from: du + r * uw, count: d)
            (dTargetEmbedded.pointer + r * embed).update(from: du + r * uw + d, count: embed)
        }

        // Stacked layers, top down; each passes dL/dinput to the one below and dL/dh0 to s0.
        dInitial.zero(bd)
        var dAbove = dTopStates.pointer, spare = dStackScratch.pointer
        for l in stride(from: stacked.count - 1, through: 0, by: -1) {
            let below = l == 0 ? conditional.states.pointer + bd : stacked[l - 1].output(0)
            let dBelow = l == 0 ? dConditionalStates.pointer : spare
            let dOut = UnsafePointer(dAbove)
            dBelow.update(repeating: 0, count: rows * d)
            stacked[l].backward(p, grads, input: below, mask: nil, dOutput: { t in dOut + t * bd },
                                dInput: dBelow, dInitial: dStackInitial.pointer)
            BLAS.axpy(bd, x: dStackInitial.pointer, y: dInitial.pointer)
            spare = dAbove
            dAbove = dBelow
        }
        if stacked.isEmpty { dConditionalStates.pointer.update(from: dTopStates.pointer, count: rows * d) }

        // The conditional GRU, backwards through time.
        dKeys.zero(sourceSteps * batch * cgru.attentionSize)
        conditional.dState.zero(bd)
        let source = ConditionalGRU.Source(keys: keys.pointer, annotations: annotations, mask: sourceMask, steps: sourceSteps)
        for j in stride(from: steps - 1, through: 0, by: -1) {
            let step = conditional.step(j, cgru, inputProjection: gru1InputProjection.pointer + j * batch * 3 * d, sourceSteps: sourceSteps)
            let gradients = conditional.stepGradients(j, cgru)
            BLAS.axpy(bd, x: dConditionalStates.pointer + j * bd, y: gradients.dState)
            for b in 0..<batch { (gradients.dContext + b * context).update(from: du + (j * batch + b) * uw + d + embed, count: context) }
            cgru.backward(p, grads, rows: batch, source: source, step: step, gradients: gradients, dKeys: dKeys.pointer,
                          dAnnotations: dAnnotations)
        }
        BLAS.axpy(bd, x: conditional.dState.pointer, y: dInitial.pointer)
        cgru.weightsBackward(p, grads, rows: rows, previousStates: conditional.states.pointer,
                             intermediate: conditional.intermediate.pointer, contexts: conditional.contexts.pointer,
                             dRecurrent1: conditional.dRecurrent1.pointer,
                             dGRU2InputProjection: conditional.dGRU2InputProjection.pointer,
                             dQueryAndRecurrent: conditional.dQueryAndRecurrent.pointer)

        cgru.gru1.projectInputsBackward(p, grads, targetEmbedded.pointer, rows: rows,
                                        dInputProjection: conditional.dInputProjection.pointer, dInput: dTargetEmbedded.pointer)
        embeddingDropout.backward(dTargetEmbedded.pointer, count: rows * embed)
        Embedding.backward(dTable: grads[w.embedding], ids: targetInput, count: rows, width: embed, dOut: dTargetEmbedded.pointer)
        cgru.projectKeysBackward(p, grads, annotations: annotations, rows: sourceSteps * batch, dKeys: dKeys.pointer,
                                 dAnnotations: dAnnotations)
        w.initialState.backward(p, grads, annotations: annotations, mask: sourceMask, sourceSteps: sourceSteps, batch: batch,
                                mean: initialMean.pointer, s0: conditional.states.pointer, dS0: dInitial.pointer,
                                dMean: dMean.pointer, dAnnotations: dAnnotations)
    }
}
