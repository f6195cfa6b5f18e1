import Foundation

/// BLEU's smoothing methods (Chen & Cherry, 2014), by their sacreBLEU names.
public enum BLEUSmoothing: String, CaseIterable, Sendable {
    /// No smoothing: a zero precision makes the score zero.
    case none
    /// Method 1: zero match counts are replaced by `smoothValue` (default 0.1).
    case floor
    /// Method 2: `smoothValue` (default 1) is added to the counts and totals of orders > 1.
    case addK = "add-k"
    /// Method 3 (mteval-v13a's): the k-th zero precision becomes 1 / (2^k · total).
    case exp

    /// sacreBLEU's default smoothing value, or `nil` if the method takes none.
    var defaultValue: Double? {
        switch self {
        case .floor: return 0.1
        case .addK: return 1
        case .none, .exp: return nil
        }
    }
}

/// Options of the BLEU metric; the defaults are sacreBLEU's.
public struct BLEUOptions: Sendable, Equatable {
    var tokenizer: BLEUTokenizer
    var lowercase: Bool
    var smoothMethod: BLEUSmoothing
    /// The value for `floor` and `add-k`; `nil` means the method's default.
    var smoothValue: Double?
    /// Leave out n-gram orders the hypothesis has none of (for sentence-level BLEU).
    var effectiveOrder: Bool
    var maxNgramOrder: Int

    public init(tokenizer: BLEUTokenizer = .v13a, lowercase: Bool = false, smoothMethod: BLEUSmoothing = .exp,
                smoothValue: Double? = nil, effectiveOrder: Bool = false, maxNgramOrder: Int = 4) {
        self.tokenizer = tokenizer
        self.lowercase = lowercase
        self.smoothMethod = smoothMethod
        self.smoothValue = smoothValue
        self.effectiveOrder = effectiveOrder
        self.maxNgramOrder = maxNgramOrder
    }
}

/// BLEU's sufficient statistics; those of a corpus are the sums over its segments.
struct BLEUStatistics: Sendable, Equatable {
    /// Number of hypothesis tokens.
    var hypothesisLength: Int
    /// Length of the reference closest in length to the hypothesis (the shorter one on ties).
    var referenceLength: Int
    /// Matched (clipped) n-grams for n = 1...maxOrder.
    var correct: [Int]
    /// Hypothesis n-grams for n = 1...maxOrder.
    var total: [Int]

    init(hypothesisLength: Int = 0, referenceLength: Int = 0, correct: [Int], total: [Int]) {
        self.hypothesisLength = hypothesisLength
        self.referenceLength = referenceLength
        self.correct = correct
        self.total = total
    }

    init(order: Int) {
        self.init(correct: [Int](repeating: 0, count: order), total: [Int](repeating: 0, count: order))
    }

    static func += (a: inout BLEUStatistics, b: BLEUStatistics) {
        a.hypothesisLength += b.hypothesisLength
        a.referenceLength += b.referenceLength
        for i in 0..<min(a.correct.count, b.correct.count) {
            a.correct[i] += b.correct[i]
            a.total[i] += b.total[i]
        }
    }
}

/// A BLEU score with the details sacreBLEU reports.
public struct BLEUScore: Sendable, Equatable {
    /// BLEU in [0, 100].
    package let score: Double
    /// Matched n-grams per order as sacreBLEU reports them: with `add-k` smoothing the
    /// smoothing value has been added for orders > 1 (hence `Double`).
    let counts: [Double]
    /// Hypothesis n-grams per order, also after `add-k` smoothing.
    let totals: [Double]
    /// Precisions in percent per order.
    let precisions: [Double]
    /// Brevity penalty.
    let bp: Double
    let sysLen: Int
    let refLen: Int

    var name: String { "BLEU" }

    /// hyp_len / ref_len, or 0 without reference tokens.
    var ratio: Double { refLen != 0 ? Double(sysLen) / Double(refLen) : 0 }

    /// `66.1/41.0/27.6/18.9 (BP = 1.000 ratio = 1.001 hyp_len = 12103 ref_len = 12091)`.
    var verbose: String {
        let prec = precisions.map { formatFixed($0, 1) }.joined(separator: "/")
        return "\(prec) (BP = \(formatFixed(bp, 3)) ratio = \(formatFixed(ratio, 3)) hyp_len = \(sysLen) ref_len = \(refLen))"
    }

    public func report(signature: MetricSignature) -> ScoreReport {
        ScoreReport(name: name, score: score, verbose: verbose, signature: signature)
    }
}

/// BLEU (Papineni et al., 2002) exactly as sacreBLEU 2.x computes it.
///
///     let bleu = BLEU(BLEUOptions(tokenizer: .v13a))
///     let score = try bleu.corpusScore(hypotheses: hyps, references: [refs])
///     print(score.score, bleu.signature(numRefs: 1))
public struct BLEU: Sendable {
    let options: BLEUOptions

    public init(_ options: BLEUOptions = BLEUOptions()) {
        precondition(options.maxNgramOrder >= 1, "maxNgramOrder must be at least 1")
        self.options = options
    }

    /// Corpus BLEU of `hypotheses` against reference streams (`references[k][i]` is the k-th
    /// reference of segment i). Throws `MetricError` if the stream lengths differ.
    public func corpusScore(hypotheses: [String], references: [[String]]) throws -> BLEUScore {
        let worker = BLEUWorker(options)
        var stats = BLEUStatistics(order: options.maxNgramOrder)
        try MetricInput.forEachSegment(hypotheses: hypotheses, references: references) {
            worker.accumulate(hypothesis: $0, references: $1, into: &stats)
        }
        return score(from: stats)
    }

    /// BLEU of one hypothesis against its references (with this metric's options; enable
    /// `effectiveOrder` for the usual sentence-level BLEU).
    func sentenceScore(hypothesis: String, references: [String]) -> BLEUScore {
        precondition(!references.isEmpty, "BLEU needs at least one reference")
        let worker = BLEUWorker(options)
        var stats = BLEUStatistics(order: options.maxNgramOrder)
        worker.accumulate(hypothesis: hypothesis, references: references, into: &stats)
        return score(from: stats)
    }

    /// Sentence-level BLEU of every segment.
    public func sentenceScores(hypotheses: [String], references: [[String]]) throws -> [BLEUScore] {
        try segmentStatistics(hypotheses: hypotheses, references: references).map(score(from:))
    }

    /// The sufficient statistics of every segment.
    func segmentStatistics(hypotheses: [String], references: [[String]]) throws -> [BLEUStatistics] {
        let worker = BLEUWorker(options)
        var segments: [BLEUStatistics] = []
        segments.reserveCapacity(hypotheses.count)
        try MetricInput.forEachSegment(hypotheses: hypotheses, references: references) {
            var stats = BLEUStatistics(order: options.maxNgramOrder)
            worker.accumulate(hypothesis: $0, references: $1, into: &stats)
            segments.append(stats)
        }
        return segments
    }

    /// The score from (summed) statistics, with this metric's smoothing and effective order.
    func score(from stats: BLEUStatistics) -> BLEUScore {
        BLEU.computeBLEU(correct: stats.correct, total: stats.total, sysLen: stats.hypothesisLength,
                         refLen: stats.referenceLength, smoothMethod: options.smoothMethod,
                         smoothValue: options.smoothValue, effectiveOrder: options.effectiveOrder)
    }

    /// sacreBLEU's `BLEU.compute_bleu`: the score from sufficient statistics, with smoothing.
    static func computeBLEU(correct: [Int], total: [Int], sysLen: Int, refLen: Int,
                                   smoothMethod: BLEUSmoothing = .none, smoothValue: Double? = nil,
                                   effectiveOrder: Bool = false) -> BLEUScore {
        let order = correct.count
        let k = smoothValue ?? smoothMethod.defaultValue ?? 0
        var bp = 1.0
        if sysLen < refLen {
            bp = sysLen > 0 ? exp(1 - Double(refLen) / Double(sysLen)) : 0
        }
        var counts = correct.map(Double.init)
        var totals = total.map(Double.init)
        var precisions = [Double](repeating: 0, count: order)
        if !correct.contains(where: { $0 != 0 }) {
            return BLEUScore(score: 0, counts: counts, totals: totals, precisions: precisions,
                             bp: bp, sysLen: sysLen, refLen: refLen)
        }
        var smoothMteval = 1.0
        var effOrder = order
        for n in 1...order {
            if smoothMethod == .addK && n > 1 {
                counts[n - 1] += k
                totals[n - 1] += k
            }
            if totals[n - 1] == 0 { break }
            if effectiveOrder { effOrder = n }
            if counts[n - 1] == 0 {
                if smoothMethod == .exp {
                    smoothMteval *= 2
                    precisions[n - 1] = 100 / (smoothMteval * totals[n - 1])
                } else if smoothMethod == .floor {
                    precisions[n - 1] = 100 * k / totals[n - 1]
                }
            } else {
                precisions[n - 1] = 100 * counts[n - 1] / totals[n - 1]
            }
        }
        var logSum = 0.0
        for p in precisions[0..<effOrder] {
            logSum += p == 0 ? -9_999_999_999 : log(p)
        }
        let score = bp * exp(logSum / Double(effOrder))
        return BLEUScore(score: score, counts: counts, totals: totals, precisions: precisions,
                         bp: bp, sysLen: sysLen, refLen: refLen)
    }

    /// The signature, e.g. `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:swiftnmt-0.1.0`.
    public func signature(numRefs: Int, version: String = MetricSignature.defaultVersion) -> MetricSignature {
        var smooth = options.smoothMethod.rawValue
        if let def = options.smoothMethod.defaultValue {
            smooth += "[\(formatFixed(options.smoothValue ?? def, 2))]"
        }
        return MetricSignature(fields: [
            referenceCountField(numRefs),
            .init("case", options.lowercase ? "lc" : "mixed"),
            .init("eff", options.effectiveOrder ? "yes" : "no"),
            .init("tok", options.tokenizer.signature),
            .init("smooth", smooth),
            .init("version", version),
        ])
    }
}

/// Scratch state that turns one segment into BLEU statistics (one per thread; not shared).
final class BLEUWorker {
    let options: BLEUOptions
    private let scratch = TokenizerScratch()
    private var hyp: [UInt32] = []
    private var ref: [UInt32] = []
    private var interner = TokenInterner()
    private let matcher = NgramMatcher()
    private var correct: [Int]

    init(_ options: BLEUOptions) {
        self.options = options
        correct = [Int](repeating: 0, count: options.maxNgramOrder)
    }

    /// Lowercases (optionally), strips trailing whitespace and tokenizes, as sacreBLEU's
    /// `BLEU._preprocess_segment`.
    private static func prepare(_ s: String, into buf: inout [UInt32], options: BLEUOptions, scratch: TokenizerScratch) {
        PythonText.scalars(of: s, into: &buf)
        if options.lowercase {
            PythonText.lower(buf, into: &scratch.lowered, cache: &scratch.lowerCache)
            swap(&buf, &scratch.lowered)
        }
        PythonText.rstrip(&buf)
        options.tokenizer.tokenize(&buf, scratch: scratch)
    }

    func accumulate(hypothesis: String, references: [String], into stats: inout BLEUStatistics) {
        let order = options.maxNgramOrder
        let tokenizer = options.tokenizer
        let matcher = self.matcher
        BLEUWorker.prepare(hypothesis, into: &hyp, options: options, scratch: scratch)
        interner.reset()
        matcher.reset()
        let hyp = self.hyp
        tokenizer.forEachToken(in: hyp) { start, length, hash in
            matcher.appendToken(self.interner.intern(hyp, start: start, length: length, hash: hash))
        }
        matcher.endHypothesis(distinct: interner.count)
        let hypLen = matcher.hypothesisLength
        var closestDiff = -1, closestLen = -1
        for r in references {
            BLEUWorker.prepare(r, into: &ref, options: options, scratch: scratch)
            let ref = self.ref
            let interner = self.interner
            tokenizer.forEachToken(in: ref) { start, length, hash in
                matcher.appendToken(interner.lookup(ref, start: start, length: length, hash: hash, owner: hyp))
            }
            matcher.endReference()
            let refLen = matcher.referenceLengths[matcher.referenceLengths.count - 1]
            let diff = abs(hypLen - refLen)
            if closestDiff == -1 || diff < closestDiff {
                closestDiff = diff
                closestLen = refLen
            } else if diff == closestDiff && refLen < closestLen {
                closestLen = refLen
            }
        }
        matcher.clippedMatches(maxOrder: order, correct: &correct)
        stats.hypothesisLength += hypLen
        stats.referenceLength += closestLen
        for n in 1...order {
            stats.correct[n - 1] += correct[n - 1]
            stats.total[n - 1] += max(0, hypLen - n + 1)
        }
    }
}
