import Foundation
import NMTSearch
import NMTTensor

/// What a client may ask and the server allows (mt-serve's options).
package struct ServeOptions: Sendable {
    /// Largest request body accepted (413 beyond).
    package var maxRequestBytes = 1 << 20
    /// Lines (texts, after splitting at newlines) in one request (400 beyond).
    package var maxLines = 256
    /// Characters of one line (400 beyond).
    package var maxLineCharacters = 10_000
    /// A request not answered by then gets 504 and its sentences leave their batches.
    package var requestTimeout: Duration = .seconds(30)
    /// Search options when a request names none: mt-translate's defaults.
    package var beamSize = 5
    package var lengthPenalty: Float = 1
    package var maxSourceLength = 200
    /// Bounds of the native API's per-request options.
    package var maxBeamSize = 10
    package var maxLengthPenalty: Float = 10
    /// Keys that requests must carry (none: no key needed).
    package var apiKeys: [String] = []

    package init() {}
}

/// An answer other than 200, with the message the client reads (`{"error": message}`).
package struct ServeError: Error, CustomStringConvertible {
    package let status: Int
    package let message: String
    /// Seconds after which to try again (429).
    package var retryAfter: Int?

    package init(_ status: Int, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.message = message
        self.retryAfter = retryAfter
    }

    package var description: String { message }

    static func badRequest(_ message: String) -> ServeError { ServeError(400, message) }
}

/// A model served for one language pair: its translator and its scheduler.
/// Sendable: the translator's own decoder is never used here; each scheduler thread has a replica.
package final class ServedModel: @unchecked Sendable {
    package let sourceLang: String, targetLang: String
    let translator: Translator
    let scheduler: Scheduler
    /// The directories it was loaded from (several: an ensemble).
    package let directories: [String]

    package init(sourceLang: String, targetLang: String, directories: [String], translator: Translator, scheduler: Scheduler) {
        self.sourceLang = sourceLang
        self.targetLang = targetLang
        self.directories = directories
        self.translator = translator
        self.scheduler = scheduler
    }

    /// Loads a model (or an ensemble) and starts its scheduler. `pair` names the languages where the
    /// model directory does not (vocabulary.json of an older mt-train); given, it must agree with it.
    package static func load(directories: [String], pair: (source: String, target: String)?, workers: Int,
                             limits: Scheduler.Limits, metrics: ServeMetrics?, precision: Precision = .f32,
                             shortlist: (frequent: Int, translations: Int)? = nil) throws -> ServedModel {
        let translator = try Translator(modelDirectories: directories)
        try translator.setPrecision(precision)
        // Before the scheduler: its workers' decoders are replicas of the translator's, shortlist included.
        if let shortlist { try translator.useShortlist(frequent: shortlist.frequent, translations: shortlist.translations) }
        guard let languages = pair ?? translator.languages else {
            throw ServeError(500, "\(directories[0]) does not record its languages: name them, e.g. --model en-de=\(directories[0])")
        }
        if let pair, let recorded = translator.languages, recorded != pair {
            throw ServeError(500, "\(directories[0]) is a \(recorded.source)-\(recorded.target) model, not \(pair.source)-\(pair.target)")
        }
        let scheduler = Scheduler(translator: translator, workers: workers, limits: limits, metrics: metrics)
        return ServedModel(sourceLang: languages.source, targetLang: languages.target, directories: directories,
                           translator: translator, scheduler: scheduler)
    }
}

/// Translation as the HTTP routes ask for it: find the pair's model, clean and encode the lines as
/// mt-translate does, search them through the scheduler with a deadline, decode.
package final class TranslationService: Sendable {
    package let models: [ServedModel]
    package let options: ServeOptions
    package let metrics: ServeMetrics

    package init(models: [ServedModel], options: ServeOptions, metrics: ServeMetrics) {
        self.models = models
        self.options = options
        self.metrics = metrics
    }

    func model(source: String, target: String) throws -> ServedModel {
        guard let model = models.first(where: { $0.sourceLang == source && $0.targetLang == target }) else {
            let pairs = models.map { "\($0.sourceLang)-\($0.targetLang)" }.joined(separator: ", ")
            throw ServeError.badRequest("\(source)-\(target) is not served (this server translates \(pairs))")
        }
        return model
    }

    /// Search options from a request's values, within the server's bounds.
    func searchOptions(beamSize: Int?, lengthPenalty: Double?, nBest: Int?, alignments: Bool) throws -> BeamSearchOptions {
        let k = beamSize ?? options.beamSize
        guard (1...options.maxBeamSize).contains(k) else { throw ServeError.badRequest("beam_size must be from 1 to \(options.maxBeamSize)") }
        let alpha = lengthPenalty.map(Float.init) ?? options.lengthPenalty
        guard alpha >= 0 && alpha <= options.maxLengthPenalty else {
            throw ServeError.badRequest("length_penalty must be from 0 to \(options.maxLengthPenalty)")
        }
        let n = nBest ?? 1
        guard (1...k).contains(n) else { throw ServeError.badRequest("n_best must be from 1 to beam_size (\(k))") }
        return BeamSearchOptions(beamSize: k, lengthPenalty: alpha, nBest: n, alignments: alignments)
    }

    /// Checks the lines of a request against the server's bounds.
    func checkLines(_ lines: [String]) throws {
        guard !lines.isEmpty else { throw ServeError.badRequest("nothing to translate: the text is empty") }
        guard lines.count <= options.maxLines else {
            throw ServeError.badRequest("\(lines.count) lines in one request; at most \(options.maxLines)")
        }
        if let long = lines.firstIndex(where: { $0.count > options.maxLineCharacters }) {
            throw ServeError.badRequest("line \(long + 1) has \(lines[long].count) characters; at most \(options.maxLineCharacters)")
        }
    }

    /// Translates lines (already split and cleaned) with `model`: empty lines give empty translations.
    func translate(_ lines: [String], model: ServedModel, search: BeamSearchOptions) async throws -> [Translation] {
        let translator = model.translator
        let encoded = try lines.map { try translator.encode($0, maxSourceLength: options.maxSourceLength, pieces: search.alignments) }
        let decoded = encoded.indices.filter { !encoded[$0].ids.isEmpty }
        var hypotheses = [[Hypothesis]](repeating: [], count: lines.count)
        if !decoded.isEmpty {
            let found = try await withDeadline(options.requestTimeout) {
                try await model.scheduler.search(decoded.map { encoded[$0].ids }, options: search)
            }
            for (i, list) in zip(decoded, found) { hypotheses[i] = list }
        }
        metrics.sentences.increment(by: Int64(lines.count))
        return try zip(hypotheses, encoded).map { try translator.translation($0, of: $1) }
    }

    /// Runs `body`, cancelled with a 504 when it takes longer than `limit`.
    private func withDeadline<T: Sendable>(_ limit: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            do {
                guard let value = try await group.next()! else {
                    throw ServeError(504, "the translation took longer than the server's limit of \(limit.components.seconds) s")
                }
                return value
            } catch is Scheduler.Busy {
                throw ServeError(429, "the server is busy: too many sentences are waiting; try again shortly", retryAfter: 1)
            }
        }
    }

    /// Whether a request's key is one of the server's, compared in time that does not depend on where
    /// the key differs (only on the lengths), so that timing reveals nothing of a key.
    func authorize(_ key: String?) throws {
        guard !options.apiKeys.isEmpty else { return }
        let given = Array((key ?? "").utf8)
        var matched = false
        for allowed in options.apiKeys {
            let bytes = Array(allowed.utf8)
            var difference = UInt8(given.count == bytes.count ? 0 : 1)
            for i in 0..<max(given.count, bytes.count) {
                difference |= (i < given.count ? given[i] : 0) ^ (i < bytes.count ? bytes[i] : 0)
            }
            matched = matched || difference == 0
        }
        guard matched else { throw ServeError(403, key == nil ? "an API key is required (api_key)" : "invalid API key") }
    }
}
