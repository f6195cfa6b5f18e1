import CKernels
import NMTTensor

/// Adam (Kingma & Ba) over the flat parameter buffer, with global gradient-norm clipping.
/// The moments are flat buffers of the same layout, so checkpoints store them as two arrays.
final class Adam {
    var beta1: Float = 0.9
    var beta2: Float = 0.999
    var epsilon: Float = 1e-8
    let firstMoment: FloatBuffer
    let secondMoment: FloatBuffer
    private(set) var stepCount = 0

    init(parameterCount: Int) {
        firstMoment = FloatBuffer(count: parameterCount)
        secondMoment = FloatBuffer(count: parameterCount)
    }

    /// √(Σ g²) over the whole gradient buffer.
    static func gradientNorm(_ gradients: ParameterBuffer) -> Float {
        Float(nmt_sum_squares(gradients.storage.pointer, gradients.count).squareRoot())
    }

    /// One update. Gradients whose global norm exceeds `clipNorm` (when > 0) are scaled down to it.
    /// Returns the gradient norm before clipping, or nil — and changes nothing — when the gradient
    /// holds NaN or infinity, so a bad batch can never reach the weights or the moments.
    @discardableResult
    func step(parameters: ParameterBuffer, gradients: ParameterBuffer, learningRate: Float, clipNorm: Float = 0) -> Float? {
        step(parameters: parameters, part: 0..<parameters.count, partGradients: gradients.storage.pointer,
             learningRate: learningRate, clipNorm: clipNorm, totalSquares: { $0 })
    }

    /// The update of the weights and moments in `part` only, from that part's gradients (`partGradients`,
    /// as long as `part`): when several processes share the step, each updates its part and they then
    /// exchange the weights. `totalSquares` turns the part's Σg² into the whole gradient's (a sum over the
    /// processes), so that every process clips by the same norm and skips the same updates.
    func step(parameters: ParameterBuffer, part: Range<Int>, partGradients: UnsafePointer<Float>, learningRate: Float,
              clipNorm: Float, totalSquares: (Double) -> Double) -> Float? {
        let norm = Float(totalSquares(nmt_sum_squares(partGradients, part.count)).squareRoot())
        guard norm.isFinite else { return nil }
        let scale: Float = clipNorm > 0 && norm > clipNorm ? clipNorm / norm : 1
        stepCount += 1
        let b1 = beta1, b2 = beta2, eps = epsilon
        let correction1 = 1 - Float(Double(b1).power(stepCount)), correction2 = 1 - Float(Double(b2).power(stepCount))
        let stepSize = learningRate / correction1, rootCorrection2 = correction2.squareRoot()
        let at = part.lowerBound
        nmt_adam_update(parameters.storage.pointer + at, partGradients, firstMoment.pointer + at, secondMoment.pointer + at,
                        part.count, scale, b1, b2, stepSize, rootCorrection2, eps)
        return norm
    }

    /// Restores the update count (the moments are restored through their buffers).
    func restore(stepCount: Int) { self.stepCount = stepCount }
}

extension Double {
    fileprivate func power(_ n: Int) -> Double {
        var result = 1.0, base = self, e = n
        while e > 0 {
            if e & 1 == 1 { result *= base }
            base *= base
            e >>= 1
        }
        return result
    }
}
