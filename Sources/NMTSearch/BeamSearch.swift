import CKernels
import Foundation
import NMTModel
import NMTTensor

public struct BeamSearchOptions: Sendable {
    /// Hypotheses kept per sentence at each step (1: greedy).
    public var beamSize = 5
    /// α: a finished hypothesis's score is its log-probability divided by length^α (length counts EOS).
    public var lengthPenalty: Float = 1.0
    /// Output length limit: ratio × source length + offset tokens, and never more than `maxOutputLength`, so
    /// that a line the model cannot translate (noise, which never reaches EOS) costs a bounded number of steps.
    var maxLengthRatio: Float = 2.0
    var maxLengthOffset = 10
    var maxOutputLength = BeamSearchOptions.defaultMaxOutputLength
    /// Hypotheses returned per sentence (≤ beam size).
    public var nBest = 1
    /// Keep the attention weights of the returned hypotheses.
    public var alignments = false
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
    public var logProbability: Float
    /// logProbability / (tokens.count + 1)^α: what hypotheses are ranked by.
    public var score: Float
    /// Per target position (EOS included), the attention over the source positions.
    public var alignment: [[Float]]
}

/// Beam search over a batch: the beams of all sentences are rows of one decoder step, so each
/// step is one GEMM per layer for everything. After each step the surviving hypotheses are
/// gathered by parent index (`IncrementalDecoding.reorder`), as Marian's beam search does, and the
/// rows of finished sentences are dropped (`compact`). Hypotheses are kept as back-pointers (a
/// token and a parent per node), so a step copies no token lists. The steps themselves are
/// `SearchBatch`'s, which a server also drives with sentences joining between steps.
package final class BeamSearch {
    let decoder: any IncrementalDecoding
    /// Searches over replicas of the decoder, for the other workers of `searchInBatches`.
    private var replicas: [BeamSearch] = []
    /// Kept between searches, with its workspaces.
    private lazy var batch = SearchBatch(decoder: decoder)

    init(decoder: any IncrementalDecoding) {
        self.decoder = decoder
    }

    /// Forgets the workers' replicas, after a change to the decoder that replicas copy (its shortlist).
    func dropReplicas() { replicas = [] }

    package convenience init(model: Seq2Seq) {
        self.init(decoder: IncrementalDecoder(model: model))
    }

    /// Translates sentences (ids without BOS/EOS); returns for each its n-best list, best first: all of
    /// them join one batch, which steps until every sentence is done.
    func search(_ sources: [[Int32]], options: BeamSearchOptions, sentenceIndices: [Int]? = nil) -> [[Hypothesis]] {
        guard !sources.isEmpty else { return [] }
        if let sampling = options.sampling {
            return sample(sources, options: options, sampling: sampling, sentenceIndices: sentenceIndices ?? Array(sources.indices))
        }
        batch.removeAll()
        batch.admit(sources.enumerated().map { SearchBatch.Request(tag: $0.offset, source: $0.element, options: options) })
        var results = [[Hypothesis]](repeating: [], count: sources.count)
        while batch.live > 0 {
            for (tag, hypotheses) in batch.step() { results[tag] = hypotheses }
        }
        return results
    }

    /// The most source positions a batch holds across its hypotheses (sentences × beam size × longest
    /// source). The encoder's activations, the pooled annotations and keys and every row's attention
    /// weights grow with them, so this bounds a worker's memory however long the lines (about 260 MB
    /// for the reference model when each row still carried its own copy of the annotations; less since
    /// they are stored once per sentence). Batches of ordinary sentences (64 of up to 51 pieces with
    /// beam 5) are never cut.
    package static let maxBatchPositions = 16_384

    /// Searches any number of sentences: sorted by length into batches of `batchSize` (so little
    /// is wasted on padding), fewer when long sentences would exceed `maxBatchPositions`; results in
    /// input order. Empty sources give one empty hypothesis.
    ///
    /// With `workers` > 1 and more than one batch, the batches run on that many threads at once, each
    /// with its own workspaces over the shared parameters and single-threaded BLAS: everything a step
    /// does then runs in parallel, not only the GEMMs (log-sum-exp, top-k, attention, copies and the
    /// bookkeeping are over 40 % of a step). Longest batches go first so that no worker is left with a long
    /// one at the end. The results do not depend on the number of workers.
    package func searchInBatches(_ ids: [[Int32]], options: BeamSearchOptions, batchSize: Int = 64, maxPositions: Int = maxBatchPositions,
                                 workers: Int = 1) -> [[Hypothesis]] {
        var results = [[Hypothesis]](repeating: [Hypothesis(tokens: [], logProbability: 0, score: 0, alignment: [])], count: ids.count)
        let order = ids.indices.filter { !ids[$0].isEmpty }.sorted { ids[$0].count > ids[$1].count }
        let batches = Self.batches(order, lengths: ids.map(\.count), batchSize: batchSize, maxPositions: maxPositions,
                                   beamSize: max(1, options.beamSize))
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
    /// `maxPositions` positions (source positions times beam); a batch's first sentence is its longest.
    private static func batches(_ order: [Int], lengths: [Int], batchSize: Int, maxPositions: Int, beamSize: Int) -> [[Int]] {
        var batches: [[Int]] = [], start = 0
        while start < order.count {
            let fitting = max(1, maxPositions / (beamSize * lengths[order[start]]))
            let end = min(order.count, start + min(batchSize, fitting))
            batches.append(Array(order[start..<end]))
            start = end
        }
        return batches
    }
}

/// The sentences that beam search advances together, one decoder step for all of them at a time.
/// Sentences join (`admit`) and leave (`remove`) between steps, each with options of its own (beam
/// size, length penalty, n-best): `BeamSearch.search` admits a whole batch at once, a server admits
/// requests as they come (in-flight batching). A sentence owns `beamSize` consecutive decoder rows and
/// its own tree of hypotheses, and what it finds depends on nothing else in the batch, up to the last
/// bits of OpenBLAS's products, which depend on a row's place in the GEMM (so a score can differ in its
/// last bits, and in principle a near-tie can go the other way).
///
/// A finished sentence's rows stay in the decoder as dead rows until they make up a quarter of the
/// rows, or until sentences join. Dropping rows is cheap (the kept rows' states move; the sentences'
/// annotations and keys stay where they are), but it moves rows to other places in the next GEMMs, and
/// OpenBLAS's last bits of a row depend on its place: leaving the rows where they are keeps the output
/// as it was (dropping at every step was not measurably faster: 1 %, within the noise).
package final class SearchBatch {
    package struct Request: Sendable {
        /// The caller's name for the sentence, returned with its hypotheses.
        package var tag: Int
        package var source: [Int32]
        package var options: BeamSearchOptions

        package init(tag: Int, source: [Int32], options: BeamSearchOptions) {
            self.tag = tag
            self.source = source
            self.options = options
        }
    }

    let decoder: any IncrementalDecoding
    /// In row order: sentence i's rows are sentences[i].firstRow ..< firstRow + k.
    private var sentences: [SentenceBeam] = []
    // Per decoder row: the token it was fed last, the row it continues after `select`; scratch of `compact`.
    private var previous: [Int32] = [], parents: [Int32] = [], kept: [Int32] = []
    private var scratch = SentenceBeam.Scratch()
    /// Sentences not yet done.
    package private(set) var live = 0
    private var deadRows = 0

    package init(decoder: any IncrementalDecoding) {
        self.decoder = decoder
    }

    /// Decoder rows, dead ones included.
    package var rows: Int { decoder.rows }
    package var sourceSteps: Int { decoder.sourceSteps }

    /// New sentences (not empty) join the batch; their first step is the batch's next.
    package func admit(_ requests: [Request]) {
        guard !requests.isEmpty else { return }
        if deadRows > 0 { compact() }
        let beams = requests.map { max(1, $0.options.beamSize) }
        decoder.append(sources: requests.map(\.source), beams: beams)
        var row = previous.count
        for (request, k) in zip(requests, beams) {
            sentences.append(SentenceBeam(request, firstRow: row))
            row += k
            scratch.reserve(beamSize: k)
        }
        previous.append(contentsOf: repeatElement(SpecialTokens.bos, count: row - previous.count))
        parents.append(contentsOf: repeatElement(0, count: row - parents.count))
        live += requests.count
    }

    /// Advances every sentence by one token; returns the sentences that finished, with their n-best lists.
    package func step() -> [(tag: Int, hypotheses: [Hypothesis])] {
        decoder.step(previous: previous)
        var finished: [(tag: Int, hypotheses: [Hypothesis])] = []
        for i in sentences.indices {
            let wasDone = sentences[i].done
            sentences[i].select(decoder: decoder, previous: &previous, parents: &parents, scratch: &scratch)
            if !wasDone && sentences[i].done {
                live -= 1
                deadRows += sentences[i].k
                finished.append((sentences[i].tag, sentences[i].nBest()))
            }
        }
        decoder.reorder(parents: parents)
        if live > 0 && deadRows * 4 >= rows { compact() }
        return finished
    }

    /// Sentences leave the batch unfinished (their requests were cancelled).
    package func remove(tags: Set<Int>) {
        for i in sentences.indices where !sentences[i].done && tags.contains(sentences[i].tag) {
            sentences[i].done = true
            live -= 1
            deadRows += sentences[i].k
        }
        if deadRows > 0 { compact() }
    }

    /// Drops every sentence and row.
    package func removeAll() {
        sentences.removeAll(keepingCapacity: true)
        previous.removeAll(keepingCapacity: true)
        parents.removeAll(keepingCapacity: true)
        decoder.removeAll()
        live = 0
        deadRows = 0
    }

    /// Drops the rows of the sentences that are done.
    private func compact() {
        kept.removeAll(keepingCapacity: true)
        for sentence in sentences where !sentence.done {
            for j in 0..<sentence.k { kept.append(Int32(sentence.firstRow + j)) }
        }
        decoder.compact(kept: kept, count: kept.count)
        // kept is increasing, so gathering forward in place reads each row before it is overwritten.
        for (i, from) in kept.enumerated() { previous[i] = previous[Int(from)] }
        previous.removeLast(previous.count - kept.count)
        parents.removeLast(parents.count - kept.count)
        sentences.removeAll { $0.done }
        var row = 0
        for i in sentences.indices {
            sentences[i].firstRow = row
            row += sentences[i].k
        }
        deadRows = 0
    }
}

/// One sentence during beam search: per beam its score and its node in the sentence's tree of
/// hypotheses (node n is token nodeToken[n] after node nodeParent[n], −1: BOS), and its finished
/// hypotheses. Its k beams are decoder rows firstRow ..< firstRow + k.
private struct SentenceBeam {
    struct Candidate { var score: Float; var row: Int32; var token: Int32 }
    struct Finished { var score: Float; var logProbability: Float; var node: Int32 }
    /// What `select` needs for any sentence, shared by the batch.
    struct Scratch {
        var candidates: [Candidate] = []
        var topIndex: [Int32] = [], topValue: [Float] = []

        mutating func reserve(beamSize k: Int) {
            guard topIndex.count < k + 1 else { return }
            candidates.reserveCapacity(k * (k + 1))
            topIndex = [Int32](repeating: 0, count: k + 1)
            topValue = [Float](repeating: 0, count: k + 1)
        }
    }

    let tag: Int, k: Int, lengthPenalty: Float, nBestCount: Int, alignments: Bool, sourceLength: Int
    /// Output length limit: ratio × source length + offset, at most maxOutputLength.
    let maxLength: Int
    var firstRow: Int
    var steps = 0
    var score: [Float], nextScore: [Float]
    var node: [Int32], nextNode: [Int32]
    var nodeToken: [Int32] = [], nodeParent: [Int32] = [], nodeAlignment: [Float] = []
    var finished: [Finished] = []
    var done = false

    init(_ request: SearchBatch.Request, firstRow: Int) {
        let options = request.options
        tag = request.tag
        k = max(1, options.beamSize)
        lengthPenalty = options.lengthPenalty
        nBestCount = max(1, options.nBest)
        alignments = options.alignments
        sourceLength = request.source.count
        maxLength = min(Int(Float(sourceLength) * options.maxLengthRatio) + options.maxLengthOffset, options.maxOutputLength)
        self.firstRow = firstRow
        score = [Float](repeating: -.infinity, count: k)
        score[0] = 0
        nextScore = score
        node = [Int32](repeating: -1, count: k)
        nextNode = node
        let nodes = min((maxLength + 1) * k, 1 << 16)
        nodeToken.reserveCapacity(nodes)
        nodeParent.reserveCapacity(nodes)
        if alignments { nodeAlignment.reserveCapacity(min(nodes * sourceLength, 1 << 20)) }
        finished.reserveCapacity(2 * k)
    }

    mutating func addNode(token: Int32, parent: Int32, attention: UnsafePointer<Float>) -> Int32 {
        nodeToken.append(token)
        nodeParent.append(parent)
        if alignments { nodeAlignment.append(contentsOf: UnsafeBufferPointer(start: attention, count: sourceLength)) }
        return Int32(nodeToken.count - 1)
    }

    /// After a decoder step: each live beam proposes its k+1 best next tokens; the k best proposals
    /// survive (as the rows `parents` points them to), EOS or the length limit moves them to `finished`,
    /// and the sentence is done when nothing can still beat its finished hypotheses. A done sentence's
    /// rows are dead: they are fed EOS and score −∞ until they are dropped.
    mutating func select(decoder: any IncrementalDecoding, previous: inout [Int32], parents: inout [Int32], scratch: inout Scratch) {
        let columns = decoder.columns, columnIds = decoder.columnIds, sourceSteps = decoder.sourceSteps
        let logits = decoder.logits, logSumExp = decoder.logSumExp, attention = decoder.attention
        let first = firstRow
        var alive = 0
        if !done {
            steps += 1
            scratch.candidates.removeAll(keepingCapacity: true)
            for j in 0..<k where score[j] > -.infinity {
                let row = first + j
                nmt_top_k(logits + row * columns, columns, Int32(k + 1), &scratch.topIndex, &scratch.topValue)
                for c in 0...k where scratch.topIndex[c] >= 0 && scratch.topValue[c] > -.infinity {
                    let column = scratch.topIndex[c]
                    scratch.candidates.append(Candidate(score: score[j] + scratch.topValue[c] - logSumExp[row], row: Int32(row),
                                                        token: columnIds.map { $0[Int(column)] } ?? column))
                }
            }
            scratch.candidates.sort { $0.score > $1.score }
            let atLimit = steps >= maxLength
            for candidate in scratch.candidates where alive < k {
                let parentRow = Int(candidate.row)
                let child = addNode(token: candidate.token, parent: node[parentRow - first], attention: attention + parentRow * sourceSteps)
                if candidate.token == SpecialTokens.eos || atLimit {
                    finished.append(Finished(score: candidate.score / powf(Float(steps), lengthPenalty),
                                             logProbability: candidate.score, node: child))
                    if atLimit { alive += 1 }
                    continue
                }
                nextNode[alive] = child
                nextScore[alive] = candidate.score
                parents[first + alive] = candidate.row
                previous[first + alive] = candidate.token
                alive += 1
            }
            if atLimit { alive = 0 }
        }
        for j in alive..<k {
            nextScore[j] = -.infinity
            nextNode[j] = -1
            parents[first + j] = Int32(first)
            previous[first + j] = SpecialTokens.eos
        }
        if !done && (alive == 0 || finished.count >= k || bestFinishedBeatsAlive(alive: nextScore)) {
            done = true
        }
        swap(&score, &nextScore)
        swap(&node, &nextNode)
    }

    /// The best distinct finished hypotheses, best first, read back along the tree.
    func nBest() -> [Hypothesis] {
        var seen = Set<[Int32]>()
        var hypotheses: [Hypothesis] = []
        for f in finished.sorted(by: { $0.score > $1.score }) where hypotheses.count < nBestCount {
            var tokens: [Int32] = [], alignment: [[Float]] = []
            var n = f.node
            while n >= 0 {
                tokens.append(nodeToken[Int(n)])
                if alignments { alignment.append(Array(nodeAlignment[Int(n) * sourceLength..<(Int(n) + 1) * sourceLength])) }
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
    private func bestFinishedBeatsAlive(alive: [Float]) -> Bool {
        // A loop, not finished.map(\.score).max(): this runs for every sentence at every step, and must not allocate.
        guard lengthPenalty == 0, !finished.isEmpty, let bestAlive = alive.max(), bestAlive > -.infinity else { return false }
        var best = -Float.infinity
        for f in finished { best = max(best, f.score) }
        return best >= bestAlive
    }
}
