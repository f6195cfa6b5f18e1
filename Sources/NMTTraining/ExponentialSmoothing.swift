import NMTTensor

/// A moving average of the weights (Polyak averaging, Marian's `--exponential-smoothing`): after each
/// update, smoothed <- decay * smoothed + (1 - decay) * weights. The average changes more slowly than the
/// weights and usually translates better; the trainer validates and saves it, and keeps the raw weights
/// (and the average, for an exact resume) in the checkpoint.
final class ExponentialSmoothing {
    let decay: Float
    /// The average, as long as the flat parameter buffer.
    let smoothed: FloatBuffer
    let count: Int

    /// Starts the average at the current weights.
    init(decay: Float, weights: ParameterBuffer) {
        precondition(decay > 0 && decay < 1)
        self.decay = decay
        count = weights.count
        smoothed = FloatBuffer(count: count)
        smoothed.pointer.update(from: weights.storage.pointer, count: count)
    }

    /// Folds the weights after an update into the average (in `part` of the flat buffer, when the
    /// processes share the optimizer step; else all of it).
    func update(from weights: ParameterBuffer, part: Range<Int>? = nil) {
        let w = weights.storage.pointer, s = smoothed.pointer, d = decay, rest = 1 - decay
        for i in part ?? 0..<count { s[i] = d * s[i] + rest * w[i] }
    }

    /// Runs `body` with the average in place of the weights: the two are swapped in place (no third
    /// copy), and swapped back after, whatever `body` does.
    func withSmoothedWeights<R>(in weights: ParameterBuffer, _ body: () throws -> R) rethrows -> R {
        swap(weights)
        defer { swap(weights) }
        return try body()
    }

    private func swap(_ weights: ParameterBuffer) {
        let w = weights.storage.pointer, s = smoothed.pointer
        for i in 0..<count { (w[i], s[i]) = (s[i], w[i]) }
    }
}
