import Foundation
import NMTMetrics
import NMTModel
import NMTModelFiles
import NMTSearch
import NMTTensor
import NMTText
import Yams

/// Every option of `mt-train`, as read from `--config FILE.yaml` (keys as the command-line flags,
/// without the dashes) and overridden by flags. The resolved options are saved with the model.
public struct TrainingOptions: Codable, Equatable, Sendable {
    // Model.
    public var embedSize = 256
    public var encoderHiddenSize = 256
    public var encoderLayers = 1
    public var decoderHiddenSize = 512
    public var decoderLayers = 2
    public var attentionSize = 512
    /// nil: share when the vocabulary is joint.
    public var sharedEmbeddings: Bool?
    public var tiedOutput = true
    // Optimization.
    public var batchSentences: Int? = 64
    public var batchTokens: Int?
    public var learningRate: Float = 1e-3
    public var schedule: ScheduleKind = .plateau
    public var warmup = 4000
    public var decayFactor: Float = 0.5
    public var decayPatience = 2
    public var clipNorm: Float = 5
    public var labelSmoothing: Float = 0.1
    public var dropout: Float = 0.3
    // Duration and validation.
    public var maxUpdates = 0
    public var maxEpochs = 0
    /// Stop after this many minutes of training (0: no limit); counts across resumes.
    public var maxMinutes: Double = 0
    public var validEvery = 1000
    /// Early stopping: stop after this many validations without a better BLEU (0: never).
    public var patience = 10
    /// Beam size of the validation translations (1: greedy).
    public var validBeam = 1
    /// Decode at most this many validation sentences for BLEU (0: all).
    public var validBLEUSentences = 0
    public var logEvery = 100
    public var seed: UInt64 = 1
    public var threads = 0
    public var keepLast = true
    public var keepBest = true
    /// Weights written as 16-bit floats (halves the size on disk; the loader converts).
    public var halfPrecisionWeights = false

    public init() {}

    enum CodingKeys: String, CodingKey, CaseIterable {
        case embedSize = "embed-size", encoderHiddenSize = "encoder-hidden-size", encoderLayers = "encoder-layers"
        case decoderHiddenSize = "decoder-hidden-size", decoderLayers = "decoder-layers", attentionSize = "attention-size"
        case sharedEmbeddings = "shared-embeddings", tiedOutput = "tied-output"
        case batchSentences = "batch-sentences", batchTokens = "batch-tokens", learningRate = "learning-rate"
        case schedule, warmup, decayFactor = "decay-factor", decayPatience = "decay-patience", clipNorm = "clip-norm"
        case labelSmoothing = "label-smoothing", dropout, maxUpdates = "max-updates", maxEpochs = "max-epochs"
        case maxMinutes = "max-minutes", validEvery = "valid-every", patience, validBeam = "valid-beam"
        case validBLEUSentences = "valid-bleu-sentences", logEvery = "log-every", seed, threads
        case keepLast = "keep-last", keepBest = "keep-best", halfPrecisionWeights = "half-precision-weights"
    }

    /// Reads options from YAML; keys not given keep their defaults, unknown keys are an error.
    public static func load(yaml text: String, path: String) throws -> TrainingOptions {
        guard let node = try Yams.compose(yaml: text) else { return TrainingOptions() }
        guard let mapping = node.mapping else { throw TrainingError.badConfig("\(path): expected a mapping of option: value") }
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        for key in mapping.keys {
            guard let name = key.string, known.contains(name) else {
                throw TrainingError.badConfig("\(path): unknown option '\(key.string ?? "?")'")
            }
        }
        // Start from the defaults and overlay what the file gives.
        do {
            let defaults = try Yams.load(yaml: try YAMLEncoder().encode(TrainingOptions())) as? [String: Any] ?? [:]
            let given = try Yams.load(yaml: text) as? [String: Any] ?? [:]
            let combined = defaults.merging(given) { _, new in new }
            return try YAMLDecoder().decode(TrainingOptions.self, from: try Yams.dump(object: combined))
        } catch {
            throw TrainingError.badConfig("\(path): \(error)")
        }
    }

    public func yaml() throws -> String { try YAMLEncoder().encode(self) }

    public func validate() throws {
        func check(_ ok: Bool, _ message: String) throws { if !ok { throw TrainingError.badConfig(message) } }
        try check((batchSentences ?? 0) > 0 || (batchTokens ?? 0) > 0, "give batch-sentences or batch-tokens")
        try check(learningRate > 0, "learning-rate must be positive")
        try check(dropout >= 0 && dropout < 1, "dropout must be in [0, 1)")
        try check(labelSmoothing >= 0 && labelSmoothing < 1, "label-smoothing must be in [0, 1)")
        try check(validEvery > 0, "valid-every must be positive")
        try check(validBeam >= 1, "valid-beam must be at least 1")
        try check(maxUpdates > 0 || maxEpochs > 0 || maxMinutes > 0 || patience > 0,
                  "training would never stop: give max-updates, max-epochs, max-minutes or patience")
    }

    public var batchSize: BatchSize { batchTokens.map { .tokens($0) } ?? .sentences(batchSentences ?? 64) }

    public func modelConfig(sourceVocabSize: Int, targetVocabSize: Int, jointVocabulary: Bool) -> ModelConfig {
        ModelConfig(sourceVocabSize: sourceVocabSize, targetVocabSize: targetVocabSize, embedSize: embedSize,
                    encoderHiddenSize: encoderHiddenSize, encoderLayers: encoderLayers, decoderHiddenSize: decoderHiddenSize,
                    decoderLayers: decoderLayers, attentionSize: attentionSize,
                    sharedEmbeddings: sharedEmbeddings ?? jointVocabulary, tiedOutput: tiedOutput)
    }
}

public enum TrainingError: Error, CustomStringConvertible {
    case badConfig(String)
    case checkpoint(String)
    case diverged(String)

    public var description: String {
        switch self {
        case .badConfig(let m): return "configuration: \(m)"
        case .checkpoint(let m): return "checkpoint: \(m)"
        case .diverged(let m): return m
        }
    }
}
