import XCTest
@testable import NMTModel
@testable import NMTSearch
@testable import NMTTensor
@testable import NMTText

/// Sampling: the right distribution, reproducible by seed whatever the batching and threads.
final class SamplingTests: XCTestCase {
    /// 40,000 draws from softmax(logits / T) over the top k land where the distribution says.
    func testDrawsFollowTheTemperedTopKDistribution() {
        let p: [Double] = [0.05, 0.4, 0.1, 0.3, 0.15]
        let logits = p.map { Float(log($0)) + 2 }  // a shift the softmax must not see
        func frequencies(topK: Int, temperature: Float) -> [Double] {
            var draw = SampleDraw(vocabulary: p.count, sampling: SamplingOptions(topK: topK, temperature: temperature))
            var random = RandomSource(seed: 11)
            var counts = [Double](repeating: 0, count: p.count)
            for _ in 0..<40_000 { counts[Int(logits.withUnsafeBufferPointer { draw.piece($0.baseAddress!, random: &random) })] += 1 }
            return counts.map { $0 / 40_000 }
        }
        func expected(topK: Int, temperature: Double) -> [Double] {
            let kept = Set(p.indices.sorted { p[$0] > p[$1] }.prefix(topK > 0 ? topK : p.count))
            let w = p.indices.map { kept.contains($0) ? pow(p[$0], 1 / temperature) : 0 }
            return w.map { $0 / w.reduce(0, +) }
        }
        for (k, t) in [(0, 1.0), (2, 1.0), (3, 0.5), (0, 2.0)] as [(Int, Double)] {
            let got = frequencies(topK: k, temperature: Float(t)), want = expected(topK: k, temperature: t)
            for i in p.indices { XCTAssertEqual(got[i], want[i], accuracy: 0.012, "top-k \(k), T \(t), piece \(i): \(got) vs \(want)") }
        }
    }

    func testSamplesAreReproducibleBySeedAndScoredAsTheModelScoresThem() throws {
        let translator = try Translator(modelDirectory: ScoreTests.shippedModel)
        var corpus = TestCorpus(seed: 8)
        let lines = corpus.pairs(60).map { $0.0 }
        var options = BeamSearchOptions(lengthPenalty: 1.0)
        options.sampling = SamplingOptions(topK: 0, temperature: 1, seed: 5)
        let a = try translator.translate(lines, options: options, batchSize: 64)
        let b = try translator.translate(lines, options: options, batchSize: 5, workers: 2)
        let b1 = try translator.translate(lines, options: options, batchSize: 5, workers: 1)
        XCTAssertEqual(b.map(\.text), b1.map(\.text), "threads do not change a sample")
        options.sampling = SamplingOptions(topK: 0, temperature: 1, seed: 6)
        let c = try translator.translate(lines, options: options)
        XCTAssertNotEqual(a.map(\.text), c.map(\.text), "another seed, other samples")
        // The sampled log-probability is the model's: mt-score's for the same pair.
        var checked = 0
        for (line, translation) in zip(lines, a) {
            let best = translation.hypotheses[0]
            guard try translator.target.encode(best.text) == best.hypothesis.tokens,
                  best.hypothesis.tokens.count < Int(Float(try translator.source.encode(line).count) * 2) + 10 else { continue }
            guard case .score(let s) = try translator.score([(line, best.text)], lengthPenalty: 1.0)[0] else { return XCTFail("no score") }
            XCTAssertEqual(s, best.hypothesis.score, accuracy: 1e-4 * max(1, abs(s)))
            checked += 1
        }
        // Samples of the whole vocabulary often hold pieces that decode and re-encode differently; a quarter do not.
        XCTAssertGreaterThanOrEqual(checked, lines.count / 4, "samples compared with mt-score")
    }

    func testCommandLine() throws {
        let input = Data("A man rides a bike.\nTwo dogs play in the snow.\nA woman sings.\n".utf8)
        let model = TranslateCommandTests.modelDirectory
        let one = try Executables.run("mt-translate", ["--model", model, "--sample", "--seed", "3", "--threads", "1"], input: input)
        let two = try Executables.run("mt-translate", ["--model", model, "--sample", "--seed", "3", "--threads", "2"], input: input)
        XCTAssertEqual(one.status, 0, one.errors)
        XCTAssertEqual(one.output, two.output)
        XCTAssertEqual(one.output.split(separator: "\n", omittingEmptySubsequences: false).count, 4)
        let refused = try Executables.run("mt-translate", ["--model", model, "--sample", "--n-best", "2"], input: input)
        XCTAssertEqual(refused.status, 64)
        XCTAssertEqual(try Executables.run("mt-translate", ["--model", model, "--top-k", "5"], input: input).status, 64)
    }
}
