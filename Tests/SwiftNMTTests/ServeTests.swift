import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest
@testable import NMTSearch
@testable import NMTServe

/// mt-serve: answers equal to mt-translate's whatever shares the batch, LibreTranslate's and the native
/// API, and every refusal with its status and a plain message.
///
/// "Equal": the same translations, n-best lists and alignments, and scores equal to rounding. OpenBLAS
/// rounds a row of a product differently with the number of rows (`InFlightSearchTests`), so a score printed
/// with four decimals may differ in the last one between any two batchings, mt-translate's own included.
final class ServeTests: XCTestCase {
    /// Moses-style lines (fields split by " ||| ") that agree but for scores (the field after the text) within 2e-4.
    static func assertSameLines(_ found: [String], _ expected: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(found.count, expected.count, file: file, line: line)
        for (i, (f, e)) in zip(found, expected).enumerated() {
            var a = f.components(separatedBy: " ||| "), b = e.components(separatedBy: " ||| ")
            let scoreField = a.count > 2 ? 2 : 1
            if a.count == b.count, a.count > scoreField, let x = Double(a[scoreField]), let y = Double(b[scoreField]), abs(x - y) <= 2e-4 {
                a[scoreField] = b[scoreField]
            }
            XCTAssertEqual(a, b, "line \(i + 1)", file: file, line: line)
        }
    }

    /// Test-set lines when MULTI30K_DIR is there, else lines of the same kind.
    static let lines: [String] = {
        if let dir = ProcessInfo.processInfo.environment["MULTI30K_DIR"],
           let text = try? ServeProcessTests.shell("gzip -dc '\(dir)/raw/test_2016_flickr.en.gz' | head -n 120").output, !text.isEmpty {
            return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        }
        var corpus = TestCorpus(seed: 11)
        return corpus.pairs(40).map { $0.0 } + ["A man in a blue shirt is standing on a ladder cleaning windows.", "Two dogs play in the snow.",
                                                "Five people in winter jackets and helmets stand in the snow, with snowmobiles in the background."]
    }()

    private func makeServer(_ configure: (inout TranslationServer) -> Void = { _ in }) throws -> TranslationService {
        var server = TranslationServer()
        server.models = [TranslationServer.ModelSpec(parsing: ScoreTests.shippedModel)!]
        server.workers = 2
        configure(&server)
        return try server.makeService()
    }

    private func json(_ object: Any) -> ByteBuffer {
        ByteBuffer(bytes: try! JSONSerialization.data(withJSONObject: object))
    }

    private func object(_ response: TestResponse) throws -> [String: Any] {
        let data = Data(response.body.readableBytesView)
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any], String(decoding: data, as: UTF8.self))
    }

    private static let jsonHeaders: HTTPFields = [.contentType: "application/json"]

    /// Every line sent as its own request, all at once, so that they share batches in flight: each answer
    /// is mt-translate's line, and its score is mt-translate's.
    func testConcurrentRequestsAnswerWhatMtTranslatePrints() async throws {
        try await assertConcurrentRequestsAnswer(try Self.mtTranslate([]))
    }

    /// The same over the model's lexical shortlist (`mt-serve --shortlist`, small enough here to change
    /// translations): every answer is `mt-translate --shortlist`'s line.
    func testWithAShortlistTheAnswersAreMtTranslatesWithIt() async throws {
        let shortlisted = try Self.mtTranslate(["--shortlist", "--shortlist-frequent", "100", "--shortlist-translations", "10"])
        XCTAssertNotEqual(shortlisted, try Self.mtTranslate([]), "the shortlist changes some translations")
        try await assertConcurrentRequestsAnswer(shortlisted) { $0.shortlist = (frequent: 100, translations: 10) }
    }

    /// mt-translate's lines (with scores) for `lines`, with these options.
    private static func mtTranslate(_ options: [String]) throws -> [String] {
        let expected = try Executables.run("mt-translate", ["--model", ScoreTests.shippedModel, "--scores"] + options,
                                           input: Data((lines.joined(separator: "\n") + "\n").utf8))
        XCTAssertEqual(expected.status, 0, expected.errors)
        let expectedLines = expected.output.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        XCTAssertEqual(expectedLines.count, lines.count)
        return expectedLines
    }

    private func assertConcurrentRequestsAnswer(_ expectedLines: [String],
                                                configure: (inout TranslationServer) -> Void = { _ in }) async throws {
        let lines = Self.lines
        let service = try makeServer(configure)
        let app = Application(router: Routes.router(service))
        try await app.test(.router) { client in
            let answers = try await withThrowingTaskGroup(of: (Int, String, String).self) { group in
                for (i, line) in lines.enumerated() {
                    group.addTask {
                        let libre = try await client.execute(uri: "/translate", method: .post, headers: Self.jsonHeaders,
                                                             body: self.json(["q": line, "source": "en", "target": "de"]))
                        XCTAssertEqual(libre.status, .ok)
                        let text = try self.object(libre)["translatedText"] as? String ?? "?"
                        let native = try await client.execute(uri: "/v1/translate", method: .post, headers: Self.jsonHeaders,
                                                              body: self.json(["text": [line], "source": "en", "target": "de"]))
                        let translation = (try self.object(native)["translations"] as? [[String: Any]])?.first
                        let score = ((translation?["hypotheses"] as? [[String: Any]])?.first?["score"] as? Double) ?? .nan
                        return (i, text, "\(translation?["text"] as? String ?? "?") ||| \(String(format: "%.4f", score))")
                    }
                }
                var answers = [(String, String)](repeating: ("", ""), count: lines.count)
                for try await (i, text, scored) in group { answers[i] = (text, scored) }
                return answers
            }
            Self.assertSameLines(answers.map(\.1), expectedLines)
            XCTAssertEqual(answers.map(\.0), expectedLines.map { $0.components(separatedBy: " ||| ")[0] })
        }
        // Sentences shared batches: some decoder step held several of them.
        XCTAssertTrue(service.metrics.text.contains("mt_serve_batch_sentences_bucket{le=\"8.0\"}"), service.metrics.text)
        XCTAssertLessThan(try Self.histogramCount(service.metrics.text, le: "1.0"), try Self.histogramCount(service.metrics.text, le: "+Inf"))
    }

    static func histogramCount(_ metrics: String, le: String) throws -> Double {
        let prefix = "mt_serve_batch_sentences_bucket{le=\"\(le)\"} "
        let line = try XCTUnwrap(metrics.split(separator: "\n").first { $0.hasPrefix(prefix) }, metrics)
        return try XCTUnwrap(Double(line.dropFirst(prefix.count)))
    }

    /// Several lines in one request, as a list and as a text of several lines, by JSON and by form; the
    /// n-best list with alignments is mt-translate's.
    func testListsFormsNBestAndAlignmentsAreMtTranslates() async throws {
        let lines = Array(Self.lines.prefix(12))
        let nBest = try Executables.run("mt-translate", ["--model", ScoreTests.shippedModel, "--n-best", "3", "--beam-size", "4",
                                                         "--length-penalty", "0.6", "--alignment"],
                                        input: Data((lines.joined(separator: "\n") + "\n").utf8))
        let plain = try Executables.run("mt-translate", ["--model", ScoreTests.shippedModel], input: Data((lines.joined(separator: "\n") + "\n").utf8))
        let plainLines = plain.output.split(separator: "\n").map(String.init)
        let service = try makeServer()
        try await Application(router: Routes.router(service)).test(.router) { client in
            let list = try await client.execute(uri: "/translate", method: .post, headers: Self.jsonHeaders,
                                                body: self.json(["q": lines, "source": "en", "target": "de"]))
            XCTAssertEqual(try self.object(list)["translatedText"] as? [String], plainLines)
            let text = try await client.execute(uri: "/translate", method: .post, headers: Self.jsonHeaders,
                                                body: self.json(["q": lines.joined(separator: "\n"), "source": "en", "target": "de"]))
            XCTAssertEqual(try self.object(text)["translatedText"] as? String, plainLines.joined(separator: "\n"))
            let form = "q=" + lines[0].addingPercentEncoding(withAllowedCharacters: .alphanumerics)! + "&source=en&target=de&alternatives=2"
            let formed = try await client.execute(uri: "/translate", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                                  body: ByteBuffer(string: form))
            let formAnswer = try self.object(formed)
            XCTAssertEqual(formAnswer["translatedText"] as? String, plainLines[0])
            XCTAssertEqual((formAnswer["alternatives"] as? [String])?.count, 2)

            let native = try await client.execute(uri: "/v1/translate", method: .post, headers: Self.jsonHeaders,
                                                  body: self.json(["text": lines, "source": "en", "target": "de", "beam_size": 4,
                                                                   "length_penalty": 0.6, "n_best": 3, "alignments": true]))
            let translations = try XCTUnwrap(try self.object(native)["translations"] as? [[String: Any]])
            var moses: [String] = []
            for (i, translation) in translations.enumerated() {
                for hypothesis in translation["hypotheses"] as? [[String: Any]] ?? [] {
                    let score = String(format: "%.4f", hypothesis["score"] as? Double ?? .nan)
                    moses.append("\(i) ||| \(hypothesis["text"] as? String ?? "?") ||| \(score) ||| \(hypothesis["alignment"] as? String ?? "?")")
                    XCTAssertEqual((hypothesis["attention"] as? [[Double]])?.count, (hypothesis["target_pieces"] as? [String])?.count)
                }
            }
            Self.assertSameLines(moses, nBest.output.split(separator: "\n").map(String.init))
        }
    }

    /// Each refusal: its status, `{"error": …}`, and nothing else changed.
    func testBadRequestsAreRefusedWithTheirStatus() async throws {
        let keys = try TestCorpus.makeTempDir("serve-keys")
        let service = try makeServer { server in
            server.maxLines = 5
            server.maxRequestBytes = 2_000
            server.apiKeys = ["secret-key-1", "other"]
        }
        try await Application(router: Routes.router(service)).test(.router) { client in
            func expect(_ status: HTTPResponse.Status, uri: String = "/translate", _ body: ByteBuffer, contentType: String = "application/json",
                        saying words: String, line: UInt = #line) async throws {
                let response = try await client.execute(uri: uri, method: .post, headers: [.contentType: contentType], body: body)
                XCTAssertEqual(response.status, status, String(buffer: response.body), line: line)
                let message = try self.object(response)["error"] as? String ?? ""
                XCTAssertTrue(message.contains(words), "\(message)", line: line)
            }
            let good: [String: Any] = ["q": "A dog.", "source": "en", "target": "de", "api_key": "secret-key-1"]
            let ok = try await client.execute(uri: "/translate", method: .post, headers: Self.jsonHeaders, body: self.json(good))
            XCTAssertEqual(ok.status, .ok)
            try await expect(.forbidden, self.json(good.merging(["api_key": "secret-key-2"]) { $1 }), saying: "invalid API key")
            try await expect(.forbidden, self.json(good.filter { $0.key != "api_key" }), saying: "API key is required")
            try await expect(.badRequest, ByteBuffer(string: "{\"q\": \"a\", "), saying: "not a JSON object")
            try await expect(.badRequest, ByteBuffer(string: "[1, 2]"), saying: "not a JSON object")
            try await expect(.badRequest, self.json(good.merging(["q": 5]) { $1 }), saying: "q must be a string or a list of strings")
            try await expect(.badRequest, self.json(good.merging(["q": ["a", 3]]) { $1 }), saying: "q must be a string or a list of strings")
            try await expect(.badRequest, self.json(good.filter { $0.key != "q" }), saying: "missing q parameter")
            try await expect(.badRequest, self.json(good.merging(["q": ""]) { $1 }), saying: "q is empty")
            try await expect(.badRequest, self.json(good.merging(["q": []]) { $1 }), saying: "q is empty")
            try await expect(.badRequest, self.json(good.merging(["target": "fr"]) { $1 }), saying: "en-fr is not served (this server translates en-de)")
            try await expect(.badRequest, self.json(good.merging(["q": Array(repeating: "a dog", count: 6)]) { $1 }), saying: "6 lines in one request; at most 5")
            try await expect(.badRequest, self.json(good.merging(["format": "html"]) { $1 }), saying: "format html is not supported")
            try await expect(.badRequest, self.json(good.merging(["alternatives": "x"]) { $1 }), saying: "alternatives must be an integer")
            try await expect(.contentTooLarge, self.json(good.merging(["q": String(repeating: "dog ", count: 600)]) { $1 }), saying: "larger than the server's limit of 2000 bytes")
            var native: [String: Any] = ["text": ["A dog."], "source": "en", "target": "de", "api_key": "other"]
            try await expect(.badRequest, uri: "/v1/translate", self.json(native.merging(["beam_size": 11]) { $1 }), saying: "beam_size must be from 1 to 10")
            try await expect(.badRequest, uri: "/v1/translate", self.json(native.merging(["beam_size": 2, "n_best": 3]) { $1 }), saying: "n_best must be from 1 to beam_size (2)")
            try await expect(.badRequest, uri: "/v1/translate", self.json(native.merging(["length_penalty": -1]) { $1 }), saying: "length_penalty must be from 0 to 10")
            try await expect(.badRequest, uri: "/v1/translate", self.json(native.merging(["alignments": "yes"]) { $1 }), saying: "alignments must be true or false")
            try await expect(.badRequest, uri: "/v1/translate", self.json(native.merging(["text": ["two\nlines"]]) { $1 }), saying: "spans several lines")
            native["api_key"] = nil
            let bearer = try await client.execute(uri: "/v1/translate", method: .post,
                                                  headers: [.contentType: "application/json", .authorization: "Bearer other"], body: self.json(native))
            XCTAssertEqual(bearer.status, .ok)
            let missing = try await client.execute(uri: "/nowhere", method: .get)
            XCTAssertEqual(missing.status, .notFound)
            XCTAssertEqual(try self.object(missing)["error"] as? String, "no such route: GET /nowhere")
        }
        try? FileManager.default.removeItem(atPath: keys)
        XCTAssertTrue(service.metrics.text.contains("mt_serve_requests_total{route=\"/translate\",status=\"403\"} 2"), service.metrics.text)
    }

    /// A full queue answers 429 with Retry-After; a deadline passed answers 504 and the sentences leave their batch.
    func testFullQueueAndDeadline() async throws {
        let busy = try makeServer { $0.maxQueue = 3 }
        try await Application(router: Routes.router(busy)).test(.router) { client in
            let response = try await client.execute(uri: "/translate", method: .post, headers: Self.jsonHeaders,
                                                    body: self.json(["q": ["a dog", "a cat", "a man", "a woman"], "source": "en", "target": "de"]))
            XCTAssertEqual(response.status, .tooManyRequests)
            XCTAssertEqual(response.headers[.retryAfter], "1")
            XCTAssertTrue((try self.object(response)["error"] as? String ?? "").contains("busy"))
        }
        let hurried = try makeServer { $0.requestTimeout = .milliseconds(1) }
        try await Application(router: Routes.router(hurried)).test(.router) { client in
            let response = try await client.execute(uri: "/translate", method: .post, headers: Self.jsonHeaders,
                                                    body: self.json(["q": Array(Self.lines.prefix(40)), "source": "en", "target": "de"]))
            XCTAssertEqual(response.status, .gatewayTimeout)
            XCTAssertTrue((try self.object(response)["error"] as? String ?? "").contains("took longer than"))
        }
        let scheduler = hurried.models[0].scheduler
        for _ in 0..<200 where scheduler.activeSentences > 0 { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(scheduler.activeSentences, 0, "the sentences of the request that timed out left their batches")
    }

    /// A cancelled search leaves at once, and the requests beside it get their answers.
    func testCancelledSearchesLeaveAndOthersAreAnswered() async throws {
        let service = try makeServer()
        let model = service.models[0]
        let sources = try Self.lines.prefix(30).map { try model.translator.encode($0, maxSourceLength: 200, pieces: false).ids }
        let options = BeamSearchOptions(beamSize: 5)
        let expected = model.translator.search.searchInBatches(Array(sources.suffix(10)), options: options)
        let doomed = Task { try await model.scheduler.search(Array(sources.prefix(20)), options: options) }
        let kept = Task { try await model.scheduler.search(Array(sources.suffix(10)), options: options) }
        try await Task.sleep(for: .milliseconds(20))
        doomed.cancel()
        do {
            _ = try await doomed.value
        } catch is CancellationError {}
        let found = try await kept.value
        XCTAssertEqual(found.map { $0.map(\.tokens) }, expected.map { $0.map(\.tokens) })
        for _ in 0..<200 where model.scheduler.activeSentences > 0 { try await Task.sleep(for: .milliseconds(10)) }
        XCTAssertEqual(model.scheduler.activeSentences, 0)
    }

    /// `--model` forms: a directory, a pair named, an ensemble; a pair that contradicts the directory is refused.
    func testModelSpecsAndEnsembles() async throws {
        let dir = ScoreTests.shippedModel
        XCTAssertEqual(TranslationServer.ModelSpec(parsing: dir)?.directories, [dir])
        let named = try XCTUnwrap(TranslationServer.ModelSpec(parsing: "en-de=\(dir),\(dir)"))
        XCTAssertEqual(named.directories, [dir, dir])
        XCTAssertEqual(named.pair?.source, "en")
        XCTAssertEqual(named.pair?.target, "de")
        XCTAssertNil(TranslationServer.ModelSpec(parsing: ""))
        XCTAssertNil(TranslationServer.ModelSpec(parsing: "e1-de=\(dir)"))
        XCTAssertThrowsError(try makeServer { $0.models = [TranslationServer.ModelSpec(parsing: "en-fr=\(dir)")!] }) {
            XCTAssertTrue("\($0)".contains("is a en-de model, not en-fr"), "\($0)")
        }
        XCTAssertThrowsError(try makeServer { $0.models.append(TranslationServer.ModelSpec(parsing: dir)!) }) {
            XCTAssertTrue("\($0)".contains("two models for en-de"), "\($0)")
        }
        // An ensemble of the model with itself answers as the model alone.
        let lines = Array(Self.lines.prefix(10))
        let expected = try Executables.run("mt-translate", ["--model", dir], input: Data((lines.joined(separator: "\n") + "\n").utf8))
        let service = try makeServer { $0.models = [named] }
        try await Application(router: Routes.router(service)).test(.router) { client in
            let response = try await client.execute(uri: "/translate", method: .post, headers: Self.jsonHeaders,
                                                    body: self.json(["q": lines, "source": "en", "target": "de"]))
            XCTAssertEqual(try self.object(response)["translatedText"] as? [String], expected.output.split(separator: "\n").map(String.init))
        }
    }

    func testLanguagesHealthAndPage() async throws {
        let service = try makeServer()
        try await Application(router: Routes.router(service)).test(.router) { client in
            let languages = try await client.execute(uri: "/languages", method: .get)
            let list = try JSONSerialization.jsonObject(with: Data(languages.body.readableBytesView)) as? [[String: Any]]
            XCTAssertEqual(list?.count, 1)
            XCTAssertEqual(list?.first?["code"] as? String, "en")
            XCTAssertEqual(list?.first?["name"] as? String, "English")
            XCTAssertEqual(list?.first?["targets"] as? [String], ["de"])
            let health = try await client.execute(uri: "/health", method: .get)
            XCTAssertEqual(try self.object(health)["models"] as? [String], ["en-de"])
            let page = try await client.execute(uri: "/", method: .get)
            XCTAssertEqual(page.headers[.contentType], "text/html; charset=utf-8")
            let html = String(buffer: page.body)
            XCTAssertTrue(html.contains("/v1/translate"))
            XCTAssertFalse(html.contains("http://") || html.contains("https://"), "the page loads nothing from elsewhere")
            let auto = try await client.execute(uri: "/translate", method: .post, headers: Self.jsonHeaders,
                                                body: self.json(["q": "A dog.", "source": "auto", "target": "de"]))
            XCTAssertEqual((try self.object(auto)["detectedLanguage"] as? [String: Any])?["language"] as? String, "en")
        }
    }
}
