@testable import NMTModel
import NMTTensor

extension Seq2Seq {
    /// The tests' oracle for search: greedy decoding of a batch of source sentences (ids without
    /// BOS/EOS), written apart from `BeamSearch`. Stops each sentence at EOS or after `maxLength`
    /// tokens; returns the ids without EOS.
    func greedyDecode(_ sources: [[Int32]], maxLength: Int) -> [[Int32]] {
        guard !sources.isEmpty else { return [] }
        let b = sources.count, v = config.targetVocabSize
        var outputs = [[Int32]](repeating: [], count: b)
        var finished = [Bool](repeating: false, count: b)
        var previous = [Int32](repeating: SpecialTokens.bos, count: b)
        let stepper = IncrementalDecoder(model: self)
        stepper.start(sources: sources, beams: 1)
        for _ in 0..<maxLength {
            stepper.step(previous: previous)
            for r in 0..<b where !finished[r] {
                let row = stepper.logits + r * v
                var best = 0
                for k in 1..<v where row[k] > row[best] { best = k }
                previous[r] = Int32(best)
                if Int32(best) == SpecialTokens.eos { finished[r] = true } else { outputs[r].append(Int32(best)) }
            }
            if !finished.contains(false) { break }
        }
        return outputs
    }
}
