import NMTTensor

/// A batch of sentence pairs, time-major and padded (row t·B + b is sentence b at step t).
///   sourceTokens, sourceMask [Ts·B]   targetInput (BOS y1 … yn), targetOutput (y1 … yn EOS), targetMask [Tt·B]
public struct Batch: Sendable {
    package let size: Int
    package let sourceSteps: Int
    package let targetSteps: Int
    var sourceTokens: [Int32]
    package var sourceMask: [Float]
    var targetInput: [Int32]
    var targetOutput: [Int32]
    package var targetMask: [Float]
    /// Real target tokens (EOS included): the loss is normalized by this.
    package let targetTokenCount: Int

    /// `sources` and `targets` hold ids without BOS/EOS; empty sources are allowed.
    package init(sources: [[Int32]], targets: [[Int32]]) {
        precondition(sources.count == targets.count && !sources.isEmpty)
        let b = sources.count
        size = b
        sourceSteps = max(1, sources.map(\.count).max()!)
        targetSteps = targets.map(\.count).max()! + 1
        sourceTokens = [Int32](repeating: SpecialTokens.pad, count: sourceSteps * b)
        sourceMask = [Float](repeating: 0, count: sourceSteps * b)
        targetInput = [Int32](repeating: SpecialTokens.pad, count: targetSteps * b)
        targetOutput = [Int32](repeating: SpecialTokens.pad, count: targetSteps * b)
        targetMask = [Float](repeating: 0, count: targetSteps * b)
        var tokens = 0
        for (s, sentence) in sources.enumerated() {
            for (t, id) in sentence.enumerated() {
                sourceTokens[t * b + s] = id
                sourceMask[t * b + s] = 1
            }
        }
        for (s, sentence) in targets.enumerated() {
            targetInput[s] = SpecialTokens.bos
            for (t, id) in sentence.enumerated() {
                targetInput[(t + 1) * b + s] = id
                targetOutput[t * b + s] = id
                targetMask[t * b + s] = 1
            }
            targetOutput[sentence.count * b + s] = SpecialTokens.eos
            targetMask[sentence.count * b + s] = 1
            tokens += sentence.count + 1
        }
        targetTokenCount = tokens
    }
}
