import Foundation
import Hummingbird
import Logging
import NMTSearch
import NMTTensor
import ServiceLifecycle

/// mt-serve's whole job, given its parsed options: load the models, start their schedulers, serve
/// HTTP until SIGTERM or SIGINT, then stop taking connections, finish what is in flight and stop the
/// schedulers.
public struct TranslationServer {
    /// One served pair: its model directory (several: an ensemble), and the languages when given.
    public struct ModelSpec: Sendable {
        public var directories: [String]
        public var pair: (source: String, target: String)?

        /// `DIR`, `DIR,DIR` (an ensemble), or either after `SRC-TGT=`.
        public init?(parsing text: String) {
            var rest = Substring(text)
            if let equals = text.firstIndex(of: "="), let dash = text[..<equals].firstIndex(of: "-") {
                let source = text[..<dash], target = text[text.index(after: dash)..<equals]
                let isCode = { (s: Substring) in (2...8).contains(s.count) && s.allSatisfy { $0.isLetter || $0 == "_" } }
                guard isCode(source), isCode(target) else { return nil }
                pair = (String(source), String(target))
                rest = text[text.index(after: equals)...]
            }
            directories = rest.split(separator: ",").map(String.init)
            if directories.isEmpty { return nil }
        }
    }

    public var models: [ModelSpec] = []
    /// The matrix products' precision (as resolved for this CPU).
    public var precision: Precision = .f32
    /// Beam search over each model's lexical shortlist, of these sizes (`Translator.useShortlist`); nil: the whole vocabulary.
    public var shortlist: (frequent: Int, translations: Int)?
    public var host = "127.0.0.1"
    public var port = 8080
    /// Decoder threads per model.
    public var workers = 1
    public var maxBatchSentences = 64
    public var maxBatchPositions = 16_384
    public var maxQueue = 1_024
    public var shutdownTimeout: Duration = .seconds(30)
    /// trace, debug, info, notice, warning, error or critical.
    public var logLevel = "info"
    public static let logLevels = Logger.Level.allCases.map(\.rawValue)
    var options = ServeOptions()

    public init() {}

    public var maxRequestBytes: Int { get { options.maxRequestBytes } set { options.maxRequestBytes = newValue } }
    public var requestTimeout: Duration { get { options.requestTimeout } set { options.requestTimeout = newValue } }
    public var beamSize: Int { get { options.beamSize } set { options.beamSize = newValue } }
    public var lengthPenalty: Float { get { options.lengthPenalty } set { options.lengthPenalty = newValue } }
    public var maxBeamSize: Int { get { options.maxBeamSize } set { options.maxBeamSize = newValue } }
    public var maxSourceLength: Int { get { options.maxSourceLength } set { options.maxSourceLength = newValue } }
    public var maxLines: Int { get { options.maxLines } set { options.maxLines = newValue } }
    public var apiKeys: [String] { get { options.apiKeys } set { options.apiKeys = newValue } }

    /// Loads every model (errors name the directory) and builds the service.
    package func makeService() throws -> TranslationService {
        let metrics = ServeMetrics()
        let limits = Scheduler.Limits(maxBatchSentences: maxBatchSentences, maxBatchPositions: maxBatchPositions, maxQueue: maxQueue)
        var served: [ServedModel] = []
        for spec in models {
            let model = try ServedModel.load(directories: spec.directories, pair: spec.pair, workers: workers, limits: limits, metrics: metrics,
                                             precision: precision, shortlist: shortlist)
            if served.contains(where: { $0.sourceLang == model.sourceLang && $0.targetLang == model.targetLang }) {
                throw ServeError(500, "two models for \(model.sourceLang)-\(model.targetLang): give one --model per language pair")
            }
            served.append(model)
        }
        return TranslationService(models: served, options: options, metrics: metrics)
    }

    /// Serves until SIGTERM or SIGINT; `ready` is called once the port is bound.
    public func run(ready: @escaping @Sendable (String) -> Void = { _ in }) async throws {
        let service = try makeService()
        var logger = Logger(label: "mt-serve")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let router = Routes.router(service)
        router.add(middleware: LogRequestsMiddleware(.info))
        let pairs = service.models.map { "\($0.sourceLang)-\($0.targetLang)" }.joined(separator: ", ")
        let app = Application(router: router, server: .http1(configuration: .init(additionalChannelHandlers: [HangUpHandler()])),
                              configuration: .init(address: .hostname(host, port: port), serverName: "mt-serve"),
                              onServerRunning: { channel in
                                  ready("mt-serve: serving \(pairs) on http://\(host):\(channel.localAddress?.port ?? port)")
                              },
                              logger: logger)
        var configuration = ServiceGroupConfiguration(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        configuration.maximumGracefulShutdownDuration = shutdownTimeout
        defer {
            for model in service.models { model.scheduler.shutdown() }
            for model in service.models { model.scheduler.waitUntilStopped() }
        }
        try await ServiceGroup(configuration: configuration).run()
    }
}
