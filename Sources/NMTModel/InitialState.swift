import CKernels
import NMTTensor

/// The decoder's first state, from the mean of each sentence's annotations:
///   s0 = tanh(W_init · mean_i c_i + b_init), the mean over the sentence's unmasked positions.
/// Shapes (Ts source steps, B sentences, C annotation, D decoder hidden):
///   annotations [Ts·B, C]   mask [Ts·B]   mean [B, C]   s0 [B, D]
struct InitialState: Sendable {
    let weight, bias: ParameterView  // decoder.init.weight [D, C], decoder.init.bias [D]
    let contextSize, hiddenSize: Int

    func forward(_ p: ParameterBuffer, annotations: UnsafePointer<Float>, mask: UnsafePointer<Float>, sourceSteps: Int, batch: Int,
                 mean: UnsafeMutablePointer<Float>, into s0: UnsafeMutablePointer<Float>) {
        let c = contextSize
        mean.update(repeating: 0, count: batch * c)
        for b in 0..<batch {
            var length: Float = 0
            for t in 0..<sourceSteps where mask[t * batch + b] != 0 {
                BLAS.axpy(c, x: annotations + (t * batch + b) * c, y: mean + b * c)
                length += 1
            }
            if length > 0 { for k in 0..<c { mean[b * c + k] /= length } }
        }
        p.linear(mean, rows: batch, inputs: c, weight: weight, bias: p[bias], outputs: hiddenSize, into: s0)
        nmt_tanh(s0, s0, batch * hiddenSize)
    }

    /// Backward given dL/ds0 in `dS0` [B, D] (overwritten by the gradient before the tanh): accumulates
    /// the weights' gradients and adds dL/dannotations into `dAnnotations`. `dMean` [B, C] is scratch.
    func backward(_ p: ParameterBuffer, _ grads: ParameterBuffer, annotations: UnsafePointer<Float>, mask: UnsafePointer<Float>,
                  sourceSteps: Int, batch: Int, mean: UnsafePointer<Float>, s0: UnsafePointer<Float>,
                  dS0: UnsafeMutablePointer<Float>, dMean: UnsafeMutablePointer<Float>, dAnnotations: UnsafeMutablePointer<Float>) {
        let c = contextSize
        nmt_tanh_backward(s0, dS0, dS0, batch * hiddenSize)
        BLAS.linearBackward(mean, rows: batch, inputs: c, weight: p[weight], outputs: hiddenSize, dy: dS0,
                            dWeight: grads[weight], dBias: grads[bias], dx: dMean, accumulateDx: false)
        for b in 0..<batch {
            var length: Float = 0
            for t in 0..<sourceSteps where mask[t * batch + b] != 0 { length += 1 }
            guard length > 0 else { continue }
            for t in 0..<sourceSteps where mask[t * batch + b] != 0 {
                BLAS.axpy(c, alpha: 1 / length, x: dMean + b * c, y: dAnnotations + (t * batch + b) * c)
            }
        }
    }
}
