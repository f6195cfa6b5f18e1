import Foundation

/// Options of chrF / chrF++; the defaults are sacreBLEU's chrF2.
public struct CHRFOptions: Sendable, Equatable {
    /// Character n-gram order.
    var charOrder: Int
    /// Word n-gram order (2 gives chrF++).
    var wordOrder: Int
    /// Weight of recall relative to precision.
    var beta: Int
    var lowercase: Bool
    /// Keep whitespace when extracting character n-grams.
    var whitespace: Bool
    /// chrF++.py-style epsilon smoothing instead of sacreBLEU's effective-order averaging.
    var epsSmoothing: Bool

    public init(charOrder: Int = 6, wordOrder: Int = 0, beta: Int = 2, lowercase: Bool = false,
                whitespace: Bool = false, epsSmoothing: Bool = false) {
        self.charOrder = charOrder
        self.wordOrder = wordOrder
        self.beta = beta
        self.lowercase = lowercase
        self.whitespace = whitespace
        self.epsSmoothing = epsSmoothing
    }
}

/// chrF's sufficient statistics: for each order (character orders, then word orders) the
/// hypothesis n-gram count, the reference n-gram count and the matched count. Sums over
/// segments give the corpus statistics.
struct CHRFStatistics: Sendable, Equatable {
    /// `[hyp, ref, match]` triples, one per order.
    var values: [Int]

    init(values: [Int]) { self.values = values }

    init(orders: Int) { values = [Int](repeating: 0, count: 3 * orders) }

    static func += (a: inout CHRFStatistics, b: CHRFStatistics) {
        for i in 0..<min(a.values.count, b.values.count) { a.values[i] += b.values[i] }
    }
}

/// A chrF score.
public struct CHRFScore: Sendable, Equatable {
    /// chrF in [0, 100].
    let score: Double
    let charOrder: Int
    let wordOrder: Int
    let beta: Int

    /// `chrF2`, or `chrF2++` for word order 2.
    var name: String { "chrF\(beta)" + String(repeating: "+", count: wordOrder) }

    public func report(signature: MetricSignature) -> ScoreReport {
        ScoreReport(name: name, score: score, signature: signature)
    }
}

/// chrF (Popović, 2015) and chrF++ (2017) exactly as sacreBLEU 2.x computes them.
public struct CHRF: Sendable {
    let options: CHRFOptions

    public init(_ options: CHRFOptions = CHRFOptions()) {
        precondition(options.charOrder >= 0 && options.wordOrder >= 0 && options.charOrder + options.wordOrder > 0,
                     "chrF needs a positive total order")
        self.options = options
    }

    var orders: Int { options.charOrder + options.wordOrder }

    /// Corpus chrF: statistics summed over segments, then one F-score.
    public func corpusScore(hypotheses: [String], references: [[String]]) throws -> CHRFScore {
        let worker = CHRFWorker(options)
        var stats = CHRFStatistics(orders: orders)
        try MetricInput.forEachSegment(hypotheses: hypotheses, references: references) {
            worker.accumulate(hypothesis: $0, references: $1, into: &stats)
        }
        return score(from: stats)
    }

    /// chrF of one hypothesis against its references.
    func sentenceScore(hypothesis: String, references: [String]) -> CHRFScore {
        precondition(!references.isEmpty, "chrF needs at least one reference")
        let worker = CHRFWorker(options)
        var stats = CHRFStatistics(orders: orders)
        worker.accumulate(hypothesis: hypothesis, references: references, into: &stats)
        return score(from: stats)
    }

    /// Sentence-level chrF of every segment.
    public func sentenceScores(hypotheses: [String], references: [[String]]) throws -> [CHRFScore] {
        try segmentStatistics(hypotheses: hypotheses, references: references).map(score(from:))
    }

    /// The statistics of every segment (against its best-scoring reference).
    func segmentStatistics(hypotheses: [String], references: [[String]]) throws -> [CHRFStatistics] {
        let worker = CHRFWorker(options)
        var segments: [CHRFStatistics] = []
        segments.reserveCapacity(hypotheses.count)
        try MetricInput.forEachSegment(hypotheses: hypotheses, references: references) {
            var stats = CHRFStatistics(orders: orders)
            worker.accumulate(hypothesis: $0, references: $1, into: &stats)
            segments.append(stats)
        }
        return segments
    }

    func score(from stats: CHRFStatistics) -> CHRFScore {
        CHRFScore(score: CHRF.fScore(stats.values, beta: options.beta, epsSmoothing: options.epsSmoothing),
                  charOrder: options.charOrder, wordOrder: options.wordOrder, beta: options.beta)
    }

    /// sacreBLEU's `CHRF._compute_f_score`. Without epsilon smoothing, precision and recall are
    /// averaged over the orders where both the hypothesis and the reference have n-grams
    /// ("effective order"), and the F-beta of those averages is returned (× 100).
    static func fScore(_ statistics: [Int], beta: Int, epsSmoothing: Bool) -> Double {
        let eps = 1e-16
        let order = statistics.count / 3
        let factor = Double(beta * beta)
        var score = 0.0
        var effectiveOrder = 0
        var avgPrec = 0.0, avgRec = 0.0
        for i in 0..<order {
            let nHyp = statistics[3 * i], nRef = statistics[3 * i + 1], nMatch = statistics[3 * i + 2]
            let prec = nHyp > 0 ? Double(nMatch) / Double(nHyp) : eps
            let rec = nRef > 0 ? Double(nMatch) / Double(nRef) : eps
            let denom = factor * prec + rec
            score += denom > 0 ? (1 + factor) * prec * rec / denom : eps
            if nHyp > 0 && nRef > 0 {
                avgPrec += prec
                avgRec += rec
                effectiveOrder += 1
            }
        }
        if epsSmoothing { return 100 * score / Double(order) }
        if effectiveOrder == 0 {
            avgPrec = 0
            avgRec = 0
        } else {
            avgPrec /= Double(effectiveOrder)
            avgRec /= Double(effectiveOrder)
        }
        if avgPrec + avgRec != 0 {
            var s = (1 + factor) * avgPrec * avgRec
            s /= (factor * avgPrec) + avgRec
            return 100 * s
        }
        return 0
    }

    /// The signature, e.g. `nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:swiftnmt-0.1.0`.
    public func signature(numRefs: Int, version: String = MetricSignature.defaultVersion) -> MetricSignature {
        MetricSignature(fields: [
            referenceCountField(numRefs),
            .init("case", options.lowercase ? "lc" : "mixed"),
            .init("eff", options.epsSmoothing ? "no" : "yes"),
            .init("nc", String(options.charOrder)),
            .init("nw", String(options.wordOrder)),
            .init("space", options.whitespace ? "yes" : "no"),
            .init("version", version),
        ])
    }
}

/// Scratch state that turns one segment into chrF statistics (one per thread; not shared).
final class CHRFWorker {
    let options: CHRFOptions
    private var buffers = Buffers()

    /// Everything reused from segment to segment.
    private final class Buffers {
        var lowerCache: [UInt32: [UInt32]] = [:]
        var raw: [UInt32] = []
        var hypText: [UInt32] = []
        var hypChars: [UInt32] = []
        var refChars: [UInt32] = []
        var refTexts: [[UInt32]] = []
        let charIDs = DenseIDTable()
        var interner = TokenInterner()
        let matcher = NgramMatcher()
        var charMatches: [Int] = []
        var wordMatches: [Int] = []
        var hypWords: [(Int, Int, UInt64)] = []
        var refWords: [(Int, Int, UInt64)] = []
        var candidate: [Int] = []
        var best: [Int] = []
        var refCharLengths: [Int] = []
        var refWordLengths: [Int] = []
    }

    init(_ options: CHRFOptions) {
        self.options = options
    }

    private static let asciiPunctuation: Set<UInt32> = Set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".unicodeScalars.map(\.value))

    /// Optional lowercasing (sacreBLEU's `CHRF._preprocess_segment`).
    private static func prepare(_ s: String, into buf: inout [UInt32], lowercase: Bool, raw: inout [UInt32], cache: inout [UInt32: [UInt32]]) {
        if lowercase {
            PythonText.scalars(of: s, into: &raw)
            PythonText.lower(raw, into: &buf, cache: &cache)
        } else {
            PythonText.scalars(of: s, into: &buf)
        }
    }

    /// The characters n-grams are taken from: all of them, or with whitespace removed.
    private static func characters(_ text: [UInt32], whitespace: Bool, into out: inout [UInt32]) {
        out.removeAll(keepingCapacity: true)
        if whitespace {
            out.append(contentsOf: text)
        } else {
            for c in text where !PythonText.isSpace(c) { out.append(c) }
        }
    }

    /// sacreBLEU's `CHRF._remove_punctuation`: whitespace-separated words with one ASCII
    /// punctuation mark split off the end (or else the start) of words longer than one character.
    private static func words(_ text: [UInt32], into out: inout [(Int, Int, UInt64)]) {
        out.removeAll(keepingCapacity: true)
        func hash(_ s: Int, _ l: Int) -> UInt64 {
            var h = TokenHash.seed
            for k in s..<(s + l) { h = TokenHash.add(h, text[k]) }
            return TokenHash.finish(h)
        }
        for r in PythonText.split(text) {
            let s = r.lowerBound, l = r.count
            if l == 1 {
                out.append((s, 1, hash(s, 1)))
            } else if asciiPunctuation.contains(text[s + l - 1]) {
                out.append((s, l - 1, hash(s, l - 1)))
                out.append((s + l - 1, 1, hash(s + l - 1, 1)))
            } else if asciiPunctuation.contains(text[s]) {
                out.append((s, 1, hash(s, 1)))
                out.append((s + 1, l - 1, hash(s + 1, l - 1)))
            } else {
                out.append((s, l, hash(s, l)))
            }
        }
    }

    func accumulate(hypothesis: String, references: [String], into stats: inout CHRFStatistics) {
        let b = buffers
        let nc = options.charOrder, nw = options.wordOrder
        let nrefs = references.count
        CHRFWorker.prepare(hypothesis, into: &b.hypText, lowercase: options.lowercase, raw: &b.raw, cache: &b.lowerCache)
        CHRFWorker.characters(b.hypText, whitespace: options.whitespace, into: &b.hypChars)

        // Character n-grams: characters get ids by value, n-grams hierarchically.
        if nc > 0 {
            b.charIDs.reset()
            b.matcher.reset()
            for c in b.hypChars { b.matcher.appendToken(b.charIDs.intern(UInt64(c))) }
            b.matcher.endHypothesis(distinct: b.charIDs.count)
        }
        while b.refTexts.count < nrefs { b.refTexts.append([]) }
        b.refCharLengths.removeAll(keepingCapacity: true)
        for r in 0..<nrefs {
            CHRFWorker.prepare(references[r], into: &b.refTexts[r], lowercase: options.lowercase, raw: &b.raw, cache: &b.lowerCache)
            CHRFWorker.characters(b.refTexts[r], whitespace: options.whitespace, into: &b.refChars)
            b.refCharLengths.append(b.refChars.count)
            if nc > 0 {
                for c in b.refChars { b.matcher.appendToken(b.charIDs.lookup(UInt64(c))) }
                b.matcher.endReference()
            }
        }
        if nc > 0 { b.matcher.perReferenceMatches(maxOrder: nc, matches: &b.charMatches) }

        // Word n-grams (chrF++).
        b.refWordLengths.removeAll(keepingCapacity: true)
        if nw > 0 {
            CHRFWorker.words(b.hypText, into: &b.hypWords)
            b.interner.reset()
            b.matcher.reset()
            for (s, l, h) in b.hypWords {
                b.matcher.appendToken(b.interner.intern(b.hypText, start: s, length: l, hash: h))
            }
            b.matcher.endHypothesis(distinct: b.interner.count)
            for r in 0..<nrefs {
                CHRFWorker.words(b.refTexts[r], into: &b.refWords)
                b.refWordLengths.append(b.refWords.count)
                for (s, l, h) in b.refWords {
                    b.matcher.appendToken(b.interner.lookup(b.refTexts[r], start: s, length: l, hash: h, owner: b.hypText))
                }
                b.matcher.endReference()
            }
            b.matcher.perReferenceMatches(maxOrder: nw, matches: &b.wordMatches)
        }

        // Pick the reference with the best sentence-level F-score (the first on ties).
        let hypCharLen = b.hypChars.count, hypWordLen = nw > 0 ? b.hypWords.count : 0
        var bestF = -1.0
        b.best.removeAll(keepingCapacity: true)
        // [hyp, ref, match] n-gram counts for orders 1...maxOrder of one unit (characters or words).
        func appendCounts(maxOrder: Int, hypothesisLength: Int, referenceLength: Int, matches: [Int], reference r: Int) {
            for n in stride(from: 1, through: maxOrder, by: 1) {
                let refN = max(0, referenceLength - n + 1)
                let hypN = max(0, hypothesisLength - n + 1)
                b.candidate.append(refN > 0 ? hypN : 0)
                b.candidate.append(refN)
                b.candidate.append(matches[r * maxOrder + n - 1])
            }
        }
        for r in 0..<nrefs {
            b.candidate.removeAll(keepingCapacity: true)
            appendCounts(maxOrder: nc, hypothesisLength: hypCharLen, referenceLength: b.refCharLengths[r], matches: b.charMatches, reference: r)
            appendCounts(maxOrder: nw, hypothesisLength: hypWordLen, referenceLength: b.refWordLengths[r], matches: b.wordMatches, reference: r)
            let f = CHRF.fScore(b.candidate, beta: options.beta, epsSmoothing: options.epsSmoothing)
            if f > bestF {
                bestF = f
                swap(&b.best, &b.candidate)
            }
        }
        for i in 0..<b.best.count { stats.values[i] += b.best[i] }
    }
}
