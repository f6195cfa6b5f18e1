import Foundation
import XCTest
@testable import NMTModel
@testable import NMTModelFiles
@testable import NMTSearch
@testable import NMTTensor

/// bf16 and int8 products (oneDNN, packed weights) and decoding in them; the lexical shortlist.
final class PrecisionTests: XCTestCase {
    static let shippedModel = ScoreTests.shippedModel

    /// Sentences of Multi30k's test set when MULTI30K_DIR has it, else a few of its style.
    static func testSentences(_ count: Int) throws -> [String] {
        if let dir = ProcessInfo.processInfo.environment["MULTI30K_DIR"] {
            let path = dir + "/raw/test_2016_flickr.en.gz"
            if FileManager.default.fileExists(atPath: path) {
                let process = Process(), pipe = Pipe()
                process.executableURL = URL(fileURLWithPath: "/bin/sh")
                process.arguments = ["-c", "gzip -dc \"$0\"", path]
                process.standardOutput = pipe
                try process.run()
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                return Array(String(decoding: data, as: UTF8.self).split(separator: "\n").prefix(count).map(String.init))
            }
        }
        return ["A man in a blue shirt is standing on a ladder.", "Two dogs play in the snow.", "A woman is riding a bicycle down the street.",
                "Children are playing soccer in a park.", "A group of people stand in front of a building.",
                "A little girl is eating an ice cream cone.", "A man is playing the guitar on stage.", "Two men are working on a roof.",
                "A brown dog runs through the grass.", "A woman in a red dress walks past a shop.", "People are sitting at tables outside a cafe.",
                "A boy jumps into a swimming pool.", "An old man sits on a bench reading a newspaper.", "A cyclist rides along a mountain road.",
                "Three women are talking in a kitchen.", "A child in a yellow jacket holds an umbrella.", "A man cooks food on a grill.",
                "Two girls are laughing on a beach.", "A crowd watches a street performer.", "A black cat sleeps on a sofa."]
    }

    // MARK: Products

    /// x rounded to bf16 as the product sees it (to nearest even).
    static func bf16(_ x: Float) -> Double {
        let bits = x.bitPattern
        let rounded = (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) & 0xFFFF_0000
        return Double(Float(bitPattern: rounded))
    }

    /// A row of x quantized as int8 products take it: 127 levels each side of zero, one scale per row.
    static func int8Row(_ row: ArraySlice<Float>) -> [Double] {
        let largest = row.map { abs($0) }.max() ?? 0
        guard largest > 0 else { return row.map { _ in 0 } }
        let scale = Double(largest) / 127
        return row.map { x in (floor(Double(x * (127 / largest)) + 128.5) - 128) * scale }
    }

    /// Checks y = x·Wᵀ + b from a packed matrix twice: against the exact product of what the kernel is
    /// meant to multiply (the dequantized weights and the rounded or quantized inputs), to within
    /// `exactness` of Σ|x·w| (float sums; for int8 also an input that lies on a rounding boundary may take
    /// the other code, as the kernel's float arithmetic may round it otherwise than Double), so a wrong
    /// scale, layout, zero point or an overflowing sum fails; and against the f32 product, to within the
    /// precision's stated error.
    func checkProducts(_ precision: Precision, exactness: Double, tolerance: Double) throws {
        var rng = RandomSource(seed: 5)
        for (outputs, inputs) in [(300, 200), (37, 1280), (1536, 512)] {
            let weight = (0..<outputs * inputs).map { _ in rng.uniform(0.2) }
            let bias = (0..<outputs).map { _ in rng.uniform(1) }
            let matrix = try weight.withUnsafeBufferPointer { try PackedMatrix(precision, weight: $0.baseAddress!, outputs: outputs, inputs: inputs) }
            let seen = weight.withUnsafeBufferPointer { matrix.dequantized(from: $0.baseAddress!) }
            for rows in [1, 7, 64] {
                let ldx = inputs + 3, ldy = outputs + 5
                let x = (0..<rows * ldx).map { _ in rng.uniform(2) }
                var y = [Float](repeating: .nan, count: rows * ldy)
                matrix.linear(x, rows: rows, ldx: ldx, bias: bias, into: &y, ldy: ldy)
                var worstExact = 0.0, worstF32 = 0.0
                for r in 0..<rows {
                    let row = x[r * ldx ..< r * ldx + inputs]
                    let taken = precision == .bf16 ? row.map(Self.bf16) : Self.int8Row(row)
                    for o in 0..<outputs {
                        var exact = Double(bias[o]), plain = Double(bias[o]), magnitude = abs(Double(bias[o]))
                        for i in 0..<inputs {
                            exact += taken[i] * Double(seen[o * inputs + i])
                            plain += Double(row[row.startIndex + i]) * Double(weight[o * inputs + i])
                            magnitude += abs(Double(row[row.startIndex + i]) * Double(weight[o * inputs + i]))
                        }
                        let got = Double(y[r * ldy + o])
                        worstExact = max(worstExact, abs(got - exact) / magnitude)
                        worstF32 = max(worstF32, abs(got - plain) / magnitude)
                    }
                }
                XCTAssertLessThan(worstExact, exactness, "\(precision) \(outputs)×\(inputs), \(rows) rows: not the product of its own inputs")
                XCTAssertLessThan(worstF32, tolerance, "\(precision) \(outputs)×\(inputs), \(rows) rows: too far from f32")
                // Nothing is written past a row's outputs.
                for r in 0..<rows { XCTAssertTrue(y[r * ldy + outputs ..< (r + 1) * ldy].allSatisfy(\.isNaN)) }
            }
        }
    }

    func testBF16ProductsAgreeWithF32() throws {
        guard CPUFeatures.hasBF16 else {
            throw XCTSkip("this CPU (\(CPUFeatures.isaName)) has no bf16 instructions: bf16 runs as f32 here")
        }
        // bf16 keeps 8 bits of mantissa: each product is off by at most 2⁻⁸ relative, of Σ|x·w|.
        try checkProducts(.bf16, exactness: 1e-5, tolerance: 2 * 0.0039)
    }

    func testInt8ProductsAgreeWithF32() throws {
        // 127 levels per row of x and per row of W (63 without VNNI): half a level each, of Σ|x·w|.
        try checkProducts(.int8, exactness: 2e-4, tolerance: 0.5 / 127 + 0.5 / Double(CPUFeatures.hasVNNI ? 127 : 63) + 1e-4)
    }

    /// The largest codes in every position: 255·127·2 overflows the 16-bit pair sums of CPUs without
    /// VNNI, which is why weights keep 7 bits there. The sum must be exact.
    func testInt8SumsOfLargestCodesDoNotOverflow() throws {
        let inputs = 512, outputs = 16
        var weight = [Float](repeating: 0.5, count: outputs * inputs)
        for i in 0..<inputs { weight[inputs + i] = -0.5 }
        let matrix = try weight.withUnsafeBufferPointer { try PackedMatrix(.int8, weight: $0.baseAddress!, outputs: outputs, inputs: inputs) }
        let x = [Float](repeating: 3, count: inputs)
        var y = [Float](repeating: 0, count: outputs)
        matrix.linear(x, rows: 1, ldx: inputs, bias: nil, into: &y, ldy: outputs)
        XCTAssertEqual(y[0], 768, accuracy: 1e-3, "on \(CPUFeatures.isaName)")
        XCTAssertEqual(y[1], -768, accuracy: 1e-3, "on \(CPUFeatures.isaName)")
    }

    func testThePrecisionThatRunsIsSaidWhenItIsNotTheOneAskedFor() {
        XCTAssertEqual(CPUFeatures.resolve(.f32).precision, .f32)
        XCTAssertNil(CPUFeatures.resolve(.f32).notice)
        let bf16 = CPUFeatures.resolve(.bf16)
        XCTAssertEqual(bf16.precision, CPUFeatures.hasBF16 ? .bf16 : .f32)
        XCTAssertEqual(bf16.notice == nil, CPUFeatures.hasBF16)
        XCTAssertEqual(CPUFeatures.resolve(.int8).precision, .int8)
        XCTAssertEqual(CPUFeatures.resolve(.int8).notice == nil, CPUFeatures.hasVNNI)
    }

    // MARK: Decoding

    /// int8 and bf16 decoding find f32's best hypothesis for at least 95 % of the sentences of the whole
    /// test set (a sample of 100 or 200 moves by a sentence or two from model to model, which is the margin).
    func testLowPrecisionDecodingAgreesWithF32() throws {
        let sentences = try Self.testSentences(1000)
        let translator = try Translator(modelDirectory: Self.shippedModel)
        let options = BeamSearchOptions(beamSize: 5)
        let reference = try translator.translate(sentences, options: options).map { $0.hypotheses[0].hypothesis.tokens }
        var precisions: [Precision] = [.int8]
        if CPUFeatures.hasBF16 { precisions.append(.bf16) } else { print("bf16 decoding skipped: this CPU (\(CPUFeatures.isaName)) has no bf16") }
        for precision in precisions {
            try translator.setPrecision(precision)
            XCTAssertEqual(translator.precision, precision)
            let tokens = try translator.translate(sentences, options: options).map { $0.hypotheses[0].hypothesis.tokens }
            let same = zip(reference, tokens).filter { $0 == $1 }.count
            XCTAssertGreaterThanOrEqual(Double(same), 0.95 * Double(sentences.count), "\(precision): \(same) of \(sentences.count) as f32")
        }
        // Back to f32: exactly the reference again (the packed weights are dropped, OpenBLAS is used).
        try translator.setPrecision(.f32)
        XCTAssertEqual(try translator.translate(sentences, options: options).map { $0.hypotheses[0].hypothesis.tokens }, reference)
    }

    // MARK: Shortlist

    func testShortlistOfTheWholeVocabularyGivesExactlyTheOutputWithout() throws {
        let sentences = try Self.testSentences(40)
        let translator = try Translator(modelDirectory: Self.shippedModel)
        let options = BeamSearchOptions(beamSize: 5, lengthPenalty: 1, nBest: 3, alignments: true)
        let plain = try translator.translate(sentences, options: options, batchSize: 16)
        translator.setShortlist(.everything(targetVocabSize: translator.target.vocabularySize))
        let shortlisted = try translator.translate(sentences, options: options, batchSize: 16)
        for (a, b) in zip(plain, shortlisted) {
            XCTAssertEqual(a.hypotheses.map(\.hypothesis.tokens), b.hypotheses.map(\.hypothesis.tokens))
            XCTAssertEqual(a.hypotheses.map(\.hypothesis.score), b.hypotheses.map(\.hypothesis.score))
            XCTAssertEqual(a.hypotheses.map(\.hypothesis.alignment), b.hypotheses.map(\.hypothesis.alignment))
        }
        // In int8 too, where every batch packs its own output columns (in batches of 5, 3 and 16 sentences).
        try translator.setPrecision(.int8)
        translator.setShortlist(nil)
        let int8 = try translator.translate(sentences, options: options, batchSize: 16)
        translator.setShortlist(.everything(targetVocabSize: translator.target.vocabularySize))
        for batchSize in [5, 3, 16] {
            let shortlistedInt8 = try translator.translate(sentences, options: options, batchSize: batchSize)
            for (a, b) in zip(int8, shortlistedInt8) {
                XCTAssertEqual(a.hypotheses.map(\.hypothesis.tokens), b.hypotheses.map(\.hypothesis.tokens), "batches of \(batchSize)")
                for (x, y) in zip(a.hypotheses, b.hypotheses) { XCTAssertEqual(x.hypothesis.score, y.hypothesis.score, accuracy: 1e-4) }
            }
        }
    }

    /// Each sentence uses only its own candidates, and its translation is the same alone as in a batch
    /// (its scores to 1e-4: OpenBLAS's sums for a row depend on the number of rows, shortlist or not).
    func testShortlistedSentencesKeepToTheirOwnCandidatesWhateverShareTheirBatch() throws {
        let sentences = try Self.testSentences(24)
        let translator = try Translator(modelDirectory: Self.shippedModel)
        var shortlist = try ModelDirectory(Self.shippedModel).loadShortlist(sourceVocabSize: translator.source.vocabularySize,
                                                                           targetVocabSize: translator.target.vocabularySize)
        shortlist.frequentCount = 50
        shortlist.translationCount = 10
        translator.setShortlist(shortlist)
        let options = BeamSearchOptions(beamSize: 4, nBest: 2)
        let batched = try translator.translate(sentences, options: options, batchSize: 24)
        var marks = [Bool](repeating: false, count: translator.target.vocabularySize)
        for (i, sentence) in sentences.enumerated() {
            let alone = try translator.translate([sentence], options: options, batchSize: 1)[0]
            XCTAssertEqual(alone.hypotheses.map(\.hypothesis.tokens), batched[i].hypotheses.map(\.hypothesis.tokens), sentence)
            for (a, b) in zip(alone.hypotheses, batched[i].hypotheses) {
                XCTAssertEqual(a.hypothesis.score, b.hypothesis.score, accuracy: 1e-4, sentence)
            }
            let allowed = Set(shortlist.candidates(for: try translator.source.encode(sentence), marks: &marks))
            XCTAssertLessThan(allowed.count, 400)
            for hypothesis in batched[i].hypotheses { XCTAssertTrue(Set(hypothesis.hypothesis.tokens).isSubset(of: allowed), sentence) }
        }
    }

    /// IBM Model 1 on a corpus where source word i is always translated by target word 100 + i, among
    /// frequent filler words on the target side: each source word's best translation is its own word.
    func testIBMModel1FindsEachWordsTranslation() {
        var rng = RandomSource(seed: 9)
        var pairs: [(source: [Int32], target: [Int32])] = []
        for _ in 0..<2000 {
            let length = 3 + Int(rng.next() % 6)
            let source = (0..<length).map { _ in Int32(10 + rng.next() % 40) }
            var target = source.map { $0 + 100 }
            target.insert(Int32(5 + rng.next() % 3), at: Int(rng.next() % UInt64(target.count)))  // filler
            target.reverse()
            pairs.append((source, target))
        }
        let shortlist = Shortlist.build(pairs: pairs, sourceVocabSize: 60, targetVocabSize: 200, keep: 5)
        for word in 10..<50 { XCTAssertEqual(shortlist.translations[word].first, Int32(word + 100), "source \(word)") }
        XCTAssertTrue(shortlist.translations[0].isEmpty)
        XCTAssertEqual(Set(shortlist.frequent.prefix(3)), [5, 6, 7], "the fillers are the most frequent target words")
        // Its file reads back the same, and a bad id is refused with its line.
        let read = try? Shortlist(text: shortlist.text(), path: "s.txt", sourceVocabSize: 60, targetVocabSize: 200)
        XCTAssertEqual(read?.translations, shortlist.translations)
        XCTAssertEqual(read?.frequent, shortlist.frequent)
        XCTAssertThrowsError(try Shortlist(text: "frequent\t1 2\n12\t3 900\n", path: "s.txt", sourceVocabSize: 60, targetVocabSize: 200)) {
            XCTAssertTrue("\($0)".contains("s.txt, line 2"), "\($0)")
        }
    }

    // MARK: Training in bf16

    /// Mixed precision computes the same gradients as f32 up to bf16's rounding: every tensor's gradient
    /// points the same way (cosine > 0.99) and has the same size (within 3 %). A transposed or misplaced
    /// operand, a stale weight copy or a lost accumulation would not.
    func testBF16TrainingGradientsAgreeWithF32() throws {
        guard CPUFeatures.hasBF16 else {
            throw XCTSkip("this CPU (\(CPUFeatures.isaName)) has no bf16 instructions: training in bf16 runs as f32 here")
        }
        var config = ModelConfig.reference(vocabSize: 300)
        config.embedSize = 64
        config.encoderHiddenSize = 48
        config.decoderHiddenSize = 96
        config.attentionSize = 80
        let model = try Seq2Seq(config: config, seed: 3)
        var rng = RandomSource(seed: 4)
        let lengths = (0..<24).map { _ in (5 + Int(rng.next() % 12), 4 + Int(rng.next() % 12)) }
        let batch = Batch(sources: lengths.map { l in (0..<l.0).map { _ in Int32(4 + rng.next() % 296) } },
                          targets: lengths.map { l in (0..<l.1).map { _ in Int32(4 + rng.next() % 296) } })
        func gradients() -> (loss: Double, values: [Float]) {
            var dropoutRNG = RandomSource(seed: 7)
            let loss = model.train(batch, dropout: 0.1, labelSmoothing: 0.1, rng: &dropoutRNG).loss
            return (loss, Array(UnsafeBufferPointer(start: model.gradients.storage.pointer, count: model.gradients.count)))
        }
        let f32 = gradients()
        model.setTrainingPrecision(.bf16)
        let bf16 = gradients()
        model.setTrainingPrecision(.f32)
        XCTAssertEqual(gradients().values, f32.values, "back in f32, the gradients are f32's again")
        XCTAssertNotEqual(bf16.values, f32.values, "the products ran in bf16")
        XCTAssertEqual(bf16.loss, f32.loss, accuracy: 0.01 * f32.loss)
        for view in model.layout.views {
            let offset = view.offset
            var dot = 0.0, a2 = 0.0, b2 = 0.0
            for i in offset..<offset + view.count {
                let a = Double(f32.values[i]), b = Double(bf16.values[i])
                dot += a * b; a2 += a * a; b2 += b * b
            }
            guard a2 > 0 else { continue }
            XCTAssertGreaterThan(dot / (a2 * b2).squareRoot(), 0.99, view.name)
            XCTAssertEqual(b2.squareRoot(), a2.squareRoot(), accuracy: 0.03 * a2.squareRoot(), view.name)
        }
    }

    // MARK: The programs

    /// On a CPU without bf16 (oneDNN limited to AVX2), bf16 says so once and gives exactly f32's output;
    /// int8 says that its weights keep 7 bits and still agrees with f32.
    func testWithoutAVX512TheProgramsFallBackAndSaySo() throws {
        // The whole test set, as in testLowPrecisionDecodingAgreesWithF32.
        let sentences = try Self.testSentences(1000).joined(separator: "\n") + "\n"
        let avx2 = ["DNNL_MAX_CPU_ISA": "AVX2"]
        let base = ["--model", Self.shippedModel, "--threads", "1"]
        let f32 = try Executables.run("mt-translate", base, input: Data(sentences.utf8))
        XCTAssertEqual(f32.status, 0, f32.errors)
        let bf16 = try Executables.run("mt-translate", base + ["--precision", "bf16"], input: Data(sentences.utf8), environment: avx2)
        XCTAssertEqual(bf16.status, 0, bf16.errors)
        XCTAssertEqual(bf16.errors.components(separatedBy: "no bf16 instructions: using f32").count - 1, 1, bf16.errors)
        XCTAssertEqual(bf16.output, f32.output)
        let int8 = try Executables.run("mt-translate", base + ["--precision", "int8"], input: Data(sentences.utf8), environment: avx2)
        XCTAssertEqual(int8.status, 0, int8.errors)
        XCTAssertTrue(int8.errors.contains("int8 weights keep 7 bits"), int8.errors)
        let lines = f32.output.split(separator: "\n", omittingEmptySubsequences: false)
        let same = zip(lines, int8.output.split(separator: "\n", omittingEmptySubsequences: false)).filter { $0 == $1 }.count
        XCTAssertGreaterThanOrEqual(Double(same), 0.95 * Double(lines.count))
    }

    func testShortlistOptionsAreChecked() throws {
        let sampled = try Executables.run("mt-translate", ["--model", Self.shippedModel, "--shortlist", "--sample"], input: Data("A dog.\n".utf8))
        XCTAssertEqual(sampled.status, 64, sampled.errors)
        XCTAssertTrue(sampled.errors.contains("--shortlist goes with beam search"), sampled.errors)
        // A model directory without shortlist.txt: the error names the file and how to make it.
        let dir = try TestCorpus.makeTempDir("no-shortlist")
        for file in try FileManager.default.contentsOfDirectory(atPath: Self.shippedModel) where file != Shortlist.fileName && !file.hasPrefix(".") {
            try FileManager.default.copyItem(atPath: Self.shippedModel + "/" + file, toPath: dir + "/" + file)
        }
        let missing = try Executables.run("mt-translate", ["--model", dir, "--shortlist"], input: Data("A dog.\n".utf8))
        XCTAssertEqual(missing.status, 1)
        XCTAssertTrue(missing.errors.contains("\(dir)/shortlist.txt does not exist: write it with mt-shortlist"), missing.errors)
        // mt-shortlist writes it, and then it translates.
        let corpus = try TestCorpus.makeTempDir("shortlist-corpus")
        try TestCorpus.writeLines(try Self.testSentences(20), to: corpus + "/train.en")
        try TestCorpus.writeLines(try Self.testSentences(20).map { _ in "Ein Hund läuft ." }, to: corpus + "/train.de")
        let written = try Executables.run("mt-shortlist", ["--model", dir, "--source", corpus + "/train.en", "--target", corpus + "/train.de"])
        XCTAssertEqual(written.status, 0, written.errors)
        let translated = try Executables.run("mt-translate", ["--model", dir, "--shortlist"], input: Data("A dog runs.\n".utf8))
        XCTAssertEqual(translated.status, 0, translated.errors)
        XCTAssertFalse(translated.output.isEmpty)
    }
}
