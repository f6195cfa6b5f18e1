import NMTTensor

/// A batch of sentence pairs, time-major and padded (row t·B + b is sentence b at step t).
///   sourceTokens, sourceMask [Ts·B]   targetInput (BOS y1 … yn), targetOutput (y1 … yn EOS), targetMask [Tt·B]
public struct Batch: Sendable {
    package private(set) var size = 0
    package private(set) var sourceSteps = 0
    package private(set) var targetSteps = 0
    var sourceTokens: [Int32] = []
    package var sourceMask: [Float] = []
    var targetInput: [Int32] = []
    var targetOutput: [Int32] = []
    package var targetMask: [Float] = []
    /// Real target tokens (EOS included): the loss is normalized by this.
    package private(set) var targetTokenCount = 0

    /// `sources` and `targets` hold ids without BOS/EOS; empty sources are allowed.
    package init(sources: [[Int32]], targets: [[Int32]]) {
        precondition(sources.count == targets.count && !sources.isEmpty)
        reset(size: sources.count, sourceSteps: sources.map(\.count).max()!, targetSteps: targets.map(\.count).max()! + 1)
        for s in 0..<sources.count { setSentence(s, source: sources[s], target: targets[s]) }
    }

    /// An empty batch to be filled by `reset` and `setSentence`. Its arrays keep their capacity from one
    /// filling to the next, so a batch kept by the training loop stops allocating once it has held the
    /// largest pass.
    package init() {}

    /// Empties the batch for `size` sentences: the longest source has `sourceSteps` tokens (the batch has
    /// at least one step even when every source is empty), the longest target with EOS `targetSteps`.
    package mutating func reset(size b: Int, sourceSteps longestSource: Int, targetSteps: Int) {
        precondition(b > 0 && targetSteps > 0)
        size = b
        sourceSteps = max(1, longestSource)
        self.targetSteps = targetSteps
        targetTokenCount = 0
        Self.fill(&sourceTokens, sourceSteps * b, SpecialTokens.pad)
        Self.fill(&sourceMask, sourceSteps * b, 0)
        Self.fill(&targetInput, targetSteps * b, SpecialTokens.pad)
        Self.fill(&targetOutput, targetSteps * b, SpecialTokens.pad)
        Self.fill(&targetMask, targetSteps * b, 0)
    }

    /// Places sentence `s` (ids without BOS/EOS) in its column. The lengths must fit `reset`'s.
    package mutating func setSentence(_ s: Int, source: [Int32], target: [Int32]) {
        let b = size
        precondition(s >= 0 && s < b && source.count <= sourceSteps && target.count < targetSteps)
        for t in 0..<source.count {
            sourceTokens[t * b + s] = source[t]
            sourceMask[t * b + s] = 1
        }
        targetInput[s] = SpecialTokens.bos
        for t in 0..<target.count {
            targetInput[(t + 1) * b + s] = target[t]
            targetOutput[t * b + s] = target[t]
            targetMask[t * b + s] = 1
        }
        targetOutput[target.count * b + s] = SpecialTokens.eos
        targetMask[target.count * b + s] = 1
        targetTokenCount += target.count + 1
    }

    /// `array` as `count` copies of `value`, in the storage it has when that is large enough.
    private static func fill<T>(_ array: inout [T], _ count: Int, _ value: T) {
        if array.count > count { array.removeLast(array.count - count) }
        array.withUnsafeMutableBufferPointer { $0.update(repeating: value) }
        if array.count < count { array.append(contentsOf: repeatElement(value, count: count - array.count)) }
    }
}
