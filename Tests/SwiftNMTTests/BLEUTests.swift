import Foundation
import XCTest
@testable import NMTMetrics
@testable import NMTModel
@testable import NMTModelFiles
@testable import NMTTensor

/// BLEU and chrF against sacreBLEU 2.6.0.
///
/// The main test reads the shared fixture file (path in `BLEU_FIXTURES`) whose expected values were
/// produced by sacreBLEU 2.6.0. The few literal expectations elsewhere in this file were also
/// produced by sacreBLEU 2.6.0 (or CPython's `str.lower`), never by this code.
final class BLEUTests: XCTestCase {
    // MARK: - Fixture

    private struct FixtureCase: Decodable {
        struct Options: Decodable {
            let tokenize: String
            let lowercase: Bool
            let smoothMethod: String
            let smoothValue: Double?
            enum CodingKeys: String, CodingKey {
                case tokenize, lowercase
                case smoothMethod = "smooth_method"
                case smoothValue = "smooth_value"
            }
        }
        struct BLEUExpectation: Decodable {
            let score: Double
            let counts: [Int]
            let totals: [Int]
            let precisions: [Double]
            let bp: Double
            let sysLen: Int
            let refLen: Int
            let signature: String
            enum CodingKeys: String, CodingKey {
                case score, counts, totals, precisions, bp, signature
                case sysLen = "sys_len"
                case refLen = "ref_len"
            }
        }
        struct SentenceExpectation: Decodable {
            let index: Int
            let score: Double
        }
        struct CHRFExpectation: Decodable {
            let score: Double
            let signature: String
        }
        let id: Int
        let options: Options
        let hypotheses: [String]
        let references: [[String]]
        let bleu: BLEUExpectation
        let sentenceBLEU: [SentenceExpectation]
        let chrf: CHRFExpectation
        enum CodingKeys: String, CodingKey {
            case id = "case"
            case options, hypotheses, references, bleu, chrf
            case sentenceBLEU = "sentence_bleu"
        }
    }

    private struct FixtureError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// The fixture cases: skipped when `BLEU_FIXTURES` is unset outside CI, a failure in CI or
    /// when the named file is missing.
    private func loadFixtures() throws -> [FixtureCase] {
        let env = ProcessInfo.processInfo.environment
        let inCI = !(env["CI"] ?? "").isEmpty
        guard let path = env["BLEU_FIXTURES"], !path.isEmpty else {
            if inCI {
                throw FixtureError("BLEU_FIXTURES is not set (CI must point it at shared/fixtures/bleu/cases.jsonl)")
            }
            throw XCTSkip("BLEU_FIXTURES is not set")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FixtureError("BLEU fixture file \(path) is missing or unreadable")
        }
        let decoder = JSONDecoder()
        var cases: [FixtureCase] = []
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where !line.allSatisfy(\.isWhitespace) {
            cases.append(try decoder.decode(FixtureCase.self, from: Data(line.utf8)))
        }
        XCTAssertFalse(cases.isEmpty, "fixture file \(path) holds no cases")
        return cases
    }

    private func signatureWithoutVersion(_ s: String) -> [String] {
        s.split(separator: "|").map(String.init).filter { !$0.hasPrefix("version:") }
    }

    func testFixtureCasesAgreeWithSacreBLEU() throws {
        let cases = try loadFixtures()
        var matched = 0
        for c in cases {
            let failuresBefore = testRun?.failureCount ?? 0
            let label = "case \(c.id) (tok \(c.options.tokenize), lc \(c.options.lowercase), smooth \(c.options.smoothMethod))"
            guard let tok = BLEUTokenizer(rawValue: c.options.tokenize),
                  let smooth = BLEUSmoothing(rawValue: c.options.smoothMethod) else {
                XCTFail("\(label): unknown tokenizer or smoothing")
                continue
            }
            let options = BLEUOptions(tokenizer: tok, lowercase: c.options.lowercase,
                                      smoothMethod: smooth, smoothValue: c.options.smoothValue)
            let bleu = BLEU(options)
            let score = try bleu.corpusScore(hypotheses: c.hypotheses, references: c.references)
            XCTAssertEqual(score.counts, c.bleu.counts.map(Double.init), "\(label): counts")
            XCTAssertEqual(score.totals, c.bleu.totals.map(Double.init), "\(label): totals")
            XCTAssertEqual(score.sysLen, c.bleu.sysLen, "\(label): sys_len")
            XCTAssertEqual(score.refLen, c.bleu.refLen, "\(label): ref_len")
            XCTAssertEqual(score.score, c.bleu.score, accuracy: 1e-4, "\(label): BLEU")
            XCTAssertEqual(score.bp, c.bleu.bp, accuracy: 1e-4, "\(label): BP")
            XCTAssertEqual(score.precisions.count, c.bleu.precisions.count, "\(label): precisions")
            for (p, q) in zip(score.precisions, c.bleu.precisions) {
                XCTAssertEqual(p, q, accuracy: 1e-4, "\(label): precision")
            }
            let signature = bleu.signature(numRefs: c.references.count)
            XCTAssertEqual(signatureWithoutVersion(signature.formatted()), signatureWithoutVersion(c.bleu.signature), "\(label): BLEU signature")
            XCTAssertEqual(signature["version"], MetricSignature.defaultVersion)

            // sacreBLEU's sentence_bleu: same tokenizer and case, default (exp) smoothing, effective order.
            let sentenceBLEU = BLEU(BLEUOptions(tokenizer: tok, lowercase: c.options.lowercase, effectiveOrder: true))
            for s in c.sentenceBLEU {
                let got = sentenceBLEU.sentenceScore(hypothesis: c.hypotheses[s.index], references: c.references.map { $0[s.index] })
                XCTAssertEqual(got.score, s.score, accuracy: 1e-4, "\(label): sentence BLEU of segment \(s.index)")
            }
            let all = try sentenceBLEU.sentenceScores(hypotheses: c.hypotheses, references: c.references)
            for s in c.sentenceBLEU {
                XCTAssertEqual(all[s.index].score, s.score, accuracy: 1e-4, "\(label): sentenceScores[\(s.index)]")
            }

            let chrf = CHRF()
            let chrfScore = try chrf.corpusScore(hypotheses: c.hypotheses, references: c.references)
            XCTAssertEqual(chrfScore.score, c.chrf.score, accuracy: 1e-4, "\(label): chrF")
            XCTAssertEqual(chrfScore.name, "chrF2")
            XCTAssertEqual(signatureWithoutVersion(chrf.signature(numRefs: c.references.count).formatted()),
                           signatureWithoutVersion(c.chrf.signature), "\(label): chrF signature")

            if (testRun?.failureCount ?? 0) == failuresBefore { matched += 1 }
        }
        print("BLEU fixture: \(matched) of \(cases.count) cases match sacreBLEU 2.6.0")
        XCTAssertEqual(matched, cases.count, "cases matching sacreBLEU")
    }

    /// Statistics are additive: the corpus score equals the score of the summed segment statistics.
    func testCorpusScoreIsScoreOfSummedSegmentStatistics() throws {
        let cases = try loadFixtures().filter { $0.hypotheses.count >= 10 }
        XCTAssertFalse(cases.isEmpty)
        for c in cases.prefix(5) {
            let bleu = BLEU(BLEUOptions(tokenizer: BLEUTokenizer(rawValue: c.options.tokenize) ?? .v13a,
                                        lowercase: c.options.lowercase))
            var sum = BLEUStatistics(order: 4)
            for s in try bleu.segmentStatistics(hypotheses: c.hypotheses, references: c.references) { sum += s }
            XCTAssertEqual(sum.correct, c.bleu.counts, "case \(c.id)")
            XCTAssertEqual(sum.hypothesisLength, c.bleu.sysLen, "case \(c.id)")
            let chrf = CHRF()
            var csum = CHRFStatistics(orders: 6)
            for s in try chrf.segmentStatistics(hypotheses: c.hypotheses, references: c.references) { csum += s }
            XCTAssertEqual(chrf.score(from: csum).score, c.chrf.score, accuracy: 1e-4, "case \(c.id)")
        }
    }

    // MARK: - Tokenizers and text primitives (expectations produced by sacreBLEU 2.6.0 / CPython)

    func testTokenizersReproduceSacreBLEU() {
        let expected: [(BLEUTokenizer, String, String)] = [
            (.v13a, "Prices rose 1,000.50 % in 2019-2020 -- really?!", "Prices rose 1,000.50 % in 2019 - 2020 -- really ? !"),
            (.v13a, "e-mail: foo@bar.com, URL https://x.y/z?q=1", "e-mail : foo @ bar . com , URL https : / / x . y / z ? q = 1"),
            (.v13a, "&quot;Tom &amp; Jerry&quot; &lt;b&gt; &amp;lt;", "\" Tom & Jerry \" < b > <"),
            (.v13a, "don't stop.", "don't stop ."),
            (.v13a, "<skipped>a-\nb\nc", "ab c"),
            (.v13a, ".5 and 3.", ". 5 and 3 ."),
            (.v13a, "«Guillemets» — dash…", "«Guillemets» — dash…"),
            (.intl, "«Guillemets» and „Anführungszeichen“ — dash…", "« Guillemets » and „ Anführungszeichen “ — dash …"),
            (.intl, "Price: 3.5€ (approx.) 1,000", "Price : 3.5 € ( approx . ) 1,000"),
            (.intl, "It's 2019.", "It ' s 2019."),
            (.intl, "a..b ,,x", "a . . b , , x"),
            (.intl, "x+y=z ©2020", "x + y = z © 2020"),
            (.zh, "中文测试，没有空格。", "中 文 测 试 ， 没 有 空 格 。"),
            (.zh, " 1.5 2,5 3/4 10:30 ", "1.5 2,5 3 / 4 10 : 30"),
            (.zh, "x→y 5€ a\u{2000}b", "x → y 5 € a b"),
            (.zh, "x\u{2A6D}y\u{2A6E}z", "x \u{2A6D} y\u{2A6E}z"),
            (.zh, "Ｆｕｌｌ ｗｉｄｔｈ", "Ｆ ｕ ｌ ｌ ｗ ｉ ｄ ｔ ｈ"),
            (.zh, "\u{20000}x", "\u{20000}x"),
            (.char, "ab c\u{E9}", "a b c \u{E9}"),
            (.none, "  a  b ", "a b"),
        ]
        for (tok, input, output) in expected {
            XCTAssertEqual(Array(tok(input).unicodeScalars), Array(output.unicodeScalars), "\(tok.rawValue): \(input)")
        }
    }

    func testLowercaseFollowsPython() {
        XCTAssertEqual(PythonText.lower("ΣΑΣ ΟΔΟΣ."), "σας οδος.")
        XCTAssertEqual(Array(PythonText.lower("İSTANBUL").unicodeScalars), Array("i\u{307}stanbul".unicodeScalars))
        XCTAssertEqual(PythonText.lower("ΌΣ.Σ"), "όσ.ς")
        XCTAssertEqual(Array(PythonText.lower("A\u{3A3}\u{301}b").unicodeScalars), Array("a\u{3C3}\u{301}b".unicodeScalars))
    }

    func testPythonWhitespace() {
        for c: UInt32 in [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1F, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000] {
            XCTAssertTrue(PythonText.isSpace(c), String(c, radix: 16))
        }
        for c: UInt32 in [0x00, 0x08, 0x21, 0x200B, 0x180E, 0xFEFF, 0x41] {
            XCTAssertFalse(PythonText.isSpace(c), String(c, radix: 16))
        }
    }

    // MARK: - Bad input

    func testMismatchedStreamsThrow() {
        let bleu = BLEU()
        XCTAssertThrowsError(try bleu.corpusScore(hypotheses: ["a", "b"], references: [["a", "b", "c"]])) { error in
            XCTAssertEqual(error as? MetricError, .lengthMismatch(hypotheses: 2, references: 3, referenceIndex: 0, hypothesisSource: nil, referenceSource: nil))
            XCTAssertTrue("\(error)".contains("2 vs 3"), "\(error)")
        }
        XCTAssertThrowsError(try CHRF().corpusScore(hypotheses: ["a"], references: [["a"], []]))
        XCTAssertThrowsError(try bleu.corpusScore(hypotheses: ["a"], references: [])) { error in
            XCTAssertEqual(error as? MetricError, .noReferences)
        }
        XCTAssertThrowsError(try MetricInput.checkLengths(hypotheses: 4, references: [4, 5], hypothesisSource: "hyp.txt", referenceSources: ["r1.txt", "r2.txt"])) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("hyp.txt") && message.contains("r2.txt") && message.contains("4 vs 5"), message)
        }
    }

    func testUnreadableFileNamesTheFile() throws {
        let path = NSTemporaryDirectory() + "swiftnmt-missing-\(UUID().uuidString).txt"
        XCTAssertThrowsError(try MetricInput.readLines(path: path)) { error in
            guard case .unreadableFile(let p, _)? = error as? MetricError else { return XCTFail("\(error)") }
            XCTAssertEqual(p, path)
            XCTAssertTrue("\(error)".contains(path))
        }
        XCTAssertThrowsError(try MetricInput.readLines(path: NSTemporaryDirectory())) { error in
            XCTAssertTrue("\(error)".contains("directory"), "\(error)")
        }
    }

    func testGzipFilesAreDecompressed() throws {
        let dir = NSTemporaryDirectory() + "swiftnmt-gz-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let plain = dir + "/lines.txt"
        try Data("Ein Hund läuft.\r\nZwei Männer  \n".utf8).write(to: URL(fileURLWithPath: plain))
        let gzip = Process()
        gzip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        gzip.arguments = ["gzip", "-k", plain]
        try gzip.run()
        gzip.waitUntilExit()
        XCTAssertEqual(gzip.terminationStatus, 0)
        XCTAssertEqual(try MetricInput.readLines(path: plain + ".gz"), ["Ein Hund läuft.", "Zwei Männer"])
        // Not gzip data: a clear error naming the file.
        try Data("plain".utf8).write(to: URL(fileURLWithPath: dir + "/fake.gz"))
        XCTAssertThrowsError(try MetricInput.readLines(path: dir + "/fake.gz")) { error in
            XCTAssertTrue("\(error)".contains("fake.gz") && "\(error)".contains("gzip"), "\(error)")
        }
    }

    func testInvalidUTF8ReportsLine() {
        var bytes = Array("first\nsecond\nthi".utf8)
        bytes += [0xC3, 0x28]  // invalid continuation byte
        bytes += Array("rd\nfourth\n".utf8)
        XCTAssertThrowsError(try MetricInput.lines(from: Data(bytes), source: "hyp.txt")) { error in
            XCTAssertEqual(error as? MetricError, .invalidUTF8(source: "hyp.txt", line: 3, byteOffset: 16))
            XCTAssertTrue("\(error)".contains("hyp.txt") && "\(error)".contains("line 3"), "\(error)")
        }
        // Encoded surrogates are invalid UTF-8 for Python too.
        XCTAssertThrowsError(try MetricInput.lines(from: Data([0x61, 0x0A, 0xED, 0xA0, 0x80]), source: "x"))
    }

    func testLinesSplitOnNewlineOnlyAndStripTrailingWhitespace() throws {
        let data = Data("a b \r\nc\u{2028}d\u{A0}\n\ne\u{3000}".utf8)
        XCTAssertEqual(try MetricInput.lines(from: data, source: "x"), ["a b", "c\u{2028}d", "", "e"])
        XCTAssertEqual(try MetricInput.lines(from: Data("x\ny\n".utf8), source: "x"), ["x", "y"])
        XCTAssertEqual(try MetricInput.lines(from: Data(), source: "x"), [])
        XCTAssertThrowsError(try MetricInput.splitReferences(["a\tb", "c"], count: 2, source: "refs.tsv")) { error in
            XCTAssertEqual(error as? MetricError, .fieldCount(source: "refs.tsv", line: 2, expected: 2, found: 1))
        }
        XCTAssertEqual(try MetricInput.splitReferences(["a\tb\tc", "d\te"], count: 2, source: "refs.tsv"), [["a", "d"], ["b\tc", "e"]])
    }

    // MARK: - The mt-bleu executable

    private func executable() throws -> URL { URL(fileURLWithPath: try Executables.path("mt-bleu")) }

    private func run(_ arguments: [String], stdin: String? = nil) throws -> (status: Int32, out: String, err: String) {
        let result = try Executables.run("mt-bleu", arguments, input: Data((stdin ?? "").utf8))
        return (result.status, result.output, result.errors)
    }

    private func temporaryFile(_ contents: [UInt8], name: String) throws -> String {
        let dir = NSTemporaryDirectory() + "swiftnmt-bleu-tests-\(ProcessInfo.processInfo.processIdentifier)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/" + name
        try Data(contents).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testExecutableRejectsBadInput() throws {
        _ = try executable()
        let ref = try temporaryFile(Array("a b c\nd e f\ng h\n".utf8), name: "ref.txt")
        let hyp = try temporaryFile(Array("a b c\nd e f\n".utf8), name: "hyp.txt")
        let bad = try temporaryFile(Array("a b c\nd ".utf8) + [0xFF] + Array("e\ng h\n".utf8), name: "bad.txt")

        let mismatch = try run([ref, "-i", hyp])
        XCTAssertNotEqual(mismatch.status, 0)
        XCTAssertTrue(mismatch.err.contains("hyp.txt") && mismatch.err.contains("ref.txt") && mismatch.err.contains("2 vs 3"), mismatch.err)
        XCTAssertTrue(mismatch.out.isEmpty)

        let invalid = try run([ref, "-i", bad])
        XCTAssertNotEqual(invalid.status, 0)
        XCTAssertTrue(invalid.err.contains("bad.txt") && invalid.err.contains("line 2"), invalid.err)

        let missing = try run([ref + ".nope", "-i", hyp])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.err.contains("ref.txt.nope"), missing.err)

        let usage = try run(["-i", hyp])
        XCTAssertNotEqual(usage.status, 0)
        XCTAssertTrue(usage.err.contains("reference"), usage.err)

        let badTok = try run([ref, "-tok", "moses"], stdin: "a\nb\nc\n")
        XCTAssertNotEqual(badTok.status, 0)
    }

    /// End to end: the executable's text and JSON output for fixture cases, compared with the
    /// values sacreBLEU reported (rounded the way the output rounds them).
    func testExecutableOutputMatchesFixture() throws {
        _ = try executable()
        let cases = try loadFixtures().filter { c in
            c.references.count == 1 && c.hypotheses.count >= 10
                && !(c.hypotheses + c.references[0]).contains { $0.contains("\n") || $0.contains("\r") || $0.unicodeScalars.last.map { PythonText.isSpace($0.value) } == true }
        }
        XCTAssertFalse(cases.isEmpty)
        for c in cases.prefix(3) {
            let ref = try temporaryFile(Array((c.references[0].joined(separator: "\n") + "\n").utf8), name: "ref-\(c.id).txt")
            var args = [ref, "-m", "bleu", "chrf", "-tok", c.options.tokenize, "-s", c.options.smoothMethod, "-w", "4"]
            if c.options.lowercase { args.append("-lc") }
            if let v = c.options.smoothValue { args += ["-sv", String(v)] }
            let stdin = c.hypotheses.joined(separator: "\n") + "\n"
            let result = try run(args + ["-f", "text"], stdin: stdin)
            XCTAssertEqual(result.status, 0, result.err)
            // Text lines are right-aligned on their "=" (sacreBLEU's print_single_results).
            let lines = result.out.split(separator: "\n").map { String($0.drop { $0 == " " }) }
            XCTAssertEqual(lines.count, 2, result.out)
            guard lines.count == 2 else { continue }
            let bleuSig = signatureWithoutVersion(c.bleu.signature).joined(separator: "|")
            XCTAssertTrue(lines[0].hasPrefix("BLEU|" + bleuSig + "|version:"), lines[0])
            let bleuTail = " = \(String(format: "%.4f", c.bleu.score)) "
                + c.bleu.precisions.map { String(format: "%.1f", $0) }.joined(separator: "/")
                + " (BP = \(String(format: "%.3f", c.bleu.bp)) ratio = \(String(format: "%.3f", Double(c.bleu.sysLen) / Double(c.bleu.refLen))) hyp_len = \(c.bleu.sysLen) ref_len = \(c.bleu.refLen))"
            XCTAssertTrue(lines[0].hasSuffix(bleuTail), "case \(c.id): \(lines[0]) vs \(bleuTail)")
            XCTAssertTrue(lines[1].hasSuffix(" = \(String(format: "%.4f", c.chrf.score))"), "case \(c.id): \(lines[1])")
            XCTAssertTrue(lines[1].contains("chrF2|" + signatureWithoutVersion(c.chrf.signature).joined(separator: "|")), lines[1])

            // JSON: a list of two objects with sacreBLEU's keys.
            let json = try run(args, stdin: stdin)
            XCTAssertEqual(json.status, 0, json.err)
            let objects = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [[String: Any]]
            XCTAssertEqual(objects?.count, 2)
            XCTAssertEqual(objects?[0]["name"] as? String, "BLEU")
            XCTAssertEqual(objects?[0]["score"] as? Double ?? -1, Double(String(format: "%.4f", c.bleu.score))!, accuracy: 1e-9)
            XCTAssertEqual(objects?[0]["tok"] as? String, c.options.tokenize)
            XCTAssertEqual(objects?[1]["name"] as? String, "chrF2")
            XCTAssertEqual(objects?[1]["score"] as? Double ?? -1, Double(String(format: "%.4f", c.chrf.score))!, accuracy: 1e-9)
        }
    }
}
