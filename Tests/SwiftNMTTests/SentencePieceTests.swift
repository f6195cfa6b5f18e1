import Foundation
import XCTest
@testable import NMTModelFiles
@testable import NMTTensor
@testable import NMTText

/// Thrown (= test failure) when fixtures that must be there are not.
struct FixtureMissing: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

final class SentencePieceTests: XCTestCase {
    // MARK: Agreement with the Python sentencepiece package

    /// The fixture directory from SPM_FIXTURES; skips when unset outside CI, fails in CI.
    private func fixtureDirectory() throws -> String {
        let env = ProcessInfo.processInfo.environment
        let inCI = !(env["CI"] ?? "").isEmpty
        guard let dir = env["SPM_FIXTURES"], !dir.isEmpty else {
            if inCI { throw FixtureMissing("CI is set but SPM_FIXTURES is not: the SentencePiece fixture test cannot run") }
            throw XCTSkip("SPM_FIXTURES is not set (directory with cases.jsonl and the .model files)")
        }
        let cases = (dir as NSString).appendingPathComponent("cases.jsonl")
        guard FileManager.default.fileExists(atPath: cases) else {
            // Set but wrong (in CI or not) is a failure, never a skip.
            throw FixtureMissing("SPM_FIXTURES='\(dir)' has no cases.jsonl")
        }
        return dir
    }

    func testFixtureAgreementWithReferenceImplementation() throws {
        let dir = try fixtureDirectory()
        let text = try String(contentsOfFile: (dir as NSString).appendingPathComponent("cases.jsonl"), encoding: .utf8)
        var models: [String: SentencePiece] = [:]
        var checked = 0
        var perModel: [String: Int] = [:]
        var unknownCases = 0
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "line \(n + 1)")
            let modelName = try XCTUnwrap(obj["model"] as? String)
            let input = try XCTUnwrap(obj["text"] as? String)
            let pieces = try XCTUnwrap(obj["pieces"] as? [String])
            let ids = try XCTUnwrap(obj["ids"] as? [Int]).map { Int32($0) }
            let decoded = try XCTUnwrap(obj["decoded"] as? String)
            if models[modelName] == nil {
                models[modelName] = try SentencePiece(modelPath: (dir as NSString).appendingPathComponent(modelName))
            }
            let sp = models[modelName]!
            let context = "\(modelName) line \(n + 1) \(input.debugDescription)"
            XCTAssertEqual(try sp.encodeAsPieces(input), pieces, context)
            XCTAssertEqual(try sp.encode(input), ids, context)
            XCTAssertEqual(try sp.decode(ids), decoded, context)
            XCTAssertEqual(pieces.map { sp.pieceToId($0) }, ids, context)
            // Unknown pieces carry their surface text in `pieces` (as in Python), so the piece
            // round trip holds only for known pieces.
            for (id, piece) in zip(ids, pieces) where id != sp.unkId {
                XCTAssertEqual(sp.idToPiece(id), piece, context)
            }
            if !ids.contains(sp.unkId) {
                XCTAssertEqual(try sp.decode(pieces: pieces), decoded, context)
            } else {
                unknownCases += 1
            }
            checked += 1
            perModel[modelName, default: 0] += 1
        }
        // The fixture file has 420 cases over two models; fewer would mean the test checked less than it claims.
        XCTAssertEqual(checked, 420)
        XCTAssertEqual(perModel.count, 2)
        XCTAssertGreaterThan(unknownCases, 0)
        for sp in models.values {
            XCTAssertGreaterThan(sp.vocabularySize, 100)
            XCTAssertEqual(sp.idToPiece(sp.unkId), "<unk>")
        }
    }

    // MARK: Training

    private func trainingSentences(_ n: Int = 400, seed: UInt64 = 7) -> [String] {
        var c = TestCorpus(seed: seed)
        return c.pairs(n).flatMap { [$0.0, $0.1] }
    }

    func testTrainTinyBPEModelRoundTrips() throws {
        let sentences = trainingSentences()
        let sp = try SentencePiece.train(sentences: sentences, options: .init(vocabSize: 120, modelType: .bpe, numThreads: 2))
        XCTAssertEqual(sp.vocabularySize, 120)
        var c = TestCorpus(seed: 99)  // unseen sentences over the same words
        for (en, de) in c.pairs(50) + [("", ""), ("Two  people   walking.", "Zwei Menschen")] {
            for s in [en, de] {
                let ids = try sp.encode(s)
                let pieces = try sp.encodeAsPieces(s)
                XCTAssertEqual(ids.count, pieces.count)
                XCTAssertEqual(pieces.map { sp.pieceToId($0) }, ids)
                XCTAssertFalse(ids.contains(SpecialTokens.unk), s)
                // SentencePiece normalizes runs of spaces to one.
                let normalized = s.split(separator: " ").joined(separator: " ")
                XCTAssertEqual(try sp.decode(ids), normalized)
                XCTAssertEqual(try sp.decode(pieces: pieces), normalized)
            }
        }
        // Subwords, not characters: far fewer pieces than characters.
        let sample = sentences.prefix(100).joined(separator: " ")
        XCTAssertLessThan(Double(try sp.encode(sample).count), 0.6 * Double(sample.count))
    }

    func testTrainUnigramFromFilesWritesModelAndVocabulary() throws {
        let dir = try TestCorpus.makeTempDir("spm-files")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sentences = trainingSentences(300, seed: 3)
        let a = dir + "/a.txt", b = dir + "/b.txt"
        try TestCorpus.writeLines(Array(sentences.prefix(300)), to: a)
        try TestCorpus.writeLines(Array(sentences.dropFirst(300)), to: b)
        let options = SentencePieceTrainingOptions(vocabSize: 100, modelType: .unigram, numThreads: 2)
        let sp = try SentencePiece.train(inputFiles: [a, b], modelPrefix: dir + "/uni", options: options)
        XCTAssertEqual(sp.vocabularySize, 100)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/uni.model"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/uni.vocab"))
        let loaded = try SentencePiece(modelPath: dir + "/uni.model")
        let fromBytes = try SentencePiece(serializedModel: try sp.serializedModel())
        // Same text, same model trained in memory.
        let inMemory = try SentencePiece.train(sentences: sentences, options: options)
        for s in sentences.prefix(40) {
            let ids = try sp.encode(s)
            XCTAssertEqual(try loaded.encode(s), ids)
            XCTAssertEqual(try fromBytes.encode(s), ids)
            XCTAssertEqual(try inMemory.encode(s), ids)
            XCTAssertEqual(try sp.decode(ids), s)
        }
        // Our own vocabulary file: one piece<TAB>score line per id.
        try sp.writeVocabulary(to: dir + "/mine.vocab")
        let lines = try String(contentsOfFile: dir + "/mine.vocab", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        XCTAssertEqual(lines.count, 101)  // trailing newline
        XCTAssertEqual(lines[0], "<pad>\t0.0")
        for id in [4, 50, 99] {
            let fields = lines[id].split(separator: "\t")
            XCTAssertEqual(String(fields[0]), sp.idToPiece(Int32(id)))
            XCTAssertEqual(Float(String(fields[1])), sp.score(Int32(id)))
        }
    }

    func testSpecialIdsAreFixed() throws {
        XCTAssertEqual(SpecialTokens.pad, 0)
        XCTAssertEqual(SpecialTokens.unk, 1)
        XCTAssertEqual(SpecialTokens.bos, 2)
        XCTAssertEqual(SpecialTokens.eos, 3)
        XCTAssertEqual(SpecialTokens.count, 4)
        for type in [SentencePieceModelType.bpe, .unigram] {
            let sp = try SentencePiece.train(sentences: trainingSentences(200), options: .init(vocabSize: 90, modelType: type, numThreads: 1))
            XCTAssertTrue(sp.hasStandardSpecialIds, "\(type)")
            XCTAssertEqual([sp.padId, sp.unkId, sp.bosId, sp.eosId], [0, 1, 2, 3])
            XCTAssertEqual((0..<4).map { sp.idToPiece($0) }, ["<pad>", "<unk>", "<s>", "</s>"])
            XCTAssertEqual(sp.pieceToId("<pad>"), 0)
            XCTAssertEqual(sp.pieceToId("</s>"), 3)
            XCTAssertTrue(sp.isUnknown(1))
            XCTAssertTrue(sp.isControl(0) && sp.isControl(2) && sp.isControl(3))
            XCTAssertFalse(sp.isControl(4) || sp.isUnknown(4))
            // Characters never seen in training are <unk>, and decode to " ⁇ ".
            let ids = try sp.encode("the 中 dog")
            XCTAssertTrue(ids.contains(SpecialTokens.unk))
            XCTAssertFalse(ids.contains(SpecialTokens.pad) || ids.contains(SpecialTokens.bos) || ids.contains(SpecialTokens.eos))
            XCTAssertEqual(try sp.decode(ids), "the  ⁇  dog")
            // Control ids decode to nothing.
            let dog = try sp.encode("the dog")
            XCTAssertEqual(try sp.decode([SpecialTokens.bos] + dog + [SpecialTokens.eos, SpecialTokens.pad]), "the dog")
            // Unknown piece strings map to unk.
            XCTAssertEqual(sp.pieceToId("no-such-piece"), SpecialTokens.unk)
        }
    }

    func testErrorsAreReportedNotCrashes() throws {
        XCTAssertThrowsError(try SentencePiece(modelPath: "/nonexistent/x.model")) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/x.model"), "\(error)")
        }
        XCTAssertThrowsError(try SentencePiece(serializedModel: Array("not a model".utf8)))
        let dir = try TestCorpus.makeTempDir("spm-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try Data(repeating: 0xFF, count: 100).write(to: URL(fileURLWithPath: dir + "/bad.model"))
        XCTAssertThrowsError(try SentencePiece(modelPath: dir + "/bad.model")) { error in
            XCTAssertTrue("\(error)".contains("bad.model"), "\(error)")
        }

        let sp = try SentencePiece.train(sentences: trainingSentences(100), options: .init(vocabSize: 60, numThreads: 1))
        XCTAssertNil(sp.idToPiece(-1))
        XCTAssertNil(sp.idToPiece(Int32(sp.vocabularySize)))
        XCTAssertEqual(sp.score(-5), 0)
        XCTAssertFalse(sp.isControl(100_000))
        XCTAssertThrowsError(try sp.decode([4, Int32(sp.vocabularySize)])) { error in
            XCTAssertTrue("\(error)".contains("\(sp.vocabularySize)"), "\(error)")
        }
        XCTAssertThrowsError(try sp.decode([-1]))

        // Training errors come back as errors.
        XCTAssertThrowsError(try SentencePiece.train(sentences: [], options: .init(vocabSize: 50)))
        XCTAssertThrowsError(try SentencePiece.train(sentences: ["a b"], options: .init(vocabSize: 3)))
        XCTAssertThrowsError(try SentencePiece.train(sentences: ["a b"], options: .init(vocabSize: 50, characterCoverage: 0)))
        XCTAssertThrowsError(try SentencePiece.train(sentences: ["ab ba", "abba"], options: .init(vocabSize: 5000, modelType: .unigram))) { error in
            XCTAssertTrue(error is SentencePieceError, "\(error)")
        }
        XCTAssertThrowsError(try SentencePiece.train(inputFiles: [dir + "/missing.txt"], modelPrefix: dir + "/m")) { error in
            XCTAssertTrue("\(error)".contains("missing.txt"), "\(error)")
        }
    }

    func testConcurrentEncodingMatchesSerial() throws {
        let sentences = trainingSentences(300, seed: 11)
        let sp = try SentencePiece.train(sentences: sentences, options: .init(vocabSize: 150, numThreads: 2))
        let serial = try sentences.map { try sp.encode($0) }
        var parallel = [[Int32]](repeating: [], count: sentences.count)
        parallel.withUnsafeMutableBufferPointer { out in
            DispatchQueue.concurrentPerform(iterations: 4) { w in
                for i in stride(from: w, to: sentences.count, by: 4) { out[i] = (try? sp.encode(sentences[i])) ?? [-1] }
            }
        }
        XCTAssertEqual(parallel, serial)
        // The byte-buffer API agrees with the String API and reuses its output array.
        var ids: [Int32] = [42, 42]
        for (i, s) in sentences.prefix(20).enumerated() {
            var t = s
            try t.withUTF8 { try sp.encode(utf8: UnsafeRawBufferPointer($0), into: &ids) }
            XCTAssertEqual(ids, serial[i])
        }
    }
}
