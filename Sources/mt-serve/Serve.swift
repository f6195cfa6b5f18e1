import ArgumentParser
import Foundation
import NMTCommandLine
import NMTServe

@main
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mt-serve",
        abstract: "Serve translations over HTTP: LibreTranslate's API, a native one, and a page to try it.",
        discussion: """
        Routes: POST /translate and GET /languages (LibreTranslate's API: q, source, target, alternatives, api_key),
        POST /v1/translate (text, source, target, beam_size, length_penalty, n_best, alignments), GET /health,
        GET /metrics (Prometheus), and GET / (a page: translation as you type, n-best, attention). docs/openapi.yaml
        describes them; errors are {"error": "..."} with their status.

        Sentences from all requests are decoded together: between two decoder steps, finished sentences leave a
        batch and waiting ones join it, so a long sentence does not hold short ones back and a lone request starts at
        once. Each sentence gets what mt-translate gives it with the same options, whatever shares its batch.

        Example:
          mt-serve --model checkpoints/multi30k-en-de
          curl -s localhost:8080/translate -H 'Content-Type: application/json' \\
               -d '{"q": "A man rides a bike.", "source": "en", "target": "de"}'

        SIGTERM or Ctrl-C: stop taking connections, answer what is in flight (at most --shutdown-timeout), exit 0.
        """)

    @Option(name: .customLong("model"), help: ArgumentHelp("""
        A model directory written by mt-train; DIR,DIR serves an ensemble; SRC-TGT=DIR names the languages where the \
        directory does not. Repeated: one per language pair.
        """, valueName: "[SRC-TGT=]DIR[,DIR…]"))
    var model: [String] = []

    @Option(help: "Address to listen on (loopback by default; 0.0.0.0 for every interface).")
    var host = "127.0.0.1"

    @Option(help: "Port (0: any free port, printed at start).")
    var port = 8080

    @Option(help: "Sentences decoded together by one decoder thread.")
    var maxBatchSentences = 64

    @Option(help: "Hypotheses times the longest source in one decoder thread's batch (bounds its memory, about 16 KB each).")
    var maxBatchTokens = 16_384

    @Option(help: "Sentences waiting for a batch, beyond which requests get 429 with Retry-After.")
    var maxQueue = 1_024

    @Option(help: "Largest request body, in bytes (413 beyond).")
    var maxRequestBytes = 1 << 20

    @Option(help: "Lines in one request (400 beyond).")
    var maxLines = 256

    @Option(help: "Seconds before an unanswered request gets 504 and its sentences leave their batches.")
    var requestTimeout: Double = 30

    @Option(help: "Seconds that SIGTERM waits for requests in flight.")
    var shutdownTimeout: Double = 30

    @Option(help: "Beam size of requests that name none (LibreTranslate's always).")
    var beamSize = 5

    @Option(help: "Length penalty of requests that name none.")
    var lengthPenalty: Float = 1

    @Option(help: "Largest beam_size a request may ask for.")
    var maxBeamSize = 10

    @Option(help: "Longest source, in SentencePiece pieces; longer lines are cut (as mt-translate's --max-source-length).")
    var maxSourceLength = 200

    @Option(help: ArgumentHelp("A file of API keys, one per line: requests without one of them get 403.", valueName: "FILE"))
    var apiKeys: String?

    @Option(help: "Least severe log messages written to stderr: trace, debug, info (one line per request), notice, warning, error, critical.")
    var logLevel = "info"

    /// Decoder threads per model, each with one BLAS thread.
    @OptionGroup var threads: ThreadsOption

    @OptionGroup var precision: PrecisionOption

    @OptionGroup var shortlist: ShortlistOption

    func validate() throws {
        guard !model.isEmpty else { throw ValidationError("Missing expected argument '--model <DIR>'") }
        for spec in model where TranslationServer.ModelSpec(parsing: spec) == nil {
            throw ValidationError("--model \(spec): expected DIR, DIR,DIR or SRC-TGT=DIR")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535") }
        for (name, value) in [("--max-batch-sentences", maxBatchSentences), ("--max-batch-tokens", maxBatchTokens), ("--max-queue", maxQueue),
                              ("--max-request-bytes", maxRequestBytes), ("--max-lines", maxLines), ("--max-beam-size", maxBeamSize)] {
            guard value >= 1 else { throw ValidationError("\(name) must be at least 1") }
        }
        guard (1...maxBeamSize).contains(beamSize) else { throw ValidationError("--beam-size must be from 1 to --max-beam-size (\(maxBeamSize))") }
        guard (1...1000).contains(maxSourceLength) else { throw ValidationError("--max-source-length must be from 1 to 1000") }
        guard lengthPenalty >= 0 && lengthPenalty <= 10 else { throw ValidationError("--length-penalty must be from 0 to 10") }
        guard requestTimeout > 0 && requestTimeout <= 3600 else { throw ValidationError("--request-timeout must be above 0 and at most 3600") }
        guard TranslationServer.logLevels.contains(logLevel) else {
            throw ValidationError("--log-level must be one of \(TranslationServer.logLevels.joined(separator: ", "))")
        }
        guard shutdownTimeout >= 0 && shutdownTimeout <= 3600 else { throw ValidationError("--shutdown-timeout must be from 0 to 3600") }
    }

    func run() async throws {
        var server = TranslationServer()
        server.models = model.compactMap(TranslationServer.ModelSpec.init(parsing:))
        server.host = host
        server.port = port
        server.workers = threads.count
        server.maxBatchSentences = maxBatchSentences
        server.maxBatchPositions = maxBatchTokens
        server.maxQueue = maxQueue
        server.maxRequestBytes = maxRequestBytes
        server.maxLines = maxLines
        server.requestTimeout = .milliseconds(Int64(requestTimeout * 1000))
        server.shutdownTimeout = .milliseconds(Int64(shutdownTimeout * 1000))
        server.beamSize = beamSize
        server.lengthPenalty = lengthPenalty
        server.maxBeamSize = maxBeamSize
        server.maxSourceLength = maxSourceLength
        server.logLevel = logLevel
        server.precision = precision.resolved(for: "mt-serve")
        server.shortlist = shortlist.sizes
        do {
            if let apiKeys {
                let text = try String(contentsOfFile: apiKeys, encoding: .utf8)
                server.apiKeys = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                guard !server.apiKeys.isEmpty else { throw ValidationError("--api-keys \(apiKeys) holds no key") }
            }
            try await server.run(ready: { StandardError.write($0 + "\n") })
        } catch let error as ValidationError {
            throw error
        } catch {
            Failure.printError("mt-serve", Failure.plainDescription(of: error))
            throw ExitCode(1)
        }
    }
}

