import CKernels
import Foundation
import NMTModel
import NMTTensor

public struct BeamSearchOptions: Sendable {
    /// Hypotheses kept per sentence at each step (1: greedy).
    var beamSize = 5
    /// α: a finished hypothesis's score is its log-probability divided by length^α (length counts EOS).
    var lengthPenalty: Float = 1.0
    /// Output length limit: ratio × source length + offset tokens, and never more than `maxOutputLength`, so
    /// that a line the model cannot translate (noise, which never reaches EOS) costs a bounded number of steps.
    var maxLengthRatio: Float = 2.0
    var maxLengthOffset = 10
    var maxOutputLength = BeamSearchOptions.defaultMaxOutputLength
    /// Hypotheses returned per sentence (≤ beam size).
    var nBest = 1
    /// Keep the attention weights of the returned hypotheses.
    var alignments = false
    /// Sample one translation per sentence instead of searching (`Sampling.swift`).
    public var sampling: SamplingOptions?

    /// Far longer than the translation of an ordinary sentence (a few dozen pieces).
    public static let defaultMaxOutputLength = 256

    public init(beamSize: Int = 5, lengthPenalty: Float = 1.0, maxLengthRatio: Float = 2.0,
                maxOutputLength: Int = defaultMaxOutputLength, nBest: Int = 1, alignments: Bool = false) {
        self.beamSize = beamSize
        self.lengthPenalty = lengthPenalty
        self.maxLengthRatio = maxLengthRatio
        self.maxOutputLength = maxOutputLength
        self.nBest = nBest
        self.alignments = alignments
    }
}

public struct Hypothesis: Sendable, Equatable {
    /// Target ids without EOS.
    public var tokens: [Int32]
    /// Sum of the log-probabilities of the tokens and of EOS.
    var logProbability: Float
    /// logProbability / (tokens.count + 1)^α: what hypotheses are ranked by.
    var score: Float
    /// Per target position (EOS included), the attention over the source positions.
    public var alignment: [[Float]]
}

/// Beam search over a batch: the beams of all sentences are rows of one decoder step, so each
/// step is one GEMM per layer for everything. After each step the surviving hypotheses are
/// gathered by parent index (`IncrementalDecoding.reorder`), as Marian's beam search does, and the
/// rows of finished sentences are dropped (`compact`). Hypotheses are kept as back-pointers (a
/// token and a parent per node), so a step copies no token lists.
package final class BeamSearch {
    let decoder: any IncrementalDecoding
    /// Searches over replicas of the decoder, for the other workers of `searchInBatches`.
    private var replicas: [BeamSearch] = []

    init(decoder: any IncrementalDecoding) {
        self.decoder = decoder
    }

    package convenience init(model: Seq2Seq) {
        self.init(decoder: IncrementalDecoder(model: model))
    }

    /// Translates sentences (ids without BOS/EOS); returns for each its n-best list, best first.
    /// The stages: start every sentence's rows, then step by step expand and select each sentence's
    /// beam, reorder the decoder's rows, and drop finished sentences; at the end, read the n-best lists
    /// off the tree of hypotheses.
    func search(_ sources: [[Int32]], options: BeamSearchOptions, sentenceIndices: [Int]? = nil) -> [[Hypothesis]] {
        guard !sources.isEmpty else { return [] }
        if let sampling = options.sampling {
            return sample(sources, options: options, sampling: sampling, sentenceIndices: sentenceIndices ?? Array(sources.indices))
        }
        let k = max(1, options.beamSize)
        decoder.start(sources: sources, beams: k)
        let maxLength = sources.map { min(Int(Float($0.count) * options.maxLengthRatio) + options.maxLengthOffset, options.maxOutputLength) }
        var beams = Beams(sentences: sources.count, beamSize: k, sourceSteps: decoder.sourceSteps, longest: maxLength.max()!,
                          alignments: options.alignments)
        var step = 0
        while beams.live > 0 {
            step += 1
            decoder.step(previous: beams.previous)
            beams.select(step: step, maxLength: maxLength, decoder: decoder, lengthPenalty: options.lengthPenalty)
            decoder.reorder(parents: beams.parents)
            if beams.shouldCompact {
                beams.compact()
                decoder.compact(kept: beams.kept, count: beams.rows)
            }
        }
        return sources.indices.map { beams.nBest(sentence: $0, sourceLength: sources[$0].count, options: options) }
    }

    /// The most source positions a batch holds across its hypotheses (sentences × beam size × longest
    /// source). Every hypothesis row carries its sentence's annotations and attention keys (twice: the
    /// spares that compacting copies into), so a search's memory grows with its positions, about 16 KB a
    /// position for the reference model (measured): this bounds it at about 260 MB per worker, however
    /// long the lines. Batches of ordinary sentences (64 of up to 51 pieces with beam 5) are never cut.
    static let maxBatchPositions = 16_384

    /// Searches any number of sentences: sorted by length into batches of `batchSize` (so little
    /// is wasted on padding), fewer when long sentences would exceed `maxBatchPositions`; results in
    /// input order. Empty sources give one empty hypothesis.
    ///
    /// With `workers` > 1 and more than one batch, the batches run on that many threads at once, each
    /// with its own workspaces over the shared parameters and single-threaded BLAS: everything a step
    /// does then runs in parallel, not only the GEMMs (log-sum-exp, top-k, attention, copies and the
    /// bookkeeping are over 40 % of a step). Longest batches go first so that no worker is left with a long
    /// one at the end. The results do not depend on the number of workers.
    package func searchInBatches(_ ids: [[Int32]], options: BeamSearchOptions, batchSize: Int = 64, workers: Int = 1) -> [[Hypothesis]] {
        var results = [[Hypothesis]](repeating: [Hypothesis(tokens: [], logProbability: 0, score: 0, alignment: [])], count: ids.count)
        let order = ids.indices.filter { !ids[$0].isEmpty }.sorted { ids[$0].count > ids[$1].count }
        let batches = Self.batches(order, lengths: ids.map(\.count), batchSize: batchSize, beamSize: max(1, options.beamSize))
        let threads = min(workers, batches.count)
        // A sample depends on the last bits of the logits, and OpenBLAS's threads change those: sampling
        // runs every batch on one BLAS thread (in parallel over batches), so that --threads cannot change it.
        let blasThreadsBefore = BLAS.threads
        if options.sampling != nil { BLAS.threads = 1 }
        defer { BLAS.threads = blasThreadsBefore }
        guard threads > 1 else {
            for batch in batches {
                for (i, list) in zip(batch, search(batch.map { ids[$0] }, options: options, sentenceIndices: batch)) { results[i] = list }
            }
            return results
        }
        while replicas.count < threads - 1 { replicas.append(BeamSearch(decoder: decoder.replica())) }
        let searches = [self] + replicas.prefix(threads - 1)
        let lock = NSLock()
        var nextBatch = 0
        let blasThreads = BLAS.threads
        BLAS.threads = 1
        defer { BLAS.threads = blasThreads }
        DispatchQueue.concurrentPerform(iterations: threads) { worker in
            while true {
                let batch: [Int]? = lock.withLock {
                    defer { nextBatch += 1 }
                    return nextBatch < batches.count ? batches[nextBatch] : nil
                }
                guard let batch else { return }
                let found = searches[worker].search(batch.map { ids[$0] }, options: options, sentenceIndices: batch)
                lock.withLock { for (i, list) in zip(batch, found) { results[i] = list } }
            }
        }
        return results
    }

    /// `order` (sentence indices, longest first) cut into batches of at most `batchSize` sentences and
    /// `maxBatchPositions` positions; a batch's first sentence is its longest.
    private static func batches(_ order: [Int], lengths: [Int], batchSize: Int, beamSize: Int) -> [[Int]] {
        var batches: [[Int]] = [], start = 0
        while start < order.count {
            let fitting = max(1, maxBatchPositions / (beamSize * lengths[order[start]]))
            let end = min(order.count, start + min(batchSize, fitting))
            batches.append(Array(order[start..<end]))
            start = end
        }
        return batches
    }
}

/// The hypotheses of one batch during beam search: per row its score, its node in the back-pointer
/// tree and its last token; per sentence its finished hypotheses. All arrays are sized once, before
/// the first step. Row i belongs to sentence active[i / k].
private struct Beams {
    struct Candidate { var score: Float; var row: Int32; var token: Int32 }
    struct Finished { var score: Float; var logProbability: Float; var node: Int32 }

    let k: Int, sourceSteps: Int, alignments: Bool
    // The back-pointer tree: node n is token nodeToken[n] after node nodeParent[n] (−1: BOS).
    var nodeToken: [Int32] = [], nodeParent: [Int32] = [], nodeAlignment: [Float] = []
    var active: [Int], nextActive: [Int] = []
    var score: [Float], nextScore: [Float]
    var node: [Int32], nextNode: [Int32]
    var previous: [Int32], parents: [Int32], kept: [Int32]
    var finished: [[Finished]]
    var done: [Bool]
    var live: Int
    // Scratch of `select`.
    var candidates: [Candidate] = []
    var topIndex: [Int32], topValue: [Float]

    init(sentences b: Int, beamSize k: Int, sourceSteps: Int, longest: Int, alignments: Bool) {
        self.k = k
        self.sourceSteps = sourceSteps
        self.alignments = alignments
        nodeToken.reserveCapacity((longest + 1) * b * k)
        nodeParent.reserveCapacity((longest + 1) * b * k)
        if alignments { nodeAlignment.reserveCapacity((longest + 1) * b * k * sourceSteps) }
        active = Array(0..<b)
        nextActive.reserveCapacity(b)
        score = [Float](repeating: -.infinity, count: b * k)
        for s in 0..<b { score[s * k] = 0 }
        nextScore = score
        node = [Int32](repeating: -1, count: b * k)
        nextNode = node
        previous = [Int32](repeating: SpecialTokens.bos, count: b * k)
        parents = [Int32](repeating: 0, count: b * k)
        kept = [Int32](repeating: 0, count: b * k)
        finished = [[Finished]](repeating: [], count: b)
        for s in 0..<b { finished[s].reserveCapacity(2 * k) }
        done = [Bool](repeating: false, count: b)
        live = b
        candidates.reserveCapacity(k * (k + 1))
        topIndex = [Int32](repeating: 0, count: k + 1)
        topValue = [Float](repeating: 0, count: k + 1)
    }

    /// Rows in the decoder.
    var rows: Int { active.count * k }

    mutating func addNode(token: Int32, parent: Int32, attention: UnsafePointer<Float>) -> Int32 {
        nodeToken.append(token)
        nodeParent.append(parent)
        if alignments { nodeAlignment.append(contentsOf: UnsafeBufferPointer(start: attention, count: sourceSteps)) }
        return Int32(nodeToken.count - 1)
    }

    /// After a decoder step: each unfinished sentence's rows propose their k+1 best next tokens; the
    /// k best proposals survive (as rows `parents` points them to), EOS or the length limit moves them
    /// to `finished`, and a sentence is done when nothing can still beat its finished hypotheses.
    mutating func select(step: Int, maxLength: [Int], decoder: any IncrementalDecoding, lengthPenalty: Float) {
        let vocab = decoder.targetVocabSize, logits = decoder.logits, logSumExp = decoder.logSumExp, attention = decoder.attention
        nextActive.removeAll(keepingCapacity: true)
        for (position, s) in active.enumerated() {
            let first = position * k
            var alive = 0
            if !done[s] {
                candidates.removeAll(keepingCapacity: true)
                for row in first..<first + k where score[row] > -.infinity {
                    nmt_top_k(logits + row * vocab, vocab, Int32(k + 1), &topIndex, &topValue)
                    for j in 0...k where topIndex[j] >= 0 {
                        candidates.append(Candidate(score: score[row] + topValue[j] - logSumExp[row], row: Int32(row), token: topIndex[j]))
                    }
                }
                candidates.sort { $0.score > $1.score }
                let atLimit = step >= maxLength[s]
                for candidate in candidates where alive < k {
                    let parentRow = Int(candidate.row)
                    let child = addNode(token: candidate.token, parent: node[parentRow], attention: attention + parentRow * sourceSteps)
                    if candidate.token == SpecialTokens.eos || atLimit {
                        finished[s].append(Finished(score: candidate.score / powf(Float(step), lengthPenalty),
                                                    logProbability: candidate.score, node: child))
                        if atLimit { alive += 1 }
                        continue
                    }
                    let row = first + alive
                    nextNode[row] = child
                    nextScore[row] = candidate.score
                    parents[row] = candidate.row
                    previous[row] = candidate.token
                    alive += 1
                }
                if atLimit { alive = 0 }
            }
            for row in first + alive..<first + k {
                nextScore[row] = -.infinity
                nextNode[row] = -1
                parents[row] = Int32(first)
                previous[row] = SpecialTokens.eos
            }
            if !done[s] && (alive == 0 || finished[s].count >= k
                || bestFinishedBeatsAlive(finished[s], alive: nextScore[first..<first + k], alpha: lengthPenalty)) {
                done[s] = true
                live -= 1
            }
            if !done[s] {
                for j in 0..<k { kept[nextActive.count * k + j] = Int32(first + j) }
                nextActive.append(s)
            }
        }
        swap(&score, &nextScore)
        swap(&node, &nextNode)
    }

    /// Finished sentences stay in the batch as dead rows until they make up a quarter of it:
    /// dropping rows copies the sentences' annotations and keys, which costs more than a few
    /// steps of GEMM rows.
    var shouldCompact: Bool { live > 0 && (active.count - nextActive.count) * 4 >= active.count }

    /// Drops the finished sentences' rows (`kept` lists the rows that stay, for the decoder's `compact`).
    mutating func compact() {
        for i in 0..<nextActive.count * k {
            let from = Int(kept[i])
            score[i] = score[from]
            node[i] = node[from]
            previous[i] = previous[from]
        }
        swap(&active, &nextActive)
    }

    /// Sentence s's best distinct finished hypotheses, best first, read back along the tree.
    func nBest(sentence s: Int, sourceLength: Int, options: BeamSearchOptions) -> [Hypothesis] {
        var seen = Set<[Int32]>()
        var hypotheses: [Hypothesis] = []
        for f in finished[s].sorted(by: { $0.score > $1.score }) where hypotheses.count < max(1, options.nBest) {
            var tokens: [Int32] = [], alignment: [[Float]] = []
            var n = f.node
            while n >= 0 {
                tokens.append(nodeToken[Int(n)])
                if alignments { alignment.append(Array(nodeAlignment[Int(n) * sourceSteps..<Int(n) * sourceSteps + sourceLength])) }
                n = nodeParent[Int(n)]
            }
            tokens.reverse()
            alignment.reverse()
            if tokens.last == SpecialTokens.eos { tokens.removeLast() }
            guard seen.insert(tokens).inserted else { continue }
            hypotheses.append(Hypothesis(tokens: tokens, logProbability: f.logProbability, score: f.score, alignment: alignment))
        }
        return hypotheses
    }

    /// Log-probabilities only fall, so with α = 0 no alive hypothesis can overtake a finished one that
    /// already scores higher; with α > 0 this is the usual approximation (the bound at the current length).
    private func bestFinishedBeatsAlive(_ finished: [Finished], alive: ArraySlice<Float>, alpha: Float) -> Bool {
        guard let best = finished.map(\.score).max(), let bestAlive = alive.max(), bestAlive > -.infinity else { return false }
        return alpha == 0 && best >= bestAlive
    }
}
