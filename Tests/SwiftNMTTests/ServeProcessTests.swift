import Foundation
import XCTest

/// mt-serve as a program on a real port: LibreTranslate's own Python client pointed at it, a client that
/// hangs up, and SIGTERM while a request is in flight.
final class ServeProcessTests: XCTestCase {
    /// A running mt-serve on a free loopback port.
    final class Server {
        let process = Process()
        let port: Int
        private let errors = Pipe()

        init(_ arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: try Executables.path("mt-serve"))
            process.arguments = ["--model", ScoreTests.shippedModel, "--port", "0", "--threads", "1"] + arguments
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            // "mt-serve: serving en-de on http://127.0.0.1:PORT"
            var text = ""
            let handle = errors.fileHandleForReading
            while !text.contains("serving") || !text.hasSuffix("\n") {
                let data = handle.availableData
                guard !data.isEmpty else { break }
                text += String(decoding: data, as: UTF8.self)
            }
            guard let range = text.range(of: #"http://127\.0\.0\.1:([0-9]+)"#, options: .regularExpression),
                  let port = Int(text[range].split(separator: ":").last!) else {
                process.terminate()
                throw XCTSkip("mt-serve did not start: \(text)")
            }
            self.port = port
            // Keep draining stderr (request logs) so that the server never blocks on a full pipe.
            Thread { while !handle.availableData.isEmpty {} }.start()
        }

        var url: String { "http://127.0.0.1:\(port)" }

        deinit { if process.isRunning { process.terminate() } }
    }

    /// Runs a command through the shell; returns its status and standard output.
    @discardableResult
    static func shell(_ command: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func health(_ server: Server) throws -> [String: Any] {
        let (_, text) = try shell("curl -s \(server.url)/health")
        return (try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]) ?? [:]
    }

    static var python: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
            + "/.build-python/bin/python"
    }

    /// libretranslatepy, unchanged, translates through mt-serve what mt-translate translates, and lists its languages.
    func testLibreTranslateClient() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.python) else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("no \(Self.python): scripts/setup-test-clients.sh") }
            throw XCTSkip("run scripts/setup-test-clients.sh for libretranslatepy")
        }
        let server = try Server([])
        let lines = ["A man rides a bike.", "Two dogs play in the snow.", "A little girl climbs into a wooden playhouse."]
        let script = """
        import json, sys
        from libretranslatepy import LibreTranslateAPI
        api = LibreTranslateAPI("\(server.url)")
        print(json.dumps({"translations": [api.translate(line, "en", "de") for line in \(lines.debugDescription)],
                          "languages": api.languages(), "detected": api.detect("A dog.")}))
        """
        let scriptFile = try TestCorpus.makeTempDir("libretranslate") + "/client.py"
        try script.write(toFile: scriptFile, atomically: true, encoding: .utf8)
        let (status, output) = try Self.shell("'\(Self.python)' '\(scriptFile)'")
        XCTAssertEqual(status, 0, output)
        let answer = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], output)
        let expected = try Executables.run("mt-translate", ["--model", ScoreTests.shippedModel], input: Data((lines.joined(separator: "\n") + "\n").utf8))
        XCTAssertEqual(answer["translations"] as? [String], expected.output.split(separator: "\n").map(String.init))
        XCTAssertEqual((answer["languages"] as? [[String: Any]])?.first?["code"] as? String, "en")
        XCTAssertEqual((answer["detected"] as? [[String: Any]])?.first?["language"] as? String, "en")
    }

    /// schemathesis, from docs/openapi.yaml, against the running server: its examples, the boundaries of
    /// every schema and random requests; no 5xx, and every status, content type, header and body as the
    /// spec says.
    func testResponsesMatchTheOpenAPISpec() throws {
        let schemathesis = URL(fileURLWithPath: Self.python).deletingLastPathComponent().path + "/schemathesis"
        guard FileManager.default.isExecutableFile(atPath: schemathesis) else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("no \(schemathesis): scripts/setup-test-clients.sh") }
            throw XCTSkip("run scripts/setup-test-clients.sh for schemathesis")
        }
        let server = try Server(["--log-level", "warning"])
        let spec = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
            + "/docs/openapi.yaml"
        // Run from a directory of its own: schemathesis writes its cache (.schemathesis/) where it runs.
        let workDirectory = NSTemporaryDirectory() + "swiftnmt-schemathesis-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: workDirectory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: workDirectory) }
        let (status, output) = try Self.shell("""
            cd '\(workDirectory)' && '\(schemathesis)' run '\(spec)' -u \(server.url) --workers 1 --max-examples 25 --phases examples,coverage,fuzzing \
              --seed 1 -c not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance 2>&1
            """)
        XCTAssertEqual(status, 0, output)
        XCTAssertTrue(output.contains("passed"), output)
        XCTAssertFalse(output.contains("failed"), output)
    }

    /// The page in headless Chromium (Playwright, scripts/serve-page-check.py): typed text gets mt-translate's
    /// translation, n-best on request, the attention heatmap; nothing is loaded from elsewhere.
    func testPageInABrowser() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium"),
              (try? Self.shell("'\(Self.python)' -c 'import playwright'").status) == 0 else {
            if ProcessInfo.processInfo.environment["CI"] != nil { XCTFail("no chromium or playwright: scripts/setup-test-clients.sh") }
            throw XCTSkip("run scripts/setup-test-clients.sh for chromium and playwright")
        }
        let server = try Server(["--log-level", "warning"])
        let sentence = "A man in a blue shirt is standing on a ladder cleaning windows."
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
            + "/scripts/serve-page-check.py"
        let (status, output) = try Self.shell("'\(Self.python)' '\(script)' \(server.url)/ '\(sentence)'")
        XCTAssertEqual(status, 0, output)
        let page = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], output)
        let expected = try Executables.run("mt-translate", ["--model", ScoreTests.shippedModel], input: Data((sentence + "\n").utf8))
        XCTAssertEqual(page["translation"] as? String, expected.output.trimmingCharacters(in: .newlines))
        XCTAssertEqual((page["nbest"] as? [String])?.count, 5)
        XCTAssertGreaterThan(page["heatmap_rows"] as? Int ?? 0, 5)
        XCTAssertEqual((page["requests_elsewhere"] as? [String])?.count, 0)
    }

    /// 64 clients for 60 seconds (SOAK_SECONDS), with good, bad and abandoned requests mixed
    /// (scripts/serve-soak.py): every good answer is mt-translate's, every bad request gets its 400 and
    /// nothing else, no 5xx, and the server's memory stays flat after the warm-up.
    func testSoak() throws {
        let lines = Array(ServeTests.lines.prefix(40))
        let expected = try Executables.run("mt-translate", ["--model", ScoreTests.shippedModel], input: Data((lines.joined(separator: "\n") + "\n").utf8))
        let translations = expected.output.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        XCTAssertEqual(translations.count, lines.count)
        let tsv = try TestCorpus.makeTempDir("serve-soak") + "/expected.tsv"
        try zip(lines, translations).map { "\($0)\t\($1)\n" }.joined().write(toFile: tsv, atomically: true, encoding: .utf8)
        let server = try Server(["--threads", "2", "--log-level", "warning"])
        let seconds = ProcessInfo.processInfo.environment["SOAK_SECONDS"] ?? "60"
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
            + "/scripts/serve-soak.py"
        let (status, output) = try Self.shell("python3 '\(script)' \(server.url) \(server.process.processIdentifier) '\(tsv)' --clients 64 --seconds \(seconds)")
        XCTAssertEqual(status, 0, output)
        let summary = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], output)
        let requests = summary["requests"] as? [String: Int] ?? [:]
        XCTAssertGreaterThan(requests["good"] ?? 0, 100, output)
        XCTAssertGreaterThan(requests["abandoned"] ?? 0, 20, output)
        XCTAssertTrue(server.process.isRunning)
        print("soak: \(output)")
    }

    /// A client that hangs up: its sentences leave the batch long before they could have been translated.
    func testDisconnectedClientsSentencesLeave() throws {
        let server = try Server(["--max-beam-size", "10"])
        // 256 long lines at beam 10 on one thread: minutes of work, were it done.
        let line = String(repeating: "A man in a blue shirt and a woman in a red dress walk their dogs past the old market. ", count: 2)
        // Both APIs: the native one at beam 10, LibreTranslate's with 9 alternatives (beam 10 too).
        let requests: [(path: String, body: [String: Any])] = [
            ("/v1/translate", ["text": Array(repeating: line, count: 256), "source": "en", "target": "de", "beam_size": 10]),
            ("/translate", ["q": Array(repeating: line, count: 256), "source": "en", "target": "de", "alternatives": 9]),
        ]
        for (path, body) in requests {
            let bodyFile = try TestCorpus.makeTempDir("serve-disconnect") + "/body.json"
            try JSONSerialization.data(withJSONObject: body).write(to: URL(fileURLWithPath: bodyFile))
            let (status, _) = try Self.shell("curl -s --max-time 1 -H 'Content-Type: application/json' --data-binary @'\(bodyFile)' \(server.url)\(path)")
            XCTAssertEqual(status, 28, "\(path): curl gave up after a second (exit 28), hanging up")
            var active = try Self.health(server)["active_sentences"] as? Int ?? -1
            for _ in 0..<100 where active != 0 {
                usleep(100_000)
                active = try Self.health(server)["active_sentences"] as? Int ?? -1
            }
            XCTAssertEqual(active, 0, "\(path): the hung-up request's sentences left their batch")
        }
        // The server still answers.
        let (_, answer) = try Self.shell("curl -s -H 'Content-Type: application/json' -d '{\"q\": \"A dog.\", \"source\": \"en\", \"target\": \"de\"}' \(server.url)/translate")
        XCTAssertTrue(answer.contains("translatedText"), answer)
    }

    /// Translation requests on one connection: it stays open between them (keep-alive), both APIs, while
    /// a client that hangs up still has its sentences leave (testDisconnectedClientsSentencesLeave).
    func testTranslationRequestsShareAConnection() throws {
        let server = try Server([])
        let json = "-H 'Content-Type: application/json'"
        let (status, output) = try Self.shell(
            "curl -sv \(json) -d '{\"q\": \"A dog.\", \"source\": \"en\", \"target\": \"de\"}' \(server.url)/translate " +
            "--next \(json) -d '{\"text\": \"A cat.\", \"source\": \"en\", \"target\": \"de\"}' \(server.url)/v1/translate " +
            "--next \(json) -d '{\"q\": \"Two dogs.\", \"source\": \"en\", \"target\": \"de\"}' \(server.url)/translate 2>&1")
        XCTAssertEqual(status, 0, output)
        XCTAssertEqual(output.components(separatedBy: "Re-using existing connection").count - 1, 2, output)
        XCTAssertEqual(output.components(separatedBy: "\"translatedText\"").count - 1, 2, output)
        XCTAssertEqual(output.components(separatedBy: "\"translations\"").count - 1, 1, output)
    }

    /// SIGTERM while a request is decoded: the request is answered in full, then the server exits 0.
    func testSigtermFinishesRequestsInFlight() throws {
        let server = try Server(["--shutdown-timeout", "60"])
        let lines = (0..<48).map { "Line \($0): a man in a blue shirt is standing on a ladder cleaning the windows of a tall building." }
        let bodyFile = try TestCorpus.makeTempDir("serve-sigterm") + "/body.json"
        try JSONSerialization.data(withJSONObject: ["q": lines, "source": "en", "target": "de"]).write(to: URL(fileURLWithPath: bodyFile))
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/bin/sh")
        client.arguments = ["-c", "curl -s -w '\\n%{http_code}' -H 'Content-Type: application/json' --data-binary @'\(bodyFile)' \(server.url)/translate"]
        let output = Pipe()
        client.standardOutput = output
        try client.run()
        var active = 0
        for _ in 0..<200 where active == 0 {
            usleep(20_000)
            active = try Self.health(server)["active_sentences"] as? Int ?? 0
        }
        XCTAssertGreaterThan(active, 0, "the request was being translated when SIGTERM came")
        kill(server.process.processIdentifier, SIGTERM)
        let answer = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        client.waitUntilExit()
        server.process.waitUntilExit()
        XCTAssertEqual(server.process.terminationStatus, 0)
        XCTAssertTrue(answer.hasSuffix("\n200"), String(answer.suffix(200)))
        let translations = (try? JSONSerialization.jsonObject(with: Data(answer.dropLast(4).utf8)) as? [String: Any])?["translatedText"] as? [String]
        XCTAssertEqual(translations?.count, lines.count)
        XCTAssertNotEqual(try Self.shell("curl -s \(server.url)/health").status, 0, "the port is closed")
    }
}
