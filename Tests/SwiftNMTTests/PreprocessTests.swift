import Foundation
import XCTest
@testable import NMTMetrics
@testable import NMTTensor
@testable import NMTText

final class PreprocessTests: XCTestCase {
    private var dirs: [String] = []

    override func tearDown() {
        for d in dirs { try? FileManager.default.removeItem(atPath: d) }
        dirs = []
    }

    private func tempDir(_ name: String) throws -> String {
        let d = try TestCorpus.makeTempDir(name)
        dirs.append(d)
        return d
    }

    // MARK: Token datasets

    func testTokenDatasetRoundTrip() throws {
        let dir = try tempDir("ds")
        let path = dir + "/x.bin"
        let sentences: [[Int32]] = [[5, 6, 7], [], [4], (0..<300).map { Int32(4 + $0 % 90) }, [], [99, 4]]
        try TokenDatasetWriter.write(path: path, sentences: sentences, vocabSize: 100)
        let ds = try TokenDataset(path: path)
        XCTAssertEqual(ds.count, sentences.count)
        XCTAssertEqual(ds.tokenCount, 306)
        XCTAssertEqual(ds.vocabSize, 100)
        XCTAssertEqual(ds.lengths, [3, 0, 1, 300, 0, 2])
        XCTAssertEqual(ds.maxLength, 300)
        for (i, s) in sentences.enumerated() {
            XCTAssertEqual(ds.length(i), s.count)
            XCTAssertEqual(Array(ds.tokens(i)), s)
        }
        // The documented layout, byte by byte: 64-byte header, offsets, ids, all little-endian.
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(bytes.count, 64 + 8 * 7 + 4 * 306)
        XCTAssertEqual(Array(bytes[0..<8]), Array("SNMTTOK".utf8) + [0])
        XCTAssertEqual(Array(bytes[8..<16]), [1, 0, 0, 0, 64, 0, 0, 0])  // version 1, header 64
        XCTAssertEqual(Array(bytes[16..<24]), [6, 0, 0, 0, 0, 0, 0, 0])  // 6 sentences
        XCTAssertEqual(Array(bytes[24..<32]), [50, 1, 0, 0, 0, 0, 0, 0])  // 306 tokens
        XCTAssertEqual(Array(bytes[32..<40]), [100, 0, 0, 0, 4, 0, 0, 0])  // vocabulary 100, 4-byte ids
        XCTAssertEqual(Array(bytes[64 + 8..<64 + 16]), [3, 0, 0, 0, 0, 0, 0, 0])  // offsets[1] = 3
        XCTAssertEqual(Array(bytes[120..<124]), [5, 0, 0, 0])  // first id

        // Empty dataset.
        try TokenDatasetWriter.write(path: dir + "/empty.bin", sentences: [])
        let empty = try TokenDataset(path: dir + "/empty.bin")
        XCTAssertEqual(empty.count, 0)
        XCTAssertEqual(empty.tokenCount, 0)

        // The writer refuses ids outside the vocabulary.
        let w = try TokenDatasetWriter(path: dir + "/bad.bin", vocabSize: 10)
        XCTAssertThrowsError(try w.append([3, 10]))
        XCTAssertThrowsError(try w.append([-1]))
    }

    func testTokenDatasetRejectsCorruptFiles() throws {
        let dir = try tempDir("ds-bad")
        let good = dir + "/good.bin"
        try TokenDatasetWriter.write(path: good, sentences: [[4, 5, 6], [7, 8], [9]], vocabSize: 20)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: good)))
        XCTAssertNoThrow(try TokenDataset(path: good))

        func expectError(_ name: String, _ mutate: (inout [UInt8]) -> Void, _ fragments: [String],
                         line: UInt = #line) throws {
            var b = bytes
            mutate(&b)
            let path = dir + "/" + name
            try Data(b).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try TokenDataset(path: path), line: line) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(path), "message lacks the path: \(message)", line: line)
                for f in fragments { XCTAssertTrue(message.contains(f), "'\(f)' not in: \(message)", line: line) }
            }
        }
        try expectError("magic.bin", { $0[0] = UInt8(ascii: "X") }, ["magic"])
        try expectError("text.bin", { $0 = Array("hello world, this is not a dataset at all; it is text.\n".utf8) + [UInt8](repeating: 32, count: 64) }, ["magic"])
        try expectError("version.bin", { $0[8] = 2 }, ["version 2"])
        try expectError("truncated.bin", { $0.removeLast(5) }, ["truncated"])
        try expectError("header-only.bin", { $0.removeLast($0.count - 20) }, ["truncated"])
        try expectError("tiny.bin", { $0.removeLast($0.count - 7) }, ["truncated"])
        try expectError("trailing.bin", { $0 += [0, 0, 0, 0] }, ["trailing"])
        try expectError("count.bin", { $0[16] = 200 }, ["truncated"])
        try expectError("huge-count.bin", { $0[23] = 0x7F }, [])
        try expectError("offsets.bin", { $0[64 + 8] = 9 }, ["offsets"])  // offsets[1] = 9 > offsets[2] = 5
        try expectError("id.bin", { $0[$0.count - 4] = 20 }, ["outside the vocabulary"])
        XCTAssertThrowsError(try TokenDataset(path: dir + "/nope.bin")) { error in
            XCTAssertTrue("\(error)".contains("nope.bin"))
        }
    }

    // MARK: Preprocessing

    /// A generated corpus with known bad training pairs. Returns (prefix dir, counts).
    private struct Corpus {
        var dir: String
        var trainPairs: Int
        var empty: Int
        var tooLong: Int
        var ratio: Int
        var validLines: [String]  // target side
        var keptTrain: [(String, String)]
    }

    private func makeCorpus(seed: UInt64 = 1) throws -> Corpus {
        let dir = try tempDir("corpus")
        var c = TestCorpus(seed: seed)
        var train = c.pairs(300)
        var bad: [(Int, (String, String))] = []
        // Empty side (an empty line, a whitespace-only line, both empty).
        let empties = [("", "Ein hund."), ("The dog.", ""), ("   ", "Die katze."), ("", ""), ("A cat.", " \t ")]
        // Longer than 50 subwords on one side (at least 58 words; a word is at least one subword).
        let longs = [(c.sentence(TestCorpus.english, count: 60), c.sentence(TestCorpus.german, count: 58)),
                     (c.sentence(TestCorpus.english, count: 10), c.sentence(TestCorpus.german, count: 61)),
                     (c.sentence(TestCorpus.english, count: 60), "Hund.")]
        // Length ratio above 5: one frequent word (at most 2 subwords) against 14 words (at least 14).
        let ratios = [("a", c.sentence(TestCorpus.german, count: 14)), (c.sentence(TestCorpus.english, count: 15), "der"),
                      ("the", c.sentence(TestCorpus.german, count: 14)), (c.sentence(TestCorpus.english, count: 14), "die")]
        for (k, p) in (empties + longs + ratios).enumerated() { bad.append((7 + k * 19, p)) }
        for (at, p) in bad { train.insert(p, at: at) }
        let badSet = Set(bad.map { $0.0 })
        try TestCorpus.writeLines(train.map { $0.0 }, to: dir + "/train.en")
        try TestCorpus.writeLines(train.map { $0.1 }, to: dir + "/train.de")
        var valid = c.pairs(30)
        valid.insert(("", ""), at: 4)  // never dropped
        valid.insert((c.sentence(TestCorpus.english, count: 60), "Hund."), at: 9)  // too long and ratio: kept
        try TestCorpus.writeLines(valid.map { $0.0 }, to: dir + "/valid.en")
        try TestCorpus.writeLines(valid.map { $0.1 }, to: dir + "/valid.de")
        let test = c.pairs(20), test2 = c.pairs(12)
        try TestCorpus.writeLines(test.map { $0.0 }, to: dir + "/test.en")
        try TestCorpus.writeLines(test.map { $0.1 }, to: dir + "/test.de")
        try TestCorpus.writeLines(test2.map { $0.0 }, to: dir + "/test2.en")
        try TestCorpus.writeLines(test2.map { $0.1 }, to: dir + "/test2.de")
        let kept = train.enumerated().filter { !badSet.contains($0.offset) }.map { $0.element }
        return Corpus(dir: dir, trainPairs: train.count, empty: empties.count, tooLong: longs.count, ratio: ratios.count,
                      validLines: valid.map { $0.1 }, keptTrain: kept)
    }

    private func options(_ c: Corpus, dest: String, vocab: Int = 250, joint: Bool = true) -> PreprocessOptions {
        PreprocessOptions(sourceLang: "en", targetLang: "de", trainPrefix: c.dir + "/train", validPrefixes: [c.dir + "/valid"],
                          testPrefixes: [c.dir + "/test", c.dir + "/test2"], destDir: dest, vocabSize: vocab, joint: joint,
                          maxLength: 50, lengthRatio: 5, threads: 2)
    }

    func testPreprocessSmallCorpus() throws {
        let c = try makeCorpus()
        let dest = try tempDir("out") + "/data"
        var messages: [String] = []
        let p = Preprocessor(options: options(c, dest: dest), log: { messages.append($0) })
        let result = try p.run()
        let m = result.manifest
        XCTAssertFalse(messages.isEmpty)

        // Cleaning counts, by construction of the corpus.
        let train = try XCTUnwrap(m.split("train"))
        XCTAssertEqual(train.inputPairs, 300 + 12)
        XCTAssertEqual(train.dropped, DroppedCounts(empty: 5, tooLong: 3, lengthRatio: 4))
        XCTAssertEqual(train.pairs, 300)
        XCTAssertTrue(result.summary.contains("312 pairs read, 300 kept, 12 dropped (5 with an empty side, 3 longer than 50 subwords, 4 with length ratio above 5)"), result.summary)
        XCTAssertTrue(result.summary.contains("unknown-piece rate"), result.summary)

        // Files.
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: dest))
        XCTAssertEqual(names, ["manifest.json", "spm.model", "spm.vocab",
                               "train.en.bin", "train.de.bin", "valid.en.bin", "valid.de.bin", "test.en.bin", "test.de.bin",
                               "test1.en.bin", "test1.de.bin", "valid.en.txt", "valid.de.txt", "test.en.txt", "test.de.txt",
                               "test1.en.txt", "test1.de.txt"])
        XCTAssertEqual(Set(m.outputs + ["manifest.json"]), names)

        // The datasets decode back to the kept training text (single spaces, so exact).
        let sp = try SentencePiece(modelPath: dest + "/spm.model")
        XCTAssertTrue(sp.hasStandardSpecialIds)
        XCTAssertEqual(sp.vocabularySize, 250)
        let en = try TokenDataset(path: dest + "/train.en.bin"), de = try TokenDataset(path: dest + "/train.de.bin")
        XCTAssertEqual(en.count, 300)
        XCTAssertEqual(de.count, 300)
        XCTAssertEqual(en.vocabSize, 250)
        for i in [0, 6, 7, 8, 100, 299] {
            XCTAssertEqual(try sp.decode(Array(en.tokens(i))), c.keptTrain[i].0)
            XCTAssertEqual(try sp.decode(Array(de.tokens(i))), c.keptTrain[i].1)
            XCTAssertFalse(en.tokens(i).contains(SpecialTokens.bos) || en.tokens(i).contains(SpecialTokens.eos))
        }
        for i in 0..<300 {
            XCTAssertTrue((1...50).contains(en.length(i)) && (1...50).contains(de.length(i)))
            XCTAssertLessThanOrEqual(Double(max(en.length(i), de.length(i))) / Double(min(en.length(i), de.length(i))), 5)
        }
        XCTAssertEqual(train.sides["en"]?.tokens, en.tokenCount)

        // Validation and test: nothing dropped, raw text kept.
        let validDe = try TokenDataset(path: dest + "/valid.de.bin"), validEn = try TokenDataset(path: dest + "/valid.en.bin")
        XCTAssertEqual(validDe.count, 32)
        XCTAssertEqual(validEn.length(4), 0)
        XCTAssertGreaterThan(validEn.length(9), 50)
        XCTAssertEqual(try String(contentsOfFile: dest + "/valid.de.txt", encoding: .utf8), c.validLines.map { $0 + "\n" }.joined())
        XCTAssertEqual(try TokenDataset(path: dest + "/test.en.bin").count, 20)
        XCTAssertEqual(try TokenDataset(path: dest + "/test1.de.bin").count, 12)
        XCTAssertEqual(m.split("valid")?.dropped, nil)
        XCTAssertEqual(m.split("test1")?.prefix, c.dir + "/test2")

        // Manifest on disk.
        let loaded = try PreprocessManifest.load(directory: dest)
        XCTAssertEqual(loaded.request, m.request)
        XCTAssertEqual(loaded.sentencepiece.models, ["en": "spm.model", "de": "spm.model"])
        XCTAssertEqual([loaded.sentencepiece.padId, loaded.sentencepiece.unkId, loaded.sentencepiece.bosId, loaded.sentencepiece.eosId], [0, 1, 2, 3])
        XCTAssertEqual(loaded.request.inputs.count, 8)
        let trainEn = try XCTUnwrap(loaded.request.inputs.first { $0.split == "train" && $0.lang == "en" })
        XCTAssertEqual(trainEn.lines, 312)
        XCTAssertEqual(trainEn.bytes, try FileManager.default.attributesOfItem(atPath: c.dir + "/train.en")[.size] as? Int)
    }

    /// The split is streamed: read 3 lines at a time, in reads of 7 bytes (shorter than most lines), it
    /// must give the same files, byte for byte, as read whole in one chunk. The corpus has the cases a
    /// chunk boundary could break: CRLF endings, a byte-order mark, empty lines, a last line without a
    /// newline, a gzipped side, and more lines than the sample for SentencePiece.
    func testChunkedStreamingGivesTheSameFilesAsOneChunk() throws {
        let c = try makeCorpus(seed: 11)
        func rewrite(_ path: String, _ change: (Data) -> Data) throws {
            let url = URL(fileURLWithPath: path)
            try change(try Data(contentsOf: url)).write(to: url)
        }
        try rewrite(c.dir + "/train.en") { Data([0xEF, 0xBB, 0xBF]) + $0.dropLast() }  // BOM; no final newline
        try rewrite(c.dir + "/train.de") { Data(String(decoding: $0, as: UTF8.self).replacingOccurrences(of: "\n", with: "\r\n").utf8) }
        try TestCorpus.gzip(c.dir + "/valid.de")

        var outputs: [[String: Data]] = []
        for (chunkLines, blockSize) in [(1 << 20, 1 << 20), (3, 7)] {
            let dest = try tempDir("stream-\(chunkLines)")
            var o = options(c, dest: dest)
            o.inputSentenceSize = 200  // fewer than the 600 training lines: the reservoir replaces sentences
            let p = Preprocessor(options: o)
            p.chunkLines = chunkLines
            p.readBlockSize = blockSize
            let m = try p.run().manifest
            XCTAssertEqual(m.sentencepiece.trainingSentences["en"], 200)
            var files: [String: Data] = [:]
            for name in try FileManager.default.contentsOfDirectory(atPath: dest) where name != "manifest.json" {
                files[name] = try Data(contentsOf: URL(fileURLWithPath: dest + "/" + name))
            }
            XCTAssertEqual(files.count, 16)
            outputs.append(files)
            // The streamed text keeps what the reader strips: no BOM, no CR, every line.
            let en = try TokenDataset(path: dest + "/train.en.bin")
            XCTAssertEqual(en.count, 300)
            let sp = try SentencePiece(modelPath: dest + "/spm.model")
            XCTAssertEqual(try sp.decode(Array(en.tokens(0))), c.keptTrain[0].0)
            XCTAssertEqual(try sp.decode(Array(en.tokens(299))), c.keptTrain[299].0)
            XCTAssertEqual(try String(contentsOfFile: dest + "/valid.de.txt", encoding: .utf8), c.validLines.map { $0 + "\n" }.joined())
        }
        for (name, data) in outputs[0] { XCTAssertEqual(outputs[1][name], data, "\(name) differs when streamed in small chunks") }
    }

    /// `--max-length N` keeps a pair whose longer side has exactly N pieces and drops N + 1, as Moses'
    /// clean-corpus-n keeps lengths ≤ N. The lengths come from a first run that drops nothing; N is the
    /// median of the pairs' longer sides, so pairs of exactly N, below and above it all occur.
    func testMaxLengthKeepsPairsOfExactlyNPieces() throws {
        let dir = try tempDir("maxlength")
        var corpus = TestCorpus(seed: 5)
        let pairs = corpus.pairs(200)
        try TestCorpus.writeLines(pairs.map { $0.0 }, to: dir + "/train.en")
        try TestCorpus.writeLines(pairs.map { $0.1 }, to: dir + "/train.de")
        func preprocess(maxLength: Int, into dest: String) throws -> (split: SplitInfo, en: TokenDataset, de: TokenDataset) {
            let options = PreprocessOptions(sourceLang: "en", targetLang: "de", trainPrefix: dir + "/train", destDir: dest,
                                            vocabSize: 200, maxLength: maxLength, lengthRatio: 1000, threads: 2)
            let split = try XCTUnwrap(try Preprocessor(options: options).run().manifest.split("train"))
            return (split, try TokenDataset(path: dest + "/train.en.bin"), try TokenDataset(path: dest + "/train.de.bin"))
        }

        let all = try preprocess(maxLength: 1000, into: dir + "/all")
        XCTAssertEqual(all.split.pairs, pairs.count, "nothing dropped")
        let longerSides = (0..<all.en.count).map { max(all.en.length($0), all.de.length($0)) }
        let n = longerSides.sorted()[longerSides.count / 2]
        let exactlyN = longerSides.filter { $0 == n }.count, aboveN = longerSides.filter { $0 > n }.count
        XCTAssertGreaterThan(exactlyN, 0)
        XCTAssertGreaterThan(aboveN, 0)

        let cut = try preprocess(maxLength: n, into: dir + "/cut")
        // The same text and options train the same SentencePiece model, so the lengths above hold.
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/cut/spm.model")),
                       try Data(contentsOf: URL(fileURLWithPath: dir + "/all/spm.model")))
        XCTAssertEqual(cut.split.dropped?.tooLong, aboveN, "pairs longer than \(n) pieces are dropped")
        XCTAssertEqual(cut.split.pairs, pairs.count - aboveN, "pairs of at most \(n) pieces are kept")
        let keptLongerSides = (0..<cut.en.count).map { max(cut.en.length($0), cut.de.length($0)) }
        XCTAssertEqual(keptLongerSides.filter { $0 == n }.count, exactlyN, "every pair of exactly \(n) pieces is kept")
    }

    func testSeparateVocabulariesAndGzipInput() throws {
        let c = try makeCorpus(seed: 5)
        // Compress the training files: PREFIX.LANG.gz is read when PREFIX.LANG is missing.
        for lang in ["en", "de"] { try TestCorpus.gzip(c.dir + "/train.\(lang)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: c.dir + "/train.en"))
        let dest = try tempDir("out-sep")
        let m = try Preprocessor(options: options(c, dest: dest, vocab: 150, joint: false)).run().manifest
        XCTAssertEqual(m.sentencepiece.models, ["en": "spm.en.model", "de": "spm.de.model"])
        XCTAssertEqual(m.sentencepiece.vocabularies, ["en": "spm.en.vocab", "de": "spm.de.vocab"])
        XCTAssertTrue(m.request.inputs.first { $0.split == "train" }!.compressed)
        XCTAssertEqual(m.split("train")?.dropped, DroppedCounts(empty: 5, tooLong: 3, lengthRatio: 4))
        let spEn = try SentencePiece(modelPath: dest + "/spm.en.model"), spDe = try SentencePiece(modelPath: dest + "/spm.de.model")
        XCTAssertEqual(spEn.vocabularySize, 150)
        XCTAssertTrue(spDe.hasStandardSpecialIds)
        let de = try TokenDataset(path: dest + "/train.de.bin")
        XCTAssertEqual(try spDe.decode(Array(de.tokens(3))), c.keptTrain[3].1)
        // German-only model: German words are whole pieces, the English model does not know "ä".
        XCTAssertNotEqual(spDe.pieceToId("ä"), SpecialTokens.unk)
        XCTAssertTrue(try spEn.encode("mädchen").contains(SpecialTokens.unk))
    }

    func testLineCountMismatchNamesBothFilesAndCounts() throws {
        let c = try makeCorpus()
        var lines = try String(contentsOfFile: c.dir + "/valid.de", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false)
        lines.removeLast(3)  // trailing "" + two lines -> 30 lines
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: c.dir + "/valid.de"))
        let dest = try tempDir("out-mismatch") + "/d"
        XCTAssertThrowsError(try Preprocessor(options: options(c, dest: dest)).run()) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("'\(c.dir)/valid.en' has 32 lines"), message)
            XCTAssertTrue(message.contains("'\(c.dir)/valid.de' has 30 lines"), message)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest + "/manifest.json"))
    }

    func testInvalidUTF8ReportsFileAndLine() throws {
        let c = try makeCorpus()
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: c.dir + "/test2.de")))
        // Line 5 gets a Latin-1 "ü" (0xFC), which is not UTF-8.
        var newlines = 0, at = 0
        while newlines < 4 { if bytes[at] == 0x0A { newlines += 1 }; at += 1 }
        bytes.insert(contentsOf: [0x20, 0xFC, 0x62], at: at + 2)
        try Data(bytes).write(to: URL(fileURLWithPath: c.dir + "/test2.de"))
        XCTAssertThrowsError(try Preprocessor(options: options(c, dest: try tempDir("out-utf8"))).run()) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("invalid UTF-8 in '\(c.dir)/test2.de' line 5,"), message)
        }
        // The validator itself: valid, overlong, surrogate, truncated, above U+10FFFF.
        func check(_ b: [UInt8]) -> Int? { b.withUnsafeBufferPointer { LineReader.firstInvalidUTF8($0) } }
        XCTAssertNil(check(Array("plain ascii text, long enough for the fast path".utf8)))
        XCTAssertNil(check(Array("größer 中文 🙂 €".utf8)))
        XCTAssertEqual(check([0x61, 0xC0, 0xAF]), 1)
        XCTAssertEqual(check([0xED, 0xA0, 0x80]), 0)
        XCTAssertEqual(check([0x61, 0x62, 0xE2, 0x82]), 2)
        XCTAssertEqual(check([0xF4, 0x90, 0x80, 0x80]), 0)
        XCTAssertEqual(check(Array("0123456789abcdef".utf8) + [0xFF]), 16)
    }

    func testMissingInputFileIsReported() throws {
        let c = try makeCorpus()
        try FileManager.default.removeItem(atPath: c.dir + "/test.de")
        XCTAssertThrowsError(try Preprocessor(options: options(c, dest: try tempDir("out-missing"))).run()) { error in
            XCTAssertTrue("\(error)".contains("missing input file '\(c.dir)/test.de'"), "\(error)")
        }
    }

    func testDestinationRulesAndForce() throws {
        let c = try makeCorpus()
        let dest = try tempDir("out-force")
        let first = try Preprocessor(options: options(c, dest: dest)).run()
        XCTAssertFalse(first.regenerated)

        // Identical command: accepted, regenerated.
        let again = try Preprocessor(options: options(c, dest: dest)).run()
        XCTAssertTrue(again.regenerated)
        XCTAssertEqual(again.manifest.request, first.manifest.request)

        // Different options: refused without --force, and nothing is touched.
        let before = try Data(contentsOf: URL(fileURLWithPath: dest + "/manifest.json"))
        XCTAssertThrowsError(try Preprocessor(options: options(c, dest: dest, vocab: 200)).run()) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("different preprocessing"), message)
            XCTAssertTrue(message.contains("vocab-size 250 -> 200"), message)
            XCTAssertTrue(message.contains("--force"), message)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dest + "/manifest.json")), before)

        // Changed input contents are a different preprocessing too.
        try TestCorpus.writeLines(["Hund.", "Katze."], to: c.dir + "/test2.de")
        try TestCorpus.writeLines(["Dog.", "Cat."], to: c.dir + "/test2.en")
        XCTAssertThrowsError(try Preprocessor(options: options(c, dest: dest)).run()) { error in
            XCTAssertTrue("\(error)".contains("changed input files \(c.dir)/test2.en, \(c.dir)/test2.de"), "\(error)")
        }

        // With --force: replaced; the old separate/joint files of the earlier run are removed.
        var forced = options(c, dest: dest, vocab: 200, joint: false)
        forced.force = true
        let m = try Preprocessor(options: forced).run().manifest
        XCTAssertEqual(m.request.vocabSize, 200)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest + "/spm.model"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: dest + "/spm.de.model"))
        XCTAssertEqual(try TokenDataset(path: dest + "/test1.de.bin").count, 2)

        // A non-empty directory without a manifest is refused unless --force; other files are left alone.
        let other = try tempDir("out-other")
        try TestCorpus.writeLines(["keep me"], to: other + "/notes.txt")
        XCTAssertThrowsError(try Preprocessor(options: options(c, dest: other)).run()) { error in
            XCTAssertTrue("\(error)".contains("no valid manifest.json"), "\(error)")
        }
        var force2 = options(c, dest: other)
        force2.force = true
        _ = try Preprocessor(options: force2).run()
        XCTAssertTrue(FileManager.default.fileExists(atPath: other + "/notes.txt"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: other + "/manifest.json"))
    }

    func testOptionValidation() throws {
        let c = try makeCorpus()
        let dest = try tempDir("out-opts")
        var o = options(c, dest: dest)
        o.targetLang = "en"
        XCTAssertThrowsError(try Preprocessor(options: o).run())
        o = options(c, dest: dest)
        o.vocabSize = 4
        XCTAssertThrowsError(try Preprocessor(options: o).run())
        o = options(c, dest: dest)
        o.lengthRatio = 0.5
        XCTAssertThrowsError(try Preprocessor(options: o).run())
        o = options(c, dest: dest)
        o.destDir = c.dir + "/train.en"  // a file
        XCTAssertThrowsError(try Preprocessor(options: o).run()) { error in
            XCTAssertTrue("\(error)".contains("not a directory"), "\(error)")
        }
    }

    /// The executable: errors go to stderr with a non-zero exit status.
    func testCommandLineExitStatus() throws {
        let c = try makeCorpus()
        try TestCorpus.writeLines(["one line only"], to: c.dir + "/test.de")
        func run(_ args: [String]) throws -> (Int32, String, String) {
            let result = try Executables.run("mt-preprocess", args)
            return (result.status, result.output, result.errors)
        }
        let dest = try tempDir("out-cli")
        let base = ["--source-lang", "en", "--target-lang", "de", "--trainpref", c.dir + "/train", "--validpref", c.dir + "/valid",
                    "--destdir", dest, "--vocab-size", "250", "--max-length", "50", "--length-ratio", "5"]
        let (status, _, stderr) = try run(base + ["--testpref", c.dir + "/test"])
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(stderr.contains("'\(c.dir)/test.de' has 1 lines"), stderr)
        let (s2, _, e2) = try run(base + ["--vocab-size", "2"])
        XCTAssertNotEqual(s2, 0)
        XCTAssertTrue(e2.contains("--vocab-size"), e2)
        let (s3, out3, e3) = try run(base + ["--quiet"])
        XCTAssertEqual(s3, 0, e3)
        XCTAssertTrue(e3.isEmpty, e3)
        XCTAssertTrue(out3.contains("12 dropped"), out3)
    }
}
