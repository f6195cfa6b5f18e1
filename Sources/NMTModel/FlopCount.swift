import NMTTensor

/// Analytic FLOP counts of a training step (docs/benchmarks.md states the formula).
/// Every matrix product of m×k by k×n counts 2·m·n·k. The backward pass does two products of the
/// same size for each forward product (input gradient and weight gradient), so a training step
/// costs 3 × the forward FLOPs. Counted over real (unpadded) lengths, so padding is not credited.
package enum FlopCount {
    /// Forward FLOPs for sentence pairs with the given source and target lengths (target without EOS).
    static func forward(_ c: ModelConfig, sourceLengths: [Int], targetLengths: [Int]) -> Double {
        let e = Double(c.embedSize), he = Double(c.encoderHiddenSize), cs = Double(c.contextSize)
        let d = Double(c.decoderHiddenSize), a = Double(c.attentionSize), v = Double(c.targetVocabSize)
        let b = Double(sourceLengths.count)
        let ns = Double(sourceLengths.reduce(0, +))
        let nt = Double(targetLengths.reduce(0, +) + targetLengths.count)  // each target gets EOS
        var flops = 0.0
        // Encoder: two directions of input and recurrent projections, then the stacked layers.
        flops += 2 * (2 * ns * e * 3 * he + 2 * ns * he * 3 * he)
        flops += Double(c.encoderLayers - 1) * (2 * ns * cs * 3 * cs + 2 * ns * cs * 3 * cs)
        // Decoder: initial state, attention keys, GRU1, [query; GRU2 recurrent], GRU2 input.
        flops += 2 * b * cs * d + 2 * ns * cs * a
        flops += 2 * nt * e * 3 * d + 2 * nt * d * 3 * d
        flops += 2 * nt * d * (a + 3 * d)
        flops += 2 * nt * cs * 3 * d
        // Attention scores (v · tanh(K + q)) and contexts (α · C): per target step, over that sentence's source.
        for (s, t) in zip(sourceLengths, targetLengths) { flops += Double(s) * Double(t + 1) * (2 * a + 2 * cs) }
        flops += Double(c.decoderLayers - 2) * (2 * nt * d * 3 * d + 2 * nt * d * 3 * d)
        // Deep output and the output projection.
        flops += 2 * nt * (d + e + cs) * e
        flops += 2 * nt * e * v
        return flops
    }

    package static func trainingStep(_ c: ModelConfig, sourceLengths: [Int], targetLengths: [Int]) -> Double {
        3 * forward(c, sourceLengths: sourceLengths, targetLengths: targetLengths)
    }
}
