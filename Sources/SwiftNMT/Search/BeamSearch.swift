import CKernels
import Foundation

public struct BeamSearchOptions: Sendable {
    /// Hypotheses kept per sentence at each step (1: greedy).
    public var beamSize = 5
    /// α: a finished hypothesis's score is its log-probability divided by length^α (length counts EOS).
    public var lengthPenalty: Float = 1.0
    /// Output length limit: ratio × source length + offset tokens.
    public var maxLengthRatio: Float = 2.0
    public var maxLengthOffset = 10
    /// Hypotheses returned per sentence (≤ beam size).
    public var nBest = 1
    /// Keep the attention weights of the returned hypotheses.
    public var alignments = false

    public init(beamSize: Int = 5, lengthPenalty: Float = 1.0, nBest: Int = 1, alignments: Bool = false) {
        self.beamSize = beamSize
        self.lengthPenalty = lengthPenalty
        self.nBest = nBest
        self.alignments = alignments
    }
}

public struct Hypothesis: Sendable, Equatable {
    /// Target ids without EOS.
    public var tokens: [Int32]
    /// Sum of the log-probabilities of the tokens and of EOS.
    public var logProbability: Float
    /// logProbability / (tokens.count + 1)^α: what hypotheses are ranked by.
    public var score: Float
    /// Per target position (EOS included), the attention over the source positions.
    public var alignment: [[Float]]
}

/// Beam search over a batch: the beams of all sentences are rows of one decoder step, so each
/// step is one GEMM per layer for everything. After each step the surviving hypotheses are
/// gathered by parent index (`IncrementalDecoder.reorder`), as Marian's beam search does.
public final class BeamSearch {
    let model: Seq2Seq
    let stepper: IncrementalDecoder
    let annotations = FloatBuffer(count: 0), mask = FloatBuffer(count: 0)

    public init(model: Seq2Seq) {
        self.model = model
        stepper = IncrementalDecoder(model: model)
    }

    private struct Candidate { var score: Float; var row: Int; var token: Int32 }

    /// Translates sentences (ids without BOS/EOS); returns for each its n-best list, best first.
    public func search(_ sources: [[Int32]], options: BeamSearchOptions) -> [[Hypothesis]] {
        guard !sources.isEmpty else { return [] }
        let k = max(1, options.beamSize), b = sources.count, rows = b * k
        let vocab = model.config.targetVocabSize, c = model.config.contextSize
        let batch = Batch(sources: sources, targets: sources.map { _ in [] })
        let ts = batch.sourceSteps
        var rng = RandomSource(seed: 0)
        batch.sourceTokens.withUnsafeBufferPointer { tokens in
            batch.sourceMask.withUnsafeBufferPointer { sourceMask in
                model.encoder.forward(model.parameters, tokens: tokens.baseAddress!, mask: sourceMask.baseAddress!, steps: ts,
                                      batch: b, dropout: 0, rng: &rng)
                // Each sentence's annotations repeated for its k beams: row s·k + j.
                annotations.reserve(ts * rows * c)
                mask.reserve(ts * rows)
                for t in 0..<ts {
                    for s in 0..<b {
                        for j in 0..<k {
                            (annotations.pointer + (t * rows + s * k + j) * c).update(from: model.encoder.annotations + (t * b + s) * c, count: c)
                            mask[t * rows + s * k + j] = sourceMask[t * b + s]
                        }
                    }
                }
            }
        }
        stepper.start(annotations: annotations.pointer, sourceMask: mask.pointer, sourceSteps: ts, batch: rows)

        let sourceLengths = sources.map(\.count)
        let maxLength = sources.map { Int(Float($0.count) * options.maxLengthRatio) + options.maxLengthOffset }
        // Per row: the hypothesis so far (tokens, log-probability, attention rows). Dead rows have −∞.
        var rowTokens = [[Int32]](repeating: [], count: rows)
        var rowAlignment = [[[Float]]](repeating: [], count: rows)
        var rowScore = [Float](repeating: -.infinity, count: rows)
        for s in 0..<b { rowScore[s * k] = 0 }
        var finished = [[Hypothesis]](repeating: [], count: b)
        var done = [Bool](repeating: false, count: b)
        var previous = [Int32](repeating: SpecialTokens.bos, count: rows)
        var parents = [Int32](repeating: 0, count: rows)
        var candidates: [Candidate] = []
        candidates.reserveCapacity(k * (k + 1))
        var step = 0

        while done.contains(false) {
            step += 1
            stepper.step(previous: previous, annotations: annotations.pointer, sourceMask: mask.pointer)
            var nextTokens = rowTokens, nextAlignment = rowAlignment, nextScore = rowScore
            for s in 0..<b where !done[s] {
                candidates.removeAll(keepingCapacity: true)
                for j in 0..<k where rowScore[s * k + j] > -.infinity {
                    let row = s * k + j
                    topTokens(stepper.logProbabilities.pointer + row * vocab, vocab: vocab, count: k + 1) { token, logp in
                        candidates.append(Candidate(score: rowScore[row] + logp, row: row, token: token))
                    }
                }
                candidates.sort { $0.score > $1.score }
                let atLimit = step >= maxLength[s]
                var alive = 0
                for candidate in candidates where alive < k {
                    let parentTokens = rowTokens[candidate.row]
                    var alignment = rowAlignment[candidate.row]
                    if options.alignments {
                        let a = stepper.alpha.pointer + candidate.row * ts
                        alignment.append(Array(UnsafeBufferPointer(start: a, count: sourceLengths[s])))
                    }
                    if candidate.token == SpecialTokens.eos || atLimit {
                        let tokens = candidate.token == SpecialTokens.eos ? parentTokens : parentTokens + [candidate.token]
                        let length = Float(tokens.count + 1)
                        finished[s].append(Hypothesis(tokens: tokens, logProbability: candidate.score,
                                                      score: candidate.score / powf(length, options.lengthPenalty), alignment: alignment))
                        if atLimit { alive += 1 }
                        continue
                    }
                    let row = s * k + alive
                    nextTokens[row] = parentTokens + [candidate.token]
                    nextAlignment[row] = alignment
                    nextScore[row] = candidate.score
                    parents[row] = Int32(candidate.row)
                    previous[row] = candidate.token
                    alive += 1
                }
                for j in alive..<k {
                    nextScore[s * k + j] = -.infinity
                    parents[s * k + j] = Int32(s * k)
                    previous[s * k + j] = SpecialTokens.eos
                }
                if atLimit || finished[s].count >= k || alive == 0 || bestFinishedBeatsAlive(finished[s], alive: nextScore[(s * k)..<(s * k + k)],
                                                                                           length: step, alpha: options.lengthPenalty) {
                    done[s] = true
                }
            }
            rowTokens = nextTokens
            rowAlignment = nextAlignment
            rowScore = nextScore
            stepper.reorder(parents: parents)
        }
        return finished.map { list in
            var seen = Set<[Int32]>()
            return list.sorted { $0.score > $1.score }.filter { seen.insert($0.tokens).inserted }.prefix(max(1, options.nBest)).map { $0 }
        }
    }

    /// Searches any number of sentences: sorted by length into batches of `batchSize` (so little
    /// is wasted on padding), results in input order. Empty sources give one empty hypothesis.
    public func searchInBatches(_ ids: [[Int32]], options: BeamSearchOptions, batchSize: Int = 64) -> [[Hypothesis]] {
        var results = [[Hypothesis]](repeating: [Hypothesis(tokens: [], logProbability: 0, score: 0, alignment: [])], count: ids.count)
        let order = ids.indices.filter { !ids[$0].isEmpty }.sorted { ids[$0].count < ids[$1].count }
        for start in stride(from: 0, to: order.count, by: batchSize) {
            let chunk = Array(order[start..<min(order.count, start + batchSize)])
            for (i, list) in zip(chunk, search(chunk.map { ids[$0] }, options: options)) { results[i] = list }
        }
        return results
    }

    /// Log-probabilities only fall, so with α = 0 no alive hypothesis can overtake a finished one that
    /// already scores higher; with α > 0 this is the usual approximation (the bound at the current length).
    private func bestFinishedBeatsAlive(_ finished: [Hypothesis], alive: ArraySlice<Float>, length: Int, alpha: Float) -> Bool {
        guard let best = finished.map(\.score).max(), let bestAlive = alive.max(), bestAlive > -.infinity else { return false }
        return alpha == 0 && best >= bestAlive
    }

    /// Calls `body` with the `count` most probable tokens of a row of log-probabilities.
    private func topTokens(_ row: UnsafePointer<Float>, vocab: Int, count: Int, _ body: (Int32, Float) -> Void) {
        var bestTokens = [Int32](repeating: 0, count: count)
        var bestValues = [Float](repeating: -.infinity, count: count)
        var threshold = -Float.infinity
        for v in 0..<vocab where row[v] > threshold {
            var i = count - 1
            while i > 0 && bestValues[i - 1] < row[v] {
                bestValues[i] = bestValues[i - 1]
                bestTokens[i] = bestTokens[i - 1]
                i -= 1
            }
            bestValues[i] = row[v]
            bestTokens[i] = Int32(v)
            threshold = bestValues[count - 1]
        }
        for i in 0..<count where bestValues[i] > -.infinity { body(bestTokens[i], bestValues[i]) }
    }
}
