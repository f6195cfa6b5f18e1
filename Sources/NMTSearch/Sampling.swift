import CKernels
import Foundation
import NMTModel
import NMTTensor

/// Ancestral sampling instead of beam search (back-translation: sampled translations of monolingual
/// text train better models than beam ones, Edunov et al. 2018).
public struct SamplingOptions: Sendable {
    /// Draw among the k most probable pieces only (0: the whole vocabulary).
    var topK = 0
    /// Divide the logits by this before the softmax (below 1: sharper, above 1: flatter).
    var temperature: Float = 1
    var seed: UInt64 = 1
    /// The input line number of the first sentence given to `Translator.translate`: sentence i draws from a
    /// random stream of its own, fixed by (seed, firstIndex + i), so the output does not depend on how
    /// lines are batched or on the number of threads.
    public var firstIndex = 0

    public init(topK: Int = 0, temperature: Float = 1, seed: UInt64 = 1) {
        self.topK = topK
        self.temperature = temperature
        self.seed = seed
    }
}

extension BeamSearch {
    /// One sampled translation per sentence, batched as beam search is: one row per sentence, every row a
    /// row of each decoder step, the rows of finished sentences dropped (`compact`). Each step draws piece v
    /// with probability ∝ exp(logit_v / T) among the top k. The returned log-probability is the model's own
    /// (T = 1, the whole vocabulary), including end-of-sentence; the score divides it by length^α as beam
    /// search does.
    func sample(_ sources: [[Int32]], options: BeamSearchOptions, sampling: SamplingOptions, sentenceIndices: [Int]) -> [[Hypothesis]] {
        precondition(decoder.columnIds == nil, "sampling draws from the whole vocabulary")
        let n = sources.count, v = decoder.targetVocabSize
        decoder.start(sources: sources, beams: 1)
        var random = sentenceIndices.map { i in
            RandomSource(seed: sampling.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(sampling.firstIndex + i) &* 0xBF58_476D_1CE4_E5B9)
        }
        let maxLength = sources.map { min(Int(Float($0.count) * options.maxLengthRatio) + options.maxLengthOffset, options.maxOutputLength) }
        var tokens = [[Int32]](repeating: [], count: n), logProbability = [Float](repeating: 0, count: n)
        var lengths = [Int](repeating: 0, count: n)
        var rowSentence = Array(0..<n)  // after compacting, row r decodes sentence rowSentence[r]
        var previous = [Int32](repeating: SpecialTokens.bos, count: n)
        var draw = SampleDraw(vocabulary: v, sampling: sampling)
        var step = 0
        while !rowSentence.isEmpty {
            step += 1
            decoder.step(previous: previous)
            let logits = decoder.logits, logSumExp = decoder.logSumExp
            var kept: [Int32] = [], next: [Int32] = []
            for (row, s) in rowSentence.enumerated() {
                let token = draw.piece(logits + row * v, random: &random[s])
                logProbability[s] = logProbability[s] + logits[row * v + Int(token)] - logSumExp[row]
                lengths[s] = step
                if token != SpecialTokens.eos { tokens[s].append(token) }
                if token != SpecialTokens.eos && step < maxLength[s] {
                    kept.append(Int32(row))
                    next.append(token)
                }
            }
            if kept.count < rowSentence.count {
                rowSentence = kept.map { rowSentence[Int($0)] }
                if !kept.isEmpty { decoder.compact(kept: kept, count: kept.count) }
            }
            previous = next
        }
        return (0..<n).map { s in
            [Hypothesis(tokens: tokens[s], logProbability: logProbability[s],
                        score: logProbability[s] / powf(Float(lengths[s]), options.lengthPenalty), alignment: [])]
        }
    }
}

/// One draw from a row of logits: softmax(logits / T) over the top k (or all) pieces, inverted at a
/// uniform number. Workspaces are kept from draw to draw.
struct SampleDraw {
    let vocabulary: Int, topK: Int, inverseTemperature: Double
    var weights: [Double]
    var topIndex: [Int32], topValue: [Float]

    init(vocabulary: Int, sampling: SamplingOptions) {
        self.vocabulary = vocabulary
        topK = sampling.topK > 0 && sampling.topK < vocabulary ? sampling.topK : 0
        inverseTemperature = 1 / Double(sampling.temperature)
        weights = [Double](repeating: 0, count: topK > 0 ? topK : vocabulary)
        topIndex = [Int32](repeating: 0, count: max(1, topK))
        topValue = [Float](repeating: 0, count: max(1, topK))
    }

    mutating func piece(_ logits: UnsafePointer<Float>, random: inout RandomSource) -> Int32 {
        let uniform = Double(random.next() >> 11) * 0x1p-53
        if topK > 0 {
            nmt_top_k(logits, vocabulary, Int32(topK), &topIndex, &topValue)
            let largest = Double(topValue.max()!)
            var total = 0.0
            for j in 0..<topK where topIndex[j] >= 0 {
                weights[j] = exp((Double(topValue[j]) - largest) * inverseTemperature)
                total += weights[j]
            }
            var threshold = uniform * total
            for j in 0..<topK where topIndex[j] >= 0 {
                threshold -= weights[j]
                if threshold < 0 { return topIndex[j] }
            }
            return topIndex[(0..<topK).last { topIndex[$0] >= 0 }!]
        }
        var largest = -Double.infinity
        for k in 0..<vocabulary { largest = max(largest, Double(logits[k])) }
        var total = 0.0
        for k in 0..<vocabulary {
            weights[k] = exp((Double(logits[k]) - largest) * inverseTemperature)
            total += weights[k]
        }
        var threshold = uniform * total
        for k in 0..<vocabulary {
            threshold -= weights[k]
            if threshold < 0 { return Int32(k) }
        }
        return Int32(vocabulary - 1)
    }
}
