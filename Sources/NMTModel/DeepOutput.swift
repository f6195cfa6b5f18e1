import CKernels
import NMTTensor

/// The deep output and the output projection (Nematus' "readout"):
///   t = tanh(W_o · [s_top; y_{j−1}; ctx_j] + b_o),   logits = W_out · t + b_out
/// with dropout on s_top and on t in training. Shapes (N rows: Tt·B in training, the hypotheses in search):
///   top [N, D]   embedded [N, E]   context [N, C]   →   input U [N, D+E+C]   hidden t [N, E]   logits [N, Vt]
struct DeepOutput: Sendable {
    let weight, bias: ParameterView               // decoder.deep_output.weight [E, D+E+C], .bias [E]
    let outputWeight, outputBias: ParameterView   // decoder.output.weight [Vt, E] (the target embedding when tied), .bias [Vt]
    let hiddenSize, embedSize, contextSize, vocabSize: Int

    var inputWidth: Int { hiddenSize + embedSize + contextSize }

    final class Activations {
        let input = FloatBuffer(count: 0)          // U, its s_top part after dropout
        let hidden = FloatBuffer(count: 0)         // t before dropout
        let hiddenDropped = FloatBuffer(count: 0)  // t after dropout (written only when dropout is on)
        let stateDropout = Dropout(site: 3), hiddenDropout = Dropout(site: 4)
        /// The logits (in training, one chunk of rows of them); the loss overwrites them with dL/dlogits.
        let logits = FloatBuffer(count: 0)
        let dHidden = FloatBuffer(count: 0)
        /// dL/dU [N, D+E+C], the s_top part with the dropout mask applied.
        let dInput = FloatBuffer(count: 0)

        /// What the output projection reads: t, after dropout when there is any.
        var projected: UnsafeMutablePointer<Float> { hiddenDropout.active ? hiddenDropped.pointer : hidden.pointer }

        /// `logitRows`: the rows of logits held at once (all of them, unless the loss goes in chunks).
        func reserve(_ layer: DeepOutput, rows: Int, gradients: Bool, logitRows: Int? = nil) {
            input.reserve(rows * layer.inputWidth)
            hidden.reserve(rows * layer.embedSize)
            logits.reserve(min(rows, logitRows ?? rows) * layer.vocabSize)
            guard gradients else { return }
            hiddenDropped.reserve(rows * layer.embedSize)
            dHidden.reserve(rows * layer.embedSize)
            dInput.reserve(rows * layer.inputWidth)
        }
    }

    /// Some rows of the output layer, gathered (a shortlist's): weight [count, E], bias [count], and the
    /// weight packed for bf16 or int8 products when the model decodes in one.
    struct Columns {
        let weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, count: Int
        let packed: PackedMatrix?
    }

    /// With `output`, the logits are those of its columns only [N, count]. Without `projectOutput`, it stops
    /// at t and leaves the output layer to `lossInChunks`.
    func forward(_ p: ParameterBuffer, rows: Int, top: UnsafePointer<Float>, embedded: UnsafePointer<Float>,
                 context: UnsafePointer<Float>, dropout: DropoutKeys, _ a: Activations, output: Columns? = nil,
                 projectOutput: Bool = true) {
        let d = hiddenSize, e = embedSize, c = contextSize, uw = inputWidth, u = a.input.pointer
        for r in 0..<rows {
            (u + r * uw).update(from: top + r * d, count: d)
            (u + r * uw + d).update(from: embedded + r * e, count: e)
            (u + r * uw + d + e).update(from: context + r * c, count: c)
        }
        a.stateDropout.draw(count: rows * d, width: d, keys: dropout)
        if a.stateDropout.active {
            for r in 0..<rows { nmt_mul(u + r * uw, a.stateDropout.mask.pointer + r * d, u + r * uw, d) }
        }
        p.linear(u, rows: rows, inputs: uw, weight: weight, bias: p[bias], outputs: e, into: a.hidden.pointer)
        nmt_tanh(a.hidden.pointer, a.hidden.pointer, rows * e)
        a.hiddenDropout.draw(count: rows * e, width: e, keys: dropout)
        if a.hiddenDropout.active {
            a.hiddenDropped.reserve(rows * e)
            a.hiddenDropped.pointer.update(from: a.hidden.pointer, count: rows * e)
            a.hiddenDropout.apply(a.hiddenDropped.pointer, count: rows * e)
        }
        guard projectOutput else { return }
        if let output {
            if let packed = output.packed {
                packed.linear(a.projected, rows: rows, ldx: e, bias: output.bias, into: a.logits.pointer, ldy: output.count)
                return
            }
            BLAS.linear(a.projected, rows: rows, inputs: e, weight: output.weight, bias: output.bias, outputs: output.count,
                        into: a.logits.pointer)
            return
        }
        p.linear(a.projected, rows: rows, inputs: e, weight: outputWeight, bias: p[outputBias], outputs: vocabSize,
                    into: a.logits.pointer)
    }

    /// The output layer and the label-smoothed cross-entropy over `rows` rows of t (after a forward without
    /// `projectOutput`), `chunkRows` rows at a time so that the logits [N, Vt] are never held whole: each
    /// chunk's logits are computed, turned into dL/dlogits by the loss and, with `grads`, taken back through
    /// the output layer at once (dW_out, db_out and the chunk's rows of dL/dt into `a.dHidden`).
    /// Returns the loss summed over the rows (weighted by `weights`) and adds the NLL into `nll`.
    func lossInChunks(_ p: ParameterBuffer, _ grads: ParameterBuffer?, rows: Int, chunkRows: Int, targets: UnsafePointer<Int32>,
                      weights: UnsafePointer<Float>, labelSmoothing: Float, tokenScale: Float, _ a: Activations,
                      nll: inout Double) -> Double {
        let e = embedSize, v = vocabSize
        var loss = 0.0
        for start in stride(from: 0, to: rows, by: chunkRows) {
            let n = min(chunkRows, rows - start), t = a.projected + start * e
            p.linear(t, rows: n, inputs: e, weight: outputWeight, bias: p[outputBias], outputs: v, into: a.logits.pointer)
            var chunkNLL = 0.0
            loss += nmt_label_smoothed_xent(a.logits.pointer, Int32(n), Int32(v), targets + start, weights + start, labelSmoothing,
                                            tokenScale, &chunkNLL)
            nll += chunkNLL
            guard let grads else { continue }
            BLAS.linearBackward(t, rows: n, inputs: e, weight: p[outputWeight], outputs: v, dy: a.logits.pointer,
                                dWeight: grads[outputWeight], dBias: grads[outputBias], dx: a.dHidden.pointer + start * e,
                                accumulateDx: false)
        }
        return loss
    }

    /// Backward from dL/dlogits (left in `a.logits` by the loss) to dL/dU in `a.dInput`; with
    /// `outputDone`, from dL/dt, which `lossInChunks` left in `a.dHidden`.
    func backward(_ p: ParameterBuffer, _ grads: ParameterBuffer, rows: Int, _ a: Activations, outputDone: Bool = false) {
        let d = hiddenSize, e = embedSize, uw = inputWidth
        if !outputDone {
            BLAS.linearBackward(a.projected, rows: rows, inputs: e, weight: p[outputWeight], outputs: vocabSize, dy: a.logits.pointer,
                                dWeight: grads[outputWeight], dBias: grads[outputBias], dx: a.dHidden.pointer, accumulateDx: false)
        }
        a.hiddenDropout.backward(a.dHidden.pointer, count: rows * e)
        nmt_tanh_backward(a.hidden.pointer, a.dHidden.pointer, a.dHidden.pointer, rows * e)
        BLAS.linearBackward(a.input.pointer, rows: rows, inputs: uw, weight: p[weight], outputs: e, dy: a.dHidden.pointer,
                            dWeight: grads[weight], dBias: grads[bias], dx: a.dInput.pointer, accumulateDx: false)
        if a.stateDropout.active {
            let du = a.dInput.pointer
            for r in 0..<rows { nmt_mul(du + r * uw, a.stateDropout.mask.pointer + r * d, du + r * uw, d) }
        }
    }
}
