import XCTest
@testable import NMTModel
@testable import NMTSearch
@testable import NMTTensor

/// In-flight batching: sentences that join a batch between decoder steps, with options of their own,
/// and sentences that leave it unfinished, change nothing in what any other sentence finds.
///
/// Nothing in a row's arithmetic reads another row, but OpenBLAS's sgemm rounds a row differently
/// depending on the number of rows of the product (and on its threads: measured, about half the rows of a
/// 1,536-column product differ in the last bit between M = 1 and M = 400). So a sentence's numbers match
/// to rounding, not bit for bit, in another batch, exactly as in mt-translate with another --batch-size:
/// the hypotheses must be the same, their scores and attention equal within 1e-4.
final class InFlightSearchTests: XCTestCase {
    private func assertSame(_ found: [Hypothesis]?, _ expected: [Hypothesis], _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let found else { return XCTFail("\(message): not found", file: file, line: line) }
        XCTAssertEqual(found.map(\.tokens), expected.map(\.tokens), message, file: file, line: line)
        for (f, e) in zip(found, expected) {
            XCTAssertEqual(f.logProbability, e.logProbability, accuracy: 1e-4 * max(1, abs(e.logProbability)), message, file: file, line: line)
            XCTAssertEqual(f.score, e.score, accuracy: 1e-4 * max(1, abs(e.score)), message, file: file, line: line)
            XCTAssertEqual(f.alignment.count, e.alignment.count, message, file: file, line: line)
            let largest = zip(f.alignment.joined(), e.alignment.joined()).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(largest, 1e-4, message, file: file, line: line)
        }
    }

    private func tinyModel(seed: UInt64) throws -> Seq2Seq {
        let config = ModelConfig(sourceVocabSize: 40, targetVocabSize: 40, embedSize: 8, encoderHiddenSize: 8,
                                 decoderHiddenSize: 12, attentionSize: 8, sharedEmbeddings: true, tiedOutput: true)
        return try Seq2Seq(config: config, seed: seed)
    }

    private func randomSources(_ count: Int, seed: UInt64, longest: Int = 12) -> [[Int32]] {
        var rng = RandomSource(seed: seed)
        return (0..<count).map { _ in (0..<(1 + Int(rng.next() % UInt64(longest)))).map { _ in Int32(4 + rng.next() % 36) } }
    }

    /// Joins `sources` to one batch a few at a time (sentence i at step joinStep[i]), removes `cancelled`
    /// at step `cancelStep`, and steps until everything is done; returns each finished sentence's list.
    private func runInFlight(_ batch: SearchBatch, _ sources: [[Int32]], options: [BeamSearchOptions], joinStep: [Int],
                             cancelled: Set<Int> = [], cancelStep: Int = 0) -> [Int: [Hypothesis]] {
        var results: [Int: [Hypothesis]] = [:]
        var step = 0
        var mostRows = 0
        while true {
            let joining = sources.indices.filter { joinStep[$0] == step }
            batch.admit(joining.map { SearchBatch.Request(tag: $0, source: sources[$0], options: options[$0]) })
            if step == cancelStep && !cancelled.isEmpty { batch.remove(tags: cancelled) }
            if batch.live == 0 && joinStep.allSatisfy({ $0 <= step }) { break }
            if batch.live > 0 {
                for (tag, hypotheses) in batch.step() {
                    XCTAssertNil(results[tag], "sentence \(tag) finished twice")
                    results[tag] = hypotheses
                }
            }
            mostRows = max(mostRows, batch.rows)
            step += 1
        }
        XCTAssertGreaterThan(mostRows, options.map(\.beamSize).max()!, "sentences never shared a batch")
        return results
    }

    func testSentencesJoiningBetweenStepsFindWhatTheyFindAlone() throws {
        let model = try tinyModel(seed: 7)
        let sources = randomSources(16, seed: 8)
        // Mixed beam sizes, length penalties, n-best lists and alignments in one batch.
        let options = sources.indices.map { i in
            BeamSearchOptions(beamSize: [1, 3, 5][i % 3], lengthPenalty: [0, 0.6, 1][i % 3 == 0 ? 0 : i % 2 + 1], nBest: i % 3 == 2 ? 3 : 1,
                              alignments: i % 4 == 1)
        }
        let alone = BeamSearch(model: model)
        let expected = sources.indices.map { alone.search([sources[$0]], options: options[$0])[0] }
        XCTAssertTrue(expected.allSatisfy { !$0.isEmpty && !$0[0].tokens.isEmpty })
        let batch = SearchBatch(decoder: IncrementalDecoder(model: model))
        let joinStep = sources.indices.map { [0, 0, 1, 3, 4, 4, 4, 9, 2, 15, 6, 6, 0, 11, 30, 5][$0] }
        let found = runInFlight(batch, sources, options: options, joinStep: joinStep)
        for i in sources.indices { assertSame(found[i], expected[i], "sentence \(i) (joined at step \(joinStep[i]))") }
        // The batch is reused as it is: again, in another order of joining.
        let again = runInFlight(batch, sources, options: options, joinStep: joinStep.reversed())
        for i in sources.indices { assertSame(again[i], expected[i], "sentence \(i), second run") }
    }

    /// Over a shortlist (each sentence its own candidates, the batch their union, changing as sentences
    /// join and leave), joining sentences still find what they find alone over it.
    func testSentencesJoiningOverAShortlistFindWhatTheyFindAlone() throws {
        let model = try tinyModel(seed: 7)
        let sources = randomSources(12, seed: 9)
        var shortlist = Shortlist.build(pairs: randomSources(200, seed: 10).map { (source: $0, target: Array($0.reversed())) },
                                        sourceVocabSize: 40, targetVocabSize: 40)
        shortlist.frequentCount = 3
        shortlist.translationCount = 2
        let options = sources.indices.map { BeamSearchOptions(beamSize: [1, 3, 5][$0 % 3]) }
        let decoder = IncrementalDecoder(model: model)
        decoder.shortlist = shortlist
        let alone = BeamSearch(decoder: decoder.replica())
        let expected = sources.indices.map { alone.search([sources[$0]], options: options[$0])[0] }
        let whole = BeamSearch(model: model)
        XCTAssertNotEqual(expected.map { $0[0].tokens }, sources.indices.map { whole.search([sources[$0]], options: options[$0])[0][0].tokens },
                          "the shortlist changes some translations")
        let found = runInFlight(SearchBatch(decoder: decoder), sources, options: options,
                                joinStep: sources.indices.map { [0, 0, 2, 3, 3, 5, 1, 8, 0, 4, 12, 6][$0] })
        for i in sources.indices { assertSame(found[i], expected[i], "sentence \(i)") }
    }

    func testSentencesLeavingUnfinishedChangeNothingForTheOthers() throws {
        let model = try tinyModel(seed: 9)
        let sources = randomSources(10, seed: 10, longest: 20)
        let options = [BeamSearchOptions](repeating: BeamSearchOptions(beamSize: 4, lengthPenalty: 1, nBest: 2, alignments: true), count: 10)
        let alone = BeamSearch(model: model)
        let batch = SearchBatch(decoder: IncrementalDecoder(model: model))
        let found = runInFlight(batch, sources, options: options, joinStep: [0, 0, 0, 1, 1, 2, 2, 2, 3, 5], cancelled: [1, 4, 8], cancelStep: 3)
        XCTAssertEqual(Set(found.keys), Set(sources.indices).subtracting([1, 4, 8]))
        for (i, hypotheses) in found { assertSame(hypotheses, alone.search([sources[i]], options: options[i])[0], "sentence \(i)") }
    }

    /// The shipped model, on sentences of the test set's kind: joining a batch in flight gives the n-best
    /// lists, scores and alignments that a batch of its own gives.
    func testShippedModelInFlightEqualsBatched() throws {
        let translator = try Translator(modelDirectory: TranslateCommandTests.modelDirectory)
        let lines = ["A man in a blue shirt is standing on a ladder cleaning windows.", "Two dogs play in the snow.",
                     "A little girl climbs into a wooden playhouse.", "Five people in winter jackets and helmets stand in the snow, with snowmobiles in the background.",
                     "People are fixing the roof of a house.", "A group of people standing in front of an igloo.",
                     "A boy in a red uniform is attempting to avoid getting out at home plate, while the catcher in the blue uniform is attempting to catch him.",
                     "A guy works on a building.", "Dogs.", "A woman in a pink shirt is reading a book on a bench in the park."]
        let sources = try lines.map { try translator.source.encode($0) }
        let options = BeamSearchOptions(beamSize: 5, lengthPenalty: 1, nBest: 2, alignments: true)
        let batched = translator.search.search(sources, options: options)
        let batch = SearchBatch(decoder: IncrementalDecoder(model: translator.models[0]))
        let found = runInFlight(batch, sources, options: [BeamSearchOptions](repeating: options, count: sources.count),
                                joinStep: [0, 3, 3, 0, 7, 1, 2, 12, 5, 4])
        for i in sources.indices { assertSame(found[i], batched[i], "line \(i + 1)") }
    }
}
