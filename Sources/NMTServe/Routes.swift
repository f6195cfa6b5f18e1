import Foundation
import Hummingbird
import NMTSearch

/// The HTTP API: LibreTranslate's (`POST /translate`, `/languages`), the native one (`POST /v1/translate`),
/// `GET /health`, `GET /metrics` and the page at `/`. docs/openapi.yaml describes them.
///
/// Every error is `{"error": "…"}` with its status, as LibreTranslate answers: 400 for a request that
/// cannot be served as it is, 403 without a valid key, 413 for a body over the limit, 429 when the queue
/// is full, 504 past the deadline; 500 only for a fault of the server's own.
package enum Routes {
    package static func router(_ service: TranslationService) -> Router<ServeRequestContext> {
        let router = Router(context: ServeRequestContext.self)
        router.add(middleware: ErrorMiddleware(metrics: service.metrics))
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: WebPage.html)))
        }
        router.get("/health") { _, _ in
            try json(["status": "ok", "models": service.models.map { "\($0.sourceLang)-\($0.targetLang)" },
                      "queued_sentences": service.models.map(\.scheduler.queueDepth).reduce(0, +),
                      "active_sentences": service.models.map(\.scheduler.activeSentences).reduce(0, +)] as [String: Any])
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: ResponseBody(byteBuffer: ByteBuffer(string: service.metrics.text)))
        }
        let languages: @Sendable (Request, ServeRequestContext) async throws -> Response = { _, _ in
            let sources = Array(Set(service.models.map(\.sourceLang))).sorted()
            return try json(sources.map { code in
                ["code": code, "name": LanguageNames.name(code),
                 "targets": service.models.filter { $0.sourceLang == code }.map(\.targetLang).sorted()] as [String: Any]
            })
        }
        router.get("/languages", use: languages)
        router.post("/languages", use: languages)
        // LibreTranslate's language detection: SwiftNMT has none, but a server of one source language knows it.
        router.post("/detect") { _, _ in
            let sources = Set(service.models.map(\.sourceLang))
            guard sources.count == 1 else {
                throw ServeError.badRequest("language detection is not supported: this server translates from \(sources.sorted().joined(separator: ", "))")
            }
            return try json([["confidence": 100, "language": sources.first!] as [String: Any]])
        }
        // A client that hangs up has its sentences leave the queue or their batch (`HangUpHandler`).
        router.post("/translate") { request, context in
            try await request.cancellingOnHangUp(context) {
                let fields = try await RequestFields(body: request.body, contentType: request.headers[.contentType], limit: service.options.maxRequestBytes)
                return try await LibreTranslate.translate(fields, service: service)
            }
        }
        router.post("/v1/translate") { request, context in
            try await request.cancellingOnHangUp(context) {
                let fields = try await RequestFields(body: request.body, contentType: request.headers[.contentType], limit: service.options.maxRequestBytes)
                var key = fields.string("api_key")
                if let authorization = request.headers[.authorization], authorization.hasPrefix("Bearer ") {
                    key = String(authorization.dropFirst("Bearer ".count))
                }
                return try await NativeAPI.translate(fields, key: key, service: service)
            }
        }
        return router
    }

    static func json(_ value: Any, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])
        return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// A JSON value as a request carries it: booleans, numbers and strings kept apart.
enum JSONValue: Decodable {
    case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

    /// Each failed attempt throws (and builds) a DecodingError, so the usual kinds of a request are tried
    /// first: a request's strings and its top-level object decode at the first attempt. (Bool stays before
    /// Double, which is all the order decides: the kinds are otherwise disjoint.)
    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([String: JSONValue].self) { self = .object(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else { self = .number(try container.decode(Double.self)) }
    }
}

/// A request's fields, from a JSON object or a form (`application/x-www-form-urlencoded`), as
/// LibreTranslate takes both; types are checked as they are read.
struct RequestFields {
    private var values: [String: JSONValue] = [:]

    init(body: RequestBody, contentType: String?, limit: Int) async throws {
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: limit)
        } catch let error as HTTPResponseError where error.status == .contentTooLarge {
            throw ServeError(413, "the request is larger than the server's limit of \(limit) bytes")
        }
        let bytes = Data(buffer.readableBytesView)
        if contentType?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true {
            for pair in String(decoding: bytes, as: UTF8.self).split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                func decoded(_ s: Substring) -> String { s.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(s) }
                let key = decoded(parts[0]), value = JSONValue.string(parts.count > 1 ? decoded(parts[1]) : "")
                switch values[key] {
                case .array(let earlier): values[key] = .array(earlier + [value])
                case .some(let earlier): values[key] = .array([earlier, value])
                case nil: values[key] = value
                }
            }
            return
        }
        guard !bytes.isEmpty else { throw ServeError.badRequest("the request has no body: send a JSON object") }
        guard case .object(let object)? = try? JSONDecoder().decode(JSONValue.self, from: bytes) else {
            throw ServeError.badRequest("the request body is not a JSON object")
        }
        values = object
    }

    /// A string field, if it is one.
    func string(_ key: String) -> String? {
        if case .string(let value)? = values[key] { return value }
        return nil
    }

    func requiredString(_ key: String) throws -> String {
        guard let value = values[key] else { throw ServeError.badRequest("missing \(key) parameter") }
        guard case .string(let string) = value else { throw ServeError.badRequest("\(key) must be a string") }
        return string
    }

    /// A string or a list of strings; whether it was a list.
    func texts(_ key: String) throws -> (texts: [String], isList: Bool) {
        switch values[key] {
        case nil: throw ServeError.badRequest("missing \(key) parameter")
        case .string(let string)?: return ([string], false)
        case .array(let items)?:
            let strings = items.compactMap { item -> String? in
                if case .string(let s) = item { return s }
                return nil
            }
            if strings.count == items.count { return (strings, true) }
        default: break
        }
        throw ServeError.badRequest("\(key) must be a string or a list of strings")
    }

    /// A number, given as a JSON number or (in a form) a string.
    func number(_ key: String) throws -> Double? {
        switch values[key] {
        case nil, .null?: return nil
        case .number(let x)? where x.isFinite: return x
        case .string(let s)?: if let x = Double(s), x.isFinite { return x }
        default: break
        }
        throw ServeError.badRequest("\(key) must be a number")
    }

    func integer(_ key: String) throws -> Int? {
        let value: Double?
        do { value = try number(key) } catch { throw ServeError.badRequest("\(key) must be an integer") }
        guard let x = value else { return nil }
        guard let n = Int(exactly: x) else { throw ServeError.badRequest("\(key) must be an integer") }
        return n
    }

    func boolean(_ key: String) throws -> Bool? {
        switch values[key] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        case .string("true")?: return true
        case .string("false")?: return false
        default: throw ServeError.badRequest("\(key) must be true or false")
        }
    }
}

/// LibreTranslate's `POST /translate`: `q` (a string or a list), `source` (or "auto" where one served pair
/// has the target), `target`, `format` ("text"; "html" is refused), `alternatives`, `api_key`. A text of
/// several lines is translated line by line, as mt-translate would, and joined again.
enum LibreTranslate {
    static func translate(_ fields: RequestFields, service: TranslationService) async throws -> Response {
        try service.authorize(fields.string("api_key"))
        let (texts, isList) = try fields.texts("q")
        var source = try fields.requiredString("source")
        let target = try fields.requiredString("target")
        var detected: String?
        if source == "auto" {
            let candidates = service.models.filter { $0.targetLang == target }
            guard candidates.count == 1 else {
                throw ServeError.badRequest("source \"auto\" needs exactly one served pair into \(target); name the source language")
            }
            source = candidates[0].sourceLang
            detected = source
        }
        if let format = fields.string("format"), format != "text" {
            throw ServeError.badRequest("format \(format) is not supported: only text")
        }
        let alternatives = try fields.integer("alternatives") ?? 0
        guard (0...service.options.maxBeamSize - 1).contains(alternatives) else {
            throw ServeError.badRequest("alternatives must be from 0 to \(service.options.maxBeamSize - 1)")
        }
        let model = try service.model(source: source, target: target)
        let linesPerText = texts.map { LineStream.lines(of: $0) }
        let lines = Array(linesPerText.joined())
        guard !texts.isEmpty, !lines.allSatisfy(\.isEmpty) else { throw ServeError.badRequest("q is empty: nothing to translate") }
        try service.checkLines(lines)
        let search = try service.searchOptions(beamSize: max(service.options.beamSize, alternatives + 1), lengthPenalty: nil,
                                               nBest: alternatives + 1, alignments: false)
        let translations = try await service.translate(lines, model: model, search: search)
        // Back into texts: line i of text j is translations[offset_j + i].
        var answers: [(text: String, alternatives: [String])] = []
        var next = 0
        for textLines in linesPerText {
            let mine = translations[next..<next + textLines.count]
            next += textLines.count
            let best = mine.map(\.text).joined(separator: "\n")
            let others = (1...max(1, alternatives)).compactMap { rank -> String? in
                guard alternatives > 0 else { return nil }
                return mine.map { $0.hypotheses.count > rank ? $0.hypotheses[rank].text : $0.text }.joined(separator: "\n")
            }
            answers.append((best, others))
        }
        var body: [String: Any] = ["translatedText": isList ? answers.map(\.text) as Any : answers[0].text as Any]
        if alternatives > 0 { body["alternatives"] = isList ? answers.map(\.alternatives) as Any : answers[0].alternatives as Any }
        if let detected {
            let language: [String: Any] = ["confidence": 100, "language": detected]
            body["detectedLanguage"] = isList ? Array(repeating: language, count: answers.count) as Any : language as Any
        }
        return try Routes.json(body)
    }
}

/// `POST /v1/translate`: `text` (a line or a list of lines), `source`, `target`, and per request
/// `beam_size`, `length_penalty`, `n_best`, `alignments` within the server's bounds. Each translation
/// carries its n-best hypotheses with scores (as `mt-translate --scores`) and log-probabilities, and
/// with `alignments` the hard alignment (as `mt-translate --alignment`), the attention matrix and the pieces.
enum NativeAPI {
    static func translate(_ fields: RequestFields, key: String?, service: TranslationService) async throws -> Response {
        try service.authorize(key)
        let (texts, _) = try fields.texts("text")
        let model = try service.model(source: try fields.requiredString("source"), target: try fields.requiredString("target"))
        if let index = texts.firstIndex(where: { $0.contains("\n") }) {
            throw ServeError.badRequest("text \(index + 1) spans several lines: send one line per item")
        }
        let lines = texts.flatMap { LineStream.lines(of: $0) }
        try service.checkLines(lines)
        let alignments = try fields.boolean("alignments") ?? false
        let search = try service.searchOptions(beamSize: try fields.integer("beam_size"), lengthPenalty: try fields.number("length_penalty"),
                                               nBest: try fields.integer("n_best"), alignments: alignments)
        let translations = try await service.translate(lines, model: model, search: search)
        let target = model.translator.target
        let answer = translations.map { translation -> [String: Any] in
            var item: [String: Any] = ["text": translation.text, "truncated": translation.truncated]
            item["hypotheses"] = translation.hypotheses.map { entry -> [String: Any] in
                var hypothesis: [String: Any] = ["text": entry.text, "score": Double(entry.hypothesis.score),
                                                 "log_probability": Double(entry.hypothesis.logProbability)]
                if alignments {
                    hypothesis["alignment"] = OutputFormat.hardAlignment(entry.hypothesis.alignment)
                    hypothesis["target_pieces"] = entry.hypothesis.tokens.map { target.idToPiece($0) ?? "?" } + ["</s>"]
                    hypothesis["attention"] = entry.hypothesis.alignment.map { $0.map(Double.init) }
                }
                return hypothesis
            }
            if alignments { item["source_pieces"] = translation.sourcePieces }
            return item
        }
        return try Routes.json(["translations": answer])
    }
}

/// Turns every error into `{"error": "…"}` with its status, and counts requests by route and status.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServeMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        let route = request.uri.path
        let response: Response
        do {
            response = try await next(request, context)
        } catch let error as ServeError {
            var headers: HTTPFields = [:]
            if let retryAfter = error.retryAfter { headers[.retryAfter] = String(retryAfter) }
            response = try Self.errorResponse(error.status, error.message, headers: headers)
        } catch let error as HTTPResponseError {
            let status = error.status.code
            let message = status == 404 ? "no such route: \(request.method) \(route)"
                : status == 413 ? "the request is too large" : (HTTPResponse.Status(code: status).reasonPhrase)
            response = try Self.errorResponse(status, message)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            context.logger.error("\(request.method) \(route): \(error)")
            response = try Self.errorResponse(500, "internal error: \(error)")
        }
        let known = ["/", "/health", "/metrics", "/languages", "/detect", "/translate", "/v1/translate"].contains(route) ? route : "other"
        metrics.request(route: known, status: response.status.code)
        if route == "/translate" || route == "/v1/translate" { metrics.latency.record(ContinuousClock.now - started) }
        return response
    }

    static func errorResponse(_ status: Int, _ message: String, headers: HTTPFields = [:]) throws -> Response {
        var response = try Routes.json(["error": message], status: HTTPResponse.Status(code: status))
        response.headers.append(contentsOf: headers)
        return response
    }
}
