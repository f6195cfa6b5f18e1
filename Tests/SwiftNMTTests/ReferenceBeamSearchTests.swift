import XCTest
@testable import NMTModel
@testable import NMTSearch
@testable import NMTTensor

/// The batched `BeamSearch` against a beam search written plainly here: one sentence at a time, every
/// hypothesis re-scored from scratch by a one-row decoder, all tokens expanded. The rule both follow
/// (BeamSearch.swift): at each step the expansions of the alive hypotheses are ranked by log-probability;
/// taken best first until k of them are alive, those ending in EOS finish (and do not count towards k);
/// at the length limit the k best all finish. A finished hypothesis scores logprob / length^α, length
/// counting EOS; alive ones are ranked by their plain log-probability. The search ends when k hypotheses
/// have finished, none is alive, or at the limit. (The batched search may also stop a sentence early
/// when α = 0 and its best finished score beats every alive one: log-probabilities only fall, so the
/// best hypothesis is the same.)
///
/// The model is untrained and random, so hypotheses finish at many different steps: the cases where a
/// search that stops too early, or ranks unfinished hypotheses by a penalized score, goes wrong.
final class ReferenceBeamSearchTests: XCTestCase {
    static let model = ReferenceTests.randomModel()

    static let sources: [[Int32]] = (0..<16).map { (i: Int) -> [Int32] in
        (0..<(1 + i % 6)).map { (j: Int) -> Int32 in Int32(4 + (i * 5 + j * 3) % 7) }
    }

    /// log p(v | prefix, source) for every v, in Double, from a fresh one-row decoder fed BOS and `prefix`.
    static func nextLogProbabilities(_ decoder: IncrementalDecoder, source: [Int32], prefix: [Int32]) -> [Double] {
        decoder.start(sources: [source], beams: 1)
        for token in [SpecialTokens.bos] + prefix { [token].withUnsafeBufferPointer { decoder.step(previous: $0.baseAddress!) } }
        let logits = (0..<decoder.targetVocabSize).map { Double(decoder.logits[$0]) }
        let largest = logits.max()!
        let logSumExp = largest + log(logits.map { exp($0 - largest) }.reduce(0, +))
        return logits.map { $0 - logSumExp }
    }

    struct PlainHypothesis { var tokens: [Int32]; var logProbability: Double; var score: Double }

    /// The plain beam search of one sentence; returns its finished hypotheses, best first.
    static func plainBeamSearch(_ source: [Int32], beamSize k: Int, alpha: Double, options: BeamSearchOptions) -> [PlainHypothesis] {
        let decoder = IncrementalDecoder(model: model)
        let maxLength = Int(Float(source.count) * options.maxLengthRatio) + options.maxLengthOffset
        var alive = [PlainHypothesis(tokens: [], logProbability: 0, score: 0)]
        var finished: [PlainHypothesis] = []
        for length in 1...maxLength {
            var expansions: [PlainHypothesis] = []
            for hypothesis in alive {
                let next = nextLogProbabilities(decoder, source: source, prefix: hypothesis.tokens)
                for (token, logProbability) in next.enumerated() {
                    expansions.append(PlainHypothesis(tokens: hypothesis.tokens + [Int32(token)],
                                                      logProbability: hypothesis.logProbability + logProbability, score: 0))
                }
            }
            expansions.sort { $0.logProbability > $1.logProbability }
            let atLimit = length == maxLength
            var nextAlive: [PlainHypothesis] = [], taken = 0
            for var expansion in expansions where taken < k {
                if expansion.tokens.last == SpecialTokens.eos || atLimit {
                    // Only a finished hypothesis gets the length penalty.
                    expansion.score = expansion.logProbability / pow(Double(length), alpha)
                    finished.append(expansion)
                    if atLimit { taken += 1 }
                } else {
                    nextAlive.append(expansion)
                    taken += 1
                }
            }
            alive = nextAlive
            if finished.count >= k || alive.isEmpty { break }
        }
        return finished.sorted { $0.score > $1.score }
    }

    static func withoutEOS(_ tokens: [Int32]) -> [Int32] { tokens.last == SpecialTokens.eos ? Array(tokens.dropLast()) : tokens }

    func testBatchedSearchFindsThePlainSearchsBest() {
        let search = BeamSearch(model: Self.model)
        var finishingLengths = Set<Int>()
        for beamSize in [2, 4] {
            for alpha in [0.0, 0.6, 1.0] {
                let options = BeamSearchOptions(beamSize: beamSize, lengthPenalty: Float(alpha), nBest: beamSize)
                let batched = search.search(Self.sources, options: options)
                for (i, source) in Self.sources.enumerated() {
                    let plain = Self.plainBeamSearch(source, beamSize: beamSize, alpha: alpha, options: options)
                    let expected = plain[0], found = batched[i][0]
                    finishingLengths.formUnion(plain.map(\.tokens.count))
                    let context = "sentence \(i), beam \(beamSize), α \(alpha)"
                    XCTAssertEqual(found.tokens, Self.withoutEOS(expected.tokens), context)
                    XCTAssertEqual(Double(found.score), expected.score, accuracy: 1e-4 * (1 + abs(expected.score)), context)
                    XCTAssertEqual(Double(found.logProbability), expected.logProbability,
                                   accuracy: 1e-4 * (1 + abs(expected.logProbability)), context)
                    // With α > 0 nothing stops the batched search early, so it finishes the same hypotheses:
                    // the whole n-best lists agree.
                    if alpha > 0 {
                        XCTAssertEqual(batched[i].map(\.tokens), plain.prefix(beamSize).map { Self.withoutEOS($0.tokens) }, context)
                    }
                }
            }
        }
        // The test means something only if hypotheses end at many different lengths.
        XCTAssertGreaterThanOrEqual(finishingLengths.count, 5, "finished lengths: \(finishingLengths.sorted())")
    }
}
