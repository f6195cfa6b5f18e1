import CKernels
import NMTTensor

/// Parameter views of the encoder.
struct EncoderWeights: Sendable {
    let embedding: ParameterView          // [Vs, E]
    let forwardGRU: GRUWeights            // encoder.gru0.forward   In = E, H = He
    let backwardGRU: GRUWeights           // encoder.gru0.backward  In = E, H = He
    let stacked: [GRUWeights]             // encoder.gru{l}          In = C, H = C
}

/// Bidirectional GRU encoder: source embeddings → [forward; backward] annotations → optional
/// unidirectional layers. Shapes (Ts source steps, B sentences, E embed, He per direction, C = 2He):
///   embedded [Ts·B, E]   annotations [Ts·B, C]   (time-major, row t·B + b)
/// Padding: a masked step keeps the previous state, so the backward direction starts at each
/// sentence's own last token and a padded batch gives each sentence the states it has alone.
final class Encoder {
    let weights: EncoderWeights
    let forwardGRU: GRUSequence
    let backwardGRU: GRUSequence
    let stacked: [GRUSequence]
    let embedded = FloatBuffer(count: 0)
    let embeddingDropout = Dropout(site: 1)
    /// layerOutputs[l]: output of layer l after dropout; the last one is the annotations.
    let layerOutputs: [FloatBuffer]
    let layerDropouts: [Dropout]
    let dEmbedded = FloatBuffer(count: 0)
    let dForward = FloatBuffer(count: 0), dBackward = FloatBuffer(count: 0)
    /// dLayerOutputs[l]: gradient w.r.t. layerOutputs[l]; the last one is filled by the decoder.
    let dLayerOutputs: [FloatBuffer]
    private(set) var steps = 0, batch = 0

    init(weights: EncoderWeights) {
        self.weights = weights
        forwardGRU = GRUSequence(weights: weights.forwardGRU)
        backwardGRU = GRUSequence(weights: weights.backwardGRU, reversed: true)
        stacked = weights.stacked.map { GRUSequence(weights: $0) }
        layerOutputs = (0...weights.stacked.count).map { _ in FloatBuffer(count: 0) }
        layerDropouts = (0...weights.stacked.count).map { Dropout(site: 100 + UInt64($0)) }
        dLayerOutputs = (0...weights.stacked.count).map { _ in FloatBuffer(count: 0) }
    }

    var contextSize: Int { 2 * weights.forwardGRU.hiddenSize }
    var annotations: UnsafeMutablePointer<Float> { layerOutputs.last!.pointer }
    var dAnnotations: UnsafeMutablePointer<Float> { dLayerOutputs.last!.pointer }

    func forward(_ p: ParameterBuffer, tokens: UnsafePointer<Int32>, mask: UnsafePointer<Float>, steps: Int, batch: Int,
                 dropout: DropoutKeys) {
        self.steps = steps
        self.batch = batch
        let rows = steps * batch, e = weights.forwardGRU.inputSize, he = weights.forwardGRU.hiddenSize, c = contextSize
        embedded.reserve(rows * e)
        for buffer in layerOutputs { buffer.reserve(rows * c) }
        Embedding.forward(table: p[weights.embedding], ids: tokens, count: rows, width: e, into: embedded.pointer)
        embeddingDropout.forward(embedded.pointer, count: rows * e, width: e, keys: dropout)

        forwardGRU.forward(p, input: embedded.pointer, steps: steps, batch: batch, mask: mask, initial: nil)
        backwardGRU.forward(p, input: embedded.pointer, steps: steps, batch: batch, mask: mask, initial: nil)
        let first = layerOutputs[0].pointer
        for t in 0..<steps {
            let f = forwardGRU.output(t), b = backwardGRU.output(t)
            for s in 0..<batch {
                (first + (t * batch + s) * c).update(from: f + s * he, count: he)
                (first + (t * batch + s) * c + he).update(from: b + s * he, count: he)
            }
        }
        layerDropouts[0].forward(first, count: rows * c, width: c, keys: dropout)
        for (l, layer) in stacked.enumerated() {
            layer.forward(p, input: layerOutputs[l].pointer, steps: steps, batch: batch, mask: mask, initial: nil)
            layerOutputs[l + 1].pointer.update(from: layer.output(0), count: rows * c)
            layerDropouts[l + 1].forward(layerOutputs[l + 1].pointer, count: rows * c, width: c, keys: dropout)
        }
    }

    /// Makes room for the gradients of the last `forward`'s batch (search, which never goes backward,
    /// does not hold them), and zeroes `dAnnotations`, into which the decoder's backward adds.
    func prepareBackward() {
        let rows = steps * batch
        for buffer in dLayerOutputs { buffer.reserve(rows * contextSize) }
        dAnnotations.update(repeating: 0, count: rows * contextSize)
    }

    /// Call after `prepareBackward` and the decoder's backward, which adds dL/dannotations into `dAnnotations`.
    func backward(_ p: ParameterBuffer, _ grads: ParameterBuffer, tokens: UnsafePointer<Int32>, mask: UnsafePointer<Float>) {
        let rows = steps * batch, e = weights.forwardGRU.inputSize, he = weights.forwardGRU.hiddenSize, c = contextSize
        for l in stride(from: stacked.count, through: 1, by: -1) {
            let dOut = dLayerOutputs[l].pointer
            layerDropouts[l].backward(dOut, count: rows * c)
            dLayerOutputs[l - 1].zero(rows * c)
            stacked[l - 1].backward(p, grads, input: layerOutputs[l - 1].pointer, mask: mask,
                                    dOutput: { t in UnsafePointer(dOut + t * self.batch * c) },
                                    dInput: dLayerOutputs[l - 1].pointer, dInitial: nil)
        }
        let dFirst = dLayerOutputs[0].pointer
        layerDropouts[0].backward(dFirst, count: rows * c)
        dForward.reserve(rows * he)
        dBackward.reserve(rows * he)
        for r in 0..<rows {
            (dForward.pointer + r * he).update(from: dFirst + r * c, count: he)
            (dBackward.pointer + r * he).update(from: dFirst + r * c + he, count: he)
        }
        dEmbedded.reserve(rows * e)
        dEmbedded.zero(rows * e)
        let fwd = dForward.pointer, bwd = dBackward.pointer, b = batch
        forwardGRU.backward(p, grads, input: embedded.pointer, mask: mask, dOutput: { t in UnsafePointer(fwd + t * b * he) },
                            dInput: dEmbedded.pointer, dInitial: nil)
        backwardGRU.backward(p, grads, input: embedded.pointer, mask: mask, dOutput: { t in UnsafePointer(bwd + t * b * he) },
                             dInput: dEmbedded.pointer, dInitial: nil)
        embeddingDropout.backward(dEmbedded.pointer, count: rows * e)
        Embedding.backward(dTable: grads[weights.embedding], ids: tokens, count: rows, width: e, dOut: dEmbedded.pointer)
    }
}
