import Foundation
import NMTModel
import NMTTensor

/// What `Translator.score` gives for one pair: its score, or why it has none.
public enum PairScore: Sendable, Equatable {
    case score(Float)
    case failure(String)
}

extension Translator {
    /// Scores given translations (Marian's marian-scorer, fairseq's --score-reference): the log-probability
    /// the model (or ensemble) gives the target's pieces followed by end-of-sentence, for the source; with
    /// a length penalty α, divided by (pieces + 1)^α as beam search ranks hypotheses, so that the score of
    /// mt-translate's own output is the score mt-translate printed for it. Pairs are sorted by source length
    /// into batches of `batchSize`. An empty source, or one longer than `maxSourceLength` pieces (or a target
    /// longer than `maxTargetLength`), has no score: its result says why.
    public func score(_ pairs: [(source: String, target: String)], lengthPenalty: Float? = nil, batchSize: Int = 64,
                      maxSourceLength: Int = 200, maxTargetLength: Int = 400) throws -> [PairScore] {
        var results = [PairScore](repeating: .failure(""), count: pairs.count)
        var sources: [[Int32]] = [], targets: [[Int32]] = [], positions: [Int] = []
        for (i, pair) in pairs.enumerated() {
            let source = try self.source.encode(pair.source), target = try self.target.encode(pair.target)
            if source.isEmpty { results[i] = .failure("the source is empty"); continue }
            if source.count > maxSourceLength {
                results[i] = .failure("the source has \(source.count) pieces, more than --max-source-length \(maxSourceLength)")
                continue
            }
            if target.count > maxTargetLength {
                results[i] = .failure("the target has \(target.count) pieces, more than --max-target-length \(maxTargetLength)")
                continue
            }
            sources.append(source)
            targets.append(target)
            positions.append(i)
        }
        let order = sources.indices.sorted { sources[$0].count < sources[$1].count }
        for start in stride(from: 0, to: order.count, by: batchSize) {
            let batch = Array(order[start..<min(order.count, start + batchSize)])
            let logProbabilities = Self.forcedLogProbabilities(search.decoder, sources: batch.map { sources[$0] },
                                                               targets: batch.map { targets[$0] })
            for (k, j) in batch.enumerated() {
                let pieces = Float(targets[j].count + 1)
                results[positions[j]] = .score(lengthPenalty.map { logProbabilities[k] / powf(pieces, $0) } ?? logProbabilities[k])
            }
        }
        return results
    }

    /// Teacher forcing through the incremental decoder: one row per pair, fed BOS and then the target's
    /// pieces, summing log p(piece) and finally log p(EOS), in the order beam search sums them, so that a
    /// hypothesis of beam search scores the same here.
    static func forcedLogProbabilities(_ decoder: any IncrementalDecoding, sources: [[Int32]], targets: [[Int32]]) -> [Float] {
        guard !sources.isEmpty else { return [] }
        decoder.start(sources: sources, beams: 1)
        precondition(decoder.columnIds == nil, "scoring needs every piece's logit")
        let v = decoder.targetVocabSize
        var sums = [Float](repeating: 0, count: sources.count)
        var previous = [Int32](repeating: SpecialTokens.bos, count: sources.count)
        for step in 0...targets.map(\.count).max()! {
            decoder.step(previous: previous)
            let logits = decoder.logits, logSumExp = decoder.logSumExp
            for (row, target) in targets.enumerated() where step <= target.count {
                let token = step < target.count ? target[step] : SpecialTokens.eos
                sums[row] = sums[row] + logits[row * v + Int(token)] - logSumExp[row]
                previous[row] = token
            }
        }
        return sums
    }
}
