import XCTest
@testable import NMTModel
@testable import NMTSearch
@testable import NMTText

/// mt-score: teacher-forced scores that agree with what beam search computed for its own hypotheses.
final class ScoreTests: XCTestCase {
    static let shippedModel = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path + "/checkpoints/multi30k-en-de"

    func testScoresOfTranslationsAreTheScoresBeamSearchGaveThem() throws {
        let translator = try Translator(modelDirectory: Self.shippedModel)
        var corpus = TestCorpus(seed: 3)
        let sources = corpus.pairs(16).map { $0.0 } + ["A man in a blue shirt is standing on a ladder.", "Two dogs play in the snow."]
        let translations = try translator.translate(sources, options: BeamSearchOptions(beamSize: 5, lengthPenalty: 1.0, nBest: 3))
        var pairs: [(source: String, target: String)] = [], expected: [(score: Float, logProbability: Float)] = []
        for (source, translation) in zip(sources, translations) {
            for (text, hypothesis) in translation.hypotheses where try translator.target.encode(text) == hypothesis.tokens {
                pairs.append((source, text))
                expected.append((hypothesis.score, hypothesis.logProbability))
            }
        }
        XCTAssertGreaterThan(pairs.count, 40, "most hypotheses re-encode to their own pieces")
        let normalized = try translator.score(pairs, lengthPenalty: 1.0, batchSize: 7)
        let raw = try translator.score(pairs)
        for (k, e) in expected.enumerated() {
            guard case .score(let s) = normalized[k], case .score(let r) = raw[k] else { return XCTFail("pair \(k) has no score") }
            XCTAssertEqual(s, e.score, accuracy: 1e-4 * max(1, abs(e.score)), "pair \(k): \(pairs[k])")
            XCTAssertEqual(r, e.logProbability, accuracy: 1e-4 * max(1, abs(e.logProbability)), "pair \(k)")
        }
        // A worse target scores lower than the model's own best translation.
        guard case .score(let best) = raw[0], case .score(let shuffled) = try translator.score([(pairs[0].source, "Hund Hund Hund Mann .")])[0] else {
            return XCTFail("no score")
        }
        XCTAssertLessThan(shuffled, best)
        // An ensemble of the model with itself scores as the model.
        let doubled = try Translator(modelDirectories: [Self.shippedModel, Self.shippedModel])
        XCTAssertEqual(try doubled.score(pairs), raw)
    }

    func testCommandLineKeepsLinesAlignedAndReportsBadLines() throws {
        let input = "A man rides a bike.\tEin Mann fährt Fahrrad.\nno tab here\n\tleer\nA dog runs.\tEin Hund rennt.\n"
        let result = try Executables.run("mt-score", ["--model", Self.shippedModel, "--length-penalty", "1"], input: Data(input.utf8))
        XCTAssertEqual(result.status, 1, "bad lines make the exit status 1")
        let lines = result.output.split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.count, 5, result.output)
        XCTAssertNotNil(Float(lines[0]), result.output)
        XCTAssertTrue(lines[1].hasPrefix("error: no tab"), result.output)
        XCTAssertTrue(lines[2].hasPrefix("error: the source is empty"), result.output)
        XCTAssertNotNil(Float(lines[3]), result.output)
        XCTAssertTrue(result.errors.contains("line 2") && result.errors.contains("line 3"), result.errors)
        // The same pairs scored alone give the same numbers (batching does not change a score).
        let alone = try Executables.run("mt-score", ["--model", Self.shippedModel, "--length-penalty", "1"],
                                        input: Data("A dog runs.\tEin Hund rennt.\n".utf8))
        XCTAssertEqual(alone.status, 0, alone.errors)
        XCTAssertEqual(alone.output, String(lines[3]) + "\n")
    }
}
